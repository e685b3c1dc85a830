"""The ONNX backend against PyTorch: a real MiniLM cross-encoder folder, real Cranfield pairs, real onnxruntime."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from hn_plugins.cli import main as hn_main
from hn_plugins.models import resolve_model_path
from hn_plugins.onnx_backend import EXPORT_MARKER, OnnxCrossEncoderReranker, export_onnx
from hn_plugins.reranker import CrossEncoderReranker, RerankerLoadError, load_reranker


@pytest.fixture(scope="module")
def cross_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A MiniLM cross-encoder folder (one-logit head, seeded) exported once to ONNX."""
    import torch
    from sentence_transformers import CrossEncoder

    torch.manual_seed(0)
    model = CrossEncoder(resolve_model_path("all-MiniLM-L6-v2"), num_labels=1, max_length=128)
    folder = tmp_path_factory.mktemp("cross") / "model"
    model.save_pretrained(str(folder))
    export_onnx(folder)
    return folder


@pytest.fixture(scope="module")
def cranfield_pairs(cranfield_train) -> tuple[str, list[str]]:
    """One Cranfield query and 40 documents, most longer than 128 tokens with the query (truncation is exercised)."""
    qid = cranfield_train.judged_query_ids[0]
    docs = [cranfield_train.document_text(d) for d in list(cranfield_train.corpus)[:40]]
    return cranfield_train.queries[qid], docs


def test_export_writes_both_precisions_and_records_its_check(cross_folder: Path) -> None:
    info = json.loads((cross_folder / "onnx" / EXPORT_MARKER).read_text())
    fp32 = cross_folder / info["files"]["fp32"]
    int8 = cross_folder / info["files"]["int8"]
    assert fp32.is_file() and int8.is_file()
    assert int8.stat().st_size < 0.5 * fp32.stat().st_size  # weights really are int8
    assert info["check"]["fp32_max_abs_diff"] <= 1e-3
    assert info["activation"] == "sigmoid" and info["max_length"] == 128
    assert not [p for p in cross_folder.iterdir() if p.name.startswith(".onnx-")]  # no temporary folder left


def test_fp32_onnx_scores_equal_pytorch_on_real_pairs(cross_folder: Path, cranfield_pairs) -> None:
    query, docs = cranfield_pairs
    torch_scores = CrossEncoderReranker(cross_folder, batch_size=8).score(query, docs)
    onnx = load_reranker(cross_folder, backend="onnx", batch_size=8)
    assert isinstance(onnx, OnnxCrossEncoderReranker) and onnx.precision == "fp32"
    onnx_scores = onnx.score(query, docs)
    assert onnx_scores.shape == (len(docs),)
    np.testing.assert_allclose(onnx_scores, torch_scores, atol=1e-5)
    assert onnx.documents_scored == len(docs)


def test_int8_scores_are_quantised_but_close(cross_folder: Path, cranfield_pairs) -> None:
    query, docs = cranfield_pairs
    fp32 = load_reranker(cross_folder, backend="onnx").score(query, docs)
    int8 = load_reranker(cross_folder, backend="onnx-int8").score(query, docs)
    assert np.isfinite(int8).all()
    assert not np.allclose(int8, fp32, atol=1e-6)  # it is not the fp32 model
    assert np.abs(int8 - fp32).max() < 0.2  # sigmoid scores: a quantised copy, not another model


def test_order_does_not_depend_on_batching(cross_folder: Path, cranfield_pairs) -> None:
    query, docs = cranfield_pairs
    one = OnnxCrossEncoderReranker(cross_folder, precision="fp32", batch_size=1).score(query, docs)
    many = OnnxCrossEncoderReranker(cross_folder, precision="fp32", batch_size=16).score(query, docs)
    np.testing.assert_allclose(one, many, atol=1e-5)
    assert OnnxCrossEncoderReranker(cross_folder, precision="fp32").score(query, []).shape == (0,)


def test_stale_missing_and_wrong_exports_are_refused(cross_folder: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(cross_folder, copy)
    weights = copy / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1  # the model was retrained since the export
    weights.write_bytes(bytes(data))
    with pytest.raises(RerankerLoadError, match="export-onnx"):
        load_reranker(copy, backend="onnx-int8")
    shutil.rmtree(copy / "onnx")
    with pytest.raises(RerankerLoadError, match="no ONNX export"):
        load_reranker(copy, backend="onnx")
    with pytest.raises(RerankerLoadError, match="backend must be"):
        load_reranker(cross_folder, backend="tensorrt")  # type: ignore[arg-type]
    with pytest.raises(RerankerLoadError, match="not a folder"):
        load_reranker("cross-encoder/ms-marco-MiniLM-L6-v2", backend="onnx")


def test_bi_encoder_folder_is_told_to_precompute(tmp_path: Path, minilm) -> None:
    folder = tmp_path / "bi"
    minilm.save(str(folder))
    (folder / "hn_reranker.json").write_text(json.dumps({"kind": "bi"}))
    with pytest.raises(RerankerLoadError, match="precompute"):
        export_onnx(folder)


def test_failed_check_keeps_the_earlier_export(cross_folder: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(cross_folder, copy)
    before = (copy / "onnx" / EXPORT_MARKER).read_text()
    with pytest.raises(RuntimeError, match="earlier export"):
        export_onnx(copy, tolerance=-1.0)
    assert (copy / "onnx" / EXPORT_MARKER).read_text() == before
    assert not [p for p in copy.iterdir() if p.name.startswith(".onnx-")]


def test_cli_export_then_eval_with_the_int8_backend(
    cross_folder: Path, tmp_path: Path, shared_data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(cross_folder, copy)
    shutil.rmtree(copy / "onnx")
    assert hn_main(["export-onnx", str(copy), "--no-int8"]) == 0
    assert "fp32" in capsys.readouterr().out
    info = json.loads((copy / "onnx" / EXPORT_MARKER).read_text())
    assert "int8" not in info["files"]

    def hn_eval(*extra: str) -> int:
        data = str(shared_data / "medline")
        return hn_main(["eval", data, "--model", str(copy), "--backend", "onnx-int8", "--top-k", "5", *extra])

    assert hn_eval() == 2  # no int8 copy: a clear error, not a crash
    assert "no int8 copy" in capsys.readouterr().err
    assert hn_main(["export-onnx", str(copy)]) == 0
    out = tmp_path / "eval.json"
    assert hn_eval("--json", str(out)) == 0
    report = json.loads(out.read_text())
    assert report["backend"] == "onnx-int8"
    assert 0.0 <= report["rows"]["reranker"]["mrr@10"] <= 1.0


def test_registry_versions_keep_their_own_export(cross_folder: Path, tmp_path: Path, cranfield_pairs) -> None:
    import torch
    from sentence_transformers import CrossEncoder

    from hn_plugins.registry import ModelRegistry

    query, docs = cranfield_pairs
    registry = ModelRegistry(tmp_path / "registry")
    first = registry.register(cross_folder, promote=True)  # the export travels with the folder
    expected = CrossEncoderReranker(cross_folder).score(query, docs[:5])
    np.testing.assert_allclose(
        load_reranker(registry.root, backend="onnx").score(query, docs[:5]), expected, atol=1e-5
    )
    torch.manual_seed(1)  # a "retrained" model: another head, no export yet
    retrained = tmp_path / "retrained"
    CrossEncoder(resolve_model_path("all-MiniLM-L6-v2"), num_labels=1, max_length=128).save_pretrained(
        str(retrained)
    )
    registry.register(retrained, promote=True)
    with pytest.raises(RerankerLoadError, match="no ONNX export"):
        load_reranker(registry.root, backend="onnx-int8")
    info = export_onnx(registry.root)  # exports the current version, inside the registry
    assert Path(info["folder"]) == registry.path()
    assert load_reranker(registry.root, backend="onnx-int8").score(query, docs[:5]).shape == (5,)
    registry.rollback()
    assert registry.current == first
    np.testing.assert_allclose(
        load_reranker(registry.root, backend="onnx").score(query, docs[:5]), expected, atol=1e-5
    )


def test_attention_export_choice_is_recorded_and_both_match_pytorch(
    cross_folder: Path, tmp_path: Path, cranfield_pairs
) -> None:
    assert json.loads((cross_folder / "onnx" / EXPORT_MARKER).read_text())["attention"] == "eager"
    own = tmp_path / "own"
    shutil.copytree(cross_folder, own, ignore=shutil.ignore_patterns("onnx"))
    info = export_onnx(own, int8=False, attention="model")
    assert info["attention"] != "eager"  # the model's own (scaled-dot-product in transformers 5)
    query, docs = cranfield_pairs
    reference = CrossEncoderReranker(cross_folder, batch_size=8).score(query, docs)
    for folder in (cross_folder, own):
        scores = OnnxCrossEncoderReranker(folder, "fp32").score(query, docs)
        np.testing.assert_allclose(scores, reference, atol=1e-5)
    with pytest.raises(ValueError, match="attention must be one of"):
        export_onnx(tmp_path / "not-even-loaded", attention="flash")
