"""Paired significance test for per-query metric values of two systems on the same queries."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Mapping, Sequence

import numpy as np

from hn_plugins.metrics import EvaluationError

logger = logging.getLogger(__name__)

__all__ = ["compare_rows", "paired_permutation_test"]

_EXACT_LIMIT = 16  # 2**16 sign patterns: enumerate them instead of sampling


def paired_permutation_test(
    a: Sequence[float] | np.ndarray,
    b: Sequence[float] | np.ndarray,
    n_resamples: int = 10000,
    seed: int = 0,
) -> float:
    """Two-sided paired permutation (sign-flip) test of the mean difference ``mean(a - b)``.

    Under the null hypothesis the two systems are exchangeable on each query, so each per-query difference is
    equally likely to have either sign. The p-value is the share of sign patterns whose absolute mean
    difference is at least the observed one. With ``n <= 16`` (or ``n <= 20`` and ``2**n <= n_resamples``) all
    patterns are enumerated (exact); otherwise ``n_resamples`` random patterns are drawn and the observed one
    is counted too, ``(hits + 1) / (n_resamples + 1)``, as ``scipy.stats.permutation_test`` does, so p is
    never 0.

    Args:
        a: per-query values of system A (e.g. MRR@10 per query), in the same query order as ``b``.
        b: per-query values of system B.
        n_resamples: random sign patterns when not exact.
        seed: random seed.

    Returns:
        The p-value in (0, 1]; 1.0 when the systems agree on every query.

    Raises:
        ValueError: different lengths, no values, non-finite values or ``n_resamples < 1``.

    Example:
        >>> paired_permutation_test([0.5, 1.0, 0.0], [0.5, 1.0, 0.0])
        1.0
        >>> paired_permutation_test([1, 1, 1, 1, 1], [0, 0, 0, 0, 0])  # 2 of 32 sign patterns reach 1
        0.0625
    """
    x = np.asarray(a, dtype=np.float64).reshape(-1)
    y = np.asarray(b, dtype=np.float64).reshape(-1)
    if x.shape != y.shape:
        raise ValueError(
            f"paired_permutation_test needs one value per query for both systems; got {x.size} and {y.size} "
            "values. Align them by query id first."
        )
    if x.size == 0:
        raise ValueError(
            "paired_permutation_test got no values; pass the per-query metric values of both systems."
        )
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise ValueError("paired_permutation_test got NaN or infinite values; check the per-query metrics.")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}.")
    diff = x - y
    n = diff.size
    observed = abs(diff.mean())
    tolerance = 1e-12 * max(1.0, observed)
    if not np.any(diff):
        return 1.0
    if n <= _EXACT_LIMIT or (n <= 20 and 2**n <= n_resamples):
        signs = np.array(list(itertools.product((1.0, -1.0), repeat=n)))
        stats = np.abs(signs @ diff) / n
        return float(np.mean(stats >= observed - tolerance))
    rng = np.random.default_rng(seed)
    hits = 0
    chunk = 4096
    done = 0
    while done < n_resamples:
        size = min(chunk, n_resamples - done)
        signs = rng.choice((-1.0, 1.0), size=(size, n))
        hits += int(np.sum(np.abs(signs @ diff) / n >= observed - tolerance))
        done += size
    return (hits + 1) / (n_resamples + 1)


def compare_rows(
    per_query: Mapping[str, Mapping[str, Mapping[str, float]]],
    metrics: Sequence[str],
    baseline: str,
    metric: str,
    n_resamples: int = 10000,
    seed: int = 0,
) -> dict[str, dict[str, float]]:
    """Each row of ``per_query`` (``{row: {query_id: {metric: value}}}``) against ``baseline`` on ``metric``: the
    mean difference over the baseline's queries and the paired permutation p-value.

    Raises:
        ValueError: unknown row or metric (``EvaluationError`` is a ``ValueError``).

    Example:
        >>> rows = {"bm25": {"q1": {"mrr@10": 0.5}, "q2": {"mrr@10": 0.0}},
        ...         "ours": {"q1": {"mrr@10": 1.0}, "q2": {"mrr@10": 0.5}}}
        >>> compare_rows(rows, ["mrr@10"], "bm25", "mrr@10")
        {'ours': {'delta': 0.5, 'p_value': 0.5}}
    """
    if baseline not in per_query:
        raise EvaluationError(f"No row {baseline!r} in the report; rows are {list(per_query)}.")
    if metric not in metrics:
        raise EvaluationError(f"Metric {metric!r} was not computed; the report has {list(metrics)}.")
    base = per_query[baseline]
    qids = list(base)
    out: dict[str, dict[str, float]] = {}
    for name, rows in per_query.items():
        if name == baseline:
            continue
        a = [rows[q][metric] for q in qids]
        b = [base[q][metric] for q in qids]
        out[name] = {
            "delta": float(np.mean(a) - np.mean(b)),
            "p_value": paired_permutation_test(a, b, n_resamples=n_resamples, seed=seed),
        }
    return out
