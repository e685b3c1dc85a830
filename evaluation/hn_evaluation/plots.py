"""PNG figures: metric bars with error bars over seeds, and the PCA picture of one query (paper, Fig. 2).

Figures are drawn on a ``matplotlib.figure.Figure`` with the Agg canvas, never through ``pyplot``, so plotting
works headless and leaves the caller's matplotlib backend and global state alone.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .metrics import EvaluationError

logger = logging.getLogger(__name__)

__all__ = ["plot_metric_bars", "plot_pca_neighbourhood"]


def _figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Any, path: str | Path) -> Path:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format=out.suffix.lstrip(".") or "png", bbox_inches="tight")
    logger.info("wrote %s", out)
    return out


def plot_metric_bars(
    aggregated: Mapping[str, Mapping[str, Any]],
    metric: str,
    path: str | Path,
    *,
    title: str | None = None,
) -> Path:
    """Bar chart of one metric per strategy, with ± std error bars when given.

    Args:
        aggregated: ``{strategy: {metric: {"mean", "std"}}}`` (from
            :func:`hn_evaluation.report.aggregate_seed_rows`) or ``{strategy: {metric: value}}``.
        metric: the metric to draw, e.g. ``"mrr@10"``.
        path: output image (``.png``); parent folders are created.
        title: figure title (default: the metric).

    Returns:
        The path written.

    Raises:
        EvaluationError: no strategies, or a strategy without that metric.
    """
    if not aggregated:
        raise EvaluationError(
            "plot_metric_bars got no strategies; pass {strategy: {metric: {'mean', 'std'}}}."
        )
    names, means, stds = [], [], []
    for name, values in aggregated.items():
        if metric not in values:
            raise EvaluationError(f"Strategy {name!r} has no {metric!r}; it reports {sorted(values)}.")
        cell = values[metric]
        if isinstance(cell, Mapping):
            means.append(float(cell["mean"]))
            stds.append(float(cell.get("std") or 0.0))
        else:
            means.append(float(cell))
            stds.append(0.0)
        names.append(str(name))
    fig = _figure(max(4.0, 0.9 * len(names) + 1.5), 3.6)
    ax = fig.add_subplot(1, 1, 1)
    positions = np.arange(len(names))
    ax.bar(positions, means, yerr=stds, capsize=4, color="#4C72B0", edgecolor="black", linewidth=0.5)
    for x, m, s in zip(positions, means, stds, strict=True):
        ax.text(x, m + s + 0.01, f"{m:.3f}", ha="center", va="bottom", fontsize=8)
    ax.set_xticks(positions)
    ax.set_xticklabels(names, rotation=30, ha="right")
    ax.set_ylabel(metric)
    ax.set_ylim(0, max(1.0, max(m + s for m, s in zip(means, stds, strict=True)) * 1.1))
    ax.set_title(title or metric)
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


def _matrix(name: str, vectors: Any, dim: int | None) -> np.ndarray:
    if vectors is None:
        return np.zeros((0, dim or 0))
    array = np.asarray(vectors, dtype=np.float64)
    if array.ndim == 1:
        array = array[None, :] if array.size else np.zeros((0, dim or 0))
    if array.ndim != 2 or (array.shape[0] and dim is not None and array.shape[1] != dim):
        raise EvaluationError(
            f"{name} must be vectors of dimension {dim}, got an array of shape {array.shape}."
        )
    if not np.all(np.isfinite(array)):
        raise EvaluationError(f"{name} holds NaN or infinite values.")
    return array.reshape(-1, dim) if dim is not None else array


def plot_pca_neighbourhood(
    query_vec: Any,
    positive_vecs: Any,
    negative_vecs: Any,
    other_vecs: Any,
    path: str | Path,
    title: str = "",
) -> Path:
    """2-D PCA picture of one query, its positives, its hard negatives and other documents (paper, Fig. 2).

    PCA is fitted on all the given vectors together; the legend reports the variance the two axes keep.

    Args:
        query_vec: the query embedding, shape ``(dim,)``.
        positive_vecs: positive document embeddings, ``(n_pos, dim)`` or ``(dim,)``.
        negative_vecs: hard-negative embeddings, ``(n_neg, dim)`` (may be empty).
        other_vecs: background documents, ``(n_other, dim)`` (may be empty or ``None``).
        path: output image (``.png``).
        title: figure title.

    Returns:
        The path written.

    Raises:
        EvaluationError: vectors of different dimensions, no positive, NaN or infinite values.
    """
    query = np.asarray(query_vec, dtype=np.float64).reshape(-1)
    if query.size == 0 or not np.all(np.isfinite(query)):
        raise EvaluationError("query_vec must be a non-empty finite vector.")
    dim = query.size
    positives = _matrix("positive_vecs", positive_vecs, dim)
    negatives = _matrix("negative_vecs", negative_vecs, dim)
    others = _matrix("other_vecs", other_vecs, dim)
    if positives.shape[0] == 0:
        raise EvaluationError("plot_pca_neighbourhood needs at least one positive vector.")
    points = np.vstack([query[None, :], positives, negatives, others])
    centred = points - points.mean(axis=0)
    _, singular, components = np.linalg.svd(centred, full_matrices=False)
    coords = centred @ components[:2].T
    if coords.shape[1] < 2:
        coords = np.hstack([coords, np.zeros((coords.shape[0], 2 - coords.shape[1]))])
    variance = singular**2
    kept = float(variance[:2].sum() / variance.sum()) if variance.sum() > 0 else 1.0
    n_pos, n_neg = positives.shape[0], negatives.shape[0]
    q_xy = coords[0]
    pos_xy = coords[1 : 1 + n_pos]
    neg_xy = coords[1 + n_pos : 1 + n_pos + n_neg]
    other_xy = coords[1 + n_pos + n_neg :]

    fig = _figure(5.5, 4.5)
    ax = fig.add_subplot(1, 1, 1)
    if len(other_xy):
        ax.scatter(
            other_xy[:, 0], other_xy[:, 1], s=8, c="#BBBBBB", label=f"other documents ({len(other_xy)})"
        )
    for xy, colour in [(p, "#2CA02C") for p in pos_xy] + [(n, "#D62728") for n in neg_xy]:
        ax.plot([q_xy[0], xy[0]], [q_xy[1], xy[1]], color=colour, linewidth=0.6, alpha=0.6)
    if len(neg_xy):
        ax.scatter(
            neg_xy[:, 0], neg_xy[:, 1], s=60, marker="X", c="#D62728", label=f"hard negatives ({n_neg})"
        )
    ax.scatter(
        pos_xy[:, 0], pos_xy[:, 1], s=70, marker="o", c="#2CA02C", edgecolors="black", label="positive"
    )
    ax.scatter([q_xy[0]], [q_xy[1]], s=160, marker="*", c="#1F77B4", edgecolors="black", label="query")
    ax.set_xlabel("PC 1")
    ax.set_ylabel("PC 2")
    ax.set_title(title or "query neighbourhood (PCA)")
    ax.legend(loc="best", fontsize=8, title=f"2 PCs keep {kept:.0%} of variance", title_fontsize=8)
    ax.grid(alpha=0.3)
    return _save(fig, path)
