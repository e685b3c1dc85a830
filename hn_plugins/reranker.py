"""Load any reranker the same way: a folder written by our trainer (cross- or bi-encoder), a model registry folder,
a sentence-transformers cross-encoder folder, or a cross-encoder hub name.

Every reranker exposes ``score(query, documents) -> np.ndarray`` (higher = more relevant), which is all the
LlamaIndex postprocessor, the Haystack ranker and the evaluation harness need.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np

from hn_plugins.models import load_sentence_transformer, resolve_model_path

logger = logging.getLogger(__name__)

__all__ = [
    "RERANKER_MARKER",
    "BiEncoderReranker",
    "CrossEncoderReranker",
    "Reranker",
    "RerankerLoadError",
    "detect_reranker_kind",
    "load_reranker",
]

#: File our trainer writes into a model folder: ``{"kind": "cross"|"bi", ...training metadata...}``.
RERANKER_MARKER = "hn_reranker.json"
#: File a model registry folder holds (see :mod:`hn_plugins.registry`).
REGISTRY_MARKER = "registry.json"


class RerankerLoadError(ValueError):
    """Raised when a model path does not hold a usable reranker."""


@runtime_checkable
class Reranker(Protocol):
    """Scores documents for a query; higher is more relevant."""

    def score(self, query: str, documents: Sequence[str]) -> np.ndarray: ...


class CrossEncoderReranker:
    """A sentence-transformers ``CrossEncoder`` scoring (query, document) pairs.

    Example:
        >>> rr = CrossEncoderReranker("cross-encoder/ms-marco-MiniLM-L6-v2")  # doctest: +SKIP
        >>> rr.score("what is a VCN", ["A virtual cloud network.", "A NIC."])  # doctest: +SKIP
        array([ 7.1, -3.2], dtype=float32)
    """

    kind: Literal["cross"] = "cross"

    def __init__(
        self,
        model: str | os.PathLike[str] | Any,
        device: str | None = None,
        batch_size: int = 32,
        max_length: int | None = None,
        trust_remote_code: bool = False,
    ) -> None:
        from sentence_transformers import CrossEncoder

        if isinstance(model, CrossEncoder):
            self.model = model
            self.name = str(getattr(model, "name_or_path", "cross-encoder"))
        else:
            self.name = str(model)
            self.model = CrossEncoder(
                resolve_model_path(str(model)),
                device=device,
                max_length=max_length,
                trust_remote_code=trust_remote_code,
            )
        self.batch_size = batch_size
        self.documents_scored = 0
        self.seconds = 0.0

    def score(self, query: str, documents: Sequence[str]) -> np.ndarray:
        if not documents:
            return np.zeros(0, dtype=np.float32)
        start = time.perf_counter()
        scores = self.model.predict(
            [(query, d) for d in documents],
            batch_size=self.batch_size,
            show_progress_bar=False,
            convert_to_numpy=True,
        )
        self.seconds += time.perf_counter() - start
        self.documents_scored += len(documents)
        return np.asarray(scores, dtype=np.float32).reshape(len(documents))


class BiEncoderReranker:
    """A sentence-transformers bi-encoder used as a reranker: score = cosine(query, document).

    Example:
        >>> rr = BiEncoderReranker("all-MiniLM-L6-v2")  # doctest: +SKIP
        >>> rr.score("what is a VCN", ["A virtual cloud network."]).shape  # doctest: +SKIP
        (1,)
    """

    kind: Literal["bi"] = "bi"

    def __init__(
        self,
        model: str | os.PathLike[str] | Any,
        device: str | None = None,
        batch_size: int = 32,
        query_prompt: str | None = None,
        document_prompt: str | None = None,
        trust_remote_code: bool = False,
    ) -> None:
        if hasattr(model, "encode") and not isinstance(model, (str, os.PathLike)):
            self.model = model
            self.name = type(model).__name__
        else:
            self.name = str(model)
            self.model = load_sentence_transformer(model, device=device, trust_remote_code=trust_remote_code)
        self.batch_size = batch_size
        self.query_prompt = query_prompt
        self.document_prompt = document_prompt
        self.documents_scored = 0
        self.seconds = 0.0

    def score(self, query: str, documents: Sequence[str]) -> np.ndarray:
        if not documents:
            return np.zeros(0, dtype=np.float32)
        start = time.perf_counter()
        kw: dict[str, Any] = {
            "batch_size": self.batch_size,
            "convert_to_numpy": True,
            "normalize_embeddings": True,
            "show_progress_bar": False,
        }
        q = self.model.encode([query], **kw, **({"prompt": self.query_prompt} if self.query_prompt else {}))
        d = self.model.encode(
            list(documents), **kw, **({"prompt": self.document_prompt} if self.document_prompt else {})
        )
        self.seconds += time.perf_counter() - start
        self.documents_scored += len(documents)
        return (np.asarray(d, dtype=np.float32) @ np.asarray(q, dtype=np.float32)[0]).astype(np.float32)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RerankerLoadError(f"Cannot read {path}: {exc}.") from exc


def _registry_current(folder: Path) -> Path:
    meta = _read_json(folder / REGISTRY_MARKER)
    current = meta.get("current")
    if not current:
        raise RerankerLoadError(f"Model registry {folder} has no current version; promote one first.")
    return folder / "versions" / str(current)


def detect_reranker_kind(path: str | os.PathLike[str]) -> Literal["cross", "bi"]:
    """Tell whether a local folder holds a cross-encoder or a bi-encoder reranker.

    Raises:
        RerankerLoadError: the folder holds neither (the message says what it found).
    """
    folder = Path(path)
    if (folder / REGISTRY_MARKER).is_file():
        folder = _registry_current(folder)
    if (folder / RERANKER_MARKER).is_file():
        kind = _read_json(folder / RERANKER_MARKER).get("kind")
        if kind in {"cross", "bi"}:
            return kind
        raise RerankerLoadError(f"{folder / RERANKER_MARKER} names kind {kind!r}; expected 'cross' or 'bi'.")
    config_path = folder / "config.json"
    if config_path.is_file():
        config = _read_json(config_path)
        architectures = config.get("architectures") or []
        if any("SequenceClassification" in a for a in architectures):
            return "cross"
    if (folder / "modules.json").is_file():
        raise RerankerLoadError(
            f"{folder} holds a sentence-transformers bi-encoder, not a cross-encoder. To rerank with it, fine-tune it "
            "with `hn train --kind bi` (its folder then says kind 'bi'), or load it with BiEncoderReranker."
        )
    raise RerankerLoadError(
        f"{folder} is not a cross-encoder model folder (no sequence-classification config.json, no "
        f"{RERANKER_MARKER}). Pass a folder written by `hn train`, a registry folder, or a cross-encoder name."
    )


def load_reranker(
    model: str | os.PathLike[str],
    device: str | None = None,
    batch_size: int = 32,
    trust_remote_code: bool = False,
) -> CrossEncoderReranker | BiEncoderReranker:
    """Load a reranker from a trainer folder, a registry folder, a cross-encoder folder or a hub name.

    Args:
        model: local folder or cross-encoder hub name (e.g. ``cross-encoder/ms-marco-MiniLM-L6-v2``).
        device: torch device.
        batch_size: scoring batch size.
        trust_remote_code: off unless you turn it on.

    Example:
        >>> reranker = load_reranker("models/reranker")  # doctest: +SKIP
        >>> reranker.score("what is a VCN", ["A virtual cloud network.", "A NIC."])  # doctest: +SKIP
    """
    path = Path(str(model))
    if path.exists():
        if not path.is_dir():
            raise RerankerLoadError(f"{path} is a file; pass the model folder.")
        if (path / REGISTRY_MARKER).is_file():
            path = _registry_current(path)
        kind = detect_reranker_kind(path)
        meta = _read_json(path / RERANKER_MARKER) if (path / RERANKER_MARKER).is_file() else {}
        if kind == "bi":
            return BiEncoderReranker(
                path,
                device=device,
                batch_size=batch_size,
                query_prompt=meta.get("query_prompt"),
                document_prompt=meta.get("document_prompt"),
                trust_remote_code=trust_remote_code,
            )
        return CrossEncoderReranker(
            path, device=device, batch_size=batch_size, trust_remote_code=trust_remote_code
        )
    text = str(model)
    if text.startswith((".", "/", "~")) or (os.sep in text.strip("/") and text.count("/") > 1):
        raise RerankerLoadError(f"Model folder {text} does not exist.")
    if os.environ.get("HF_HUB_OFFLINE") == "1":
        raise RerankerLoadError(
            f"{text!r} is not a local folder and HF_HUB_OFFLINE=1 forbids the hub: pass a folder written by `hn train`."
        )
    return CrossEncoderReranker(
        text, device=device, batch_size=batch_size, trust_remote_code=trust_remote_code
    )
