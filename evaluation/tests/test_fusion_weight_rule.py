"""experiments/fusion_weight_rule/weight_rule.py: the rules by hand, and one run on the exported demo set."""

import json

import numpy as np
import pytest

from hn_plugins.demo_data import export_demo_dataset
from hn_plugins.fusion import FUSION_WEIGHTS, choose_fusion_weight, fused_reciprocal_ranks


@pytest.fixture
def wr(repo_script):
    return repo_script("experiments.fusion_weight_rule.weight_rule")


def _queries(seed, n, reranker_signal, first_signal):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        relevant = np.zeros(10, dtype=bool)
        relevant[rng.integers(10)] = True
        out.append(
            (
                relevant * reranker_signal + rng.normal(0, 1, 10),
                relevant * first_signal + rng.normal(0, 1, 10),
                relevant,
            )
        )
    return out


def test_rules_by_hand(wr):
    queries = _queries(1, 15, 1.5, 0.8)
    means = {w: fused_reciprocal_ranks(queries, w).mean() for w in FUSION_WEIGHTS}
    assert wr.rule_argmax(queries) == choose_fusion_weight(queries, rule="best")[0]
    assert means[wr.rule_argmax(queries)] == pytest.approx(max(means.values()))
    assert wr.rule_one_se(queries) == choose_fusion_weight(queries)[0]
    assert 0.1 <= wr.rule_interior(queries) <= 0.9
    # 15 noisy queries: the lead of the best weight over 0.5 is not significant at 0.05
    assert wr.rule_argmax(queries) != 0.5 and wr.rule_significant_05(queries) == 0.5
    # 300 queries on which BM25 knows nothing: every rule leaves 0.5
    strong = _queries(0, 300, 3.0, 0.0)
    assert all(rule(strong) > 0.5 for rule in wr.RULES.values())
    assert wr.rule_bagged_mean(queries) in {round(w, 1) for w in FUSION_WEIGHTS}


def test_one_run_on_the_demo_set_reuses_its_cache(wr, tmp_path, caplog):
    data = export_demo_dataset(tmp_path / "demo")
    args = ["--data", str(data), "--max-length", "64", "--sizes", "8,all", "--seeds", "0,1", "--work",
            str(tmp_path / "work"), "--out", str(tmp_path / "out.json")]  # fmt: skip
    assert wr.main(args) == 0
    result = json.loads((tmp_path / "out.json").read_text())
    assert [(p["train_size"], p["seed"]) for p in result["points"]][:2] == [(8, 0), (8, 1)]
    assert result["points"][-1]["seed"] is None  # the whole split: one point
    for point in result["points"]:
        for name in wr.RULES:
            w = point[name]["weight"]
            assert point[name]["test_mrr@10"] == pytest.approx(result["test_mrr@10_by_weight"][str(w)])
        assert point["argmax"]["p_vs_argmax"] == 1.0
    assert result["none"] == result["test_mrr@10_by_weight"]["0.0"]
    first = (tmp_path / "out.json").read_text()
    caplog.clear()
    with caplog.at_level("INFO", logger="weight_rule"):
        assert wr.main(args) == 0
    assert not any("queries scored" in r.getMessage() for r in caplog.records)  # from the cache
    again = json.loads((tmp_path / "out.json").read_text())
    assert again["points"] == json.loads(first)["points"]
    table = wr.table([again])
    assert table.count("\n") == 2 + 2 and "one-se" in table
