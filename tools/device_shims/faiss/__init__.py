"""Exact inner-product shim of ``faiss.IndexFlatIP`` in numpy, for the GPU machine only.

The device tool's machine reaches no registry and faiss-cpu's wheel is not carried, so
``tools/build_device_payload.py`` puts this module first on that machine's ``sys.path``. It implements only
what the benchmark's mining path uses (exact search below the HNSW/IVF thresholds).
"""

import numpy as np

METRIC_INNER_PRODUCT = 0


def omp_set_num_threads(n: int) -> None:
    """faiss' thread setting; numpy decides here."""


class IndexFlatIP:
    """Exact inner-product index: ``add`` vectors, ``search`` the ``k`` best (stable order on ties)."""

    def __init__(self, d: int) -> None:
        self.d = d
        self._x = np.zeros((0, d), dtype=np.float32)

    @property
    def ntotal(self) -> int:
        return len(self._x)

    def add(self, x: np.ndarray) -> None:
        self._x = np.concatenate([self._x, np.asarray(x, dtype=np.float32)])

    def search(self, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        q = np.asarray(q, dtype=np.float32)
        s = q @ self._x.T
        k = min(k, s.shape[1])
        idx = np.argsort(-s, axis=1, kind="stable")[:, :k]
        return np.take_along_axis(s, idx, axis=1), idx.astype(np.int64)
