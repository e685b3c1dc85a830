"""HardNegativeRanker as a component: settings, serialisation, bad input, and ranking with a real model."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
from haystack import Document
from haystack.utils import ComponentDevice
from haystack_integrations.components.rankers.hn import HardNegativeRanker
from haystack_integrations.components.rankers.hn.ranker import document_text

from hn_plugins.reranker import RerankerLoadError

TYPE = "haystack_integrations.components.rankers.hn.ranker.HardNegativeRanker"


# ---------------------------------------------------------------------- settings and serialisation
def test_init_is_cheap_and_stores_only_settings(tmp_path: Path) -> None:
    ranker = HardNegativeRanker(model=tmp_path / "does-not-exist-yet")
    assert ranker.model == str(tmp_path / "does-not-exist-yet")
    assert ranker._reranker is None
    assert ranker.kind is None


def test_init_is_keyword_only() -> None:
    with pytest.raises(TypeError):
        HardNegativeRanker("models/x")  # type: ignore[misc]


def test_to_dict_default_shape() -> None:
    assert HardNegativeRanker(model="/models/faq").to_dict() == {
        "type": TYPE,
        "init_parameters": {
            "model": "/models/faq",
            "top_k": 10,
            "device": None,
            "batch_size": 32,
            "score_threshold": None,
            "meta_fields_to_embed": [],
            "embedding_separator": "\n",
            "trust_remote_code": False,
            "fuse_retrieval_score": True,
            "backend": "torch",
            "prerank_model": None,
            "prerank_top_k": 20,
        },
    }


def test_to_dict_custom_shape() -> None:
    ranker = HardNegativeRanker(
        model="/models/faq",
        top_k=3,
        device=ComponentDevice.from_str("cpu"),
        batch_size=8,
        score_threshold=0.25,
        meta_fields_to_embed=["title"],
        embedding_separator=" | ",
        trust_remote_code=True,
        fuse_retrieval_score=False,
        prerank_model="/models/faq-bi",
        prerank_top_k=30,
    )
    assert ranker.to_dict() == {
        "type": TYPE,
        "init_parameters": {
            "model": "/models/faq",
            "top_k": 3,
            "device": {"type": "single", "device": "cpu"},
            "batch_size": 8,
            "score_threshold": 0.25,
            "meta_fields_to_embed": ["title"],
            "embedding_separator": " | ",
            "trust_remote_code": True,
            "fuse_retrieval_score": False,
            "backend": "torch",
            "prerank_model": "/models/faq-bi",
            "prerank_top_k": 30,
        },
    }


def test_device_string_is_accepted() -> None:
    assert HardNegativeRanker(model="/m", device="cpu").to_dict()["init_parameters"]["device"] == {
        "type": "single",
        "device": "cpu",
    }


def test_from_dict_round_trip() -> None:
    ranker = HardNegativeRanker(
        model="/models/faq", top_k=4, device="cpu", score_threshold=0.1, meta_fields_to_embed=["title"]
    )
    data = ranker.to_dict()
    frozen = copy.deepcopy(data)
    restored = HardNegativeRanker.from_dict(data)
    assert data == frozen  # from_dict does not consume its input
    assert isinstance(restored.device, ComponentDevice)
    assert restored.device.to_torch_str() == "cpu"
    assert restored.to_dict() == data
    assert restored._reranker is None


@pytest.mark.parametrize("top_k", [0, -1, 2.5, True])
def test_init_rejects_bad_top_k(top_k: object) -> None:
    with pytest.raises(ValueError, match="top_k must be a positive integer"):
        HardNegativeRanker(model="/m", top_k=top_k)  # type: ignore[arg-type]


def test_init_rejects_bad_batch_size_and_empty_model() -> None:
    with pytest.raises(ValueError, match="batch_size"):
        HardNegativeRanker(model="/m", batch_size=0)
    with pytest.raises(ValueError, match="model is empty"):
        HardNegativeRanker(model=" ")


# ---------------------------------------------------------------------- bad input to run (no model needed)
def test_run_rejects_non_positive_top_k_before_loading(tmp_path: Path) -> None:
    ranker = HardNegativeRanker(model=tmp_path / "missing")
    for bad in (0, -3):
        with pytest.raises(ValueError, match="top_k must be a positive integer"):
            ranker.run(query="q", documents=[Document(content="x")], top_k=bad)
    assert ranker._reranker is None


def test_empty_documents_return_empty_list_without_loading(tmp_path: Path) -> None:
    ranker = HardNegativeRanker(model=tmp_path / "missing")
    assert ranker.run(query="anything", documents=[]) == {"documents": []}
    assert ranker._reranker is None


def test_documents_without_content_are_a_clear_error(tmp_path: Path) -> None:
    ranker = HardNegativeRanker(model=tmp_path / "missing")
    docs = [
        Document(id="ok", content="text"),
        Document(id="no-text", content=None),
        Document(id="blank", content=" "),
    ]
    with pytest.raises(ValueError, match=r"2 of 3 documents have no text content .*'no-text', 'blank'"):
        ranker.run(query="q", documents=docs)


def test_document_text_joins_meta_then_content() -> None:
    doc = Document(content="Use venv.", meta={"title": "Packaging", "n": 3, "none": None})
    assert document_text(doc, ["title", "missing", "none", "n"], " | ") == "Packaging | 3 | Use venv."
    assert document_text(doc, [], "\n") == "Use venv."


# ---------------------------------------------------------------------- model loading errors
def test_plain_bi_encoder_folder_is_refused_at_warm_up(bi_encoder_dir: Path) -> None:
    ranker = HardNegativeRanker(model=bi_encoder_dir)  # construction stays cheap and accepts it
    with pytest.raises(
        RerankerLoadError, match=r"HardNegativeRanker could not load model .*not a cross-encoder"
    ):
        ranker.warm_up()
    with pytest.raises(ValueError, match="not a cross-encoder"):  # RerankerLoadError is a ValueError
        ranker.run(query="q", documents=[Document(content="x")])


def test_missing_model_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(RerankerLoadError, match="does not exist"):
        HardNegativeRanker(model=tmp_path / "nothing-here").warm_up()


def test_hub_name_offline_is_a_clear_error() -> None:
    with pytest.raises(RerankerLoadError, match="HF_HUB_OFFLINE=1"):
        HardNegativeRanker(model="cross-encoder/ms-marco-MiniLM-L6-v2").warm_up()


def test_folder_that_is_no_model_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(RerankerLoadError, match="is not a cross-encoder model folder"):
        HardNegativeRanker(model=tmp_path).warm_up()


# ---------------------------------------------------------------------- ranking with the real model
DOCS = [
    Document(
        id="venv",
        content="Create an isolated environment with python -m venv and install packages into it.",
        meta={"title": "Virtual environments"},
        score=3.0,
    ),
    Document(
        id="gil",
        content="The global interpreter lock lets only one thread execute Python bytecode at a time.",
        meta={"title": "Threads"},
        score=2.0,
    ),
    Document(
        id="paris",
        content="Paris is the capital and largest city of France.",
        meta={"title": "Geography"},
        score=1.0,
    ),
]


@pytest.fixture(scope="module")
def ranker(reranker_dir: Path) -> HardNegativeRanker:
    component = HardNegativeRanker(model=reranker_dir, top_k=2)
    component.warm_up()
    return component


@pytest.mark.integration
def test_run_before_warm_up_loads_the_model(reranker_dir: Path) -> None:
    ranker = HardNegativeRanker(model=reranker_dir)
    result = ranker.run(query="Why can only one thread run at a time?", documents=DOCS)
    assert ranker.kind == "bi"
    assert result["documents"][0].id == "gil"


@pytest.mark.integration
def test_onnx_backend_runs_a_bi_encoder_folder_like_torch(
    ranker: HardNegativeRanker, reranker_dir: Path
) -> None:
    pytest.importorskip("onnxruntime")
    query = "How do I keep project dependencies separate?"
    by_onnx = HardNegativeRanker(model=reranker_dir, top_k=3, backend="onnx")
    got = by_onnx.run(query=query, documents=DOCS)["documents"]
    expected = ranker.run(query=query, documents=DOCS, top_k=3)["documents"]
    assert by_onnx.kind == "bi"
    assert [d.id for d in got] == [d.id for d in expected]
    assert max(abs(a.score - b.score) for a, b in zip(got, expected, strict=True)) < 1e-4


@pytest.mark.integration
def test_warm_up_is_idempotent(ranker: HardNegativeRanker) -> None:
    loaded = ranker._reranker
    ranker.warm_up()
    assert ranker._reranker is loaded


@pytest.mark.integration
def test_run_ranks_scores_and_cuts(ranker: HardNegativeRanker) -> None:
    out = ranker.run(query="How do I keep project dependencies separate?", documents=DOCS)["documents"]
    assert [d.id for d in out] == ["venv", "gil"][: len(out)] and len(out) == 2
    assert all(type(d.score) is float for d in out)
    assert out[0].score >= out[1].score
    assert out[0].content == DOCS[0].content and out[0].meta == DOCS[0].meta
    full = ranker.run(query="How do I keep project dependencies separate?", documents=DOCS, top_k=3)[
        "documents"
    ]
    assert len(full) == 3 and [d.score for d in full] == sorted((d.score for d in full), reverse=True)


@pytest.mark.integration
def test_run_never_mutates_its_inputs(ranker: HardNegativeRanker) -> None:
    before = copy.deepcopy(DOCS)
    docs = list(DOCS)
    out = ranker.run(query="capital of France", documents=docs, top_k=3)["documents"]
    assert docs == DOCS and before == DOCS
    assert [d.score for d in DOCS] == [3.0, 2.0, 1.0]
    assert all(o is not d for o in out for d in DOCS)


@pytest.mark.integration
def test_score_threshold_filters(ranker: HardNegativeRanker) -> None:
    query = "capital of France"
    scores = {d.id: d.score for d in ranker.run(query=query, documents=DOCS, top_k=3)["documents"]}
    cut = scores["paris"] - 1e-6
    kept = ranker.run(query=query, documents=DOCS, top_k=3, score_threshold=cut)["documents"]
    assert [d.id for d in kept] == [d for d, s in sorted(scores.items(), key=lambda kv: -kv[1]) if s >= cut]
    assert ranker.run(query=query, documents=DOCS, score_threshold=2.0)["documents"] == []  # cosine <= 1


@pytest.mark.integration
def test_duplicates_by_id_are_ranked_once(ranker: HardNegativeRanker) -> None:
    dup = Document(id="venv", content=DOCS[0].content, meta=DOCS[0].meta, score=9.0)
    out = ranker.run(query="virtual environment", documents=[*DOCS, dup], top_k=10)["documents"]
    assert sorted(d.id for d in out) == ["gil", "paris", "venv"]


@pytest.mark.integration
def test_meta_fields_change_what_is_scored(reranker_dir: Path) -> None:
    docs = [
        Document(id="a", content="See the section below.", meta={"title": "Installing packages with pip"})
    ]
    plain = HardNegativeRanker(model=reranker_dir).run(query="install a package with pip", documents=docs)
    with_meta = HardNegativeRanker(model=reranker_dir, meta_fields_to_embed=["title"]).run(
        query="install a package with pip", documents=docs
    )
    assert with_meta["documents"][0].score > plain["documents"][0].score + 0.1


@pytest.mark.integration
def test_fusion_weight_of_the_model_folder_mixes_in_the_retriever_scores(
    reranker_dir: Path, tmp_path: Path
) -> None:
    """A folder whose fusion weight is 0 ranks by the incoming scores; fuse_retrieval_score=False ignores it."""
    import json
    import shutil

    folder = tmp_path / "fused"
    shutil.copytree(reranker_dir, folder)
    (folder / "hn_reranker.json").write_text(
        json.dumps({"kind": "bi", "fusion": {"weight": 0.0, "normalization": "minmax"}}), encoding="utf-8"
    )
    query = "Why can only one thread run at a time?"
    docs = [
        Document(id=d.id, content=d.content, meta=d.meta, score=s)
        for d, s in zip(DOCS, [5.0, 1.0, 3.0], strict=True)
    ]
    fused = HardNegativeRanker(model=folder, top_k=3).run(query=query, documents=docs)["documents"]
    assert [d.id for d in fused] == [docs[0].id, docs[2].id, docs[1].id]  # by incoming score
    assert [d.score for d in fused] == pytest.approx([1.0, 0.5, 0.0])
    alone = HardNegativeRanker(model=folder, top_k=3, fuse_retrieval_score=False).run(
        query=query, documents=docs
    )
    assert alone["documents"][0].id == "gil"
    # documents without a retriever score: the reranker alone decides
    unscored = [Document(id=d.id, content=d.content, meta=d.meta) for d in DOCS]
    assert (
        HardNegativeRanker(model=folder, top_k=1).run(query=query, documents=unscored)["documents"][0].id
        == "gil"
    )


# ---------------------------------------------------------------------- the ONNX backend
@pytest.fixture(scope="module")
def onnx_cross_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A MiniLM cross-encoder folder (seeded one-logit head) exported with ``hn export-onnx``."""
    pytest.importorskip("onnxruntime")
    import torch
    from sentence_transformers import CrossEncoder

    from hn_plugins.models import resolve_model_path
    from hn_plugins.onnx_backend import export_onnx

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("onnx-cross") / "model"
    CrossEncoder(resolve_model_path("all-MiniLM-L6-v2"), num_labels=1, max_length=128).save_pretrained(
        str(folder)
    )
    export_onnx(folder)
    return folder


def test_backend_is_validated_and_serialised() -> None:
    with pytest.raises(ValueError, match="backend must be"):
        HardNegativeRanker(model="/m", backend="tensorrt")  # type: ignore[arg-type]
    data = HardNegativeRanker(model="/m", backend="onnx-int8").to_dict()
    assert data["init_parameters"]["backend"] == "onnx-int8"
    assert HardNegativeRanker.from_dict(data).backend == "onnx-int8"


@pytest.mark.integration
def test_onnx_backend_ranks_like_torch_in_a_saved_and_reloaded_pipeline(onnx_cross_dir: Path) -> None:
    from haystack import Pipeline
    from haystack.components.retrievers.in_memory import InMemoryBM25Retriever
    from haystack.document_stores.in_memory import InMemoryDocumentStore

    store = InMemoryDocumentStore()
    store.write_documents(copy.deepcopy(DOCS))
    query = "Why can only one thread run Python bytecode at a time?"

    def ranked(backend: str) -> list[tuple[str, float]]:
        pipeline = Pipeline()
        pipeline.add_component("retriever", InMemoryBM25Retriever(document_store=store, top_k=3))
        pipeline.add_component(
            "ranker",
            HardNegativeRanker(model=onnx_cross_dir, top_k=3, backend=backend),  # type: ignore[arg-type]
        )
        pipeline.connect("retriever.documents", "ranker.documents")
        reloaded = Pipeline.loads(pipeline.dumps())  # the backend survives serialisation
        out = reloaded.run({"retriever": {"query": query}, "ranker": {"query": query}})
        return [(d.id, d.score) for d in out["ranker"]["documents"]]

    torch_docs, onnx_docs = ranked("torch"), ranked("onnx")
    assert [d for d, _ in onnx_docs] == [d for d, _ in torch_docs] and len(onnx_docs) >= 2
    assert onnx_docs[0][1] == pytest.approx(torch_docs[0][1], abs=1e-5)
    int8_docs = ranked("onnx-int8")
    assert {d for d, _ in int8_docs} == {d for d, _ in torch_docs}
    assert all(type(s) is float for _, s in int8_docs)


# ---------------------------------------------------------------------- cascade: prerank_model
@pytest.mark.parametrize("prerank_top_k", [0, -3, 1.5, True])
def test_init_rejects_bad_prerank_top_k(prerank_top_k: object) -> None:
    with pytest.raises(ValueError, match="prerank_top_k must be a positive integer"):
        HardNegativeRanker(model="/m", prerank_model="/p", prerank_top_k=prerank_top_k)  # type: ignore[arg-type]


def test_missing_prerank_model_is_named_at_warm_up(onnx_cross_dir: Path, tmp_path: Path) -> None:
    ranker = HardNegativeRanker(model=onnx_cross_dir, prerank_model=tmp_path / "no-such-bi")
    with pytest.raises(RerankerLoadError, match="could not load prerank_model"):
        ranker.warm_up()


@pytest.mark.integration
def test_prerank_model_lets_the_cross_encoder_rescore_only_its_top_documents(
    onnx_cross_dir: Path, reranker_dir: Path
) -> None:
    """The bi-encoder folder orders the three documents, the int8 cross-encoder re-orders its best two."""
    query = "Why can only one thread run Python bytecode at a time?"
    cascade = HardNegativeRanker(
        model=onnx_cross_dir, backend="onnx-int8", prerank_model=reranker_dir, prerank_top_k=2, top_k=3
    )
    got = [d.id for d in cascade.run(query=query, documents=DOCS)["documents"]]
    assert cascade.kind == "cascade"
    by_bi = [
        d.id
        for d in HardNegativeRanker(model=reranker_dir, top_k=3).run(query=query, documents=DOCS)["documents"]
    ]
    head = [d for d in DOCS if d.id in set(by_bi[:2])]
    by_cross = HardNegativeRanker(model=onnx_cross_dir, backend="onnx-int8", top_k=2).run(
        query=query, documents=head
    )
    assert got == [d.id for d in by_cross["documents"]] + by_bi[2:]
    assert HardNegativeRanker.from_dict(cascade.to_dict()).to_dict() == cascade.to_dict()


def test_follows_promotions_and_rollbacks_of_a_registry(
    tmp_path: Path, reranker_dir: Path, faq_documents: list[Document]
) -> None:
    import json

    from hn_plugins.models import load_sentence_transformer
    from hn_plugins.registry import ModelRegistry
    from hn_plugins.reranker import RERANKER_MARKER, load_reranker

    static_dir = tmp_path / "static-reranker"  # a second, different bi-encoder reranker: the static model
    load_sentence_transformer("static-model").save(str(static_dir))
    (static_dir / RERANKER_MARKER).write_text(json.dumps({"kind": "bi"}), encoding="utf-8")
    registry = ModelRegistry(tmp_path / "registry")
    registry.register(reranker_dir, promote=True)
    documents = faq_documents[:10]
    query = "How do I make a Python script executable on Unix?"
    ranker = HardNegativeRanker(model=registry.root, top_k=10, device=ComponentDevice.from_str("cpu"))
    ranker.warm_up()

    def served() -> dict[str, float]:
        return {d.id: d.score for d in ranker.run(query=query, documents=documents)["documents"]}

    def expected(version: str) -> dict[str, float]:
        texts = [document_text(d, [], "\n") for d in documents]
        scores = load_reranker(registry.path(version)).score(query, texts)
        return {d.id: float(s) for d, s in zip(documents, scores, strict=True)}

    first = served()
    assert first == pytest.approx(expected("v0001"), abs=1e-5)
    registry.register(static_dir, promote=True)  # what hn retrain does after a better candidate
    second = served()
    assert second == pytest.approx(expected("v0002"), abs=1e-5) and second != pytest.approx(first, abs=1e-3)
    registry.rollback()
    assert served() == pytest.approx(first, abs=1e-5)
