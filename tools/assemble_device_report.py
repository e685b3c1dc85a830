"""Complete one dataset's benchmark report from two GPU runs that each did part of it.

The device's 15-minute sessions cannot run every strategy on every dataset at once: one run finished every row
but ``default`` (its process logs carry each finished row's test metrics, one line per row and seed, see
``summarize_device_logs.py``), a later run did ``none``, ``zero-shot`` and ``default`` and wrote a merged
``report.json``. This writes one report with every row: the rows of ``report.json`` as they are (with per-query
values and significance), plus the rows found only in the logs (mean and std over their seeds, no per-query
values), with the quality bar computed over all of them by :func:`hn_evaluation.benchmark.quality_bar`.
``--logs`` takes several folders when the missing rows come from more than one run (cisi: ``random`` ... ``dense-topk``
from one, ``st``, ``paper`` and ``positive-aware`` from a later one).

Rows present in both, or logged by two runs, must agree seed by seed (``none`` and ``zero-shot`` are deterministic,
so this checks that the runs evaluated the same test set the same way); a disagreement above ``--tolerance`` stops
the script.

Usage::

    python tools/assemble_device_report.py --report /tmp/dev1/merged/benchmark_cranfield \
        --logs benchmarks/results/device_partial_cross_fit --dataset cranfield \
        --out benchmarks/results/benchmark_cranfield
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
from pathlib import Path
from typing import Any

from hn_evaluation.benchmark import format_benchmark_markdown, quality_bar
from hn_evaluation.plots import plot_metric_bars
from hn_evaluation.report import aggregate_seeds, write_report_json

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a file: the repository root makes `experiments` and `tools` importable
    sys.path.insert(0, str(ROOT))

from tools.summarize_device_logs import NAME, logged_rows  # noqa: E402

logger = logging.getLogger("assemble_device_report")


def _rows_logged_in(
    folders: list[Path], dataset: str, tolerance: float
) -> tuple[dict[str, dict[int, dict[str, float]]], list[str]]:
    """The rows logged in any of ``folders``, joined, and the log paths read; a row and seed logged twice must agree."""
    logged: dict[str, dict[int, dict[str, float]]] = {}
    source: dict[tuple[str, int], Path] = {}
    log_paths = []
    for folder in folders:
        for row, by_seed in logged_rows(folder).get(dataset, {}).items():
            for seed, metrics in by_seed.items():
                earlier = logged.setdefault(row, {}).get(seed)
                if earlier is not None and any(abs(earlier[m] - v) > tolerance for m, v in metrics.items()):
                    raise SystemExit(
                        f"{dataset} {row} seed {seed}: {earlier} in {source[row, seed]}, {metrics} in {folder}; "
                        "the runs do not evaluate alike, so their rows cannot share one table."
                    )
                logged[row][seed] = metrics
                source[row, seed] = folder
        log_paths += [
            f"{folder.as_posix()}/{log.name}"
            for log in sorted(folder.glob("run*-seed*.log"))
            if (match := NAME.search(log.name)) and match.group(1) == dataset
        ]
    return logged, log_paths


def assemble(
    report_dir: Path, logs: Path | list[Path], dataset: str, out: Path, tolerance: float = 1e-4
) -> dict[str, Any]:
    report = json.loads((report_dir / "report.json").read_text(encoding="utf-8"))
    seeds = list(report["config"]["seeds"])
    folders = [logs] if isinstance(logs, Path) else list(logs)
    logged, log_paths = _rows_logged_in(folders, dataset, tolerance)
    if not logged:
        raise SystemExit(
            f"No finished rows for {dataset} in {', '.join(map(str, folders))}; check --logs and --dataset."
        )
    # rows in both: the same values seed by seed
    for row in sorted(set(logged) & set(report["rows"])):
        for i, seed in enumerate(seeds):
            if seed not in logged[row]:
                continue
            new = report["strategies"][row]["per_seed"][i]["metrics"]
            for metric, value in logged[row][seed].items():
                if abs(new[metric] - value) > tolerance:
                    raise SystemExit(
                        f"{dataset} {row} seed {seed} {metric}: {value} in the logs, {new[metric]} in the report; "
                        "the two runs do not evaluate alike, so their rows cannot share one table."
                    )
    added = {}
    for row, by_seed in logged.items():
        if row in report["rows"]:
            continue
        if sorted(by_seed) != sorted(seeds):
            logger.warning("%s: %s finished seeds %s only, not %s", dataset, row, sorted(by_seed), seeds)
        added[row] = {"seeds": sorted(by_seed), **aggregate_seeds([by_seed[s] for s in sorted(by_seed)])}
    rows = dict(report["rows"])
    for row, agg in added.items():
        rows[row] = {m: {"mean": v["mean"], "std": v["std"]} for m, v in agg.items() if m != "seeds"}
    controls = [r for r in rows if r.endswith("+fusion") or r.endswith("-no-fusion")]
    config = {**report["config"], "control_rows": controls}
    combined = {
        **report,
        "config": config,
        "rows": rows,
        "quality_bar": quality_bar(rows, controls),
        "rows_from_logs": {
            "rows": {
                r: {"seeds": a["seeds"], **{m: v for m, v in a.items() if m != "seeds"}}
                for r, a in added.items()
            },
            "logs": log_paths,
            "note": "finished rows logged by other runs' processes (stopped before writing report.json, or whose "
            "report holds other rows); mean and std over their seeds, no per-query values (not in significance or "
            "short_long)",
        },
    }
    out.mkdir(parents=True, exist_ok=True)
    main_rows = {r: v for r, v in rows.items() if r not in controls}
    plots = []
    for metric in ("mrr@10", "mrr@3"):
        path = out / f"{metric.replace('@', '_at_')}.png"
        plots.append(plot_metric_bars(main_rows, metric, path, title=f"{dataset}: {metric}").name)
    picture = report_dir / "pca_neighbourhood.png"
    if picture.is_file():
        shutil.copyfile(picture, out / picture.name)
        plots.append(picture.name)
    combined["plots"] = plots
    write_report_json(combined, out / "report.json")
    note = (
        "\n## Where the rows come from\n\n"
        f"`{'`, `'.join(report['rows'])}`: the run of `{report_dir.as_posix()}` (per-query values, significance and "
        f"short/long above). `{'`, `'.join(added)}`: the test metrics logged by the finished rows of other "
        f"runs' processes ({', '.join(combined['rows_from_logs']['logs'])}); mean and std over their seeds, no "
        f"per-query values. Rows found in more than one run agree seed by seed within {tolerance}.\n"
    )
    (out / "report.md").write_text(format_benchmark_markdown(combined) + note, encoding="utf-8")
    return combined


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--report", type=Path, required=True, help="folder of the merged report.json")
    parser.add_argument(
        "--logs",
        type=Path,
        nargs="+",
        required=True,
        help="folder(s) of other runs' process logs (run<n>_*.log)",
    )
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--tolerance", type=float, default=1e-4)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    combined = assemble(args.report, args.logs, args.dataset, args.out, args.tolerance)
    logger.info(
        "%s: %d rows, quality bar %s",
        args.dataset,
        len(combined["rows"]),
        json.dumps(combined["quality_bar"]),
    )


if __name__ == "__main__":
    main()
