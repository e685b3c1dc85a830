"""Finished benchmark reports put together: per-seed reports merged into one report over all their seeds
(:func:`merge_benchmark_reports`), and reports of the same seeds that ran different strategies joined into one
report with every row (:func:`join_benchmark_rows`). Both check that the reports ran the same benchmark and write
what one run of it would have written."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..metrics import EvaluationError
from .report import assemble_report
from .strategies import ALL_STRATEGIES

__all__ = ["join_benchmark_rows", "merge_benchmark_reports", "settings_differences"]


def _weighted_mean_dicts(values: Sequence[Mapping[str, float]], weights: Sequence[int]) -> dict[str, float]:
    pairs = [(v, w) for v, w in zip(values, weights, strict=True) if v]
    if not pairs:
        return {}
    total = sum(w for _, w in pairs)
    return {k: float(sum(v[k] * w for v, w in pairs) / total) for k in pairs[0][0]}


def _load_reports(
    reports: Sequence[str | os.PathLike[str] | Mapping[str, Any]], caller: str
) -> tuple[list[dict[str, Any]], list[Path | None]]:
    """The reports and the folder each was read from (``None`` for a report passed loaded)."""
    loaded: list[dict[str, Any]] = []
    folders: list[Path | None] = []
    for r in reports:
        if isinstance(r, Mapping):
            loaded.append(dict(r))
            folders.append(None)
        else:
            path = Path(r)
            loaded.append(json.loads(path.read_text(encoding="utf-8")))
            folders.append(path.parent)
    if not loaded:
        raise EvaluationError(f"{caller}() needs at least one report.")
    return loaded, folders


def _require_per_seed_values(report: Mapping[str, Any]) -> None:
    """Refuse a report without per-seed per-query values (written before they were kept): nothing to test on."""
    if "per_seed" not in (report.get("per_query") or {}):
        raise EvaluationError(
            f"Report of {report.get('dataset')} has no per-seed per-query values; rerun it with this version."
        )


_PER_RUN_SETTINGS = frozenset({"seeds", "train", "test"})
_STRATEGY_SETTINGS = frozenset({"strategies", "control_rows"})


def settings_differences(
    config: Mapping[str, Any], other: Mapping[str, Any], rows_in_common: bool = False
) -> list[str]:
    """The settings two benchmark reports' ``config`` disagree on, sorted (seeds and split sizes aside; the
    strategies aside too with ``rows_in_common``). Empty: the reports ran the same benchmark.

    Example:
        >>> settings_differences({"seeds": [0], "epochs": 1}, {"seeds": [1], "epochs": 2})
        ['epochs']
        >>> settings_differences({"strategies": ["a"]}, {"strategies": ["b"]}, rows_in_common=True)
        []
    """
    ignore = _PER_RUN_SETTINGS | (_STRATEGY_SETTINGS if rows_in_common else frozenset())
    keys = (set(config) | set(other)) - ignore
    return sorted(k for k in keys if (k in config) != (k in other) or config.get(k) != other.get(k))


def _check_same_benchmark(
    first: Mapping[str, Any], report: Mapping[str, Any], rows_in_common: bool, action: str
) -> None:
    """Refuse ``report`` when it lacks per-seed values or ran other settings than ``first`` (``action``, "merge" or
    "join", names what the caller does in the message)."""
    _require_per_seed_values(report)
    diff = settings_differences(first["config"], report["config"], rows_in_common)
    if diff:
        hint = (
            " (to merge the rows they have in common, pass rows_in_common=True / --rows-in-common)"
            if set(diff) <= _STRATEGY_SETTINGS
            else ""
        )
        raise EvaluationError(
            f"Reports differ in settings {diff}; {action} only runs of the same benchmark{hint}."
        )


def _merged_seeds(loaded: Sequence[Mapping[str, Any]], rows_in_common: bool = False) -> list[int]:
    """Every report's seeds, in order, after checking that the reports can be merged (with ``rows_in_common``, the
    reports may have run different strategies)."""
    seeds: list[int] = []
    for r in loaded:
        _check_same_benchmark(loaded[0], r, rows_in_common, "merge")
        overlap = set(seeds) & set(r["config"]["seeds"])
        if overlap:
            raise EvaluationError(f"Seeds {sorted(overlap)} appear in more than one report.")
        seeds += list(r["config"]["seeds"])
    return seeds


def _merged_strategy(parts: Sequence[Mapping[str, Any]], weights: Sequence[int]) -> dict[str, Any]:
    """One result's ``strategies`` entry over the merged reports."""
    merged: dict[str, Any] = {
        "per_seed": [ps for p in parts for ps in p["per_seed"]],
        "mining": parts[0].get("mining"),
        "training": [t for p in parts for t in p.get("training") or []],
        "short_long": {
            g: _weighted_mean_dicts([p["short_long"].get(g) or {} for p in parts], weights)
            for g in ("short", "long")
        },
        "speed": [x for p in parts for x in p.get("speed") or []],
    }
    if parts[0].get("fusion"):
        merged["fusion"] = parts[0]["fusion"]
    per_seed_mining = [m for p in parts for m in p.get("mining_per_seed") or []]
    if per_seed_mining:
        merged["mining_per_seed"] = per_seed_mining
    return merged


def _copy_pca_picture(folders: Sequence[Path | None], out: Path) -> list[Path]:
    """The first report folder's PCA picture, copied to ``out`` (``[]`` when there is none)."""
    for folder in folders:
        picture = folder / "pca_neighbourhood.png" if folder is not None else None
        if picture is not None and picture.is_file():
            target = out / picture.name
            if picture.resolve() != target.resolve():
                shutil.copyfile(picture, target)
            return [target]
    return []


def _write_combined(
    loaded: Sequence[Mapping[str, Any]],
    folders: Sequence[Path | None],
    out_dir: str | os.PathLike[str],
    config: dict[str, Any],
    done: Sequence[str],
    per_query: Mapping[str, Sequence[Mapping[str, float]]],
    strategies_out: dict[str, Any],
    n_resamples: int,
    label: Callable[[Mapping[str, Any]], str],
) -> dict[str, Any]:
    """Write the report combined from ``loaded`` to ``out_dir``: their failures, each one's timings under its
    ``label`` (its seeds or its strategies), the first report's metrics and short/long split, the PCA picture."""
    failed: dict[str, str] = {}
    timings: dict[str, float] = {}
    for r in loaded:
        failed.update(r.get("failed") or {})
        for k, v in (r.get("timings_s") or {}).items():
            timings[f"{label(r)}/{k}"] = v
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    first = loaded[0]
    return assemble_report(
        out,
        config,
        list(first["metrics"]),
        done,
        per_query,
        strategies_out,
        (first.get("short_long") or {}).get("info"),
        failed,
        timings,
        n_resamples,
        _copy_pca_picture(folders, out),
    )


def merge_benchmark_reports(
    reports: Sequence[str | os.PathLike[str] | Mapping[str, Any]],
    out_dir: str | os.PathLike[str],
    n_resamples: int = 10000,
    rows_in_common: bool = False,
) -> dict[str, Any]:
    """Merge reports of the same benchmark run on different seeds (e.g. one process or machine per seed).

    Every report must come from :func:`~hn_evaluation.benchmark.run_benchmark` with the same dataset and settings
    and disjoint seeds; the result is the report a single run over all those seeds writes (rows, significance,
    quality bar, plots), in ``out_dir``, for the rows every report has. The PCA picture of the first report's
    folder is copied over when there is one.

    Args:
        reports: ``report.json`` paths or loaded reports.
        out_dir: where the merged ``report.json``, ``report.md`` and plots go.
        n_resamples: permutations of the paired significance tests.
        rows_in_common: accept reports that ran different strategies (e.g. seed 0 of a run of every strategy and
            seeds 1-2 of a run of two): the merged report keeps the strategies all of them ran.

    Raises:
        EvaluationError: no report, different datasets or settings (different strategies too, unless
            ``rows_in_common``), overlapping seeds, or no row in common.

    Example:
        >>> merged = merge_benchmark_reports(["b/seed0/report.json", "b/seed1/report.json"], "b")  # doctest: +SKIP
        >>> merged["config"]["seeds"]  # doctest: +SKIP
        [0, 1]
    """
    loaded, folders = _load_reports(reports, "merge_benchmark_reports")
    seeds = _merged_seeds(loaded, rows_in_common)
    first = loaded[0]
    done = [n for n in first["rows"] if all(n in r["rows"] for r in loaded)]
    if not done:
        raise EvaluationError("The reports have no row in common; merge runs of the same strategies.")
    config = {**first["config"], "seeds": seeds}
    if rows_in_common:
        config["strategies"] = [n for n in first["config"]["strategies"] if n in done]
        config["control_rows"] = [n for n in first["config"].get("control_rows", []) if n in done]
    weights = [len(r["config"]["seeds"]) for r in loaded]
    strategies_out = {n: _merged_strategy([r["strategies"][n] for r in loaded], weights) for n in done}
    per_query = {n: [v for r in loaded for v in r["per_query"]["per_seed"][n]] for n in done}
    return _write_combined(
        loaded,
        folders,
        out_dir,
        config,
        done,
        per_query,
        strategies_out,
        n_resamples,
        label=lambda r: f"seeds{'-'.join(map(str, r['config']['seeds']))}",
    )


def _report_position(name: str) -> int:
    """Where a row goes in a report: the position of the strategy it belongs to in ``ALL_STRATEGIES``
    (``bm25+fusion`` and ``default-no-fusion`` belong to ``bm25`` and ``default``; unknown rows go last)."""
    for i, strategy in sorted(enumerate(ALL_STRATEGIES), key=lambda x: -len(x[1])):
        if name == strategy or name.startswith((f"{strategy}+", f"{strategy}-", f"{strategy}@")):
            return i
    return len(ALL_STRATEGIES)


def _in_report_order(names: Iterable[str]) -> list[str]:
    """``names`` without repeats, in report order (a stable sort: rows of one strategy keep their order)."""
    return sorted(dict.fromkeys(names), key=_report_position)


def _same_values(
    a: Sequence[Mapping[str, float]], b: Sequence[Mapping[str, float]], tolerance: float
) -> bool:
    """Whether two rows' per-seed per-query values agree (same seeds, same queries, values within ``tolerance``)."""
    return len(a) == len(b) and all(
        x.keys() == y.keys() and all(abs(x[q] - y[q]) <= tolerance for q in x)
        for x, y in zip(a, b, strict=True)
    )


def join_benchmark_rows(
    reports: Sequence[str | os.PathLike[str] | Mapping[str, Any]],
    out_dir: str | os.PathLike[str],
    n_resamples: int = 10000,
    tolerance: float = 1e-9,
) -> dict[str, Any]:
    """Join reports of the same benchmark and seeds that ran different strategies (e.g. one process per strategy)
    into the report one run of all their strategies writes: every row of every report, with the significance
    tests and quality bar across all of them, in ``out_dir``.

    A row that several reports have (``none``, ``zero-shot``: the same computation in each run) must have the same
    per-query values on every seed; the first report's copy is kept.

    Args:
        reports: ``report.json`` paths or loaded reports, each over the same seeds in the same order.
        out_dir: where the joined ``report.json``, ``report.md`` and plots go.
        n_resamples: permutations of the paired significance tests.
        tolerance: the largest difference allowed between two reports' per-query values of a shared row.

    Returns:
        The joined report.

    Raises:
        EvaluationError: no report, different datasets or settings, different seeds, or a shared row whose values
            differ (the runs did not evaluate alike).

    Example:
        >>> joined = join_benchmark_rows(["a/report.json", "b/report.json"], "ab")  # doctest: +SKIP
        >>> list(joined["rows"])  # doctest: +SKIP
        ['none', 'bm25', 'paper', 'bm25+fusion', 'paper+fusion']
    """
    loaded, folders = _load_reports(reports, "join_benchmark_rows")
    first = loaded[0]
    seeds = list(first["config"]["seeds"])
    source: dict[str, int] = {}
    for i, r in enumerate(loaded):
        _check_same_benchmark(first, r, True, "join")
        if list(r["config"]["seeds"]) != seeds:
            raise EvaluationError(
                f"Report {i} ran seeds {r['config']['seeds']}, report 0 ran {seeds}; join reports of the same "
                "seeds (merge_benchmark_reports merges reports of different seeds first)."
            )
        for name in r["rows"]:
            if name not in source:
                source[name] = i
            elif not _same_values(
                loaded[source[name]]["per_query"]["per_seed"][name],
                r["per_query"]["per_seed"][name],
                tolerance,
            ):
                raise EvaluationError(
                    f"Row {name!r} differs between report {source[name]} and report {i}; the runs did not evaluate "
                    "alike (other data, first stage or code), so their rows cannot share one report."
                )
    controls = {c for r in loaded for c in r["config"].get("control_rows", [])}
    done = _in_report_order(n for n in source if n not in controls)
    done += _in_report_order(n for n in source if n in controls)
    config = {
        **first["config"],
        "strategies": _in_report_order(s for r in loaded for s in r["config"]["strategies"]),
        "control_rows": [n for n in done if n in controls],
    }
    return _write_combined(
        loaded,
        folders,
        out_dir,
        config,
        done,
        {n: loaded[source[n]]["per_query"]["per_seed"][n] for n in done},
        {n: dict(loaded[source[n]]["strategies"][n]) for n in done},
        n_resamples,
        label=lambda r: "-".join(r["config"]["strategies"]),
    )
