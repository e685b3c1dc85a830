"""Bi-encoder scoring of many queries' candidates at once, as ``hn eval`` and ``hn retrain`` rerank a split.

- :func:`encode_normalized`: encode texts with any ``encode(list[str])`` object and L2-normalise the rows.
- :class:`EmbeddedBiEncoderScorer`: a bi-encoder whose candidate and query vectors are encoded once, up front;
  ``score(query, documents) -> np.ndarray`` (higher = more relevant).
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from hn_plugins.embedders import l2_normalize
from hn_plugins.metrics import EvaluationError

logger = logging.getLogger(__name__)

__all__ = ["EmbeddedBiEncoderScorer", "encode_normalized"]


def encode_normalized(model: Any, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
    """Encode texts with any object that has ``encode(list[str])`` and L2-normalise the rows.

    ``batch_size``, ``show_progress_bar=False`` and ``convert_to_numpy=True`` are passed when ``encode`` accepts
    them (sentence-transformers).

    Raises:
        EvaluationError: the model has no ``encode`` or returns an array of the wrong shape.

    Example:
        >>> class Letters:
        ...     def encode(self, texts):
        ...         return [[t.count("a"), t.count("b")] for t in texts]
        >>> vectors = encode_normalized(Letters(), ["aa", "ab"])
        >>> vectors.dtype, [[round(float(x), 3) for x in row] for row in vectors]
        (dtype('float32'), [[1.0, 0.0], [0.707, 0.707]])
    """
    encode = getattr(model, "encode", None)
    if not callable(encode):
        raise EvaluationError(
            f"Encoding needs a model with an encode(texts) method (e.g. a SentenceTransformer), got {type(model)}."
        )
    kwargs: dict[str, Any] = {}
    try:
        params = inspect.signature(encode).parameters
        takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
        for name, value in (
            ("batch_size", batch_size),
            ("show_progress_bar", False),
            ("convert_to_numpy", True),
        ):
            if name in params or takes_any:
                kwargs[name] = value
    except (TypeError, ValueError):  # builtins without a signature
        pass
    vectors = encode(list(texts), **kwargs)
    if hasattr(vectors, "detach"):
        vectors = vectors.detach().cpu().numpy()
    array = np.asarray(vectors, dtype=np.float32)
    if array.ndim != 2 or array.shape[0] != len(texts):
        raise EvaluationError(
            f"{type(model).__name__}.encode returned shape {array.shape} for {len(texts)} texts; expected "
            "(n_texts, dim)."
        )
    return l2_normalize(array)


class EmbeddedBiEncoderScorer:
    """A bi-encoder reranker whose document and query vectors are computed once, in large batches, up front.

    ``score(query, documents)`` is then a lookup and a matrix product, so reranking a test split costs one
    encoding pass over the distinct candidate documents instead of one per query. Texts not seen up front are
    encoded on demand (and kept).

    Args:
        model: a ``SentenceTransformer`` (or anything with ``encode(list[str])``).
        documents: document texts to encode now (e.g. every first-stage candidate of the test queries).
        queries: query texts to encode now.
        batch_size: encoding batch size.

    Attributes:
        encode_seconds: time spent encoding (up front and on demand).

    Example:
        >>> class Letters:
        ...     def encode(self, texts):
        ...         return [[t.count("a"), t.count("b"), 1.0] for t in texts]
        >>> scorer = EmbeddedBiEncoderScorer(Letters(), documents=["aaaa", "bbbb"], queries=["aa"])
        >>> int(scorer.score("aa", ["aaaa", "bbbb"]).argmax())
        0
    """

    def __init__(
        self, model: Any, documents: Sequence[str] = (), queries: Sequence[str] = (), batch_size: int = 32
    ) -> None:
        self.model, self.batch_size = model, batch_size
        self._docs: dict[str, np.ndarray] = {}
        self._queries: dict[str, np.ndarray] = {}
        self.encode_seconds = 0.0
        self._add(self._docs, documents)
        self._add(self._queries, queries)

    def _add(self, store: dict[str, np.ndarray], texts: Sequence[str]) -> None:
        todo = [t for t in dict.fromkeys(texts) if t not in store]
        if not todo:
            return
        start = time.perf_counter()
        vectors = encode_normalized(self.model, todo, self.batch_size)
        self.encode_seconds += time.perf_counter() - start
        store.update(zip(todo, vectors, strict=True))

    def score(self, query: str, documents: Sequence[str]) -> np.ndarray:
        """Cosine similarity of the query with each document."""
        if not documents:
            return np.zeros(0, dtype=np.float32)
        self._add(self._docs, documents)
        self._add(self._queries, [query])
        matrix = np.stack([self._docs[d] for d in documents])
        return (matrix @ self._queries[query]).astype(np.float32)
