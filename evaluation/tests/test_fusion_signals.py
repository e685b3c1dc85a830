"""experiments/fusion_signals/fusion_signals.py: per-query normalisations and the MRR@10 of a weighted mixture, by hand."""

import numpy as np
import pytest

from hn_evaluation.metrics import mrr_at_k


@pytest.fixture
def fs(repo_script):
    return repo_script("experiments.fusion_signals.fusion_signals")


def _rows():
    """Two queries over three candidates; signals (bm25, minilm, static) as rows of raw scores."""
    return [
        (["a", "b", "c"], np.array([[3.0, 1.0, 2.0], [0.1, 0.9, 0.5], [0.2, 0.2, 0.2]]), {"b"}),
        (["d", "e", "f"], np.array([[1.0, 2.0, 3.0], [0.3, 0.2, 0.1], [0.0, 1.0, 0.0]]), {"d"}),
    ]


def test_reciprocal_rank_normalisation_by_hand(fs):
    (docs, scores, _), _second = fs.normalized(_rows(), "rrf")
    assert docs == ["a", "b", "c"]
    # bm25 ranks a, c, b; minilm ranks b, c, a; the constant static scores keep their order
    assert scores[0] == pytest.approx([1 / 60, 1 / 62, 1 / 61])
    assert scores[1] == pytest.approx([1 / 62, 1 / 60, 1 / 61])
    assert scores[2] == pytest.approx([1 / 60, 1 / 61, 1 / 62])


def test_minmax_and_z_normalisation_per_signal(fs):
    (_, minmax, _), _second = fs.normalized(_rows(), "minmax")
    assert minmax[0] == pytest.approx([1.0, 0.0, 0.5])
    assert minmax[2] == pytest.approx([0.0, 0.0, 0.0])  # constant scores carry no signal
    (_, z, _), _second = fs.normalized(_rows(), "z")
    assert z.mean(axis=1) == pytest.approx([0.0, 0.0, 0.0])


def test_mixture_mrr_matches_the_ranking_it_implies(fs):
    rows = fs.normalized(_rows(), "minmax")
    # BM25 alone: query 1 ranks a, c, b (b at 3); query 2 ranks f, e, d (d at 3)
    assert fs._mrr(rows, np.array([1.0, 0.0, 0.0])) == pytest.approx((1 / 3 + 1 / 3) / 2)
    # MiniLM alone: b first; d first
    assert fs._mrr(rows, np.array([0.0, 1.0, 0.0])) == pytest.approx(1.0)
    # an even mix, checked against the metric module on the explicit ranking
    weights = np.array([0.5, 0.5, 0.0])
    expected = []
    for docs, scores, relevant in rows:
        mixed = weights @ scores
        ranking = [docs[j] for j in np.argsort(-mixed, kind="stable")]
        expected.append(mrr_at_k(ranking, relevant))
    assert fs._mrr(rows, weights) == pytest.approx(np.mean(expected))


def test_every_grid_point_is_a_weight_vector_and_the_two_way_grids_agree(fs):
    assert len(fs.GRID) == 66
    assert all(w.min() >= 0 and w.sum() == pytest.approx(1.0) for w in fs.GRID)
    two_way = [w for w in fs.GRID if fs.MIXES["bm25+minilm"](w)]
    # the normalisation comparison's 0.1 grid lists the same points in the same order (same tie rule)
    steps = 10
    assert [tuple(w.round(2)) for w in two_way] == [
        (round(i / steps, 2), round(1 - i / steps, 2), 0.0) for i in range(steps + 1)
    ]
