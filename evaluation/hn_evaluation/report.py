"""Reports: JSON and Markdown files of evaluation results, and mean ± std over seeds."""

from __future__ import annotations

import json
import logging
import math
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .metrics import EvaluationError

logger = logging.getLogger(__name__)

__all__ = [
    "aggregate_seed_rows",
    "aggregate_seeds",
    "format_markdown_table",
    "to_jsonable",
    "write_report_json",
    "write_report_markdown",
]


def to_jsonable(value: Any) -> Any:
    """A copy of ``value`` that ``json.dump`` accepts (numpy values, tuples, sets and paths converted).

    Objects with a ``to_dict()`` method (e.g. :class:`hn_evaluation.rerank.RerankReport`) are converted first.

    Raises:
        EvaluationError: a value has no JSON form (names its type), or a float is NaN/infinite.
    """
    if hasattr(value, "to_dict") and callable(value.to_dict):
        return to_jsonable(value.to_dict())
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted(to_jsonable(v) for v in value)
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if isinstance(value, np.generic):
        return to_jsonable(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        raise EvaluationError(f"Report value {value!r} is not a finite number; JSON has no NaN/Infinity.")
    if isinstance(value, Path):
        return str(value)
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    raise EvaluationError(
        f"Cannot write a {type(value).__name__} to a JSON report; convert it to numbers/strings."
    )


def _atomic_write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_report_json(report_dict: Any, path: str | Path) -> Path:
    """Write a report as indented JSON, atomically (a reader never sees half a file).

    Args:
        report_dict: a dict (e.g. ``RerankReport.to_dict()``) or an object with ``to_dict()``.
        path: the output file; parent folders are created.

    Returns:
        The path written.

    Example:
        >>> import tempfile, json, pathlib
        >>> out = pathlib.Path(tempfile.mkdtemp()) / "r.json"
        >>> p = write_report_json({"rows": {"none": {"mrr@10": np.float32(0.5)}}}, out)
        >>> json.loads(p.read_text())["rows"]["none"]["mrr@10"]
        0.5
    """
    data = to_jsonable(report_dict)
    return _atomic_write(Path(path), json.dumps(data, indent=1, ensure_ascii=False) + "\n")


def aggregate_seeds(per_seed: Sequence[Mapping[str, float]]) -> dict[str, dict[str, Any]]:
    """Mean and sample standard deviation (``ddof=1``; 0 for one seed) of each metric over seeds.

    Args:
        per_seed: one ``{metric: value}`` per seed (e.g. ``report.rows["paper"]`` of each seed's run).

    Returns:
        ``{metric: {"mean": float, "std": float, "values": [per-seed values]}}``.

    Raises:
        EvaluationError: no seeds, or seeds that do not report the same metrics.

    Example:
        >>> aggregate_seeds([{"mrr@10": 0.5}, {"mrr@10": 0.7}])["mrr@10"]["mean"]
        0.6
    """
    if not per_seed:
        raise EvaluationError("aggregate_seeds got no seeds; pass one {metric: value} dict per seed.")
    names = list(per_seed[0])
    for i, values in enumerate(per_seed):
        if set(values) != set(names):
            raise EvaluationError(
                f"Seed {i} reports metrics {sorted(values)}, seed 0 reports {sorted(names)}; evaluate every "
                "seed with the same metrics."
            )
    out: dict[str, dict[str, Any]] = {}
    for name in names:
        seed_values = [float(seed[name]) for seed in per_seed]
        out[name] = {
            "mean": float(np.mean(seed_values)),
            "std": float(np.std(seed_values, ddof=1)) if len(seed_values) > 1 else 0.0,
            "values": seed_values,
        }
    return out


def aggregate_seed_rows(
    per_seed_rows: Sequence[Mapping[str, Mapping[str, float]]],
) -> dict[str, dict[str, Any]]:
    """:func:`aggregate_seeds` for every row.

    ``[{row: {metric: value}}, ...]`` (one dict per seed) -> ``{row: {metric: {"mean", "std", "values"}}}``.

    Raises:
        EvaluationError: seeds with different rows.

    Example:
        >>> agg = aggregate_seed_rows([{"bm25": {"mrr@10": 0.5}}, {"bm25": {"mrr@10": 0.5}}])
        >>> agg["bm25"]["mrr@10"]["std"]
        0.0
    """
    if not per_seed_rows:
        raise EvaluationError(
            "aggregate_seed_rows got no seeds; pass one {row: {metric: value}} dict per seed."
        )
    rows = list(per_seed_rows[0])
    for i, seed_rows in enumerate(per_seed_rows):
        if set(seed_rows) != set(rows):
            raise EvaluationError(
                f"Seed {i} has rows {sorted(seed_rows)}, seed 0 has {sorted(rows)}; use the same rows."
            )
    return {row: aggregate_seeds([seed_rows[row] for seed_rows in per_seed_rows]) for row in rows}


def _cell(value: Any, digits: int) -> str:
    if isinstance(value, Mapping):
        if "mean" not in value:
            raise EvaluationError(
                f"A table cell must be a number or {{'mean', 'std'}}, got keys {sorted(value)}."
            )
        std = value.get("std")
        return f"{value['mean']:.{digits}f}" + (f" ± {std:.{digits}f}" if std is not None else "")
    if value is None:
        return "–"
    return f"{float(value):.{digits}f}"


def format_markdown_table(
    rows: Mapping[str, Mapping[str, Any]],
    metrics: Sequence[str] | None = None,
    digits: int = 3,
    label: str = "row",
) -> str:
    """A Markdown table of rows x metrics; cells are numbers or ``{"mean", "std"}`` (shown as ``mean ± std``).

    Example:
        >>> print(format_markdown_table({"bm25": {"mrr@10": 0.5523}}))
        | row | mrr@10 |
        |---|---|
        | bm25 | 0.552 |
    """
    if not rows:
        raise EvaluationError("Nothing to tabulate: the report has no rows.")
    if metrics is None:
        metrics = list(dict.fromkeys(m for values in rows.values() for m in values))
    lines = [f"| {label} | " + " | ".join(metrics) + " |", "|---|" + "---|" * len(metrics)]
    for name, values in rows.items():
        lines.append(f"| {name} | " + " | ".join(_cell(values.get(m), digits) for m in metrics) + " |")
    return "\n".join(lines)


def write_report_markdown(
    report: Any,
    path: str | Path,
    *,
    title: str | None = None,
    metrics: Sequence[str] | None = None,
    digits: int = 3,
) -> str:
    """Write a Markdown report and return its text.

    Args:
        report: a ``RerankReport``, its ``to_dict()`` (rows, and when present the short/long split and speed),
            or rows only: ``{row: {metric: value}}`` or seed aggregates ``{row: {metric: {"mean", "std",
            ...}}}`` from :func:`aggregate_seed_rows` (cells shown as ``mean ± std``).
        path: the output ``.md`` file; parent folders are created.
        title: a first-level heading (default: the report's dataset, or "Evaluation").
        metrics: columns, in order (default: all, in the order found).
        digits: decimals shown.

    Example:
        >>> import tempfile, pathlib
        >>> text = write_report_markdown({"bm25": {"mrr@10": {"mean": 0.55, "std": 0.01}}},
        ...                              pathlib.Path(tempfile.mkdtemp()) / "r.md")
        >>> "0.550 ± 0.010" in text
        True
    """
    data = report.to_dict() if hasattr(report, "to_dict") else report
    if not isinstance(data, Mapping):
        raise EvaluationError(
            f"write_report_markdown needs a report dict or RerankReport, got {type(report)}."
        )
    rows = data.get("rows", data)
    metrics = list(metrics) if metrics is not None else list(data.get("metrics") or []) or None
    heading = title or (f"Evaluation: {data['dataset']}" if data.get("dataset") else "Evaluation")
    parts = [f"# {heading}", ""]
    if data.get("top_k"):
        parts += [f"Rerankers re-score the first stage's top {data['top_k']} candidates per query.", ""]
    parts += [format_markdown_table(rows, metrics, digits), ""]
    short_long = data.get("short_long")
    if short_long and short_long.get("groups"):
        parts += [
            f"## Short vs long positive documents (threshold {short_long['threshold']:g} "
            f"{short_long.get('length_unit', 'tokens')})",
            "",
        ]
        for group, info in short_long["groups"].items():
            parts.append(f"**{group}** ({info['n_queries']} queries)")
            parts.append("")
            parts.append(
                format_markdown_table(info["rows"], metrics, digits) if info["rows"] else "(no queries)"
            )
            parts.append("")
    speed = data.get("speed")
    if speed:
        parts += [
            "## Reranking speed",
            "",
            "| row | documents | seconds | documents/s |",
            "|---|---|---|---|",
        ]
        for name, s in speed.items():
            dps = "–" if s.get("docs_per_second") is None else f"{s['docs_per_second']:.1f}"
            parts.append(
                f"| {name} | {int(s.get('documents') or 0)} | {float(s.get('seconds') or 0):.2f} | {dps} |"
            )
        parts.append("")
    significance = data.get("significance")
    if significance:
        parts += ["## Significance (paired permutation test)", "", "| row | Δ | p |", "|---|---|---|"]
        for name, s in significance.items():
            parts.append(f"| {name} | {s['delta']:+.{digits}f} | {s['p_value']:.4f} |")
        parts.append("")
    text = "\n".join(parts)
    _atomic_write(Path(path), text)
    return text
