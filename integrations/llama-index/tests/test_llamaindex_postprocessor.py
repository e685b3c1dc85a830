"""HardNegativeRerank as a LlamaIndex postprocessor: conventions, scores, events and errors, with a real
model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from llama_index.core.callbacks import CallbackManager, CBEventType, LlamaDebugHandler
from llama_index.core.instrumentation.events.rerank import ReRankEndEvent, ReRankStartEvent
from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.schema import ImageNode, MetadataMode, NodeWithScore, QueryBundle, TextNode
from llama_index.postprocessor.hn_rerank import HardNegativeRerank

from hn_plugins.reranker import RerankerLoadError

QUERY = "How do I make a Python script executable on Unix?"


def _candidates(faq_subset: dict[str, Any], n: int = 12) -> list[NodeWithScore]:
    return [
        NodeWithScore(node=node.model_copy(deep=True), score=1.0 - i / 100)
        for i, node in enumerate(faq_subset["nodes"][:n])
    ]


@pytest.fixture(scope="module")
def rerank(bi_reranker_dir: Path) -> HardNegativeRerank:
    return HardNegativeRerank(model=bi_reranker_dir, top_n=5, device="cpu")


def test_package_follows_llamaindex_namespace_conventions() -> None:
    import llama_index.postprocessor.hn_rerank as package

    root = Path(package.__file__).parents[2]
    assert not (root / "__init__.py").exists()  # llama_index/ is a namespace package
    assert not (root / "postprocessor" / "__init__.py").exists()
    assert (Path(package.__file__).parent / "py.typed").is_file()
    assert "HardNegativeRerank" in package.__all__
    assert issubclass(HardNegativeRerank, BaseNodePostprocessor)
    assert HardNegativeRerank.class_name() == "HardNegativeRerank"
    for name in ("model", "top_n", "device", "batch_size", "keep_retrieval_score"):
        assert HardNegativeRerank.model_fields[name].description, name
    assert HardNegativeRerank.model_fields["top_n"].default == 2  # LlamaIndex's rerankers default to 2


def test_scores_are_python_floats_sorted_and_equal_to_the_models_cosine(
    rerank: HardNegativeRerank, faq_subset: dict[str, Any], embed_model: Any
) -> None:
    nodes = _candidates(faq_subset)
    result = rerank.postprocess_nodes(nodes, query_bundle=QueryBundle(QUERY))

    assert len(result) == 5
    assert all(type(n.score) is float for n in result)
    scores = [n.score for n in result]
    assert scores == sorted(scores, reverse=True)
    # independent check: the same model through LlamaIndex's own embedding class, on the texts as embedded
    texts = [n.node.get_content(metadata_mode=MetadataMode.EMBED) for n in _candidates(faq_subset)]
    assert "section: " in texts[0] and "source_id" not in texts[0]
    q = np.asarray(embed_model.get_query_embedding(QUERY))
    d = np.asarray(embed_model.get_text_embedding_batch(texts))
    expected = d @ q
    order = np.argsort(-expected)[:5]
    ids = [n.node.node_id for n in _candidates(faq_subset)]
    assert [n.node.node_id for n in result] == [ids[i] for i in order]
    np.testing.assert_allclose(scores, expected[order], rtol=1e-4, atol=1e-5)


def test_keep_retrieval_score_keeps_the_first_stage_score_in_metadata(
    bi_reranker_dir: Path, faq_subset: dict[str, Any]
) -> None:
    rerank = HardNegativeRerank(model=str(bi_reranker_dir), top_n=3, keep_retrieval_score=True, device="cpu")
    nodes = _candidates(faq_subset, n=6)
    before = {n.node.node_id: n.score for n in nodes}
    result = rerank.postprocess_nodes(nodes, query_str=QUERY)
    for n in result:
        assert n.node.metadata["retrieval_score"] == before[n.node.node_id]
        # the kept score is not part of the text a later reranker or embedder sees
        assert "retrieval_score" not in n.node.get_content(metadata_mode=MetadataMode.EMBED)


def test_top_n_larger_than_the_candidates_returns_all(
    rerank: HardNegativeRerank, faq_subset: dict[str, Any]
) -> None:
    result = rerank.postprocess_nodes(_candidates(faq_subset, n=3), query_str=QUERY)
    assert len(result) == 3


def test_no_nodes_gives_an_empty_list(rerank: HardNegativeRerank) -> None:
    assert rerank.postprocess_nodes([], query_str=QUERY) == []


def test_missing_query_is_a_clear_error(rerank: HardNegativeRerank, faq_subset: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="Missing query bundle"):
        rerank.postprocess_nodes(_candidates(faq_subset, n=2))


def test_nodes_without_text_are_a_clear_error(rerank: HardNegativeRerank) -> None:
    nodes = [
        NodeWithScore(node=TextNode(id_="ok", text="Use chmod +x and a #! line."), score=0.9),
        NodeWithScore(
            node=ImageNode(id_="picture-only", image_url="http://example.invalid/x.png"), score=0.8
        ),
        NodeWithScore(node=TextNode(id_="blank", text="   "), score=0.7),
    ]
    with pytest.raises(ValueError, match=r"2 of 3 node\(s\) have no text.*picture-only"):
        rerank.postprocess_nodes(nodes, query_str=QUERY)


def test_rerank_events_and_callbacks_are_emitted(
    bi_reranker_dir: Path, faq_subset: dict[str, Any], rerank_events: list[Any]
) -> None:
    debug = LlamaDebugHandler()
    rerank = HardNegativeRerank(
        model=bi_reranker_dir, top_n=4, device="cpu", callback_manager=CallbackManager([debug])
    )
    result = rerank.postprocess_nodes(_candidates(faq_subset, n=8), query_str=QUERY)

    starts = [e for e in rerank_events if isinstance(e, ReRankStartEvent)]
    ends = [e for e in rerank_events if isinstance(e, ReRankEndEvent)]
    assert len(starts) == 1 and len(ends) == 1
    assert starts[0].model_name == str(bi_reranker_dir)
    assert starts[0].top_n == 4 and len(starts[0].nodes) == 8
    assert starts[0].query.query_str == QUERY
    assert [n.node.node_id for n in ends[0].nodes] == [n.node.node_id for n in result]
    pairs = debug.get_event_pairs(CBEventType.RERANKING)
    assert len(pairs) == 1


def test_async_postprocess_gives_the_same_result(
    rerank: HardNegativeRerank, faq_subset: dict[str, Any]
) -> None:
    import asyncio

    sync = rerank.postprocess_nodes(_candidates(faq_subset), query_str=QUERY)
    asynchronous = asyncio.run(rerank.apostprocess_nodes(_candidates(faq_subset), query_str=QUERY))
    assert [n.node.node_id for n in asynchronous] == [n.node.node_id for n in sync]


def test_serialises_to_its_settings_and_back(rerank: HardNegativeRerank) -> None:
    data = rerank.to_dict()
    assert data["class_name"] == "HardNegativeRerank"
    assert data["model"] == rerank.model and data["top_n"] == 5
    again = HardNegativeRerank.from_dict(data)
    assert again.model == rerank.model and again.top_n == 5 and again.kind == "bi"


def test_loads_the_current_version_of_a_model_registry(tmp_path: Path, bi_reranker_dir: Path) -> None:
    from hn_plugins.registry import ModelRegistry

    ModelRegistry(tmp_path).register(bi_reranker_dir, promote=True)
    rerank = HardNegativeRerank(model=tmp_path, top_n=1, device="cpu")
    assert rerank.kind == "bi"
    assert (
        len(rerank.postprocess_nodes([NodeWithScore(node=TextNode(text="chmod +x"))], query_str=QUERY)) == 1
    )


def test_a_plain_bi_encoder_folder_is_not_a_reranker(minilm_dir: str) -> None:
    with pytest.raises(RerankerLoadError, match="not a cross-encoder"):
        HardNegativeRerank(model=minilm_dir)


def test_a_missing_model_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="does not exist"):
        HardNegativeRerank(model=str(tmp_path / "no-such-model"))


def test_invalid_settings_are_rejected(bi_reranker_dir: Path) -> None:
    with pytest.raises(ValueError, match="top_n"):
        HardNegativeRerank(model=bi_reranker_dir, top_n=0)


def test_fusion_weight_of_the_model_folder_mixes_in_the_retrieval_scores(
    bi_reranker_dir: Path, faq_subset: dict[str, Any], tmp_path: Path
) -> None:
    """A folder whose fusion weight is 0 ranks by retrieval score; fuse_retrieval_score=False ignores it."""
    import shutil

    from hn_plugins.fusion import normalize_scores

    folder = tmp_path / "fused"
    shutil.copytree(bi_reranker_dir, folder)
    (folder / "hn_reranker.json").write_text(
        json.dumps({"kind": "bi", "fusion": {"weight": 0.0, "normalization": "z"}}), encoding="utf-8"
    )
    nodes = _candidates(faq_subset, n=8)
    retrieval = [n.score for n in nodes]
    ids = [n.node.node_id for n in nodes]
    fused = HardNegativeRerank(model=folder, top_n=8, device="cpu")
    result = fused.postprocess_nodes(_candidates(faq_subset, n=8), query_str=QUERY)
    assert [n.node.node_id for n in result] == ids  # retrieval order (scores 1.00, 0.99, ...)
    np.testing.assert_allclose([n.score for n in result], normalize_scores(retrieval), atol=1e-5)

    alone = HardNegativeRerank(model=folder, top_n=8, device="cpu", fuse_retrieval_score=False)
    reference = HardNegativeRerank(model=bi_reranker_dir, top_n=8, device="cpu")
    got = alone.postprocess_nodes(_candidates(faq_subset, n=8), query_str=QUERY)
    want = reference.postprocess_nodes(_candidates(faq_subset, n=8), query_str=QUERY)
    assert [n.node.node_id for n in got] == [n.node.node_id for n in want]
    assert [n.node.node_id for n in got] != ids


def test_onnx_backend_ranks_nodes_like_torch(tmp_path: Path, faq_subset: dict[str, Any]) -> None:
    pytest.importorskip("onnxruntime")
    import torch
    from sentence_transformers import CrossEncoder

    from hn_plugins.models import resolve_model_path
    from hn_plugins.onnx_backend import export_onnx

    torch.manual_seed(0)
    folder = tmp_path / "cross"
    CrossEncoder(resolve_model_path("all-MiniLM-L6-v2"), num_labels=1, max_length=128).save_pretrained(
        str(folder)
    )
    export_onnx(folder, int8=False)
    by_torch = HardNegativeRerank(model=folder, top_n=5, device="cpu")
    by_onnx = HardNegativeRerank(model=folder, top_n=5, backend="onnx")
    assert by_onnx.kind == "cross" and by_onnx.to_dict()["backend"] == "onnx"
    expected = by_torch.postprocess_nodes(_candidates(faq_subset), query_str=QUERY)
    got = by_onnx.postprocess_nodes(_candidates(faq_subset), query_str=QUERY)
    assert [n.node.node_id for n in got] == [n.node.node_id for n in expected]
    np.testing.assert_allclose([n.score for n in got], [n.score for n in expected], atol=1e-5)
    with pytest.raises(RerankerLoadError, match="no int8 copy"):
        HardNegativeRerank(model=folder, backend="onnx-int8")


def test_onnx_backend_runs_a_bi_encoder_folder_like_torch(
    faq_subset: dict[str, Any], bi_reranker_dir: Path
) -> None:
    pytest.importorskip("onnxruntime")
    by_torch = HardNegativeRerank(model=bi_reranker_dir, top_n=5, device="cpu")
    by_onnx = HardNegativeRerank(model=bi_reranker_dir, top_n=5, backend="onnx")
    assert by_onnx.kind == "bi"
    expected = by_torch.postprocess_nodes(_candidates(faq_subset), query_str=QUERY)
    got = by_onnx.postprocess_nodes(_candidates(faq_subset), query_str=QUERY)
    assert [n.node.node_id for n in got] == [n.node.node_id for n in expected]
    np.testing.assert_allclose([n.score for n in got], [n.score for n in expected], atol=1e-4)


def test_prerank_model_lets_the_cross_encoder_rescore_only_its_top_nodes(
    tmp_path: Path, faq_subset: dict[str, Any], bi_reranker_dir: Path, minilm_dir: str
) -> None:
    """A cascade: the bi-encoder folder orders the 12 nodes, the cross-encoder re-orders its best 4."""
    import torch
    from sentence_transformers import CrossEncoder

    from hn_plugins.models import resolve_model_path

    torch.manual_seed(0)
    folder = tmp_path / "cross"
    CrossEncoder(resolve_model_path("all-MiniLM-L6-v2"), num_labels=1, max_length=128).save_pretrained(
        str(folder)
    )
    cascade = HardNegativeRerank(
        model=folder, top_n=12, device="cpu", prerank_model=bi_reranker_dir, prerank_top_n=4
    )
    assert cascade.kind == "cascade"
    got = cascade.postprocess_nodes(_candidates(faq_subset), query_str=QUERY)
    # reference: each model on its own, through the same postprocessor
    by_bi = HardNegativeRerank(model=bi_reranker_dir, top_n=12, device="cpu")
    bi_ids = [n.node.node_id for n in by_bi.postprocess_nodes(_candidates(faq_subset), query_str=QUERY)]
    head = [n for n in _candidates(faq_subset) if n.node.node_id in set(bi_ids[:4])]
    by_cross = HardNegativeRerank(model=folder, top_n=4, device="cpu")
    cross_ids = [n.node.node_id for n in by_cross.postprocess_nodes(head, query_str=QUERY)]
    assert [n.node.node_id for n in got] == cross_ids + bi_ids[4:]
    assert cross_ids != bi_ids[:4]  # the two models disagree, so the order shows which one ranked the head
    # the same model named as an untuned bi-encoder instead of a reranker folder
    zero_shot = HardNegativeRerank(
        model=folder, top_n=12, device="cpu", prerank_model=f"zero-shot:{minilm_dir}", prerank_top_n=4
    )
    again = zero_shot.postprocess_nodes(_candidates(faq_subset), query_str=QUERY)
    assert [n.node.node_id for n in again] == [n.node.node_id for n in got]
    data = cascade.to_dict()
    assert data["prerank_model"] == str(bi_reranker_dir) and data["prerank_top_n"] == 4
    assert HardNegativeRerank.from_dict(data).kind == "cascade"
    with pytest.raises(ValueError, match="prerank_top_n"):
        HardNegativeRerank(model=folder, prerank_model=bi_reranker_dir, prerank_top_n=0)


def test_follows_promotions_and_rollbacks_of_a_registry(
    tmp_path: Path, bi_reranker_dir: Path, faq_subset: dict[str, Any]
) -> None:
    from hn_plugins.models import load_sentence_transformer
    from hn_plugins.registry import ModelRegistry
    from hn_plugins.reranker import RERANKER_MARKER, load_reranker

    static_dir = tmp_path / "static-reranker"  # a second, different bi-encoder reranker: the static model
    load_sentence_transformer("static-model").save(str(static_dir))
    (static_dir / RERANKER_MARKER).write_text(json.dumps({"kind": "bi"}), encoding="utf-8")
    registry = ModelRegistry(tmp_path / "registry")
    registry.register(bi_reranker_dir, promote=True)
    rerank = HardNegativeRerank(model=registry.root, top_n=12, device="cpu", fuse_retrieval_score=False)
    texts = [n.node.get_content(metadata_mode=MetadataMode.EMBED) for n in _candidates(faq_subset)]

    def served() -> dict[str, float]:
        return {
            n.node.node_id: n.score
            for n in rerank.postprocess_nodes(_candidates(faq_subset), query_str=QUERY)
        }

    def expected(version: str) -> dict[str, float]:
        scores = load_reranker(registry.path(version)).score(QUERY, texts)
        return {n.node.node_id: float(s) for n, s in zip(_candidates(faq_subset), scores, strict=True)}

    first = served()
    assert first == pytest.approx(expected("v0001"), abs=1e-5)
    registry.register(static_dir, promote=True)  # what hn retrain does after a better candidate
    second = served()
    assert second == pytest.approx(expected("v0002"), abs=1e-5) and second != pytest.approx(first, abs=1e-3)
    registry.rollback()
    assert served() == pytest.approx(first, abs=1e-5)
