"""The fast embedding engines (hn_plugins.encoders) against sentence-transformers on the real packaged models."""

from __future__ import annotations

import importlib
import json
import logging
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from hn_plugins.embedders import EmbedderEnsemble, l2_normalize
from hn_plugins.encoders import (
    CorruptExportError,
    OnnxBiEncoder,
    StaticEncoder,
    cuda_available,
    export_bi_encoder,
    load_encoder,
    resolve_engine,
)
from hn_plugins.models import load_sentence_transformer, resolve_model_path

TEXTS = [
    "boundary layer transition on a flat plate at supersonic speed",
    "what is a virtual cloud network",
    "Stress analysis of thin cylindrical shells under axial compression. " * 30,  # past 256 tokens: truncated
    "",
]


@pytest.fixture(scope="module")
def export_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("onnx-exports")


@pytest.fixture(scope="module")
def minilm_export(export_root: Path) -> Path:
    return export_bi_encoder("all-MiniLM-L6-v2", root=export_root)


@pytest.fixture(scope="module")
def minilm_torch():
    return load_sentence_transformer("all-MiniLM-L6-v2")


def _torch_vectors(model, texts: list[str]) -> np.ndarray:  # type: ignore[no-untyped-def]
    return np.asarray(model.encode(texts, convert_to_numpy=True, normalize_embeddings=True))


def test_fp32_export_equals_pytorch_and_int8_stays_close(minilm_export: Path, minilm_torch) -> None:
    info = json.loads((minilm_export / "export.json").read_text())
    assert set(info["files"]) == {"fp32", "int8", "tokenizer"}
    assert info["pooling"] == "mean" and info["max_length"] == minilm_torch.max_seq_length == 256
    reference = _torch_vectors(minilm_torch, TEXTS[:3])
    fp32 = l2_normalize(OnnxBiEncoder(minilm_export, "fp32").encode(TEXTS[:3]))
    assert np.abs(fp32 - reference).max() < 1e-4
    int8 = l2_normalize(OnnxBiEncoder(minilm_export, "int8").encode(TEXTS[:3]))
    cosines = (int8 * reference).sum(axis=1)
    assert cosines.min() > 0.97 and not np.allclose(
        int8, reference, atol=1e-4
    )  # int8 really is another model


def test_an_export_is_made_once_and_reused(minilm_export: Path, export_root: Path) -> None:
    before = (minilm_export / "model.onnx").stat().st_mtime_ns
    assert export_bi_encoder("all-MiniLM-L6-v2", root=export_root) == minilm_export
    assert (minilm_export / "model.onnx").stat().st_mtime_ns == before
    assert [p.name for p in export_root.iterdir() if not p.name.startswith(".")] == [minilm_export.name]


def test_batches_sorted_by_length_give_each_text_its_own_vector(minilm_export: Path) -> None:
    encoder = OnnxBiEncoder(minilm_export, "fp32", batch_size=2)
    together = encoder.encode(TEXTS)
    alone = np.concatenate([encoder.encode([t]) for t in TEXTS])
    assert np.abs(together - alone).max() < 1e-4  # padding to a batch's longest text changes nothing
    assert encoder.encode([]).shape == (0, 384)


def test_static_encoder_equals_the_sentence_transformers_static_embedding(static_model) -> None:
    encoder = StaticEncoder(resolve_model_path("static-model"), batch_size=2)
    texts = [*TEXTS, "Transition, separation and  reattachment!"]
    ours = encoder.encode(texts)
    theirs = np.asarray(static_model.encode(texts, convert_to_numpy=True))
    assert ours.shape == theirs.shape
    assert np.allclose(ours, theirs, rtol=1e-5, atol=1e-5)  # float summation order only
    assert not ours[3].any()  # an empty text has no tokens: the zero vector, as EmbeddingBag gives


def test_ensemble_engines_agree_and_keep_separate_cache_entries(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HN_PLUGINS_HOME", str(tmp_path / "home"))
    ids, texts = ["a", "b", "c"], TEXTS[:3]
    torch_ensemble = EmbedderEnsemble(
        ["all-MiniLM-L6-v2", "static-model"], cache_dir=tmp_path / "c", engine="torch"
    )
    torch_vectors = torch_ensemble.encode_documents(ids, texts)
    fast = EmbedderEnsemble(["all-MiniLM-L6-v2", "static-model"], cache_dir=tmp_path / "c", engine="onnx")
    assert [type(m.encoder).__name__ for m in fast.members] == ["OnnxBiEncoder", "StaticEncoder"]
    assert fast.fingerprint != torch_ensemble.fingerprint
    assert np.abs(fast.encode_documents(ids, texts) - torch_vectors).max() < 1e-4
    again = EmbedderEnsemble(["all-MiniLM-L6-v2", "static-model"], cache_dir=tmp_path / "c", engine="torch")
    again.encode_documents(ids, texts)
    assert again.encode_calls == 0  # the torch engine's cache entries are untouched by the onnx run


def test_auto_engine_runs_onnx_on_a_cpu_without_importing_torch(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from hn_plugins.embedders import EmbedderEnsemble\n"
        "e = EmbedderEnsemble(['all-MiniLM-L6-v2', 'static-model'])\n"
        "v = e.encode_queries(['boundary layer'])\n"
        "print(v.shape, [type(m.encoder).__name__ for m in e.members], 'torch' in sys.modules)\n"
    )
    import subprocess

    home = tmp_path / "home"
    export_bi_encoder("all-MiniLM-L6-v2", root=home / "onnx")  # the export is cached: later runs skip torch
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={"HN_PLUGINS_HOME": str(home), "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"},
        check=True,
    )
    assert done.stdout.strip() == "(1, 448) ['OnnxBiEncoder', 'StaticEncoder'] False"


def test_engine_choices() -> None:
    assert resolve_engine("auto") == "onnx" and resolve_engine("auto", device="cuda:0") == "torch"
    assert resolve_engine("auto", device="cpu") == "onnx" and resolve_engine("onnx", device="cuda") == "onnx"


def test_auto_runs_torch_when_pytorch_sees_a_gpu_and_no_device_is_named(monkeypatch) -> None:
    """This machine has no GPU: the real PyTorch says so; a stand-in that reports CUDA makes ``auto`` pick torch."""
    monkeypatch.setitem(sys.modules, "torch", importlib.import_module("torch"))  # loaded: the real check runs
    assert not cuda_available() and resolve_engine("auto") == "onnx"

    class _Cuda:
        @staticmethod
        def is_available() -> bool:
            return True

    monkeypatch.setitem(sys.modules, "torch", types.SimpleNamespace(cuda=_Cuda))
    assert cuda_available() and resolve_engine("auto") == "torch"
    assert resolve_engine("auto", device="cpu") == "onnx"
    with pytest.raises(ValueError, match="engine must be one of auto, torch, onnx, onnx-int8; got 'fast'"):
        EmbedderEnsemble(["all-MiniLM-L6-v2"], engine="fast")


def test_a_damaged_export_is_detected_and_rebuilt(tmp_path: Path, caplog) -> None:
    root = tmp_path / "exports"
    folder = export_bi_encoder("all-MiniLM-L6-v2", root=root, int8=False)
    reference = OnnxBiEncoder(folder, "fp32").encode(TEXTS[:2])
    with (folder / "model.onnx").open("r+b") as handle:  # flip bytes in the middle of the weights
        handle.seek(4_000_000)
        handle.write(b"\x00" * 64)
    with pytest.raises(CorruptExportError, match="changed since the export"):
        OnnxBiEncoder(folder, "fp32")
    with caplog.at_level(logging.WARNING):
        encoder = load_encoder("all-MiniLM-L6-v2", "onnx", export_root=root)
    assert (
        sum("is damaged" in r.getMessage() and "Exporting it again" in r.getMessage() for r in caplog.records)
        == 1
    )
    assert isinstance(encoder, OnnxBiEncoder)
    assert np.abs(encoder.encode(TEXTS[:2]) - reference).max() < 1e-5


def test_a_model_the_onnx_path_cannot_run_falls_back_to_torch_with_one_warning(
    tmp_path: Path, caplog
) -> None:
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.models import Dense, Pooling, Transformer

    word = Transformer(resolve_model_path("all-MiniLM-L6-v2"))
    dense = Dense(in_features=384, out_features=32)
    folder = tmp_path / "with-dense"
    SentenceTransformer(modules=[word, Pooling(384, pooling_mode="mean"), dense]).save(str(folder))
    with caplog.at_level(logging.WARNING):
        encoder = load_encoder(folder, "onnx", export_root=tmp_path / "exports")
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "the ONNX path is not used" in warnings[0] and "Dense" in warnings[0] and "PyTorch" in warnings[0]
    assert hasattr(encoder, "state_dict")  # the sentence-transformers model
    assert encoder.encode(["a text"]).shape == (1, 32)
    assert not (tmp_path / "exports").exists() or not any((tmp_path / "exports").glob("*/export.json"))


def test_hn_mine_engine_option(tmp_path: Path, capsys) -> None:
    from hn_plugins.cli import main

    with pytest.raises(SystemExit) as stopped:
        main(["mine", str(tmp_path), "--out", str(tmp_path / "o.jsonl"), "--engine", "fast"])
    assert stopped.value.code == 2
    assert "--engine: invalid choice: 'fast'" in capsys.readouterr().err


def test_bi_encoder_reranker_runs_through_the_same_export(tmp_path: Path, monkeypatch) -> None:
    from hn_plugins.rerankers import BiEncoderReranker, load_reranker

    monkeypatch.setenv("HN_PLUGINS_HOME", str(tmp_path / "home"))
    documents = TEXTS[:3]
    torch_scores = BiEncoderReranker("all-MiniLM-L6-v2").score("boundary layer", documents)
    fast = load_reranker("zero-shot:all-MiniLM-L6-v2", backend="onnx")
    assert isinstance(fast, BiEncoderReranker) and isinstance(fast.model, OnnxBiEncoder)
    assert fast.precompute(documents) == 3
    assert np.abs(fast.score("boundary layer", documents) - torch_scores).max() < 1e-4
    assert fast.precompute(documents) == 0  # already cached: scoring used the precomputed vectors
