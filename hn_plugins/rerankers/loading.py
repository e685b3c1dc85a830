"""Load any reranker the same way: a folder written by our trainer (cross- or bi-encoder), a model registry folder,
a sentence-transformers cross-encoder folder, a cross-encoder hub name, or ``zero-shot:<bi-encoder>``.

Every reranker exposes ``score(query, documents) -> np.ndarray`` (higher = more relevant), which is all the
LlamaIndex postprocessor, the Haystack ranker and the evaluation harness need.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from hn_plugins.models import hub_offline_setting
from hn_plugins.rerankers.base import RERANKER_MARKER, RerankerLoadError
from hn_plugins.rerankers.bi_encoder import BiEncoderReranker
from hn_plugins.rerankers.cross_encoder import CrossEncoderReranker
from hn_plugins.rerankers.folders import (
    REGISTRY_MARKER,
    detect_reranker_kind,
    folder_fusion,
    marker_fusion,
    read_json,
    registry_current,
)
from hn_plugins.rerankers.onnx_cross_encoder import ONNX_BACKENDS, OnnxCrossEncoderReranker

__all__ = ["RERANKER_BACKENDS", "ZERO_SHOT_PREFIX", "load_reranker", "zero_shot_model_name"]

#: ``backend`` values of :func:`load_reranker`: sentence-transformers, or onnxruntime on an ``hn export-onnx`` copy.
RERANKER_BACKENDS: tuple[str, ...] = ("torch", "onnx", "onnx-int8")
#: ``load_reranker("zero-shot:<bi-encoder>")``: an untuned sentence-transformers model as a cosine reranker.
ZERO_SHOT_PREFIX = "zero-shot:"


def zero_shot_model_name(spec: str) -> str:
    """The sentence-transformers model named by a ``zero-shot:<name or folder>`` spec.

    Raises:
        RerankerLoadError: the name is empty.
    """
    name = spec[len(ZERO_SHOT_PREFIX) :].strip()
    if not name:
        raise RerankerLoadError(
            f"{spec!r}: zero-shot: takes a sentence-transformers model name or folder (e.g. "
            "'zero-shot:all-MiniLM-L6-v2')."
        )
    return name


def load_reranker(
    model: str | os.PathLike[str],
    device: str | None = None,
    batch_size: int = 32,
    trust_remote_code: bool = False,
    backend: Literal["torch", "onnx", "onnx-int8"] = "torch",
) -> CrossEncoderReranker | BiEncoderReranker | Any:
    """Load a reranker from a trainer folder, a registry folder, a cross-encoder folder or a hub name.

    A folder written by ``hn train`` also carries the fusion weight chosen on validation (its ``fusion`` entry): the
    returned reranker's :meth:`~CrossEncoderReranker.rerank_scores` applies it when given first-stage scores.

    Args:
        model: local folder or cross-encoder hub name (e.g. ``cross-encoder/ms-marco-MiniLM-L6-v2``), or
            ``zero-shot:<bi-encoder>`` (e.g. ``zero-shot:all-MiniLM-L6-v2``): an untuned sentence-transformers model
            (name or folder) scoring by cosine, with no fusion weight (e.g. the fast stage of a
            :class:`~hn_plugins.cascade.CascadeReranker`).
        device: torch device (``torch`` backend).
        batch_size: scoring batch size.
        trust_remote_code: off unless you turn it on.
        backend: ``torch`` (sentence-transformers), or, for a local cross-encoder folder exported with
            ``hn export-onnx``, ``onnx`` (fp32) or ``onnx-int8`` (int8 weights): an
            :class:`~hn_plugins.rerankers.onnx_cross_encoder.OnnxCrossEncoderReranker`. A bi-encoder (a
            ``hn train --kind bi`` folder or ``zero-shot:``) runs ``onnx``/``onnx-int8`` through its own ONNX
            export in the hn-plugins cache (:func:`hn_plugins.encoders.load_encoder`), made on first use.

    Raises:
        RerankerLoadError: nothing usable at ``model``, an unknown ``backend``, or an ONNX backend for something that
            is not an exported local cross-encoder folder (the message names the command that fixes it).

    Example:
        >>> reranker = load_reranker("models/reranker")  # doctest: +SKIP
        >>> reranker.score("what is a VCN", ["A virtual cloud network.", "A NIC."])  # doctest: +SKIP
    """
    text = str(model)
    if text.startswith(ZERO_SHOT_PREFIX):
        name = zero_shot_model_name(text)
        if backend not in RERANKER_BACKENDS:
            raise RerankerLoadError(f"backend must be one of {RERANKER_BACKENDS}, got {backend!r}.")
        return BiEncoderReranker(
            name, device=device, batch_size=batch_size, trust_remote_code=trust_remote_code, engine=backend
        )
    path = Path(text)
    if backend != "torch":
        if backend not in ONNX_BACKENDS:
            raise RerankerLoadError(f"backend must be one of {RERANKER_BACKENDS}, got {backend!r}.")
        if not path.is_dir():
            raise RerankerLoadError(
                f"backend={backend!r} needs a local cross-encoder folder exported with `hn export-onnx`; "
                f"{model!s} is not a folder."
            )
        folder = registry_current(path) if (path / REGISTRY_MARKER).is_file() else path
        if detect_reranker_kind(folder) == "bi":  # a bi-encoder runs through the mining encoders' ONNX export
            return _bi_encoder_reranker(folder, device, batch_size, trust_remote_code, backend)
        onnx_reranker = OnnxCrossEncoderReranker(
            path, precision=ONNX_BACKENDS[backend], batch_size=batch_size
        )
        onnx_reranker.fusion = folder_fusion(onnx_reranker.folder)
        return onnx_reranker
    if path.exists():
        if not path.is_dir():
            raise RerankerLoadError(f"{path} is a file; pass the model folder.")
        if (path / REGISTRY_MARKER).is_file():
            path = registry_current(path)
        kind = detect_reranker_kind(path)
        meta = read_json(path / RERANKER_MARKER) if (path / RERANKER_MARKER).is_file() else {}
        reranker: CrossEncoderReranker | BiEncoderReranker
        if kind == "bi":
            return _bi_encoder_reranker(path, device, batch_size, trust_remote_code, backend)
        else:
            reranker = CrossEncoderReranker(
                path, device=device, batch_size=batch_size, trust_remote_code=trust_remote_code
            )
        reranker.fusion = marker_fusion(meta, path)
        return reranker
    if text.startswith((".", "/", "~")) or (os.sep in text.strip("/") and text.count("/") > 1):
        raise RerankerLoadError(f"Model folder {text} does not exist.")
    offline = hub_offline_setting()
    if offline:
        raise RerankerLoadError(
            f"{text!r} is not a local folder and {offline} forbids the hub: pass a folder written by `hn train`."
        )
    return CrossEncoderReranker(
        text, device=device, batch_size=batch_size, trust_remote_code=trust_remote_code
    )


def _bi_encoder_reranker(
    folder: Path, device: str | None, batch_size: int, trust_remote_code: bool, engine: str
) -> BiEncoderReranker:
    """A bi-encoder folder (``hn train --kind bi``) as a reranker, with its prompts and fusion weight."""
    meta = read_json(folder / RERANKER_MARKER) if (folder / RERANKER_MARKER).is_file() else {}
    reranker = BiEncoderReranker(
        folder,
        device=device,
        batch_size=batch_size,
        query_prompt=meta.get("query_prompt"),
        document_prompt=meta.get("document_prompt"),
        trust_remote_code=trust_remote_code,
        engine=engine,
    )
    reranker.fusion = marker_fusion(meta, folder)
    return reranker
