"""The reranker names under their first import path (``from hn_plugins.reranker import load_reranker``).

They live in :mod:`hn_plugins.rerankers` (``base``, ``cross_encoder``, ``bi_encoder``, ``folders``, ``loading``);
this module re-exports them so that code written against the old path keeps working.
"""

from __future__ import annotations

from hn_plugins.rerankers.base import (
    RERANKER_MARKER,
    FusionMixin,
    Reranker,
    RerankerLoadError,
    fuse_with_first_stage,
)
from hn_plugins.rerankers.bi_encoder import BiEncoderReranker
from hn_plugins.rerankers.cross_encoder import CrossEncoderReranker, transformer_of
from hn_plugins.rerankers.folders import (
    REGISTRY_MARKER,
    detect_reranker_kind,
    folder_fusion,
    marker_fusion,
    read_json,
    registry_current,
    registry_moved,
    registry_version,
)
from hn_plugins.rerankers.loading import (
    RERANKER_BACKENDS,
    ZERO_SHOT_PREFIX,
    load_reranker,
    zero_shot_model_name,
)

__all__ = [
    "REGISTRY_MARKER",
    "RERANKER_BACKENDS",
    "RERANKER_MARKER",
    "ZERO_SHOT_PREFIX",
    "BiEncoderReranker",
    "CrossEncoderReranker",
    "FusionMixin",
    "Reranker",
    "RerankerLoadError",
    "detect_reranker_kind",
    "folder_fusion",
    "fuse_with_first_stage",
    "load_reranker",
    "marker_fusion",
    "read_json",
    "registry_current",
    "registry_moved",
    "registry_version",
    "transformer_of",
    "zero_shot_model_name",
]
