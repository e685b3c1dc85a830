"""PCA that keeps a share of the variance (the paper's step 2), as a scikit-learn estimator."""

from __future__ import annotations

import logging
from collections.abc import Iterable

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.decomposition import PCA, IncrementalPCA
from sklearn.utils.validation import check_is_fitted, validate_data

logger = logging.getLogger(__name__)

__all__ = ["PCAReducer"]

#: rows projected per float64 block in PCAReducer.transform (8 MB of float64 per 1,000 input dimensions)
_TRANSFORM_BLOCK_ROWS = 1024


class PCAReducer(TransformerMixin, BaseEstimator):
    """Project vectors onto the principal components that explain ``variance`` of the variance.

    Args:
        variance: share of variance to keep, in (0, 1]; ignored when ``n_components`` is set.
        n_components: a fixed number of components instead.
        incremental: fit with :class:`~sklearn.decomposition.IncrementalPCA` in batches (for corpora that do not
            fit in memory; see also :meth:`partial_fit`).
        batch_size: rows per batch when ``incremental``.
        random_state: seed for the randomized solver (used when the data are large).

    Attributes:
        n_components_: components kept.
        components_: ``(n_components_, n_features)`` principal axes.
        mean_: per-feature mean removed before projection.
        explained_variance_ratio_: variance share of each kept component.
        explained_variance_ratio_full_: variance share of every component that was computed.

    Example:
        >>> import numpy as np
        >>> X = np.random.default_rng(0).normal(size=(200, 10)) @ np.diag([10, 5, 1, .1, .1, .1, .1, .1, .1, .1])
        >>> reducer = PCAReducer(variance=0.95).fit(X)
        >>> reducer.n_components_
        2
        >>> reducer.transform(X).shape
        (200, 2)
    """

    def __init__(
        self,
        variance: float = 0.95,
        n_components: int | None = None,
        incremental: bool = False,
        batch_size: int | None = None,
        random_state: int | None = 0,
    ) -> None:
        self.variance = variance
        self.n_components = n_components
        self.incremental = incremental
        self.batch_size = batch_size
        self.random_state = random_state

    def _check_params(self) -> None:
        if self.n_components is None and not (0.0 < float(self.variance) <= 1.0):
            raise ValueError(f"PCAReducer: variance must be in (0, 1], got {self.variance!r}.")
        if self.n_components is not None and int(self.n_components) < 1:
            raise ValueError(f"PCAReducer: n_components must be >= 1, got {self.n_components!r}.")

    def _keep(self, ratios: np.ndarray) -> int:
        if self.n_components is not None:
            return min(int(self.n_components), len(ratios))
        cumulative = np.cumsum(ratios)
        total = cumulative[-1] if len(cumulative) else 1.0
        # smallest k whose components explain >= variance of the variance (of what was computed)
        return int(min(len(ratios), np.searchsorted(cumulative, float(self.variance) * total - 1e-12) + 1))

    def _store(self, pca: PCA | IncrementalPCA) -> None:
        ratios = np.asarray(pca.explained_variance_ratio_, dtype=np.float64)
        k = self._keep(ratios)
        self.components_ = np.asarray(pca.components_[:k], dtype=np.float32)
        self.mean_ = np.asarray(pca.mean_, dtype=np.float32)
        self.explained_variance_ratio_ = ratios[:k]
        self.explained_variance_ratio_full_ = ratios
        self.n_components_ = k
        logger.info(
            "PCA keeps %d of %d dimensions (%.1f%% of the variance)",
            k,
            self.n_features_in_,
            100 * float(ratios[:k].sum()),
        )

    def fit(self, X: np.ndarray, y: object = None) -> PCAReducer:
        """Fit on ``X`` of shape ``(n_samples, n_features)``."""
        self._check_params()
        X = validate_data(self, X, dtype=[np.float64, np.float32], ensure_min_samples=2)
        n, d = X.shape
        max_k = min(n, d)
        if self.incremental:
            batch = self.batch_size or max(5 * d, 1024)
            pca: PCA | IncrementalPCA = IncrementalPCA(n_components=min(max_k, batch), batch_size=batch)
            pca.fit(X)
        else:
            # many more rows than features (a corpus): eigen-decompose the d x d covariance, cheap in time and memory
            solver = "covariance_eigh" if n >= 10 * d else ("full" if max_k <= 2048 else "randomized")
            pca = PCA(n_components=max_k, svd_solver=solver, random_state=self.random_state)
            pca.fit(X)
        self._store(pca)
        return self

    def partial_fit(self, X: np.ndarray, y: object = None) -> PCAReducer:
        """Update an incremental fit with one batch (each batch needs at least as many rows as features)."""
        self._check_params()
        first = not hasattr(self, "_ipca")
        X = validate_data(self, X, dtype=[np.float64, np.float32], reset=first)
        if first:
            self._ipca = IncrementalPCA(n_components=min(X.shape))
        self._ipca.partial_fit(X)
        self._store(self._ipca)
        return self

    def fit_batches(self, batches: Iterable[np.ndarray]) -> PCAReducer:
        """Fit incrementally from an iterable of arrays (e.g. read from disk), one :meth:`partial_fit` each."""
        for batch in batches:
            self.partial_fit(batch)
        check_is_fitted(self, "components_")
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        """Project ``X`` onto the kept components -> ``(n_samples, n_components_)`` float32.

        The projection is computed in float64, block by block, then rounded to float32: a float32 matrix product
        can round a row differently depending on where it sits in the batch (BLAS kernels treat tail rows apart, as
        on AVX-512 machines), and a document's coordinates must not depend on which other documents came with it.
        """
        check_is_fitted(self, "components_")
        X = validate_data(self, X, dtype=[np.float64, np.float32], reset=False)
        components = self.components_.T.astype(np.float64)
        mean = self.mean_.astype(np.float64)
        out = np.empty((X.shape[0], components.shape[1]), dtype=np.float32)
        for start in range(0, X.shape[0], _TRANSFORM_BLOCK_ROWS):
            block = np.asarray(X[start : start + _TRANSFORM_BLOCK_ROWS], dtype=np.float64)
            out[start : start + _TRANSFORM_BLOCK_ROWS] = (block - mean) @ components
        return out

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float32"]
        return tags
