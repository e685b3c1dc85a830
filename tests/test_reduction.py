from __future__ import annotations

import numpy as np
import pytest
from sklearn.decomposition import PCA
from sklearn.utils.estimator_checks import parametrize_with_checks

from hn_plugins.reduction import PCAReducer


@parametrize_with_checks([PCAReducer(), PCAReducer(n_components=2), PCAReducer(incremental=True)])
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


def _data(seed=0, n=400, d=30):
    rng = np.random.default_rng(seed)
    scales = np.geomspace(10, 0.01, d)
    return rng.normal(size=(n, d)) * scales


@pytest.mark.parametrize("variance", [0.7, 0.8, 0.9, 0.95, 0.99])
def test_keeps_the_fewest_components_reaching_the_variance(variance):
    X = _data()
    reducer = PCAReducer(variance=variance).fit(X)
    reference = PCA(n_components=variance, svd_solver="full").fit(X)
    assert reducer.n_components_ == reference.n_components_
    assert reducer.explained_variance_ratio_.sum() >= variance
    assert reducer.explained_variance_ratio_[:-1].sum() < variance
    # same subspace as scikit-learn's PCA (up to the sign of each axis)
    np.testing.assert_allclose(
        np.abs(reducer.transform(X)), np.abs(reference.transform(X)), rtol=1e-3, atol=1e-3
    )


def test_fixed_components_and_incremental_fit_agree_with_full_fit():
    X = _data(1, n=2000)
    assert PCAReducer(n_components=5).fit(X).n_components_ == 5
    full = PCAReducer(variance=0.95).fit(X)
    inc = PCAReducer(variance=0.95).fit_batches(X[i : i + 250] for i in range(0, len(X), 250))
    assert inc.n_components_ == full.n_components_
    np.testing.assert_allclose(np.abs(inc.transform(X)), np.abs(full.transform(X)), rtol=0.05, atol=0.05)


def test_bad_parameters_and_unfitted_use():
    with pytest.raises(ValueError, match="variance must be in"):
        PCAReducer(variance=1.5).fit(_data())
    with pytest.raises(ValueError, match="n_components must be"):
        PCAReducer(n_components=0).fit(_data())
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        PCAReducer().transform(_data())
    with pytest.raises(ValueError, match="NaN"):
        X = _data()
        X[3, 3] = np.nan
        PCAReducer().fit(X)


@pytest.mark.parametrize("incremental", [False, True])
@pytest.mark.parametrize(("n", "d"), [(20, 3), (300, 64), (2100, 64)])
def test_a_row_projects_the_same_alone_or_in_any_batch(incremental, n, d):
    """A document's reduced vector must not depend on the documents embedded with it (cache, incremental re-mining).

    A float32 product rounded rows alone or at a batch's tail differently (up to 3e-5 here on AVX-512).
    """
    X = _data(seed=3, n=n, d=d).astype(np.float32)
    reducer = PCAReducer(variance=0.9, incremental=incremental).fit(X)
    whole = reducer.transform(X)
    shuffled = np.random.default_rng(0).permutation(n)
    assert np.array_equal(reducer.transform(X[shuffled]), whole[shuffled])
    alone = np.stack([reducer.transform(X[i : i + 1])[0] for i in range(0, n, max(1, n // 300))])
    assert np.array_equal(alone, whole[:: max(1, n // 300)])
