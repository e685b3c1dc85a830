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
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np

from hn_plugins.fusion import ScoreFusion
from hn_plugins.models import hub_offline_setting, load_sentence_transformer, resolve_model_path
from hn_plugins.registry import (
    REGISTRY_MARKER,
    RegistryError,
    registry_moved,
    registry_version,
    resolve_current_version,
)

logger = logging.getLogger(__name__)

__all__ = [
    "RERANKER_BACKENDS",
    "RERANKER_MARKER",
    "ZERO_SHOT_PREFIX",
    "BiEncoderReranker",
    "CrossEncoderReranker",
    "Reranker",
    "RerankerLoadError",
    "detect_reranker_kind",
    "folder_fusion",
    "fuse_with_first_stage",
    "load_reranker",
    "registry_moved",
    "registry_version",
    "zero_shot_model_name",
]

#: File our trainer writes into a model folder: ``{"kind": "cross"|"bi", ...training metadata...}``.
RERANKER_MARKER = "hn_reranker.json"
#: ``backend`` values of :func:`load_reranker`: sentence-transformers, or onnxruntime on an ``hn export-onnx`` copy.
RERANKER_BACKENDS: tuple[str, ...] = ("torch", "onnx", "onnx-int8")
#: ``load_reranker("zero-shot:<bi-encoder>")``: an untuned sentence-transformers model as a cosine reranker.
ZERO_SHOT_PREFIX = "zero-shot:"


class RerankerLoadError(ValueError):
    """Raised when a model path does not hold a usable reranker."""


@runtime_checkable
class Reranker(Protocol):
    """Scores documents for a query; higher is more relevant."""

    def score(self, query: str, documents: Sequence[str]) -> np.ndarray: ...


class _FusionMixin:
    """``rerank_scores``: the model's scores, fused with first-stage scores when a :class:`ScoreFusion` is set."""

    fusion: ScoreFusion | None = None

    def score(self, query: str, documents: Sequence[str]) -> np.ndarray:  # pragma: no cover - overridden
        raise NotImplementedError

    def rerank_scores(
        self,
        query: str,
        documents: Sequence[str],
        first_stage_scores: Sequence[float | None] | None = None,
    ) -> np.ndarray:
        """Scores to sort ``documents`` by: the model's, fused with ``first_stage_scores`` when both that list
        (every entry a number) and :attr:`fusion` are set; otherwise the model's alone.

        Example:
            >>> class Const(_FusionMixin):
            ...     def score(self, query, documents):
            ...         return np.array([1.0, 0.0])
            >>> r = Const()
            >>> r.rerank_scores("q", ["a", "b"], [0.0, 9.0]).tolist()
            [1.0, 0.0]
            >>> r.fusion = ScoreFusion(weight=0.2, normalization="minmax")
            >>> [round(float(x), 2) for x in r.rerank_scores("q", ["a", "b"], [0.0, 9.0])]
            [0.2, 0.8]
        """
        return fuse_with_first_stage(self.score(query, documents), self.fusion, first_stage_scores)


def fuse_with_first_stage(
    scores: np.ndarray, fusion: ScoreFusion | None, first_stage_scores: Sequence[float | None] | None
) -> np.ndarray:
    """``scores`` fused with ``first_stage_scores`` by ``fusion``; ``scores`` unchanged when there is no fusion, no
    first-stage list, fewer than two documents, or a first-stage list of another length or with a missing score.

    Example:
        >>> fuse_with_first_stage(np.array([1.0, 0.0]), None, [0.0, 9.0]).tolist()
        [1.0, 0.0]
        >>> fused = fuse_with_first_stage(np.array([1.0, 0.0]), ScoreFusion(0.2, "minmax"), [0.0, 9.0])
        >>> [round(float(x), 2) for x in fused]
        [0.2, 0.8]
    """
    if fusion is None or first_stage_scores is None or len(scores) < 2:
        return scores
    if len(first_stage_scores) != len(scores) or any(s is None for s in first_stage_scores):
        return scores
    return fusion(scores, [float(s) for s in first_stage_scores]).astype(np.float32)  # type: ignore[arg-type]


class CrossEncoderReranker(_FusionMixin):
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


class BiEncoderReranker(_FusionMixin):
    """A sentence-transformers bi-encoder used as a reranker: score = cosine(query, document).

    Document vectors are kept in a least-recently-used cache keyed by the exact text (``cache_size`` vectors;
    0 turns it off), so a document that was already reranked once (or added with :meth:`precompute`) costs a
    lookup instead of a forward pass: in a RAG pipeline over a fixed corpus, reranking the top-100 then costs one
    query encoding.

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
        cache_size: int = 50_000,
    ) -> None:
        if cache_size < 0:
            raise ValueError(f"BiEncoderReranker: cache_size must be >= 0, got {cache_size}.")
        self.cache_size = cache_size
        self._doc_cache: OrderedDict[str, np.ndarray] = OrderedDict()
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

    def _encode(self, texts: Sequence[str], prompt: str | None) -> np.ndarray:
        kw: dict[str, Any] = {
            "batch_size": self.batch_size,
            "convert_to_numpy": True,
            "normalize_embeddings": True,
            "show_progress_bar": False,
        }
        return np.asarray(
            self.model.encode(list(texts), **kw, **({"prompt": prompt} if prompt else {})), dtype=np.float32
        )

    def precompute(self, documents: Sequence[str]) -> int:
        """Encode documents ahead of queries (e.g. the whole corpus at start-up); returns how many were encoded."""
        todo = [d for d in dict.fromkeys(documents) if d not in self._doc_cache]
        if todo and self.cache_size:
            for text, vector in zip(todo, self._encode(todo, self.document_prompt), strict=True):
                self._remember(text, vector)
        return len(todo) if self.cache_size else 0

    def _remember(self, text: str, vector: np.ndarray) -> None:
        if not self.cache_size:
            return
        self._doc_cache[text] = vector
        self._doc_cache.move_to_end(text)
        while len(self._doc_cache) > self.cache_size:
            self._doc_cache.popitem(last=False)

    def score(self, query: str, documents: Sequence[str]) -> np.ndarray:
        if not documents:
            return np.zeros(0, dtype=np.float32)
        start = time.perf_counter()
        q = self._encode([query], self.query_prompt)[0]
        todo = [d for d in dict.fromkeys(documents) if d not in self._doc_cache]
        fresh = dict(zip(todo, self._encode(todo, self.document_prompt), strict=True)) if todo else {}
        vectors = []
        for d in documents:
            vector = fresh.get(d)
            if vector is None:
                vector = self._doc_cache[d]
                self._doc_cache.move_to_end(d)
            vectors.append(vector)
        for text, vector in fresh.items():
            self._remember(text, vector)
        self.seconds += time.perf_counter() - start
        self.documents_scored += len(documents)
        return (np.stack(vectors) @ q).astype(np.float32)


def _transformer_of(cross_encoder: Any) -> Any:
    """The transformers model inside a sentence-transformers ``CrossEncoder`` (``.model`` in sentence-transformers
    5+, the first module's ``auto_model`` in the module-based layout)."""
    import torch

    inner = getattr(cross_encoder, "model", None)
    return inner if isinstance(inner, torch.nn.Module) else cross_encoder[0].auto_model


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RerankerLoadError(f"Cannot read {path}: {exc}.") from exc


def _registry_current(folder: Path) -> Path:
    try:
        return resolve_current_version(folder)
    except RegistryError as exc:
        raise RerankerLoadError(str(exc)) from exc


def _fusion_of(meta: dict[str, Any], folder: Path) -> ScoreFusion | None:
    try:
        return ScoreFusion.from_dict(meta.get("fusion"))
    except (KeyError, TypeError, ValueError) as exc:
        raise RerankerLoadError(
            f"{folder / RERANKER_MARKER} has an unreadable 'fusion' entry ({exc}); delete the entry or retrain."
        ) from exc


def folder_fusion(path: str | os.PathLike[str]) -> ScoreFusion | None:
    """The fusion weight stored in a trainer (or registry) folder's ``hn_reranker.json``, without loading the model.

    ``None`` for anything else: a folder without a marker or without a ``fusion`` entry, or a hub name.

    Raises:
        RerankerLoadError: the marker's ``fusion`` entry is unreadable.

    Example:
        >>> folder_fusion("cross-encoder/ms-marco-MiniLM-L6-v2") is None
        True
    """
    folder = Path(path)
    if not folder.is_dir():
        return None
    if (folder / REGISTRY_MARKER).is_file():
        folder = _registry_current(folder)
    if not (folder / RERANKER_MARKER).is_file():
        return None
    return _fusion_of(_read_json(folder / RERANKER_MARKER), folder)


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
            :class:`~hn_plugins.onnx_backend.OnnxCrossEncoderReranker`.

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
        if backend != "torch":
            raise RerankerLoadError(f"{text!r}: zero-shot: runs with backend='torch', got {backend!r}.")
        return BiEncoderReranker(
            name, device=device, batch_size=batch_size, trust_remote_code=trust_remote_code
        )
    path = Path(text)
    if backend != "torch":
        from hn_plugins.onnx_backend import ONNX_BACKENDS, OnnxCrossEncoderReranker

        if backend not in ONNX_BACKENDS:
            raise RerankerLoadError(f"backend must be one of {RERANKER_BACKENDS}, got {backend!r}.")
        if not path.is_dir():
            raise RerankerLoadError(
                f"backend={backend!r} needs a local cross-encoder folder exported with `hn export-onnx`; "
                f"{model!s} is not a folder."
            )
        onnx_reranker = OnnxCrossEncoderReranker(
            path, precision=ONNX_BACKENDS[backend], batch_size=batch_size
        )
        onnx_reranker.fusion = folder_fusion(onnx_reranker.folder)
        return onnx_reranker
    if path.exists():
        if not path.is_dir():
            raise RerankerLoadError(f"{path} is a file; pass the model folder.")
        if (path / REGISTRY_MARKER).is_file():
            path = _registry_current(path)
        kind = detect_reranker_kind(path)
        meta = _read_json(path / RERANKER_MARKER) if (path / RERANKER_MARKER).is_file() else {}
        reranker: CrossEncoderReranker | BiEncoderReranker
        if kind == "bi":
            reranker = BiEncoderReranker(
                path,
                device=device,
                batch_size=batch_size,
                query_prompt=meta.get("query_prompt"),
                document_prompt=meta.get("document_prompt"),
                trust_remote_code=trust_remote_code,
            )
        else:
            reranker = CrossEncoderReranker(
                path, device=device, batch_size=batch_size, trust_remote_code=trust_remote_code
            )
        reranker.fusion = _fusion_of(meta, path)
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
