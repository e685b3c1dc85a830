"""Plots are written as real, non-blank PNG images."""

from __future__ import annotations

import numpy as np
import pytest

from hn_evaluation.metrics import EvaluationError
from hn_evaluation.plots import plot_metric_bars, plot_pca_neighbourhood
from hn_evaluation.report import aggregate_seed_rows


def _check_png(path, min_width=200, min_height=150):
    import matplotlib.image

    assert path.is_file() and path.stat().st_size > 5_000
    image = matplotlib.image.imread(path)
    height, width = image.shape[:2]
    assert width >= min_width and height >= min_height
    rgb = image[..., :3]
    non_white = np.mean(np.any(rgb < 0.95, axis=-1))
    assert non_white > 0.02  # something was drawn
    return image


def test_metric_bars(tmp_path):
    agg = aggregate_seed_rows(
        [
            {"bm25": {"mrr@10": 0.55}, "random": {"mrr@10": 0.33}, "paper": {"mrr@10": 0.12}},
            {"bm25": {"mrr@10": 0.55}, "random": {"mrr@10": 0.35}, "paper": {"mrr@10": 0.06}},
        ]
    )
    path = plot_metric_bars(agg, "mrr@10", tmp_path / "figs" / "bars.png", title="Cranfield MRR@10")
    image = _check_png(path)
    plain = _check_png(plot_metric_bars({"bm25": {"mrr@10": 0.55}}, "mrr@10", tmp_path / "plain.png"))
    assert image.shape != plain.shape or not np.array_equal(image, plain)
    with pytest.raises(EvaluationError, match="has no 'ndcg@10'"):
        plot_metric_bars(agg, "ndcg@10", tmp_path / "x.png")
    with pytest.raises(EvaluationError, match="no strategies"):
        plot_metric_bars({}, "mrr@10", tmp_path / "x.png")


def test_pca_neighbourhood(tmp_path):
    rng = np.random.default_rng(0)
    query = rng.normal(size=64)
    positive = query + rng.normal(scale=0.3, size=64)
    negatives = query + rng.normal(scale=0.5, size=(3, 64))
    others = rng.normal(size=(40, 64))
    path = plot_pca_neighbourhood(query, positive, negatives, others, tmp_path / "pca.png", title="q1")
    _check_png(path)
    _check_png(plot_pca_neighbourhood(query, [positive], [], None, tmp_path / "bare.png"))


@pytest.mark.parametrize(
    ("positive", "negatives", "message"),
    [
        (np.zeros(8), np.zeros((2, 8)), "dimension"),
        (np.zeros((0, 4)), np.zeros((2, 4)), "at least one positive"),
        (np.zeros(4), np.full((1, 4), np.nan), "NaN"),
    ],
)
def test_pca_neighbourhood_bad_input(tmp_path, positive, negatives, message):
    with pytest.raises(EvaluationError, match=message):
        plot_pca_neighbourhood(np.ones(4), positive, negatives, None, tmp_path / "x.png")
