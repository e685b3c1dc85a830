"""First-stage retrievers on real data: BM25 reproduces bm25_sanity.json; dense search is exact."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hn_evaluation.first_stage import BM25Retriever, DenseRetriever, corpus_texts
from hn_evaluation.metrics import EvaluationError, evaluate_run
from hn_plugins.data import load_beir


def _sanity(data_dir, name: str, config: str) -> dict:
    path = data_dir / "bm25_sanity.json"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    return json.loads(path.read_text())["results"][name][config]["test"]


@pytest.mark.parametrize("name", ["cranfield", "cisi", "medline", "cacm", "npl", "python-docs-faq"])
def test_bm25_reproduces_the_sanity_numbers(eval_data_dir, name):
    dataset = load_beir(eval_data_dir / name, split="test", empty_documents="drop")
    run = BM25Retriever(dataset).retrieve(dataset.queries, top_k=100)
    means, _ = evaluate_run(run, dataset.qrels, ["mrr@10", "ndcg@10", "recall@100"])
    expected = _sanity(eval_data_dir, name, "stemmed")
    assert len(run) == expected["n"]
    for metric in ("mrr@10", "ndcg@10", "recall@100"):
        assert means[metric] == pytest.approx(expected[metric], abs=0.005), metric


def test_bm25_unstemmed_and_source_documents_removed_configs(eval_data_dir, cranfield_test):
    cisi = load_beir(eval_data_dir / "cisi", split="test")
    unstemmed = BM25Retriever(cisi, stemmer=None).retrieve(cisi.queries, top_k=100)
    assert evaluate_run(unstemmed, cisi.qrels, ["mrr@10"])[0]["mrr@10"] == pytest.approx(
        _sanity(eval_data_dir, "cisi", "unstemmed")["mrr@10"], abs=0.005
    )
    bm25 = BM25Retriever(cranfield_test)
    run = bm25.retrieve(cranfield_test.queries, top_k=100, exclude=cranfield_test.excluded)
    assert all(
        not set(cranfield_test.excluded.get(q, ())) & {d for d, _ in docs} and len(docs) == 100
        for q, docs in run.items()
    )
    expected = _sanity(eval_data_dir, "cranfield", "stemmed, source docs removed from ranking")
    assert evaluate_run(run, cranfield_test.qrels, ["mrr@10"])[0]["mrr@10"] == pytest.approx(
        expected["mrr@10"], abs=0.005
    )


def test_bm25_results_are_sorted_cut_and_from_the_corpus(cranfield_test, cranfield_bm25_run):
    for docs in cranfield_bm25_run.values():
        assert len(docs) == 100
        keys = [(-score, doc_id) for doc_id, score in docs]
        assert keys == sorted(keys)
        assert all(doc_id in cranfield_test.corpus for doc_id, _ in docs)
    assert len(cranfield_bm25_run) == len(cranfield_test.queries)


def test_bm25_on_a_bare_corpus_and_text_formats():
    corpus = {
        "d1": ("Wing flutter", "Flutter of swept wings at high speed."),
        "d2": ("Boundary layer", "Laminar flow."),
    }
    bm25 = BM25Retriever(corpus)
    run = bm25.retrieve({"q": "fluttering wing"}, top_k=5)
    assert run["q"][0][0] == "d1" and len(run["q"]) == 2  # top_k capped at the corpus size
    assert (
        BM25Retriever({"a": "laminar flow", "b": "wing flutter"}).retrieve({"q": "flow"}, 1)["q"][0][0] == "a"
    )
    # a query of stopwords only matches nothing: every document scores 0, ties ordered by id
    assert bm25.retrieve({"q": "the of and"}, top_k=2)["q"] == [("d1", 0.0), ("d2", 0.0)]
    assert corpus_texts(corpus)[1][0] == "Wing flutter Flutter of swept wings at high speed."
    assert (
        corpus_texts(corpus, "document_text")[1][0] == "Wing flutter. Flutter of swept wings at high speed."
    )


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda bm25: bm25.retrieve({"q": "  "}), "no text"),
        (lambda bm25: bm25.retrieve({"q": "wing"}, top_k=0), "top_k"),
        (lambda bm25: bm25.retrieve({}), "No queries"),
    ],
)
def test_bm25_bad_input(call, message):
    bm25 = BM25Retriever({"d1": ("", "wing flutter")})
    with pytest.raises(EvaluationError, match=message):
        call(bm25)


def test_bm25_bad_settings():
    with pytest.raises(EvaluationError, match="stemmer language"):
        BM25Retriever({"d1": ("", "wing")}, stemmer="klingon")
    with pytest.raises(EvaluationError, match="empty"):
        BM25Retriever({})
    with pytest.raises(EvaluationError, match="text_format"):
        BM25Retriever({"d1": ("", "wing")}, text_format="title")  # type: ignore[arg-type]


def test_dense_retriever_is_exact_cosine_search_with_minilm(minilm, cranfield_small, pool_vectors):
    dense = DenseRetriever(minilm, cranfield_small)
    run = dense.retrieve(cranfield_small.queries, top_k=20)
    # independent computation: the model's own normalised embeddings and a full sort
    ids = list(pool_vectors)
    docs = np.stack([pool_vectors[d] for d in ids])
    for qid, text in cranfield_small.queries.items():
        sims = docs @ minilm.encode([text], normalize_embeddings=True)[0]
        expected = [ids[j] for j in np.argsort(-sims, kind="stable")[:20]]
        got = [d for d, _ in run[qid]]
        assert len(set(got) ^ set(expected)) <= 2  # float32 near-ties may swap at the cut
        assert got[:5] == expected[:5]
        assert run[qid][0][1] == pytest.approx(float(sims.max()), abs=1e-4)
    # a real model finds Cranfield positives far better than chance in a ~90-document pool
    means, _ = evaluate_run(run, cranfield_small.qrels, ["mrr@10"])
    assert means["mrr@10"] > 0.3


def test_dense_retriever_rejects_models_without_encode_and_bad_shapes():
    with pytest.raises(EvaluationError, match="encode"):
        DenseRetriever(object(), {"d1": ("", "wing")})

    class WrongShape:
        def encode(self, texts):
            return np.ones((len(texts) + 1, 3))

    with pytest.raises(EvaluationError, match="expected"):
        DenseRetriever(WrongShape(), {"d1": ("", "wing")})
