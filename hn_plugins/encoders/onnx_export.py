"""Export a sentence-transformers bi-encoder to ONNX once, into the hn-plugins cache, checked against PyTorch.

An export folder ``<root>/<name>-<digest>/`` holds ``model.onnx`` (fp32), ``model_qint8.onnx`` (int8 weights),
``tokenizer.json`` and ``export.json``. The digest is the SHA-256 of the model folder's weights and configuration,
so a retrained or updated model gets a new export and an unchanged one is never exported twice. ``export.json``
records each file's SHA-256 (a damaged file is detected and the export rebuilt), the pooling, the maximum length and
the check: the fp32 vectors must equal sentence-transformers' within ``tolerance`` on the check texts, and the int8
copy is kept only when its cosine to fp32 stays above ``int8_min_cosine`` on every check text.

Supported: a sentence-transformers folder whose modules are a ``Transformer``, a ``Pooling`` (mean, cls or max,
prompt tokens included) and optionally ``Normalize``; anything else raises :class:`ExportUnsupportedError`, and the
caller (:func:`~hn_plugins.encoders.loading.load_encoder`) keeps PyTorch for that model.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from hn_plugins.encoders.onnx_runtime import EXPORT_FILE, OnnxBiEncoder, file_sha256
from hn_plugins.encoders.quantize import quantize_int8
from hn_plugins.models import cache_home, hub_offline_setting, load_sentence_transformer, resolve_model_path

logger = logging.getLogger(__name__)

__all__ = [
    "CHECK_TEXTS",
    "EXPORT_FILES",
    "ExportUnsupportedError",
    "export_bi_encoder",
    "export_root",
    "model_folder",
    "source_digest",
]

#: The files of an export folder, by key of ``export.json``'s ``files``.
EXPORT_FILES = {"fp32": "model.onnx", "int8": "model_qint8.onnx", "tokenizer": "tokenizer.json"}
_POOLINGS = ("mean", "cls", "max")
#: Files of a model folder that the digest covers (weights, configuration, tokenizer).
_DIGEST_SUFFIXES = (".safetensors", ".bin", ".json", ".txt", ".model")
_SKIPPED_FOLDERS = {"onnx", "openvino", ".git"}
#: Texts of the numerical check (not a benchmark): short and long, technical and plain.
CHECK_TEXTS = (
    "what is a virtual cloud network",
    "A virtual cloud network is a private network in a cloud region.",
    "how do I read a file line by line",
    "open() returns a file object; iterating over it yields the lines of the file one at a time.",
    "boundary layer transition at high Mach number",
    " ".join(
        ["Experiments on the transition of a laminar boundary layer in supersonic flow over a flat plate,"]
        + [
            "with heat transfer measured along the surface and compared with the theory of small disturbances."
        ]
        * 12
    ),
)


class ExportUnsupportedError(ValueError):
    """The model cannot be run by :class:`~hn_plugins.encoders.onnx_runtime.OnnxBiEncoder` (the reason is the message)."""


def export_root() -> Path:
    """Where exports live: ``$HN_PLUGINS_HOME/onnx`` (default ``~/.cache/hn_plugins/onnx``)."""
    return cache_home() / "onnx"


def model_folder(name_or_path: str | os.PathLike[str]) -> Path:
    """The local folder of a model: a path, a packaged copy of a hub name, or the hub's download of it.

    Raises:
        ExportUnsupportedError: no local folder and the hub is off (or unreachable).
    """
    resolved = Path(resolve_model_path(name_or_path))
    if resolved.is_dir():
        return resolved
    offline = hub_offline_setting()
    if offline:
        raise ExportUnsupportedError(f"{name_or_path!r} is not a local folder and {offline} forbids the hub.")
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(str(name_or_path)))
    except Exception as exc:  # network, authentication, unknown repository
        raise ExportUnsupportedError(f"{name_or_path!r} could not be downloaded ({exc}).") from exc


def source_digest(folder: Path) -> str:
    """SHA-256 over a model folder's weight, configuration and tokenizer files (names and contents)."""
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if not path.is_file() or path.suffix not in _DIGEST_SUFFIXES:
            continue
        if _SKIPPED_FOLDERS.intersection(relative.parts[:-1]):
            continue
        digest.update(str(relative).encode())
        digest.update(file_sha256(path).encode())
    return digest.hexdigest()


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name.strip("/"))[-60:].strip("-.") or "model"


def export_bi_encoder(
    name_or_path: str | os.PathLike[str],
    *,
    root: str | os.PathLike[str] | None = None,
    int8: bool = True,
    opset: int = 17,
    tolerance: float = 1e-4,
    int8_min_cosine: float = 0.97,
) -> Path:
    """Export a sentence-transformers bi-encoder to ONNX (fp32 and int8) under ``root``, or reuse the export.

    Args:
        name_or_path: a model folder, or a hub name (a packaged copy is used when one is installed).
        root: the export cache (default :func:`export_root`).
        int8: also write the int8 copy.
        opset: ONNX opset.
        tolerance: largest allowed difference between fp32 ONNX and PyTorch normalised vectors.
        int8_min_cosine: the int8 copy is kept only if each check text's cosine to fp32 is at least this.

    Returns:
        The export folder.

    Raises:
        ExportUnsupportedError: the model's modules are not Transformer + Pooling (+ Normalize), its tokenizer is
            not a fast one, or it is not available locally.
        RuntimeError: the fp32 export disagrees with PyTorch (nothing is written).

    Example:
        >>> folder = export_bi_encoder("all-MiniLM-L6-v2")  # doctest: +SKIP
        >>> sorted(p.name for p in folder.iterdir())  # doctest: +SKIP
        ['export.json', 'model.onnx', 'model_qint8.onnx', 'tokenizer.json']
    """
    source = model_folder(name_or_path)
    digest = source_digest(source)
    base = Path(root) if root is not None else export_root()
    target = base / f"{_slug(str(name_or_path))}-{digest[:16]}"
    if (target / EXPORT_FILE).is_file():
        return target
    start = time.perf_counter()
    base.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".export-", dir=base))
    try:
        info = _export_into(
            source, work, opset=opset, tolerance=tolerance, int8=int8, int8_min_cosine=int8_min_cosine
        )
        info.update(name=str(name_or_path), source=str(source), source_sha256=digest)
        info["seconds"] = round(time.perf_counter() - start, 2)
        (work / EXPORT_FILE).write_text(json.dumps(info, indent=2), encoding="utf-8")
        if (target / EXPORT_FILE).is_file():  # another process (e.g. a Ray actor) finished the same export
            return target
        if target.exists():  # the remains of an export that never finished
            shutil.rmtree(target, ignore_errors=True)
        try:
            work.rename(target)
        except OSError:
            if not (target / EXPORT_FILE).is_file():
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    logger.info("Exported %s to ONNX in %.1fs: %s", name_or_path, info["seconds"], info["check"])
    return target


def _transformer_parts(model: Any) -> tuple[Any, Any, str]:
    """The Hugging Face model, the fast tokenizer and the pooling of a supported sentence-transformers model."""
    names = [type(module).__name__ for module in model]
    if len(names) < 2 or names[0] != "Transformer" or names[1] != "Pooling" or set(names[2:]) - {"Normalize"}:
        raise ExportUnsupportedError(
            f"its modules are {names}; the ONNX path runs Transformer + Pooling (+ Normalize)."
        )
    pooling_module = model[1]
    pooling = str(getattr(pooling_module, "pooling_mode", ""))
    if pooling not in _POOLINGS:
        raise ExportUnsupportedError(
            f"its pooling is {pooling!r}; the ONNX path runs {', '.join(_POOLINGS)}."
        )
    if not getattr(pooling_module, "include_prompt", True):
        raise ExportUnsupportedError("its pooling leaves prompt tokens out, which the ONNX path does not do.")
    tokenizer = getattr(model[0], "tokenizer", None)
    if getattr(tokenizer, "backend_tokenizer", None) is None:
        raise ExportUnsupportedError("its tokenizer is not a fast (tokenizers) one.")
    return model[0].auto_model, tokenizer, pooling


def _export_into(
    source: Path, work: Path, *, opset: int, tolerance: float, int8: bool, int8_min_cosine: float
) -> dict[str, Any]:
    import torch

    model = load_sentence_transformer(str(source), device="cpu")
    model.eval()
    hf_model, tokenizer, pooling = _transformer_parts(model)
    reference = model.encode(list(CHECK_TEXTS), convert_to_numpy=True, normalize_embeddings=True)
    max_length = int(model.max_seq_length)
    setter = getattr(hf_model, "set_attn_implementation", None)
    if callable(setter):  # eager attention traces to plain matmuls, which onnxruntime runs fastest
        try:
            setter("eager")
        except (ValueError, AttributeError):
            logger.info("%s has no eager attention; exporting its own", type(hf_model).__name__)
    sample = tokenizer(["a sample text"], return_tensors="pt")
    input_names = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in sample]

    class _Hidden(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
            return self.inner(
                **dict(zip(input_names, inputs, strict=True)), return_dict=True
            ).last_hidden_state

    axes = {n: {0: "batch", 1: "sequence"} for n in input_names}
    with warnings.catch_warnings(), torch.inference_mode():
        warnings.simplefilter("ignore")  # the tracer's notes on constants; the check below is the judge
        torch.onnx.export(
            _Hidden(hf_model).eval(),
            tuple(sample[n] for n in input_names),
            str(work / EXPORT_FILES["fp32"]),
            input_names=input_names,
            output_names=["last_hidden_state"],
            dynamic_axes={**axes, "last_hidden_state": {0: "batch", 1: "sequence"}},
            opset_version=opset,
            dynamo=False,
        )
    backend = tokenizer.backend_tokenizer
    backend.no_padding()
    backend.save(str(work / EXPORT_FILES["tokenizer"]))
    info: dict[str, Any] = {
        "pooling": pooling,
        "max_length": max_length,
        "dimension": int(reference.shape[1]),
        "input_names": input_names,
        "opset": opset,
        "files": {"fp32": EXPORT_FILES["fp32"], "tokenizer": EXPORT_FILES["tokenizer"]},
        "created": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    _record_digests(work, info)
    fp32 = _normalised(OnnxBiEncoder(work, "fp32").encode(list(CHECK_TEXTS)))
    difference = float(np.abs(fp32 - reference).max())
    if not difference <= tolerance:
        raise RuntimeError(
            f"the fp32 ONNX export of {source} differs from PyTorch by {difference:.2g} (> {tolerance:g}) on the "
            "check texts."
        )
    check: dict[str, Any] = {"texts": len(CHECK_TEXTS), "fp32_max_abs_diff": difference}
    if int8:
        quantize_int8(work / EXPORT_FILES["fp32"], work / EXPORT_FILES["int8"])
        info["files"]["int8"] = EXPORT_FILES["int8"]
        _record_digests(work, info)
        cosine = float(
            (_normalised(OnnxBiEncoder(work, "int8").encode(list(CHECK_TEXTS))) * fp32).sum(axis=1).min()
        )
        check["int8_min_cosine"] = cosine
        if cosine < int8_min_cosine:
            logger.warning(
                "%s: the int8 copy's cosine to fp32 falls to %.3f (< %.2f) on the check texts; only fp32 is kept.",
                source,
                cosine,
                int8_min_cosine,
            )
            (work / EXPORT_FILES["int8"]).unlink()
            del info["files"]["int8"]
            _record_digests(work, info)
    info["check"] = check
    return info


def _record_digests(work: Path, info: dict[str, Any]) -> None:
    info["sha256"] = {key: file_sha256(work / name) for key, name in info["files"].items()}
    (work / EXPORT_FILE).write_text(
        json.dumps({**info, "source_sha256": "pending"}, indent=2), encoding="utf-8"
    )


def _normalised(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
