"""tools/compare_report_rows.py: one row of a report against one row of another run, query by query."""

import numpy as np
import pytest

from hn_evaluation.significance import paired_permutation_test


@pytest.fixture
def script(repo_script):
    return repo_script("tools.compare_report_rows")


def _report(seeds: list[int], rows: dict[str, list[list[float]]]) -> dict:
    """A merged report reduced to what the script reads: per-query values per row and seed (q0, q1, ...)."""
    return {
        "config": {"seeds": seeds},
        "per_query": {
            "metric": "mrr@10",
            "per_seed": {
                row: [{f"q{i}": v for i, v in enumerate(values)} for values in by_seed]
                for row, by_seed in rows.items()
            },
        },
    }


NONE = [1.0, 0.5, 0.0, 0.25, 1.0, 0.2]


def test_shared_seeds_only_and_the_reports_own_permutation_test(script):
    a_seed0, a_seed1, a_seed2 = [1.0, 0.5, 0.0, 0.5, 1.0, 0.2], [1.0, 1.0, 0.0, 0.5, 0.5, 0.2], [0.0] * 6
    b_seed0, b_seed1 = [1.0, 1.0, 0.5, 0.5, 1.0, 0.25], [1.0, 1.0, 0.33, 1.0, 1.0, 0.2]
    report_a = _report([0, 1, 2], {"none": [NONE] * 3, "default": [a_seed0, a_seed1, a_seed2]})
    report_b = _report([0, 1], {"none": [NONE] * 2, "default+verify": [b_seed0, b_seed1]})
    result = script.compare_rows(report_a, "default", report_b, "default+verify")
    assert result["seeds"] == [0, 1]  # seed 2 (all zeros) is only in A: it must not count
    x = (np.array(a_seed0) + np.array(a_seed1)) / 2
    y = (np.array(b_seed0) + np.array(b_seed1)) / 2
    assert result["mean_a"] == pytest.approx(x.mean())
    assert result["delta"] == pytest.approx(y.mean() - x.mean())
    assert result["p"] == paired_permutation_test(y, x)
    assert [s["p"] for s in result["per_seed"]] == [
        paired_permutation_test(b_seed0, a_seed0),
        paired_permutation_test(b_seed1, a_seed1),
    ]
    assert result["queries"] == 6


def test_a_reference_row_that_differs_stops_the_comparison(script):
    report_a = _report([0], {"none": [NONE], "default": [NONE]})
    other_none = [*NONE[:-1], 0.3]
    report_b = _report([0], {"none": [other_none], "default+verify": [NONE]})
    with pytest.raises(SystemExit, match="'none' differs"):
        script.compare_rows(report_a, "default", report_b, "default+verify")


def test_no_shared_seed_or_missing_row_is_named(script):
    report_a = _report([0], {"none": [NONE], "default": [NONE]})
    report_b = _report([1], {"none": [NONE], "default+verify": [NONE]})
    with pytest.raises(SystemExit, match="share no seed"):
        script.compare_rows(report_a, "default", report_b, "default+verify")
    with pytest.raises(SystemExit, match="no per-query values of row 'paper'"):
        script.compare_rows(report_a, "paper", report_b, "default+verify")


def test_query_subset_compares_those_queries_only(script):
    a_values, b_values = [1.0, 0.5, 0.0, 0.5, 1.0, 0.2], [1.0, 1.0, 1.0, 0.5, 0.0, 0.2]
    report_a = _report([0], {"none": [NONE], "default": [a_values]})
    report_b = _report([0], {"none": [NONE], "st": [b_values]})
    subset = ["q1", "q2", "q3"]
    result = script.compare_rows(report_a, "default", report_b, "st", query_ids=subset)
    x, y = np.array(a_values[1:4]), np.array(b_values[1:4])
    assert result["queries"] == 3
    assert result["delta"] == pytest.approx(y.mean() - x.mean())
    assert result["p"] == paired_permutation_test(y, x, n_resamples=10000)
    everything = script.compare_rows(report_a, "default", report_b, "st")
    assert everything["queries"] == 6 and everything["delta"] != pytest.approx(result["delta"])
    with pytest.raises(SystemExit, match="did not score 1 of the 2 queries"):
        script.compare_rows(report_a, "default", report_b, "st", query_ids=["q1", "q9"])
