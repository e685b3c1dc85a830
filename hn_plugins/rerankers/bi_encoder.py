"""A sentence-transformers bi-encoder as a reranker (cosine of query and document), with a cache of document
vectors.
"""

from __future__ import annotations

import os
import time
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from hn_plugins.embedders import l2_normalize
from hn_plugins.encoders.loading import load_encoder
from hn_plugins.encoding import encode_texts, is_sentence_transformer
from hn_plugins.rerankers.base import FusionMixin

__all__ = ["BiEncoderReranker"]


class BiEncoderReranker(FusionMixin):
    """A sentence-transformers bi-encoder used as a reranker: score = cosine(query, document).

    Document vectors are kept in a least-recently-used cache keyed by the exact text (``cache_size`` vectors;
    0 turns it off), so a document that was already reranked once (or added with :meth:`precompute`) costs a
    lookup instead of a forward pass: in a RAG pipeline over a fixed corpus, reranking the top-100 then costs one
    query encoding.

    ``engine`` runs a model given by name or folder with PyTorch (``torch``, the default), or with onnxruntime
    (``onnx``: fp32, equal to PyTorch within 1e-4 per vector; ``onnx-int8``), through the same exported copy that
    mining uses (:func:`hn_plugins.encoders.load_encoder`): :meth:`precompute` and query encoding then run
    without PyTorch.

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
        engine: str = "torch",
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
            self.model = load_encoder(model, engine, device=device, trust_remote_code=trust_remote_code)
        self.batch_size = batch_size
        self.query_prompt = query_prompt
        self.document_prompt = document_prompt
        self.documents_scored = 0
        self.seconds = 0.0

    def _encode(self, texts: Sequence[str], prompt: str | None) -> np.ndarray:
        if not is_sentence_transformer(self.model):
            return l2_normalize(encode_texts(self.model, list(texts), prompt, self.batch_size))
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
