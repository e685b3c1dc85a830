"""A benchmark report read on a subset of its test queries, from the per-query values the report keeps.

The rows of a subset report are the same trained models as the full report's, scored on fewer queries: e.g.
SciFact's ``test-unseen`` split, the test claims none of whose positives is a train positive.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

from .metrics import EvaluationError
from .report import aggregate_seed_rows, write_report_json
from .significance import compare_rows

logger = logging.getLogger(__name__)

ANCHORS = ("default", "paper")


def subset_report(
    report: Mapping[str, Any],
    query_ids: Collection[str],
    split: str,
    n_resamples: int = 10000,
) -> dict[str, Any]:
    """The rows of a ``hn benchmark`` report restricted to ``query_ids``: per-seed mean ± std and paired tests.

    Only the per-query metric the report keeps (``per_query.metric``, MRR@10) can be restricted; the result has
    that metric alone. ``default`` and ``paper`` are tested against every other row as in the full report.

    Args:
        report: a report dict as ``run_benchmark`` writes it (``per_query.per_seed`` is needed).
        query_ids: the queries to keep; each must be a test query of the report.
        split: a name for the subset (e.g. ``"test-unseen"``), written into the result.
        n_resamples: permutations of each paired test.

    Returns:
        ``{"dataset", "split", "queries", "metric", "config", "rows", "significance", "per_query"}``; ``config``
        is the full report's (seeds, settings), so a subset report says how its rows were trained.

    Raises:
        EvaluationError: the report has no per-seed per-query values, or a query id is not in it.

    Example:
        >>> rep = {"dataset": "d", "per_query": {"metric": "mrr@10", "per_seed": {
        ...     "none": [{"q1": 0.5, "q2": 0.0}], "default": [{"q1": 1.0, "q2": 1.0}]}}}
        >>> subset_report(rep, ["q1"], "one")["rows"]["default"]["mrr@10"]["mean"]
        1.0
    """
    per_query = report.get("per_query") or {}
    per_seed = per_query.get("per_seed")
    if not per_seed:
        raise EvaluationError(
            "The report has no per_query.per_seed values; re-run hn benchmark with this version to get them."
        )
    metric = str(per_query.get("metric", "mrr@10"))
    wanted = list(dict.fromkeys(str(q) for q in query_ids))
    if not wanted:
        raise EvaluationError(f"No queries given for the {split!r} subset.")
    first = next(iter(per_seed.values()))[0]
    missing = [q for q in wanted if q not in first]
    if missing:
        raise EvaluationError(
            f"{len(missing)} of the {split!r} queries are not test queries of the report (e.g. {missing[:3]}); "
            "pass ids of the split the report was run on."
        )
    n_seeds = min(len(v) for v in per_seed.values())
    per_seed_rows = [
        {row: {metric: sum(values[i][q] for q in wanted) / len(wanted)} for row, values in per_seed.items()}
        for i in range(n_seeds)
    ]
    aggregated = aggregate_seed_rows(per_seed_rows)
    mean_per_query = {
        row: {q: {metric: sum(v[i][q] for i in range(n_seeds)) / n_seeds} for q in wanted}
        for row, v in per_seed.items()
    }
    significance = {
        anchor: {
            other: values
            for other, values in _against(mean_per_query, anchor, metric, n_resamples).items()
            if other != anchor
        }
        for anchor in ANCHORS
        if anchor in mean_per_query
    }
    logger.info("%s: %d queries, %d rows, %d seeds", split, len(wanted), len(per_seed), n_seeds)
    return {
        "dataset": report.get("dataset"),
        "split": split,
        "queries": len(wanted),
        "metric": metric,
        "config": dict(report.get("config") or {}),
        "rows": {
            row: {metric: {"mean": a[metric]["mean"], "std": a[metric]["std"]}}
            for row, a in aggregated.items()
        },
        "significance": significance,
        "per_query": {
            "metric": metric,
            "per_seed": {
                row: [{q: v[i][q] for q in wanted} for i in range(n_seeds)] for row, v in per_seed.items()
            },
        },
    }


def _against(
    mean_per_query: Mapping[str, Mapping[str, Mapping[str, float]]],
    anchor: str,
    metric: str,
    n_resamples: int,
) -> dict[str, dict[str, float]]:
    """``anchor`` minus every other row, with the paired permutation p-value (the sign of the full report's)."""
    out = {}
    for other, values in compare_rows(
        mean_per_query, [metric], anchor, metric, n_resamples=n_resamples
    ).items():
        out[other] = {"delta": -values["delta"], "p_value": values["p_value"]}
    return out


def write_subset_report(
    report_path: str | Path, query_ids: Collection[str], split: str, out_dir: str | Path
) -> dict[str, Any]:
    """Read ``report_path`` (a ``report.json``), restrict it to ``query_ids`` and write ``out_dir/report.json``.

    Returns:
        The subset report, as :func:`subset_report` builds it.
    """
    import json

    report = json.loads(Path(report_path).read_text(encoding="utf-8"))
    subset = subset_report(report, query_ids, split)
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    write_report_json(subset, Path(out_dir) / "report.json")
    return subset
