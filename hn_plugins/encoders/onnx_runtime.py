"""Run a bi-encoder exported by :func:`~hn_plugins.encoders.onnx_export.export_bi_encoder` with onnxruntime.

Only ``onnxruntime``, ``tokenizers`` and numpy are imported: no torch, no sentence-transformers. Texts are tokenised
once, sorted by length and cut into batches, so each batch is padded only to its own longest text.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Literal

import numpy as np

__all__ = ["EXPORT_FILE", "CorruptExportError", "OnnxBiEncoder", "cpu_threads", "file_sha256"]

#: The file that describes an export folder.
EXPORT_FILE = "export.json"
Precision = Literal["fp32", "int8"]


class CorruptExportError(RuntimeError):
    """An export folder whose files are missing, changed since the export, or unreadable."""


def file_sha256(path: Path) -> str:
    """SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def cpu_threads() -> int:
    """Cores this process may run on (its CPU affinity where the platform tells it, else ``os.cpu_count()``)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def read_export(folder: Path, precision: Precision) -> dict[str, Any]:
    """The export's description, after checking that ``precision``'s file and the tokenizer are intact.

    Raises:
        CorruptExportError: ``export.json`` unreadable, the file missing, or its SHA-256 not the recorded one.
    """
    try:
        info = json.loads((folder / EXPORT_FILE).read_text(encoding="utf-8"))
        files = info["files"]
        digests = info["sha256"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CorruptExportError(f"{folder / EXPORT_FILE} is missing or unreadable ({exc}).") from exc
    if precision not in files:
        raise CorruptExportError(f"{folder} has no {precision} model (its int8 check failed or was skipped).")
    for key in (precision, "tokenizer"):
        path = folder / str(files.get(key, ""))
        if not path.is_file() or path.parent.resolve() != folder.resolve():
            raise CorruptExportError(f"{folder}: the {key} file {files.get(key)!r} is missing.")
        if file_sha256(path) != digests.get(key):
            raise CorruptExportError(f"{path} changed since the export (SHA-256 differs).")
    return dict(info)


class OnnxBiEncoder:
    """A sentence-transformers bi-encoder exported to ONNX, run with onnxruntime on the CPU.

    Args:
        folder: an export folder (``export.json``, ``model.onnx``, ``model_qint8.onnx``, ``tokenizer.json``).
        precision: ``fp32`` (equal to PyTorch within 1e-4 per normalised vector) or ``int8``.
        batch_size: texts per onnxruntime call (the caller's ``batch_size`` is ignored: small batches of
            length-sorted texts waste least padding).
        threads: onnxruntime threads (default: the cores this process may use).

    Raises:
        CorruptExportError: the folder's files do not match ``export.json``.

    Example:
        >>> encoder = OnnxBiEncoder(export_folder, precision="fp32")  # doctest: +SKIP
        >>> encoder.encode(["boundary layer transition"]).shape  # doctest: +SKIP
        (1, 384)
    """

    def __init__(
        self,
        folder: str | os.PathLike[str],
        precision: Precision = "fp32",
        batch_size: int = 16,
        threads: int | None = None,
    ) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        if batch_size < 1:
            raise ValueError(f"OnnxBiEncoder: batch_size must be >= 1, got {batch_size}.")
        self.folder = Path(folder)
        self.info = read_export(self.folder, precision)
        self.precision = precision
        self.batch_size = batch_size
        self.pooling = str(self.info["pooling"])
        self.max_length = int(self.info["max_length"])
        self.name = str(self.info.get("name") or self.folder.name)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or cpu_threads()
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            self.session = ort.InferenceSession(
                str(self.folder / self.info["files"][precision]), options, providers=["CPUExecutionProvider"]
            )
            self.tokenizer = Tokenizer.from_file(str(self.folder / self.info["files"]["tokenizer"]))
        except Exception as exc:  # onnxruntime and tokenizers raise their own types on a damaged file
            raise CorruptExportError(
                f"{self.folder}: onnxruntime cannot load the {precision} model ({exc})."
            ) from exc
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(self.max_length)
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.fingerprint = (
            f"onnx-{precision}-{self.info['source_sha256'][:32]}-{self.pooling}-{self.max_length}"
        )

    def encode(self, sentences: list[str], **_: Any) -> np.ndarray:
        """Raw (not normalised) pooled vectors of ``sentences``, in their order."""
        encodings = self.tokenizer.encode_batch(list(sentences))
        lengths = np.fromiter((len(e.ids) for e in encodings), dtype=np.int64, count=len(encodings))
        order = np.argsort(-lengths, kind="stable")
        out: np.ndarray | None = None
        for start in range(0, len(order), self.batch_size):
            rows = order[start : start + self.batch_size]
            width = int(lengths[rows].max())
            ids = np.zeros((len(rows), width), dtype=np.int64)
            mask = np.zeros((len(rows), width), dtype=np.int64)
            for j, r in enumerate(rows):
                n = int(lengths[r])
                ids[j, :n] = encodings[r].ids
                mask[j, :n] = 1
            feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
            hidden = self.session.run(None, {k: feeds[k] for k in self.input_names})[0]
            pooled = self._pool(hidden, mask)
            if out is None:
                out = np.zeros((len(sentences), pooled.shape[1]), dtype=np.float32)
            out[rows] = pooled
        if out is None:
            return np.zeros((0, int(self.info["dimension"])), dtype=np.float32)
        return out

    def _pool(self, hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
        if self.pooling == "cls":
            return hidden[:, 0].astype(np.float32)
        if self.pooling == "max":
            masked = np.where(mask[..., None].astype(bool), hidden, -np.inf)
            return masked.max(axis=1).astype(np.float32)
        weights = mask[..., None].astype(np.float32)
        return ((hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)).astype(np.float32)

    def __repr__(self) -> str:
        return f"OnnxBiEncoder({self.name!r}, precision={self.precision!r})"
