"""Reading reranker folders without loading a model: the trainer's marker, a model registry's current version, the
stored fusion weight, and whether a folder holds a cross-encoder or a bi-encoder.

The registry's own names (``REGISTRY_MARKER``, ``registry_version``, ``registry_moved``) live in
:mod:`hn_plugins.registry` and are re-exported here.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, Literal

from hn_plugins.fusion import ScoreFusion
from hn_plugins.registry import (
    REGISTRY_MARKER,
    RegistryError,
    registry_moved,
    registry_version,
    resolve_current_version,
)
from hn_plugins.rerankers.base import RERANKER_MARKER, RerankerLoadError

logger = logging.getLogger(__name__)

__all__ = [
    "REGISTRY_MARKER",
    "detect_reranker_kind",
    "folder_fusion",
    "marker_fusion",
    "read_json",
    "registry_current",
    "registry_moved",
    "registry_version",
]


def read_json(path: Path) -> dict[str, Any]:
    """The JSON object in ``path`` (a marker, a registry file, a model config).

    Raises:
        RerankerLoadError: the file cannot be read or is not JSON (the message names the file).
    """
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RerankerLoadError(f"Cannot read {path}: {exc}.") from exc


def registry_current(folder: Path) -> Path:
    """The folder of the current version of the registry folder ``folder``.

    Raises:
        RerankerLoadError: no version is current yet, or ``current`` names a folder outside ``versions/`` or one
            the registry does not list (the message names registry.json and the value).
    """
    try:
        return resolve_current_version(folder)
    except RegistryError as exc:
        raise RerankerLoadError(str(exc)) from exc


def marker_fusion(meta: dict[str, Any], folder: Path) -> ScoreFusion | None:
    """The fusion weight in ``meta``, the ``hn_reranker.json`` content of ``folder`` (``None``: no ``fusion`` entry).

    Raises:
        RerankerLoadError: the ``fusion`` entry is unreadable (the message says how to fix the folder).
    """
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
        folder = registry_current(folder)
    if not (folder / RERANKER_MARKER).is_file():
        return None
    return marker_fusion(read_json(folder / RERANKER_MARKER), folder)


def detect_reranker_kind(path: str | os.PathLike[str]) -> Literal["cross", "bi"]:
    """Tell whether a local folder holds a cross-encoder or a bi-encoder reranker.

    Raises:
        RerankerLoadError: the folder holds neither (the message says what it found).
    """
    folder = Path(path)
    if (folder / REGISTRY_MARKER).is_file():
        folder = registry_current(folder)
    if (folder / RERANKER_MARKER).is_file():
        kind = read_json(folder / RERANKER_MARKER).get("kind")
        if kind in {"cross", "bi"}:
            return kind
        raise RerankerLoadError(f"{folder / RERANKER_MARKER} names kind {kind!r}; expected 'cross' or 'bi'.")
    config_path = folder / "config.json"
    if config_path.is_file():
        config = read_json(config_path)
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
