"""Chunk-level scoring of long documents: score every window of a document, keep the best (MaxP).

A reranker truncates its input (all-MiniLM-L6-v2 at 256 tokens, a MiniLM cross-encoder at 512 or less), so
everything after the first few hundred words of a long document is invisible to it. :class:`ChunkedReranker`
wraps any reranker: it cuts each document into overlapping windows of words, scores each window against the query
with the wrapped reranker, and gives the document the highest window score (``aggregate="max"``, MaxP in Dai &
Callan, 2019) or the first window's (``"first"``, the truncating behaviour, for comparison). The wrapped reranker's
fusion weight carries over.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from hn_plugins.rerankers.base import FusionMixin

AGGREGATES = ("max", "first")


def default_stride(window_words: int) -> int:
    """Words between window starts when none is given: three quarters of the window (a quarter overlaps).

    Example:
        >>> default_stride(128)
        96
    """
    return max(1, (3 * window_words) // 4)


def check_windows(window_words: int, stride_words: int) -> None:
    """Refuse window settings that cannot cut a text: ``window_words >= 1`` and ``1 <= stride_words <= window_words``.

    Example:
        >>> check_windows(128, 96)
    """
    if window_words < 1 or not 1 <= stride_words <= window_words:
        raise ValueError(
            f"Need window_words >= 1 and 1 <= stride_words <= window_words, got {window_words} and {stride_words}."
        )


def split_into_windows(text: str, window_words: int = 128, stride_words: int = 96) -> list[str]:
    """Overlapping windows of ``window_words`` words, one every ``stride_words`` words (whitespace-split).

    A text no longer than one window is returned whole (its original spacing kept); the last window ends at the
    text's last word.

    Example:
        >>> split_into_windows("a b c d e", window_words=3, stride_words=2)
        ['a b c', 'c d e']
        >>> split_into_windows("short text", window_words=3, stride_words=2)
        ['short text']
    """
    check_windows(window_words, stride_words)
    words = text.split()
    if len(words) <= window_words:
        return [text]
    windows = []
    for begin in range(0, len(words), stride_words):
        end = min(begin + window_words, len(words))
        windows.append(" ".join(words[max(0, end - window_words) : end]))
        if end == len(words):
            break
    return windows


class ChunkedReranker(FusionMixin):
    """Score long documents window by window with any reranker and keep the best window's score.

    Args:
        reranker: anything with ``score(query, documents) -> np.ndarray`` (a bi-encoder, cross-encoder or ONNX
            reranker from :func:`~hn_plugins.reranker.load_reranker`); its ``fusion`` weight, if any, is used.
        window_words: words per window; pick it so a window fits the model's token limit with the query.
        stride_words: words between window starts (``window_words - stride_words`` words overlap; default:
            :func:`default_stride`).
        aggregate: ``max`` (MaxP) or ``first`` (first window only: what truncation does).
        max_windows: at most this many windows per document (the first ones), so one huge document cannot
            dominate the cost.

    Example:
        >>> class Overlap:  # a toy reranker: how many query words a text has
        ...     def score(self, query, documents):
        ...         return np.array([sum(w in d.split() for w in query.split()) for d in documents], float)
        >>> chunked = ChunkedReranker(Overlap(), window_words=3, stride_words=3)
        >>> chunked.score("vcn subnet", ["intro text here then vcn subnet details", "vcn"]).tolist()
        [2.0, 1.0]
    """

    def __init__(
        self,
        reranker: Any,
        window_words: int = 128,
        stride_words: int | None = None,
        aggregate: Literal["max", "first"] = "max",
        max_windows: int = 16,
    ) -> None:
        if aggregate not in AGGREGATES:
            raise ValueError(f"aggregate must be one of {AGGREGATES}, got {aggregate!r}.")
        if max_windows < 1:
            raise ValueError(f"max_windows must be >= 1, got {max_windows}.")
        if stride_words is None:
            stride_words = default_stride(window_words)
        check_windows(window_words, stride_words)
        self.reranker = reranker
        self.window_words = window_words
        self.stride_words = stride_words
        self.aggregate = aggregate
        self.max_windows = max_windows
        self.fusion = getattr(reranker, "fusion", None)
        self.name = f"{getattr(reranker, 'name', type(reranker).__name__)} ({aggregate} of {window_words}-word windows)"
        self.kind = getattr(reranker, "kind", None)
        self.documents_scored = 0
        self.windows_scored = 0
        self.seconds = 0.0

    def windows(self, document: str) -> list[str]:
        """The windows this reranker scores for ``document``."""
        found = split_into_windows(document, self.window_words, self.stride_words)
        return found[:1] if self.aggregate == "first" else found[: self.max_windows]

    def score(self, query: str, documents: Sequence[str]) -> np.ndarray:
        if not documents:
            return np.zeros(0, dtype=np.float32)
        start = time.perf_counter()
        owners: list[int] = []
        texts: list[str] = []
        for i, document in enumerate(documents):
            found = self.windows(document)
            texts += found
            owners += [i] * len(found)
        window_scores = np.asarray(self.reranker.score(query, texts), dtype=np.float32).reshape(len(texts))
        scores = np.full(len(documents), -np.inf, dtype=np.float32)
        np.maximum.at(scores, np.asarray(owners), window_scores)
        self.seconds += time.perf_counter() - start
        self.documents_scored += len(documents)
        self.windows_scored += len(texts)
        return scores
