"""HardNegativeRerank inside real LlamaIndex pipelines: retriever, query engine, persisted and Qdrant
indexes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from llama_index.core import StorageContext, VectorStoreIndex, load_index_from_storage
from llama_index.core.instrumentation.events.rerank import ReRankEndEvent, ReRankStartEvent
from llama_index.core.llms import MockLLM
from llama_index.postprocessor.hn_rerank import HardNegativeRerank

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def rerank(bi_reranker_dir: Path) -> HardNegativeRerank:
    return HardNegativeRerank(model=bi_reranker_dir, top_n=5, device="cpu")


def _questions(faq_subset: dict[str, Any], n: int = 4) -> list[str]:
    return [question for question, _ in faq_subset["qa_pairs"][:n]]


def test_query_engine_with_the_reranker(
    memory_index: VectorStoreIndex,
    rerank: HardNegativeRerank,
    faq_subset: dict[str, Any],
    rerank_events: list[Any],
) -> None:
    engine = memory_index.as_query_engine(similarity_top_k=20, node_postprocessors=[rerank], llm=MockLLM())
    retriever = memory_index.as_retriever(similarity_top_k=20)
    for question in _questions(faq_subset, 2):
        response = engine.query(question)
        sources = response.source_nodes
        assert len(sources) == 5
        assert all(type(n.score) is float for n in sources)
        assert [n.score for n in sources] == sorted((n.score for n in sources), reverse=True)
        retrieved = retriever.retrieve(question)
        assert {n.node.node_id for n in sources} <= {n.node.node_id for n in retrieved}
        # the reranker here is the retriever's own model on the same text, so it must reproduce its top 5
        assert [n.node.node_id for n in sources] == [n.node.node_id for n in retrieved[:5]]
        np.testing.assert_allclose([n.score for n in sources], [n.score for n in retrieved[:5]], atol=1e-4)
    assert sum(isinstance(e, ReRankStartEvent) for e in rerank_events) == 2
    assert sum(isinstance(e, ReRankEndEvent) for e in rerank_events) == 2


def test_retriever_then_postprocess_by_hand(
    memory_index: VectorStoreIndex, rerank: HardNegativeRerank, faq_subset: dict[str, Any]
) -> None:
    question, _ = faq_subset["qa_pairs"][0]
    nodes = memory_index.as_retriever(similarity_top_k=20).retrieve(question)
    reranked = rerank.postprocess_nodes(nodes, query_str=question)
    assert len(reranked) == 5
    assert all(n.node.metadata["source_id"] for n in reranked)  # metadata survives the round trip


def test_persisted_index_reloads_and_serves_the_reranked_query_engine(
    tmp_path: Path,
    memory_index: VectorStoreIndex,
    rerank: HardNegativeRerank,
    faq_subset: dict[str, Any],
    embed_model: Any,
) -> None:
    memory_index.storage_context.persist(persist_dir=str(tmp_path / "storage"))
    reloaded = load_index_from_storage(
        StorageContext.from_defaults(persist_dir=str(tmp_path / "storage")), embed_model=embed_model
    )
    question = _questions(faq_subset, 1)[0]
    engine = reloaded.as_query_engine(similarity_top_k=20, node_postprocessors=[rerank], llm=MockLLM())
    after = engine.query(question).source_nodes
    # the reranker reproduces its own model's retrieval order (see above), so compare with the original index
    before = memory_index.as_retriever(similarity_top_k=5).retrieve(question)
    assert [n.node.node_id for n in after] == [n.node.node_id for n in before]


def test_reopened_qdrant_store_serves_the_reranked_query_engine(
    qdrant_index: VectorStoreIndex,
    memory_index: VectorStoreIndex,
    rerank: HardNegativeRerank,
    faq_subset: dict[str, Any],
) -> None:
    engine = qdrant_index.as_query_engine(similarity_top_k=20, node_postprocessors=[rerank], llm=MockLLM())
    for question in _questions(faq_subset, 2):
        from_qdrant = engine.query(question).source_nodes
        from_memory = memory_index.as_retriever(similarity_top_k=5).retrieve(question)
        assert [n.node.node_id for n in from_qdrant] == [n.node.node_id for n in from_memory]
        assert all(n.node.metadata["section"] is not None for n in from_qdrant)
        assert all(type(n.score) is float for n in from_qdrant)
