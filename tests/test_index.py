from __future__ import annotations

import numpy as np
import pytest

from hn_plugins.embedders import l2_normalize
from hn_plugins.index import CandidateIndex


def _vectors(n, d=32, seed=0):
    return l2_normalize(np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32))


def test_exact_index_equals_numpy_top_k():
    docs, queries = _vectors(3000), _vectors(50, seed=1)
    scores, rows = CandidateIndex("exact").fit(docs).search(queries, 20)
    expected = np.argsort(-(queries @ docs.T), axis=1)[:, :20]
    np.testing.assert_array_equal(rows, expected)
    np.testing.assert_allclose(scores, np.take_along_axis(queries @ docs.T, expected, axis=1), atol=1e-5)


@pytest.mark.parametrize("kind", ["hnsw", "ivf"])
def test_approximate_indexes_have_high_recall(kind):
    rng = np.random.default_rng(3)  # clustered, like text embeddings (topics), not isotropic noise
    centers = rng.normal(size=(40, 32))
    docs = l2_normalize(
        (centers[rng.integers(40, size=5000)] + 0.4 * rng.normal(size=(5000, 32))).astype(np.float32)
    )
    queries = l2_normalize(
        (centers[rng.integers(40, size=100)] + 0.4 * rng.normal(size=(100, 32))).astype(np.float32)
    )
    _, exact = CandidateIndex("exact").fit(docs).search(queries, 10)
    index = CandidateIndex(kind, nprobe=32).fit(docs)
    assert index.resolved_kind == kind and not index.is_exact
    _, approx = index.search(queries, 10)
    recall = np.mean([len(set(a) & set(e)) / 10 for a, e in zip(approx, exact, strict=True)])
    assert recall > 0.9


def test_auto_and_errors():
    assert CandidateIndex("auto").fit(_vectors(100)).resolved_kind == "exact"
    with pytest.raises(ValueError, match="kind must be"):
        CandidateIndex("flat")  # type: ignore[arg-type]
    with pytest.raises(RuntimeError, match="before fit"):
        CandidateIndex().search(_vectors(1), 1)
    with pytest.raises(ValueError, match="non-empty"):
        CandidateIndex().fit(np.zeros((0, 4), dtype=np.float32))
    _, rows = CandidateIndex().fit(_vectors(5)).search(_vectors(2), 50)
    assert rows.shape == (2, 5)  # k is capped at the corpus size
