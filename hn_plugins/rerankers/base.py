"""What every reranker shares: the scoring protocol, the load error, the model-folder marker and the fusion of a
reranker's scores with first-stage scores (:class:`FusionMixin`, the base class of every reranker here).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from hn_plugins.fusion import ScoreFusion

__all__ = [
    "RERANKER_MARKER",
    "FusionMixin",
    "Reranker",
    "RerankerLoadError",
    "fuse_with_first_stage",
]

#: File our trainer writes into a model folder: ``{"kind": "cross"|"bi", ...training metadata...}``.
RERANKER_MARKER = "hn_reranker.json"


class RerankerLoadError(ValueError):
    """Raised when a model path does not hold a usable reranker."""


@runtime_checkable
class Reranker(Protocol):
    """Scores documents for a query; higher is more relevant."""

    def score(self, query: str, documents: Sequence[str]) -> np.ndarray: ...


class FusionMixin:
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
            >>> class Const(FusionMixin):
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
