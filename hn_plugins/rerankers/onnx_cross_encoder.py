"""Run a cross-encoder reranker with onnxruntime instead of PyTorch, optionally with int8 weights.

A cross-encoder has no cache to lean on: every (query, document) pair goes through the whole model at query time, so
on a CPU the model's speed is the reranker's speed. :func:`export_onnx` writes an ONNX copy of a cross-encoder
folder (fp32, and a dynamically quantised int8 copy) into ``<folder>/onnx/`` next to the weights, checks the fp32
copy against PyTorch on sample pairs, and records where it came from in ``onnx/export.json``.
:class:`OnnxCrossEncoderReranker` then scores with onnxruntime; ``load_reranker(folder, backend="onnx-int8")``
and both framework adapters pick it up.

sentence-transformers' own ONNX backend needs ``optimum-onnx``, which pins ``transformers<4.58``; this module needs
only ``onnx`` and ``onnxruntime`` (``pip install "hn-plugins[onnx]"``).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from hn_plugins.encoders.quantize import quantize_int8
from hn_plugins.rerankers.base import FusionMixin, RerankerLoadError
from hn_plugins.rerankers.cross_encoder import transformer_of
from hn_plugins.rerankers.folders import REGISTRY_MARKER, detect_reranker_kind, read_json, registry_current

logger = logging.getLogger(__name__)

__all__ = ["EXPORT_MARKER", "ONNX_BACKENDS", "OnnxCrossEncoderReranker", "export_onnx", "resolve_export_file"]

#: Subfolder of a model folder that holds the ONNX files.
ONNX_DIR = "onnx"
#: File :func:`export_onnx` writes into ``<folder>/onnx/``.
EXPORT_MARKER = "export.json"
#: ``backend`` values of :func:`hn_plugins.rerankers.loading.load_reranker` that run a model with onnxruntime.
ONNX_BACKENDS: dict[str, Literal["int8", "fp32"]] = {"onnx": "fp32", "onnx-int8": "int8"}
_FILES = {"fp32": "model.onnx", "int8": "model_qint8.onnx"}
#: ``attention`` values of :func:`export_onnx`.
ATTENTIONS = ("eager", "model")
_ACTIVATIONS = {"Sigmoid": "sigmoid", "Identity": "identity"}
#: Pairs for the export's numerical check when the caller gives none (a numerical check, not a benchmark).
_CHECK_PAIRS = (
    ("what is a virtual cloud network", "A virtual cloud network is a private network in a cloud region."),
    ("what is a virtual cloud network", "A network interface card connects a computer to a network."),
    ("how do I read a file line by line", "open() returns a file object; iterating over it yields lines."),
    ("how do I read a file line by line", "The json module encodes and decodes JSON documents."),
    (
        "boundary layer transition",
        "Experiments on the transition of a laminar boundary layer at high Mach number.",
    ),
    ("boundary layer transition", "Stress analysis of thin cylindrical shells under axial compression."),
)


def _onnx_error(what: str) -> ImportError:
    return ImportError(f'{what} needs the onnx extra: pip install "hn-plugins[onnx]" (onnx and onnxruntime).')


def _weights_digest(folder: Path) -> str:
    """SHA-256 over the folder's weight files, so an export made before a retrain is detected."""
    files = sorted(folder.glob("*.safetensors")) or sorted(folder.glob("pytorch_model*.bin"))
    if not files:
        raise RerankerLoadError(
            f"{folder} holds no model weights (*.safetensors); pass a cross-encoder folder."
        )
    digest = hashlib.sha256()
    for file in files:
        digest.update(file.name.encode())
        with file.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def _model_folder(model: str | os.PathLike[str]) -> Path:
    folder = Path(model)
    if not folder.is_dir():
        raise RerankerLoadError(
            f"{folder} is not a model folder. The ONNX backend runs local cross-encoder folders (written by "
            "`hn train --kind cross`, `hn bootstrap`, a registry, or a downloaded cross-encoder)."
        )
    if (folder / REGISTRY_MARKER).is_file():
        folder = registry_current(folder)
    kind = detect_reranker_kind(folder)
    if kind != "cross":
        raise RerankerLoadError(
            f"{folder} is a bi-encoder reranker; the ONNX backend is for cross-encoders. A bi-encoder reranker is "
            "already fast at query time: BiEncoderReranker.precompute(corpus) caches the document vectors."
        )
    return folder


def resolve_export_file(folder: str | os.PathLike[str], info: dict[str, Any], precision: str) -> Path:
    """The ONNX file that ``info`` (a folder's ``onnx/export.json``) lists for ``precision``, only if it is a file
    inside ``<folder>/onnx/``.

    Raises:
        RerankerLoadError: the entry is missing or not a path, names a file outside ``<folder>/onnx/`` (``..``,
            an absolute path, a symbolic link leading out), or the file does not exist; the message names
            ``export.json``, the value, and the ``hn export-onnx`` command that writes a clean export.

    Example:
        >>> resolve_export_file("models/reranker", {"files": {"int8": "../../secret.onnx"}}, "int8")
        Traceback (most recent call last):
        ...
        hn_plugins.rerankers.base.RerankerLoadError: models/reranker/onnx/export.json: 'files' entry 'int8' is '../../secret.onnx', outside models/reranker/onnx; it is refused. Run `hn export-onnx models/reranker` to write a clean export.
    """
    folder = Path(folder)
    marker = folder / ONNX_DIR / EXPORT_MARKER
    fix = f"Run `hn export-onnx {folder}` to write a clean export."
    files = info.get("files")
    value = files.get(precision) if isinstance(files, dict) else None
    if not isinstance(value, str) or not value:
        raise RerankerLoadError(f"{marker}: 'files' has no path for {precision!r} (got {value!r}). {fix}")
    base = (folder / ONNX_DIR).resolve()
    path = (folder / value).resolve()
    if not path.is_relative_to(base) or path == base:
        raise RerankerLoadError(
            f"{marker}: 'files' entry {precision!r} is {value!r}, outside {folder / ONNX_DIR}; it is refused. {fix}"
        )
    if not path.is_file():
        raise RerankerLoadError(
            f"{marker}: 'files' entry {precision!r} is {value!r}, which does not exist. {fix}"
        )
    return path


def _ort_session(path: Path, threads: int | None) -> Any:
    try:
        import onnxruntime as ort
    except ImportError as exc:  # pragma: no cover - the extra is installed in CI
        raise _onnx_error("The ONNX backend") from exc
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = int(threads)
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _set_attention(hf_model: Any, attention: str) -> str:
    """Switch the model to ``attention`` (``eager``) before export, or keep its own (``model``); return the one
    that is exported.

    transformers' default scaled-dot-product attention traces to ops onnxruntime runs one by one; the eager form
    (matmul, softmax, matmul) runs faster there: ``python benchmarks/bench_onnx_reranker.py --compare-attention``
    measures both exports side by side.
    """
    if attention == "eager":
        setter = getattr(hf_model, "set_attn_implementation", None)
        try:
            if callable(setter):
                setter("eager")
            else:  # older transformers
                hf_model.config._attn_implementation = "eager"
        except (ValueError, AttributeError):  # a model without an eager path keeps its own
            logger.info("%s has no eager attention; exporting its own", type(hf_model).__name__)
    return str(getattr(hf_model.config, "_attn_implementation", None) or "unknown")


def export_onnx(
    model: str | os.PathLike[str],
    *,
    int8: bool = True,
    opset: int = 17,
    check_pairs: Sequence[tuple[str, str]] | None = None,
    tolerance: float = 1e-3,
    attention: str = "eager",
) -> dict[str, Any]:
    """Export a cross-encoder folder to ONNX (fp32, plus int8 weights unless ``int8=False``).

    The files go to ``<folder>/onnx/``: ``model.onnx``, ``model_qint8.onnx`` (dynamic quantisation of the weights
    to int8 with onnxruntime's ``quantize_dynamic``, per-channel scales, 7-bit range) and ``export.json``, which
    records the SHA-256 of the weights it was made from (a later retrain makes :class:`OnnxCrossEncoderReranker`
    refuse the stale copy), the maximum length, the activation and the check below. A registry folder exports its
    current version. The new files are written to a temporary folder first and replace an earlier export only once
    the check passed.

    Check: the fp32 ONNX logits must equal PyTorch's within ``tolerance`` on ``check_pairs``; the int8 copy's
    largest logit difference from fp32 on the same pairs is recorded. int8 changes scores: measure the ranking on
    your own data with ``hn eval --backend onnx-int8`` before you ship it.

    Args:
        model: a cross-encoder folder (or registry folder).
        int8: also write the int8 copy.
        opset: ONNX opset.
        check_pairs: (query, document) pairs of the numerical check (default: a few built-in pairs).
        tolerance: largest allowed fp32 logit difference.
        attention: ``eager`` (default: the plain attention, which onnxruntime runs faster) or ``model`` (the
            attention the model loads with, e.g. transformers' scaled-dot-product one).

    Returns:
        The ``export.json`` content (``files``, ``check``, ``max_length``, ...), with ``folder``.

    Raises:
        RerankerLoadError: not a local cross-encoder folder (a bi-encoder gets told what to do instead).
        ImportError: onnx / onnxruntime missing.
        RuntimeError: the fp32 copy does not match PyTorch (nothing is replaced).
        ValueError: an unknown ``attention``.

    Example:
        >>> info = export_onnx("models/reranker")  # doctest: +SKIP
        >>> info["files"]  # doctest: +SKIP
        {'fp32': 'onnx/model.onnx', 'int8': 'onnx/model_qint8.onnx'}
    """
    try:
        import onnx  # noqa: F401
    except ImportError as exc:  # pragma: no cover - the extra is installed in CI
        raise _onnx_error("export_onnx") from exc

    if attention not in ATTENTIONS:
        raise ValueError(f"attention must be one of {ATTENTIONS}, got {attention!r}.")
    folder = _model_folder(model)
    start = time.perf_counter()
    source = _ExportSource.load(folder, attention, list(check_pairs or _CHECK_PAIRS))
    work = Path(tempfile.mkdtemp(prefix=".onnx-", dir=folder))
    try:
        files, check_info = _write_and_check(source, work, opset=opset, tolerance=tolerance, int8=int8)
        info = {
            "source_sha256": _weights_digest(folder),
            "input_names": source.input_names,
            "max_length": source.max_length,
            "activation": source.activation,
            "num_labels": source.num_labels,
            "opset": opset,
            "attention": source.attention,
            "quantization": {"weight_type": "int8", "per_channel": True, "reduce_range": True}
            if int8
            else None,
            "files": files,
            "check": check_info,
            "created": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        (work / EXPORT_MARKER).write_text(json.dumps(info, indent=2), encoding="utf-8")
        target = folder / ONNX_DIR
        if target.exists():
            shutil.rmtree(target)
        work.rename(target)
    finally:
        if work.exists():
            shutil.rmtree(work, ignore_errors=True)
    info["folder"] = str(folder)
    info["seconds"] = round(time.perf_counter() - start, 2)
    logger.info(
        "exported %s to ONNX (%s) in %.1fs: %s", folder, ", ".join(files), info["seconds"], check_info
    )
    return info


@dataclass
class _ExportSource:
    """A cross-encoder ready to export: the logits module, its inputs, and the check pairs' PyTorch logits."""

    folder: Path
    wrapper: Any
    input_names: list[str]
    sample: Any
    check: Any
    reference: np.ndarray
    max_length: int
    activation: str
    num_labels: int
    attention: str
    pairs: int

    @classmethod
    def load(cls, folder: Path, attention: str, pairs: list[tuple[str, str]]) -> _ExportSource:
        import torch
        from sentence_transformers import CrossEncoder

        cross = CrossEncoder(str(folder), device="cpu")
        cross.eval()
        activation = _ACTIVATIONS.get(
            type(cross.activation_fn).__name__ if cross.activation_fn is not None else "Identity"
        )
        if activation is None:
            raise RerankerLoadError(
                f"{folder} uses the activation {type(cross.activation_fn).__name__}, which the ONNX backend does "
                "not reproduce; keep backend='torch' for this model."
            )
        hf_model = transformer_of(cross)
        attention_used = _set_attention(hf_model, attention)
        tokenizer = cross.tokenizer
        sample = tokenizer(["query"], ["document"], return_tensors="pt")
        input_names = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in sample]

        class _Logits(torch.nn.Module):
            def __init__(self, inner: torch.nn.Module) -> None:
                super().__init__()
                self.inner = inner

            def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
                return self.inner(**dict(zip(input_names, inputs, strict=True)), return_dict=True).logits

        max_length = int(cross.max_length or getattr(tokenizer, "model_max_length", 512))
        max_length = min(max_length, int(getattr(hf_model.config, "max_position_embeddings", max_length)))
        check = tokenizer(
            [q for q, _ in pairs],
            [d for _, d in pairs],
            truncation=True,
            max_length=max_length,
            padding=True,
            return_tensors="pt",
        )
        wrapper = _Logits(hf_model).eval()
        with torch.inference_mode():
            reference = wrapper(*(check[n] for n in input_names)).float().numpy()
        return cls(
            folder=folder,
            wrapper=wrapper,
            input_names=input_names,
            sample=sample,
            check=check,
            reference=reference,
            max_length=max_length,
            activation=activation,
            num_labels=int(getattr(cross, "num_labels", 1)),
            attention=attention_used,
            pairs=len(pairs),
        )


def _write_and_check(
    source: _ExportSource, work: Path, *, opset: int, tolerance: float, int8: bool
) -> tuple[dict[str, str], dict[str, Any]]:
    """Export ``source`` to ``work`` (fp32, checked against PyTorch, then int8 when asked); ``(files, check)``.

    Raises:
        RuntimeError: the fp32 copy differs from PyTorch by more than ``tolerance``.
    """
    import torch

    input_names = source.input_names
    fp32_path = work / _FILES["fp32"]
    dynamic = {n: {0: "batch", 1: "sequence"} for n in input_names}
    # the tracer's notes about constant Python values are silenced; the check below is the judge
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            source.wrapper,
            tuple(source.sample[n] for n in input_names),
            str(fp32_path),
            input_names=input_names,
            output_names=["logits"],
            dynamic_axes={**dynamic, "logits": {0: "batch"}},
            opset_version=opset,
            dynamo=False,
        )
    feed = {n: source.check[n].numpy().astype(np.int64) for n in input_names}
    fp32_logits = _ort_session(fp32_path, None).run(None, feed)[0]
    fp32_diff = float(np.abs(fp32_logits - source.reference).max())
    if not fp32_diff <= tolerance:
        raise RuntimeError(
            f"The ONNX export of {source.folder} differs from PyTorch by {fp32_diff:.2g} (> {tolerance:g}) on the "
            "check pairs; the earlier export (if any) was kept. Keep backend='torch' for this model."
        )
    files = {"fp32": f"{ONNX_DIR}/{_FILES['fp32']}"}
    check_info: dict[str, Any] = {"pairs": source.pairs, "fp32_max_abs_diff": fp32_diff}
    if int8:
        int8_path = work / _FILES["int8"]
        quantize_int8(fp32_path, int8_path)
        int8_logits = _ort_session(int8_path, None).run(None, feed)[0]
        check_info["int8_max_abs_diff"] = float(np.abs(int8_logits - fp32_logits).max())
        files["int8"] = f"{ONNX_DIR}/{_FILES['int8']}"
    return files, check_info


class OnnxCrossEncoderReranker(FusionMixin):
    """A cross-encoder folder exported with :func:`export_onnx`, scored with onnxruntime.

    Scores are the model's logits passed through the same activation sentence-transformers applies (sigmoid for a
    one-logit model), so they are interchangeable with :class:`~hn_plugins.rerankers.cross_encoder.CrossEncoderReranker`'s and the
    folder's fusion weight applies unchanged. Pairs are scored in batches sorted by length (less padding).

    Args:
        model: the cross-encoder folder (or registry folder) that holds ``onnx/export.json``.
        precision: ``int8`` (the quantised copy) or ``fp32``.
        batch_size: pairs per onnxruntime call.
        max_length: truncate pairs to this many tokens (default: the model's, as exported).
        threads: onnxruntime intra-op threads (default: onnxruntime's choice, one per core).

    Raises:
        RerankerLoadError: no export, a stale export (the weights changed since), or the asked precision missing;
            each message gives the ``hn export-onnx`` command that fixes it.

    Example:
        >>> reranker = OnnxCrossEncoderReranker("models/reranker", precision="int8")  # doctest: +SKIP
        >>> reranker.score("what is a VCN", ["A virtual cloud network.", "A NIC."])  # doctest: +SKIP
        array([0.91, 0.03], dtype=float32)
    """

    kind: Literal["cross"] = "cross"

    def __init__(
        self,
        model: str | os.PathLike[str],
        precision: Literal["int8", "fp32"] = "int8",
        batch_size: int = 32,
        max_length: int | None = None,
        threads: int | None = None,
    ) -> None:
        from transformers import AutoTokenizer

        folder = _model_folder(model)
        marker = folder / ONNX_DIR / EXPORT_MARKER
        fix = f"run `hn export-onnx {folder}`"
        if not marker.is_file():
            raise RerankerLoadError(f"{folder} has no ONNX export ({marker} is missing); {fix} first.")
        info = read_json(marker)
        if precision not in info.get("files", {}):
            raise RerankerLoadError(
                f"{folder}'s ONNX export has no {precision} copy; {fix} (int8 is on by default)."
            )
        if info.get("source_sha256") != _weights_digest(folder):
            raise RerankerLoadError(
                f"{folder}'s ONNX export was made from other weights (the model was retrained since); {fix} again."
            )
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
        self.name = str(model)
        self.folder = folder
        self.precision = precision
        self.batch_size = batch_size
        self.max_length = int(max_length or info["max_length"])
        self.activation = info["activation"]
        self.input_names = list(info["input_names"])
        self.tokenizer = AutoTokenizer.from_pretrained(str(folder))
        self.session = _ort_session(resolve_export_file(folder, info, precision), threads)
        self.documents_scored = 0
        self.seconds = 0.0

    def _logits(self, query: str, documents: Sequence[str]) -> np.ndarray:
        # tokenise once; each length-sorted batch is only padded
        encoded = self.tokenizer(
            [query] * len(documents), list(documents), truncation=True, max_length=self.max_length
        )
        order = np.argsort([-len(ids) for ids in encoded["input_ids"]], kind="stable")
        out = np.zeros(len(documents), dtype=np.float32)
        for begin in range(0, len(order), self.batch_size):
            rows = order[begin : begin + self.batch_size]
            batch = self.tokenizer.pad(
                {n: [encoded[n][i] for i in rows] for n in self.input_names}, return_tensors="np"
            )
            feed = {n: batch[n].astype(np.int64) for n in self.input_names}
            out[rows] = self.session.run(None, feed)[0][:, 0]
        return out

    def score(self, query: str, documents: Sequence[str]) -> np.ndarray:
        if not documents:
            return np.zeros(0, dtype=np.float32)
        start = time.perf_counter()
        logits = self._logits(query, documents)
        scores = 1.0 / (1.0 + np.exp(-logits)) if self.activation == "sigmoid" else logits
        self.seconds += time.perf_counter() - start
        self.documents_scored += len(documents)
        return scores.astype(np.float32)
