"""A real Haystack pipeline (InMemoryBM25Retriever -> HardNegativeRanker), its YAML round trip and
Haystack 3's deserialisation allow-list."""

from __future__ import annotations

from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
from haystack import Pipeline, component
from haystack.components.retrievers.in_memory import InMemoryBM25Retriever
from haystack.core.errors import DeserializationError
from haystack.document_stores.in_memory import InMemoryDocumentStore
from haystack_integrations.components.rankers.hn import HardNegativeRanker

pytestmark = pytest.mark.integration

HAYSTACK_MAJOR = int(version("haystack-ai").split(".")[0])
needs_allow_list = pytest.mark.skipif(
    HAYSTACK_MAJOR < 3, reason="Haystack 2.x has no deserialization allow-list"
)


@pytest.fixture(scope="module")
def store(faq_documents: list[Any]) -> InMemoryDocumentStore:
    document_store = InMemoryDocumentStore()
    document_store.write_documents(faq_documents)
    return document_store


def build_pipeline(store: InMemoryDocumentStore, ranker: HardNegativeRanker, depth: int = 10) -> Pipeline:
    pipeline = Pipeline()
    pipeline.add_component("retriever", InMemoryBM25Retriever(document_store=store, top_k=depth))
    pipeline.add_component("ranker", ranker)
    pipeline.connect("retriever.documents", "ranker.documents")
    return pipeline


def run(pipeline: Pipeline, query: str, **ranker_args: Any) -> list[Any]:
    result = pipeline.run(
        {"retriever": {"query": query}, "ranker": {"query": query, **ranker_args}},
        include_outputs_from={"retriever"},
    )
    return [result["retriever"]["documents"], result["ranker"]["documents"]]


def test_pipeline_reranks_the_retrievers_documents(
    store: InMemoryDocumentStore, reranker_dir: Path, faq: dict[str, Any]
) -> None:
    ranker = HardNegativeRanker(model=reranker_dir, top_k=5)
    pipeline = build_pipeline(store, ranker)  # not warmed up: Pipeline.run warms it
    qid = next(iter(faq["test"]))
    retrieved, ranked = run(pipeline, faq["queries"][qid])
    assert ranker.kind == "bi"
    assert 0 < len(ranked) <= 5
    assert {d.id for d in ranked} <= {d.id for d in retrieved}
    assert all(isinstance(d.score, float) for d in ranked)
    assert [d.score for d in ranked] == sorted((d.score for d in ranked), reverse=True)
    by_id = {d.id: d for d in retrieved}
    assert all(by_id[d.id].score != d.score for d in ranked)  # BM25 scores were replaced on copies only


def test_reranking_helps_on_faq_test_queries(
    store: InMemoryDocumentStore, reranker_dir: Path, faq: dict[str, Any]
) -> None:
    """On the first 12 FAQ test questions the real MiniLM reranker beats BM25's order of its top-10
    (MRR@10)."""
    pipeline = build_pipeline(store, HardNegativeRanker(model=reranker_dir, top_k=10))
    bm25_rr, ranked_rr = [], []
    for qid, relevant in list(faq["test"].items())[:12]:
        retrieved, ranked = run(pipeline, faq["queries"][qid])
        for docs, sink in ((retrieved, bm25_rr), (ranked, ranked_rr)):
            ranks = [i for i, d in enumerate(docs, start=1) if d.id in relevant]
            sink.append(1.0 / ranks[0] if ranks else 0.0)
    assert sum(ranked_rr) / 12 > sum(bm25_rr) / 12


def test_yaml_round_trip(store: InMemoryDocumentStore, reranker_dir: Path, faq: dict[str, Any]) -> None:
    ranker = HardNegativeRanker(
        model=reranker_dir, top_k=3, device="cpu", meta_fields_to_embed=["title"], embedding_separator=": "
    )
    pipeline = build_pipeline(store, ranker)
    text = pipeline.dumps()
    assert "haystack_integrations.components.rankers.hn.ranker.HardNegativeRanker" in text
    loaded = Pipeline.loads(text)  # our module is under haystack_integrations: allowed by default
    loaded_ranker = loaded.get_component("ranker")
    assert isinstance(loaded_ranker, HardNegativeRanker)
    assert loaded_ranker.to_dict() == ranker.to_dict()
    assert loaded.to_dict() == pipeline.to_dict()
    assert Pipeline.loads(loaded.dumps()).dumps() == text

    query = faq["queries"][next(iter(faq["test"]))]
    original = [(d.id, round(d.score, 5)) for d in run(pipeline, query)[1]]
    reloaded = [(d.id, round(d.score, 5)) for d in run(loaded, query)[1]]
    assert original == reloaded and len(original) == 3


def test_yaml_file_round_trip(tmp_path: Path, store: InMemoryDocumentStore, reranker_dir: Path) -> None:
    pipeline = build_pipeline(store, HardNegativeRanker(model=reranker_dir))
    path = tmp_path / "pipeline.yml"
    with path.open("w") as handle:
        pipeline.dump(handle)
    with path.open() as handle:
        assert Pipeline.load(handle).to_dict() == pipeline.to_dict()


# ---------------------------------------------------------------- Haystack 3's deserialisation allow-list
@component
class LocalRanker(HardNegativeRanker):
    """A user's subclass in a module outside ``haystack_integrations``: the allow-list applies to it."""


def _local_pipeline(reranker_dir: Path) -> str:
    pipeline = Pipeline()
    pipeline.add_component("ranker", LocalRanker(model=reranker_dir))
    return pipeline.dumps()


@needs_allow_list
def test_allow_list_refuses_modules_outside_it_by_default(
    reranker_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HAYSTACK_DESERIALIZATION_ALLOWLIST", raising=False)
    with pytest.raises(DeserializationError, match="allowlist"):
        Pipeline.loads(_local_pipeline(reranker_dir))


@needs_allow_list
def test_allow_list_per_call(reranker_dir: Path) -> None:
    loaded = Pipeline.loads(_local_pipeline(reranker_dir), allowed_modules=[LocalRanker.__module__])
    assert type(loaded.get_component("ranker")).__name__ == "LocalRanker"


@needs_allow_list
def test_allow_list_by_environment_variable(reranker_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HAYSTACK_DESERIALIZATION_ALLOWLIST", f"{LocalRanker.__module__}.*")
    assert (
        type(Pipeline.loads(_local_pipeline(reranker_dir)).get_component("ranker")).__name__ == "LocalRanker"
    )


@needs_allow_list
def test_our_module_loads_even_with_an_explicit_allow_list(reranker_dir: Path) -> None:
    pipeline = Pipeline()
    pipeline.add_component("ranker", HardNegativeRanker(model=reranker_dir))
    loaded = Pipeline.loads(pipeline.dumps(), allowed_modules=["haystack_integrations.components.rankers.hn"])
    assert isinstance(loaded.get_component("ranker"), HardNegativeRanker)
