"""The one-call API: store + QA pairs -> a mined, fine-tuned, ready HardNegativeRanker (real training)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from haystack import Document, Pipeline
from haystack.components.retrievers.in_memory import InMemoryBM25Retriever
from haystack.document_stores.in_memory import InMemoryDocumentStore
from haystack_integrations.components.rankers.hn import HardNegativeRanker

pytestmark = [pytest.mark.slow, pytest.mark.integration]

TRAIN_QUERIES = 20


def _train_pairs(faq: dict[str, Any]) -> list[tuple[str, str]]:
    return [(faq["queries"][q], d) for q, docs in list(faq["train"].items())[:TRAIN_QUERIES] for d in docs]


def test_one_call_bi_encoder_from_qa_pairs(
    tmp_path: Path, faq: dict[str, Any], faq_documents: list[Any], reranker_dir: Path
) -> None:
    store = InMemoryDocumentStore()
    store.write_documents(faq_documents)
    ranker = HardNegativeRanker.from_document_store(
        store,
        _train_pairs(faq),
        output_dir=tmp_path / "bi",
        base_model="all-MiniLM-L6-v2",
        kind="bi",
        models=["all-MiniLM-L6-v2", "static-model"],
        selector="paper",
        epochs=1,
        max_length=128,
        top_k=5,
        meta_fields_to_embed=["title"],
    )
    folder = Path(ranker.model)
    assert folder.is_absolute() and folder == (tmp_path / "bi").resolve()
    assert json.loads((folder / "hn_reranker.json").read_text())["kind"] == "bi"
    records = [json.loads(line) for line in (folder / "mining" / "triplets.jsonl").read_text().splitlines()]
    assert len(records) == TRAIN_QUERIES and {r["selector"] for r in records} == {"paper"}
    assert json.loads((folder / "mining" / "diagnostics.json").read_text())["pairs"] == TRAIN_QUERIES
    assert ranker._reranker is None  # returned cold and serialisable
    assert ranker.to_dict()["init_parameters"] == {
        "model": str(folder),
        "top_k": 5,
        "device": None,
        "batch_size": 32,
        "score_threshold": None,
        "meta_fields_to_embed": ["title"],
        "embedding_separator": "\n",
        "trust_remote_code": False,
        "fuse_retrieval_score": True,
        "backend": "torch",
        "prerank_model": None,
        "prerank_top_k": 20,
    }
    # the trainer chose a BM25 fusion weight on its validation queries; the ranker applies it to retriever scores
    assert 0.0 <= json.loads((folder / "hn_reranker.json").read_text())["fusion"]["weight"] <= 1.0

    pipeline = Pipeline()
    pipeline.add_component("retriever", InMemoryBM25Retriever(document_store=store, top_k=10))
    pipeline.add_component("ranker", ranker)
    pipeline.connect("retriever.documents", "ranker.documents")
    loaded = Pipeline.loads(pipeline.dumps())
    query = faq["queries"][next(iter(faq["test"]))]
    ranked = loaded.run({"retriever": {"query": query}, "ranker": {"query": query}})["ranker"]["documents"]
    assert len(ranked) == 5 and all(isinstance(d.score, float) for d in ranked)
    assert loaded.get_component("ranker").kind == "bi"


def test_one_call_cross_encoder_from_evaluation_data_in_qdrant(
    tmp_path: Path, faq: dict[str, Any], faq_documents: list[Any]
) -> None:
    """Haystack evaluation data and a persistent store; the trainer writes a real cross-encoder the ranker
    loads.

    There is no pretrained cross-encoder offline, so the cross-encoder starts from MiniLM's transformer with
    an untrained head (what ``fine_tune_reranker`` does for a bi-encoder base with ``kind="cross"``); the test
    checks the plumbing, not the quality of such a model.
    """
    qdrant = pytest.importorskip("haystack_integrations.document_stores.qdrant")
    path = tmp_path / "qdrant"
    store = qdrant.QdrantDocumentStore(path=str(path), index="faq", embedding_dim=384)
    store.write_documents(faq_documents)
    store.close()
    store = qdrant.QdrantDocumentStore(path=str(path), index="faq", embedding_dim=384)
    by_id = {d.id: d for d in faq_documents}
    items = list(faq["train"].items())[:TRAIN_QUERIES]
    questions = [faq["queries"][q] for q, _ in items]
    ground_truth = [[Document(content=by_id[d].content) for d in docs] for _, docs in items]  # ids differ
    try:
        ranker = HardNegativeRanker.from_document_store(
            store,
            questions=questions,
            ground_truth_documents=ground_truth,
            output_dir=tmp_path / "cross",
            base_model="all-MiniLM-L6-v2",
            kind="cross",
            models=["all-MiniLM-L6-v2"],
            selector="dense-topk",
            epochs=1,
            max_length=128,
            top_k=3,
            trainer_kwargs={"keep_base_if_better": False},
        )
        candidates = store.filter_documents(
            filters={"field": "meta.page", "operator": "==", "value": "faq/windows.html"}
        )
    finally:
        store.close()
    assert json.loads((Path(ranker.model) / "hn_reranker.json").read_text())["kind"] == "cross"
    ranked = ranker.run(query=questions[0], documents=candidates)["documents"]
    assert ranker.kind == "cross"
    assert len(ranked) == 3 and all(isinstance(d.score, float) for d in ranked)
    assert [d.score for d in ranked] == sorted((d.score for d in ranked), reverse=True)
