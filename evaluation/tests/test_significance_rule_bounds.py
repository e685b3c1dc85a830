"""experiments/cross_fit_significance_rule/bounds.py: both ends of ``default`` under the rule, by hand."""

import pytest


@pytest.fixture
def bounds(repo_script):
    return repo_script("experiments.cross_fit_significance_rule.bounds")


def _row(value):
    return {"mrr@10": {"mean": value, "std": 0.0}}


def _report(per_seed, fused_start=0.70):
    curve = [{"epoch": 0.0, "mrr@10_fused": 0.80}, {"epoch": 1.0, "mrr@10_fused": 0.83}]
    return {
        "rows": {
            "none": _row(0.65),
            "zero-shot": _row(0.60),
            "zero-shot+fusion": _row(fused_start),
            "default": _row(sum(per_seed) / len(per_seed)),
        },
        "strategies": {
            "default": {
                "per_seed": [{"seed": s, "metrics": {"mrr@10": v}} for s, v in enumerate(per_seed)],
                "training": [
                    {"selected": "final", "validation_curve": curve, "validation_queries": 20}
                    for _ in per_seed
                ],
            }
        },
    }


def test_worst_mix_takes_the_lower_end_of_each_seed(bounds):
    b = bounds.dataset_bounds(_report([0.75, 0.68, 0.71]))
    assert b["trained"] == pytest.approx(2.14 / 3) and b["kept_start"] == 0.70
    assert b["worst_mix"] == pytest.approx((0.70 + 0.68 + 0.70) / 3)
    assert b["threshold"] == pytest.approx(0.69) and b["holds"]
    assert [s["pooled_fused_gain"] for s in b["seeds"]] == [0.03, 0.03, 0.03]


def test_a_seed_far_below_the_fused_start_breaks_the_bound(bounds):
    b = bounds.dataset_bounds(_report([0.60, 0.60, 0.72]))
    assert b["worst_mix"] == pytest.approx((0.60 + 0.60 + 0.70) / 3) and not b["holds"]
