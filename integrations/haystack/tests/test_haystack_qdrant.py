"""A persistent store beyond InMemory: QdrantDocumentStore in local mode (a folder, no server)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

qdrant = pytest.importorskip("haystack_integrations.document_stores.qdrant", reason="needs qdrant-haystack")

from haystack_integrations.components.rankers.hn import HardNegativeRanker, dataset_from_document_store  # noqa: E402

PAGE = "faq/windows.html"  # 9 documents: cheap to rank


def open_store(path: Path) -> Any:
    return qdrant.QdrantDocumentStore(path=str(path), index="faq", embedding_dim=384)


@pytest.fixture()
def store_path(tmp_path: Path, faq_documents: list[Any]) -> Path:
    """Write the FAQ documents to a Qdrant folder and close it, so each test reopens it from disk."""
    path = tmp_path / "qdrant"
    store = open_store(path)
    assert store.write_documents(faq_documents) == len(faq_documents)
    store.close()
    return path


def test_reopened_store_gives_a_dataset(
    store_path: Path, faq: dict[str, Any], faq_documents: list[Any]
) -> None:
    store = open_store(store_path)
    try:
        assert store.count_documents() == len(faq_documents)
        pairs = [(faq["queries"][q], d) for q, docs in faq["train"].items() for d in docs]
        ds = dataset_from_document_store(store, pairs, meta_fields_to_embed=["title"])
        assert set(ds.corpus) == {d.id for d in faq_documents}  # Haystack ids survive the round trip
        assert len(ds.positive_pairs()) == len(pairs)
        doc = next(d for d in faq_documents if d.id == pairs[0][1])
        assert ds.document_text(doc.id) == f"{doc.meta['title']}\n{doc.content}"
    finally:
        store.close()


def test_filters_reach_the_store(store_path: Path, faq: dict[str, Any]) -> None:
    store = open_store(store_path)
    try:
        filters = {"field": "meta.page", "operator": "==", "value": PAGE}
        pairs = [
            (faq["queries"][q], d) for q, docs in faq["train"].items() for d in docs if d.startswith(PAGE)
        ]
        ds = dataset_from_document_store(store, pairs, filters=filters)
        assert ds.corpus and all(doc_id.startswith(PAGE) for doc_id in ds.corpus)
        outside = next(d for docs in faq["train"].values() for d in docs if not d.startswith(PAGE))
        with pytest.raises(ValueError, match=f"names document id '{outside}'"):
            dataset_from_document_store(store, [("q", outside)], filters=filters)
    finally:
        store.close()


@pytest.mark.integration
def test_rank_documents_read_back_from_qdrant(
    store_path: Path, reranker_dir: Path, faq: dict[str, Any]
) -> None:
    store = open_store(store_path)
    try:
        qid, docs = next((q, d) for q, d in faq["test"].items() if d[0].startswith(PAGE))
        candidates = store.filter_documents(filters={"field": "meta.page", "operator": "==", "value": PAGE})
        ranked = HardNegativeRanker(model=reranker_dir, top_k=5).run(
            query=faq["queries"][qid], documents=candidates
        )["documents"]
        assert len(ranked) == 5 and all(isinstance(d.score, float) for d in ranked)
        assert docs[0] in [d.id for d in ranked]  # the FAQ answer is among MiniLM's top-5 of its page
    finally:
        store.close()
