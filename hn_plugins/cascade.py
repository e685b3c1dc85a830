"""Two-stage reranking: a fast reranker orders every candidate, a slow one re-orders only the fast one's top-k.

A cross-encoder scores every (query, document) pair at query time; on 2 CPU cores its int8 copy needs about 1.5 s
for a top-100 (``benchmarks/results/onnx_int8_cranfield.json``). A bi-encoder reranker with cached document vectors
orders the same top-100 in a few hundredths of a second. :class:`CascadeReranker` chains them: the fast stage
scores all candidates, the slow stage scores the fast stage's ``top_k`` and decides their order, and the rest keep
the fast stage's order below them. Each stage applies its own fusion weight (the one stored in its model folder)
with the first-stage scores. ``python benchmarks/bench_cascade.py`` measures time and MRR@10 against each stage
alone.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from hn_plugins.rerankers.base import FusionMixin, fuse_with_first_stage

__all__ = ["CascadeReranker"]


def _stage_scores(
    reranker: Any, query: str, documents: Sequence[str], first_stage: Sequence[float | None] | None
) -> np.ndarray:
    """``reranker``'s scores, fused with ``first_stage`` by its own ``fusion`` weight when it has one."""
    if hasattr(reranker, "rerank_scores"):
        scores = reranker.rerank_scores(query, documents, first_stage)
    else:  # a plain scorer; a ``fusion`` attribute still applies
        plain = np.asarray(reranker.score(query, documents), dtype=np.float64)
        scores = fuse_with_first_stage(plain, getattr(reranker, "fusion", None), first_stage)
    return np.asarray(scores, dtype=np.float32).reshape(len(documents))


class CascadeReranker(FusionMixin):
    """Rerank with a fast reranker, then re-order its ``top_k`` with a slow one.

    Scores: the ``top_k`` documents of the fast stage get the slow stage's scores; every other document gets a score
    below the lowest of those, decreasing in the fast stage's order (only that order is meaningful, not the values).
    So the final ranking is the slow stage's order over the top ``top_k`` and the fast stage's order after it.

    Args:
        fast: the first reranker (e.g. a bi-encoder from :func:`~hn_plugins.reranker.load_reranker`, whose
            document vectors can be cached with ``precompute``); it scores every candidate.
        slow: the second reranker (e.g. a cross-encoder, or its ONNX int8 copy); it scores ``top_k`` candidates.
        top_k: how many of the fast stage's best candidates the slow stage scores.

    Example:
        >>> class Overlap:  # a toy reranker: how many query words a document has
        ...     def score(self, query, documents):
        ...         return np.array([sum(w in d.split() for w in query.split()) for d in documents], float)
        >>> class Shortest:  # another: prefers short documents
        ...     def score(self, query, documents):
        ...         return -np.array([len(d) for d in documents], float)
        >>> cascade = CascadeReranker(Overlap(), Shortest(), top_k=2)
        >>> docs = ["vcn subnet route table", "vcn subnet", "vnic", "vcn"]
        >>> [docs[i] for i in np.argsort(-cascade.score("vcn subnet", docs))]
        ['vcn subnet', 'vcn subnet route table', 'vcn', 'vnic']
    """

    kind = "cascade"

    def __init__(self, fast: Any, slow: Any, top_k: int = 20) -> None:
        if top_k < 1:
            raise ValueError(f"CascadeReranker: top_k must be >= 1, got {top_k}.")
        for role, reranker in (("fast", fast), ("slow", slow)):
            if not callable(getattr(reranker, "score", None)):
                raise TypeError(
                    f"CascadeReranker: the {role} reranker must have score(query, documents); got "
                    f"{type(reranker).__name__}. Pass what hn_plugins.load_reranker returns."
                )
        self.fast = fast
        self.slow = slow
        self.top_k = int(top_k)
        self.fusion = None  # each stage fuses with the first stage itself
        self.name = (
            f"{getattr(fast, 'name', type(fast).__name__)} -> {getattr(slow, 'name', type(slow).__name__)} "
            f"(top {self.top_k})"
        )
        self.documents_scored = 0
        self.seconds = 0.0

    def score(self, query: str, documents: Sequence[str]) -> np.ndarray:
        return self.rerank_scores(query, documents)

    def rerank_scores(
        self,
        query: str,
        documents: Sequence[str],
        first_stage_scores: Sequence[float | None] | None = None,
    ) -> np.ndarray:
        """Scores to sort ``documents`` by (see the class docstring); ``first_stage_scores`` reach both stages'
        fusion."""
        if not documents:
            return np.zeros(0, dtype=np.float32)
        start = time.perf_counter()
        first_stage = list(first_stage_scores) if first_stage_scores is not None else None
        fast_scores = _stage_scores(self.fast, query, documents, first_stage)
        order = np.argsort(-fast_scores, kind="stable")
        head, tail = order[: self.top_k], order[self.top_k :]
        slow_scores = _stage_scores(
            self.slow,
            query,
            [documents[i] for i in head],
            [first_stage[i] for i in head] if first_stage is not None else None,
        )
        scores = np.empty(len(documents), dtype=np.float32)
        scores[head] = slow_scores
        floor = float(slow_scores.min()) if len(head) else 0.0
        scores[tail] = floor - 1.0 - np.arange(len(tail), dtype=np.float32)
        self.seconds += time.perf_counter() - start
        self.documents_scored += len(documents)
        return scores
