"""``hn_plugins.metrics``: the one MRR@k of the package, its positions form, and who uses it."""

from __future__ import annotations

import numpy as np
import pytest

from hn_plugins.fusion import choose_fusion_weight, normalize_scores
from hn_plugins.metrics import EvaluationError, evaluate_run, mrr_at_k, mrr_at_k_of_order


def _random_queries(
    seed: int, n_queries: int = 200, n_candidates: int = 30
) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    queries = []
    for _ in range(n_queries):
        relevant = rng.random(n_candidates) < rng.choice([0.0, 0.03, 0.1, 0.3])
        queries.append((rng.normal(size=n_candidates), relevant))
    return queries


@pytest.mark.parametrize("k", [1, 3, 10, None])
def test_the_positions_form_equals_the_id_form(k):
    for scores, relevant in _random_queries(seed=1):
        order = np.argsort(-scores, kind="stable")
        ids = [f"d{i}" for i in order]
        expected = mrr_at_k(ids, {f"d{i}" for i in np.flatnonzero(relevant)}, k)
        assert mrr_at_k_of_order(order, relevant, k) == expected


def test_the_positions_form_agrees_with_ranx():
    ranx = pytest.importorskip("ranx")
    queries = _random_queries(seed=2)
    qrels = {f"q{j}": {f"d{i}": 1 for i in np.flatnonzero(rel)} for j, (_, rel) in enumerate(queries)}
    judged = [q for q, rel in qrels.items() if rel]
    run = {
        f"q{j}": {f"d{i}": float(s) for i, s in enumerate(scores)} for j, (scores, _) in enumerate(queries)
    }
    ranx_run = ranx.Run({q: run[q] for q in judged})
    ranx.evaluate(ranx.Qrels({q: qrels[q] for q in judged}), ranx_run, "mrr@10")
    expected = {q: float(v) for q, v in ranx_run.scores["mrr@10"].items()}
    ours = {
        f"q{j}": mrr_at_k_of_order(np.argsort(-scores, kind="stable"), rel, 10)
        for j, (scores, rel) in enumerate(queries)
    }
    assert sorted(expected) == sorted(judged)
    assert {q: ours[q] for q in judged} == pytest.approx(expected, abs=1e-12)
    mean = float(np.mean(list(expected.values())))
    assert evaluate_run(run, qrels, ["mrr@10"])[0]["mrr@10"] == pytest.approx(mean, abs=1e-12)


def test_bad_cut_off_is_refused():
    with pytest.raises(EvaluationError, match="k must be a positive integer"):
        mrr_at_k_of_order(np.array([0, 1]), np.array([True, False]), k=0)
    with pytest.raises(EvaluationError, match="k must be a positive integer"):
        mrr_at_k(["a"], {"a"}, k=-1)


def test_fusion_weights_are_scored_by_the_same_mrr():
    """choose_fusion_weight's curve is the mean MRR@10 of the fused rankings, computed on document ids."""
    rng = np.random.default_rng(3)
    queries = [(rng.normal(size=20), rng.normal(size=20), rng.random(20) < 0.1) for _ in range(50)]
    _, curve = choose_fusion_weight(queries, weights=[0.0, 0.3, 1.0])
    for weight, value in curve.items():
        per_query = []
        for rerank, first, relevant in queries:
            fused = weight * normalize_scores(rerank) + (1.0 - weight) * normalize_scores(first)
            ids = [f"d{i}" for i in np.argsort(-fused, kind="stable")]
            per_query.append(mrr_at_k(ids, {f"d{i}" for i in np.flatnonzero(relevant)}, 10))
        assert value == pytest.approx(float(np.mean(per_query)), abs=1e-12), weight


def test_one_definition_everywhere():
    import hn_evaluation.metrics
    import hn_evaluation.significance
    import hn_plugins.fusion
    import hn_plugins.significance
    import hn_plugins.training.evaluator

    assert hn_plugins.training.evaluator.mrr_at_k is mrr_at_k
    assert hn_evaluation.metrics.mrr_at_k is mrr_at_k
    assert hn_evaluation.metrics.EvaluationError is EvaluationError
    assert (
        hn_evaluation.significance.paired_permutation_test is hn_plugins.significance.paired_permutation_test
    )
    assert not hasattr(hn_plugins.fusion, "_mrr")
