"""Candidate search with FAISS over L2-normalised vectors (inner product = cosine similarity)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Literal, cast

import numpy as np

if TYPE_CHECKING:
    import faiss

logger = logging.getLogger(__name__)

__all__ = ["CandidateIndex", "IndexKind"]

IndexKind = Literal["exact", "hnsw", "ivf", "auto"]

#: Below this many documents ``auto`` uses the exact index (design.md: exact below ~200k).
EXACT_LIMIT = 200_000


class CandidateIndex:
    """Top-k cosine neighbours of query vectors among document vectors.

    Args:
        kind: ``exact`` (``IndexFlatIP``), ``hnsw`` (``IndexHNSWFlat`` with inner product), ``ivf``
            (``IndexIVFFlat``), or ``auto`` (exact below 200k documents, HNSW above).
        hnsw_m: HNSW graph degree.
        ef_search: HNSW search breadth (raised to at least ``k`` per search).
        nlist: IVF cells (default ``sqrt(n)``).
        nprobe: IVF cells visited per query.
        threads: FAISS threads (``None``: FAISS's default).

    Example:
        >>> import numpy as np
        >>> docs = np.eye(4, dtype=np.float32)
        >>> index = CandidateIndex().fit(docs)
        >>> scores, rows = index.search(np.array([[0.9, 0.1, 0, 0]], dtype=np.float32), k=2)
        >>> rows.tolist()
        [[0, 1]]
    """

    def __init__(
        self,
        kind: IndexKind = "exact",
        hnsw_m: int = 32,
        ef_search: int = 128,
        nlist: int | None = None,
        nprobe: int = 16,
        threads: int | None = None,
    ) -> None:
        if kind not in {"exact", "hnsw", "ivf", "auto"}:
            raise ValueError(f"CandidateIndex: kind must be 'exact', 'hnsw', 'ivf' or 'auto', got {kind!r}.")
        self.kind = kind
        self.hnsw_m = hnsw_m
        self.ef_search = ef_search
        self.nlist = nlist
        self.nprobe = nprobe
        self.threads = threads
        self._index: faiss.Index | None = None
        self.ntotal = 0
        self.resolved_kind: str | None = None

    @property
    def is_exact(self) -> bool:
        return self.resolved_kind == "exact"

    def fit(self, vectors: np.ndarray) -> CandidateIndex:
        """Index document vectors (rows are assumed L2-normalised)."""
        import faiss

        if self.threads:
            faiss.omp_set_num_threads(int(self.threads))
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or len(vectors) == 0:
            raise ValueError(
                f"CandidateIndex.fit(): expected a non-empty 2-D array, got shape {vectors.shape}."
            )
        n, d = vectors.shape
        kind = self.kind
        if kind == "auto":
            kind = "exact" if n < EXACT_LIMIT else "hnsw"
        index: faiss.Index
        if kind == "exact":
            index = faiss.IndexFlatIP(d)
        elif kind == "hnsw":
            hnsw_index = faiss.IndexHNSWFlat(d, self.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            hnsw_index.hnsw.efConstruction = max(40, 2 * self.hnsw_m)
            index = hnsw_index
        else:
            nlist = self.nlist or max(1, min(n // 39, int(np.sqrt(n))))
            quantizer = faiss.IndexFlatIP(d)
            ivf_index = faiss.IndexIVFFlat(quantizer, d, nlist, faiss.METRIC_INNER_PRODUCT)
            # k-means on a seeded sample of 64 points per cell (FAISS's own default would take 256 per cell)
            sample = min(n, 64 * nlist)
            rows = (
                np.random.default_rng(0).choice(n, size=sample, replace=False) if sample < n else slice(None)
            )
            ivf_index.train(vectors[rows])
            ivf_index.nprobe = min(self.nprobe, nlist)
            self._quantizer = quantizer  # keep alive
            index = ivf_index
        index.add(vectors)
        self._index = index
        self.ntotal = n
        self.resolved_kind = kind
        logger.info("FAISS %s index over %d vectors of dimension %d", kind, n, d)
        return self

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Return ``(scores, rows)`` of shape ``(n_queries, min(k, ntotal))``, best first; rows are -1 where an
        approximate index found fewer."""
        if self._index is None:
            raise RuntimeError("CandidateIndex.search() before fit(); call fit(document_vectors) first.")
        k = int(min(k, self.ntotal))
        if k < 1:
            raise ValueError(f"CandidateIndex.search(): k must be >= 1, got {k}.")
        if self.resolved_kind == "hnsw":
            cast("faiss.IndexHNSW", self._index).hnsw.efSearch = max(self.ef_search, k)
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        scores, rows = self._index.search(queries, k)
        return scores, rows
