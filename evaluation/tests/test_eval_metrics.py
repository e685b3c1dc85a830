"""Metrics: hand-computed cases, deterministic ties, input checks, agreement with ranx on a real BM25 run."""

from __future__ import annotations

import math

import pytest

from hn_evaluation.metrics import (
    EvaluationError,
    average_precision,
    evaluate_run,
    mrr_at_k,
    ndcg_at_k,
    parse_metric,
    precision_at_k,
    rank_documents,
    recall_at_k,
)


def test_mrr_hand_cases():
    assert mrr_at_k(["d3", "d1", "d2"], {"d1": 1}, k=10) == 0.5
    assert mrr_at_k(["d3", "d1", "d2"], {"d1", "d2"}, k=10) == 0.5
    assert mrr_at_k(["d3", "d4", "d5", "d1"], {"d1": 3}, k=3) == 0.0  # first hit at rank 4, beyond k
    assert mrr_at_k(["d3", "d4", "d5", "d1"], {"d1": 3}, k=None) == 0.25
    assert mrr_at_k(["d1", "d2"], {"d1": 0, "d2": 2}, k=10) == 0.5  # grade 0 is not relevant
    assert mrr_at_k([], {"d1": 1}, k=10) == 0.0


def test_ndcg_hand_cases():
    # DCG = 1/log2(2) + 2/log2(3); ideal = 2/log2(2) + 1/log2(3)
    expected = (1 + 2 / math.log2(3)) / (2 + 1 / math.log2(3))
    assert ndcg_at_k(["d2", "d1"], {"d1": 2, "d2": 1}, k=10) == pytest.approx(expected, abs=1e-12)
    assert ndcg_at_k(["d1", "d2"], {"d1": 2, "d2": 1}, k=10) == pytest.approx(1.0)
    # the ideal counts judged documents that were never retrieved
    assert ndcg_at_k(["d1"], {"d1": 1, "d2": 1}, k=10) == pytest.approx(1 / (1 + 1 / math.log2(3)))
    # cut-off: the relevant document at rank 3 does not count at k=2, and the ideal is cut at k too
    assert ndcg_at_k(["x", "y", "d1"], {"d1": 1}, k=2) == 0.0
    assert ndcg_at_k(["x", "d1", "d2"], {"d1": 1, "d2": 1, "d3": 1}, k=2) == pytest.approx(
        (1 / math.log2(3)) / (1 + 1 / math.log2(3))
    )
    assert ndcg_at_k(["x"], {"d1": 0}, k=10) == 0.0


def test_recall_precision_average_precision_hand_cases():
    assert recall_at_k(["d1", "d9", "d2"], {"d1", "d2", "d3", "d4"}, k=2) == 0.25
    assert recall_at_k(["d1", "d9", "d2"], {"d1": 1, "d2": 1, "d3": 0}, k=3) == 1.0
    assert recall_at_k(["d1"], set(), k=3) == 0.0
    assert precision_at_k(["d1", "d9", "d2"], {"d1", "d2"}, k=4) == 0.5
    assert average_precision(["d1", "d9", "d2"], {"d1", "d2"}) == pytest.approx((1 + 2 / 3) / 2)
    assert average_precision(["d9", "d1"], {"d1", "d2"}) == pytest.approx(0.5 / 2)  # unretrieved d2 counts 0
    assert average_precision(["d1", "d9", "d2"], {"d1", "d2"}, k=2) == pytest.approx(0.5)


def test_ties_are_broken_by_document_id_whatever_the_input_order():
    assert rank_documents({"b": 1.0, "a": 1.0, "c": 2.0}) == ["c", "a", "b"]
    assert rank_documents({"c": 2.0, "b": 1.0, "a": 1.0}) == ["c", "a", "b"]
    assert rank_documents([("b", 1.0), ("c", 2.0), ("a", 1.0)]) == ["c", "a", "b"]
    assert rank_documents(["z", "a"]) == ["z", "a"]  # a ranked list is kept as given
    qrels = {"q": {"b": 1}}
    first, _ = evaluate_run({"q": {"a": 0.5, "b": 0.5}}, qrels, ["mrr@10"])
    second, _ = evaluate_run({"q": {"b": 0.5, "a": 0.5}}, qrels, ["mrr@10"])
    assert first == second == {"mrr@10": 0.5}


def test_evaluate_run_accepts_every_run_format():
    qrels = {"q1": {"d1": 2, "d3": 1}, "q2": {"d2": 1}}
    scored = {"q1": {"d3": 0.9, "d1": 0.5, "d2": 0.1}, "q2": {"d1": 0.8, "d2": 0.7}}
    as_lists = {q: rank_documents(r) for q, r in scored.items()}
    as_pairs = {q: sorted(r.items(), key=lambda p: -p[1]) for q, r in scored.items()}
    results = [evaluate_run(run, qrels) for run in (scored, as_lists, as_pairs)]
    assert results[0] == results[1] == results[2]
    means, per_query = results[0]
    assert set(means) == {"mrr@3", "mrr@10", "ndcg@10", "recall@10", "recall@100"}
    assert per_query["q1"]["mrr@10"] == 1.0 and per_query["q2"]["mrr@10"] == 0.5
    assert means["mrr@10"] == pytest.approx(0.75)


def test_judged_queries_missing_from_the_run_score_zero_or_raise():
    qrels = {"q1": {"d1": 1}, "q2": {"d2": 1}}
    means, per_query = evaluate_run({"q1": ["d1"]}, qrels, ["mrr@10"])
    assert means["mrr@10"] == 0.5 and per_query["q2"]["mrr@10"] == 0.0
    with pytest.raises(EvaluationError, match="no results in the run"):
        evaluate_run({"q1": ["d1"]}, qrels, ["mrr@10"], missing_queries="raise")


def test_queries_without_positive_judgments_are_not_averaged():
    means, per_query = evaluate_run(
        {"q1": ["d1"], "q2": ["d2"]}, {"q1": {"d1": 1}, "q2": {"d2": 0}}, ["mrr@10"]
    )
    assert list(per_query) == ["q1"] and means["mrr@10"] == 1.0


@pytest.mark.parametrize(
    ("run", "qrels", "metrics", "message"),
    [
        ({"q9": ["d1"]}, {"q1": {"d1": 1}}, ["mrr@10"], "without judgments"),
        ({"q1": ["d1"]}, {}, ["mrr@10"], "no judgment with grade > 0"),
        ({"q1": ["d1"]}, {"q1": {"d1": 0}}, ["mrr@10"], "no judgment with grade > 0"),
        ({"q1": ["d1"]}, {"q1": {"d1": 1}}, ["mrr@ten"], "Unknown metric"),
        ({"q1": ["d1"]}, {"q1": {"d1": 1}}, ["ndcg"], "needs a cut-off"),
        ({"q1": ["d1"]}, {"q1": {"d1": 1}}, ["mrr@10", "mrr@10"], "repeats"),
        ({"q1": {"d1": float("nan")}}, {"q1": {"d1": 1}}, ["mrr@10"], "finite"),
        ({"q1": ["d1", "d1"]}, {"q1": {"d1": 1}}, ["mrr@10"], "twice"),
    ],
)
def test_bad_input_raises_a_clear_error(run, qrels, metrics, message):
    with pytest.raises(EvaluationError, match=message):
        evaluate_run(run, qrels, metrics)


def test_parse_metric():
    assert parse_metric("NDCG@10") == ("ndcg", 10)
    assert parse_metric("mrr") == ("mrr", None)
    with pytest.raises(EvaluationError, match="cut-off must be"):
        parse_metric("recall@0")


def test_agrees_with_ranx_on_bm25_cranfield(cranfield_test, cranfield_bm25_run):
    ranx = pytest.importorskip("ranx")
    metrics = ["mrr@3", "mrr@10", "ndcg@10", "recall@10", "recall@100", "map", "map@10", "precision@10"]
    means, per_query = evaluate_run(cranfield_bm25_run, cranfield_test.qrels, metrics)
    # hand ranx our ranking as distinct scores, so its own tie-breaking cannot differ from ours
    ranked = {q: rank_documents(r) for q, r in cranfield_bm25_run.items()}
    ranx_run = ranx.Run(
        {q: {d: float(len(docs) - i) for i, d in enumerate(docs)} for q, docs in ranked.items()}
    )
    ranx_qrels = ranx.Qrels({q: dict(rel) for q, rel in cranfield_test.qrels.items()})
    theirs = ranx.evaluate(ranx_qrels, ranx_run, metrics, return_mean=False, make_comparable=True)
    qids = list(ranx_run.keys())
    assert sorted(qids) == sorted(per_query)
    for metric in metrics:
        ours = [per_query[q][metric] for q in qids]
        assert ours == pytest.approx(list(theirs[metric]), abs=1e-6), metric
        assert means[metric] == pytest.approx(float(theirs[metric].mean()), abs=1e-6), metric
    # graded judgments matter: Cranfield has grades 1-4, and nDCG must differ from its binary version
    binary = {q: {d: 1 for d in rel} for q, rel in cranfield_test.qrels.items()}
    assert abs(evaluate_run(cranfield_bm25_run, binary, ["ndcg@10"])[0]["ndcg@10"] - means["ndcg@10"]) > 1e-3
