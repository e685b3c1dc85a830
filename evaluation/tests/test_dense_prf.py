"""experiments/dense_prf/dense_prf.py: Rocchio feedback in the embedding space and the reciprocal rank it gives, by hand."""

import numpy as np
import pytest


@pytest.fixture
def prf(repo_script):
    return repo_script("experiments.dense_prf.dense_prf")


def _query():
    # three candidates: BM25 and MiniLM both put doc 0 first; the relevant doc 2 resembles doc 0 most
    bm25 = np.array([1.0, 0.0, -1.0])
    minilm = np.array([1.0, 0.5, -1.5])
    vectors = np.array([[1.0, 0.0], [0.0, 1.0], [0.9, 0.1]])
    return ["d0", "d1", "d2"], bm25, minilm, vectors, np.array([False, False, True])


def test_reciprocal_rank_by_hand(prf):
    relevant = np.array([False, True, False])
    assert prf._reciprocal_rank(np.array([0.3, 0.2, 0.1]), relevant) == 0.5
    assert prf._reciprocal_rank(np.array([0.3, 0.2, 0.1]), relevant, k=1) == 0.0
    assert prf._reciprocal_rank(np.array([0.1, 0.2, 0.1]), relevant) == 1.0


def test_gamma_zero_is_plain_fusion(prf):
    row = _query()
    # fused = 0.5 * minilm + 0.5 * bm25 = [1.0, 0.25, -1.25]: the relevant doc is third
    assert prf._per_query([row], 0.5, 1, 0.0).tolist() == [pytest.approx(1 / 3)]


def test_feedback_from_the_top_document_lifts_its_neighbour(prf):
    row = _query()
    # m = vector of d0 = [1, 0]; m . d = [1.0, 0.0, 0.9] -> z-scores ~ [0.78, -1.41, 0.63]
    # fused + 1.0 * z = [1.78, -1.16, -0.62]: the relevant doc moves from third to second
    assert prf._per_query([row], 0.5, 1, 1.0).tolist() == [pytest.approx(0.5)]
    # with both top documents as feedback, m = [0.5, 0.5] scores every candidate 0.5: nothing moves
    assert prf._per_query([row], 0.5, 2, 1.0).tolist() == [pytest.approx(1 / 3)]
