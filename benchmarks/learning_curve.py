"""Learning curve of the strategy benchmark: test MRR@10 of each row against the number of train questions.

Two steps, so that a GPU machine can run the sizes as parallel processes (``tools/run_device_benchmark.py`` with
``DATASETS=scifact@train50,scifact@train100,...``) and a CPU machine can run them one after another::

    # 1. train on nested seeded subsets (sizes: questions; "all" = the whole train split), one report per size
    python benchmarks/learning_curve.py run DATA OUT --sizes 50,100,200,400,all --seeds 0,1,2 \
        --strategies none,zero-shot,paper,default
    #    (a later run with other --seeds into the same OUT adds them: each size merges every seed under OUT/runs;
    #    "merge OUT" re-merges after seed<N>/report.json folders were copied in from another machine)
    # 2. one table, JSON and plot from the reports (OUT/benchmark_<dataset>@train<N>/report.json and
    #    OUT/benchmark_<dataset>/report.json for "all")
    python benchmarks/learning_curve.py assemble OUT --dataset scifact --rows default,paper,zero-shot+fusion
    #    (--extra OTHER_OUT, repeatable: rows a size's report lacks are read from another curve run of the same
    #    settings, e.g. `paper` run later with --strategies none,paper)

``assemble`` writes OUT/learning_curve.json, learning_curve.md and learning_curve.png. ``merge OUT
--rows-in-common`` merges seed reports that ran different strategies (the rows they share).
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

logger = logging.getLogger("learning_curve")

ROWS = ("default", "paper", "zero-shot+fusion", "zero-shot", "none")
_FOLDER = re.compile(r"^benchmark_(?P<dataset>.+?)(?:@train(?P<size>\d+))?$")
_SEED = re.compile(r"^seed(\d+)$")


def size_reports(folder: Path, dataset: str) -> dict[int | None, Path]:
    """``{train size: report.json}`` of one dataset under ``folder`` (``None``: the whole train split)."""
    found: dict[int | None, Path] = {}
    for path in sorted(folder.glob("benchmark_*/report.json")):
        match = _FOLDER.match(path.parent.name)
        if match and match["dataset"] == dataset:
            found[int(match["size"]) if match["size"] else None] = path
    if not found:
        raise FileNotFoundError(
            f"No benchmark_{dataset}[@train<N>]/report.json under {folder}; run `learning_curve.py run` first."
        )
    return found


def train_questions(report: Mapping[str, Any]) -> int | None:
    """The number of judged train questions of a report's whole train split (from its ``config.train``)."""
    match = re.search(r"judged=(\d+)", str(report.get("config", {}).get("train", "")))
    return int(match[1]) if match else None


def _check_same_settings(report: Mapping[str, Any], other: Mapping[str, Any], size: int | None) -> None:
    """Raise ValueError when two reports of one train size ran with different settings (strategies aside)."""
    from hn_evaluation.benchmark import settings_differences

    diff = settings_differences(report.get("config", {}), other.get("config", {}), rows_in_common=True)
    if diff:
        raise ValueError(
            f"The --extra report of train size {size or 'all'} ran with other settings {diff}; take extra rows "
            "only from a curve run with the same settings (e.g. the same --max-length and --epochs)."
        )


def curve(
    reports: Mapping[int | None, Mapping[str, Any]],
    rows: Sequence[str],
    extra: Sequence[Mapping[int | None, Mapping[str, Any]]] = (),
) -> dict[str, Any]:
    """MRR@10 mean ± std over seeds of each row at each train size, and the paired p-value of default vs
    zero-shot+fusion where the report has it.

    Args:
        reports: ``{train size or None: report dict}``.
        rows: the rows to read; a row missing from a report is left out of that size.
        extra: more ``{train size or None: report dict}`` from runs with the same settings; a row that a size's
            report lacks is read from the first of them that has it at that size.

    Returns:
        ``{"points": [{"train_size", "seeds", "rows": {row: {"mean", "std"}}, "row_seeds": {row: seeds},
        "p_default_vs_zero_shot_fusion"}]}`` sorted by size, the whole split last.

    Raises:
        ValueError: an extra report of a size ran with other settings than that size's report.
    """
    points = []
    for size in sorted(reports, key=lambda s: (s is None, s or 0)):
        report = reports[size]
        seeds = report.get("config", {}).get("seeds", [])
        sig = report.get("significance", {}).get("default", {}).get("zero-shot+fusion", {})
        values: dict[str, dict[str, float]] = {}
        row_seeds: dict[str, int] = {}
        for row in rows:
            sources = [report, *(e[size] for e in extra if size in e)]
            source = next((r for r in sources if row in r.get("rows", {})), None)
            if source is None:
                continue
            if source is not report:
                _check_same_settings(report, source, size)
            values[row] = dict(source["rows"][row]["mrr@10"])
            row_seeds[row] = len(source.get("config", {}).get("seeds", []))
        points.append(
            {
                "train_size": size if size is not None else train_questions(report),
                "whole_split": size is None,
                "seeds": len(seeds),
                "rows": values,
                "row_seeds": row_seeds,
                "p_default_vs_zero_shot_fusion": sig.get("p_value"),
            }
        )
    return {"metric": "mrr@10", "points": points}


def markdown(result: Mapping[str, Any], rows: Sequence[str]) -> str:
    """The curve as a markdown table: one line per train size, one column per row."""
    lines = [
        "| train questions | seeds | " + " | ".join(rows) + " | p (default vs zero-shot+fusion) |",
        "|---" * (len(rows) + 3) + "|",
    ]
    for point in result["points"]:
        cells = [_cell(point, r) for r in rows]
        p = point["p_default_vs_zero_shot_fusion"]
        size = f"{point['train_size']}{' (all)' if point['whole_split'] else ''}"
        lines.append(
            f"| {size} | {point['seeds']} | " + " | ".join(cells) + f" | {'-' if p is None else f'{p:.3g}'} |"
        )
    return "\n".join(lines) + "\n"


def _cell(point: Mapping[str, Any], row: str) -> str:
    """``mean ± std`` of a row at one size (its seed count when another run with fewer or more seeds gave it)."""
    if row not in point["rows"]:
        return "-"
    value = point["rows"][row]
    seeds = point.get("row_seeds", {}).get(row, point["seeds"])
    note = "" if seeds == point["seeds"] else f" ({seeds} seed{'s' if seeds != 1 else ''})"
    return f"{value['mean']:.3f} ± {value['std']:.3f}{note}"


def plot(result: Mapping[str, Any], rows: Sequence[str], path: Path, title: str) -> Path:
    """MRR@10 against train questions (log scale), one line with a ±std band per row."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for row in rows:
        pts = [
            (p["train_size"], p["rows"][row])
            for p in result["points"]
            if row in p["rows"] and p["train_size"]
        ]
        if not pts:
            continue
        xs = [x for x, _ in pts]
        means = [v["mean"] for _, v in pts]
        stds = [v["std"] for _, v in pts]
        ax.plot(xs, means, marker="o", label=row)
        ax.fill_between(
            xs,
            [m - s for m, s in zip(means, stds, strict=True)],
            [m + s for m, s in zip(means, stds, strict=True)],
            alpha=0.15,
        )
    ax.set_xscale("log")
    sizes = sorted({p["train_size"] for p in result["points"] if p["train_size"]})
    ax.set_xticks(sizes, [str(size) for size in sizes])
    ax.minorticks_off()
    ax.set_xlabel("train questions")
    ax.set_ylabel("test MRR@10")
    ax.set_title(title)
    if ax.get_legend_handles_labels()[0]:
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _load_sizes(folder: Path, dataset: str) -> dict[int | None, dict[str, Any]]:
    return {
        size: json.loads(path.read_text(encoding="utf-8"))
        for size, path in size_reports(folder, dataset).items()
    }


def assemble(folder: Path, dataset: str, rows: Sequence[str], extra: Sequence[Path] = ()) -> dict[str, Any]:
    """Read the reports of ``dataset`` under ``folder`` (rows they lack from the curve runs in ``extra``); write
    learning_curve.{json,md,png} in ``folder``."""
    reports = _load_sizes(folder, dataset)
    result = {"dataset": dataset, **curve(reports, rows, [_load_sizes(e, dataset) for e in extra])}
    (folder / "learning_curve.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    (folder / "learning_curve.md").write_text(markdown(result, rows), encoding="utf-8")
    plot(result, rows, folder / "learning_curve.png", f"{dataset}: test MRR@10 by train questions")
    return result


def run(data: Path, out: Path, sizes: Sequence[int | None], seeds: Sequence[int], strategies: Sequence[str],
        settings: Mapping[str, Any]) -> list[Path]:  # fmt: skip
    """Run the benchmark once per size and seed (nested subsets), then merge every seed of each size.

    Seeds already under ``OUT/runs/<name>/seed<N>`` (an earlier run, or reports copied from another machine) are
    merged with the new ones, so seeds can be added a few at a time.
    """
    from hn_evaluation.benchmark import BenchmarkSettings, run_benchmark

    written = []
    for size in sizes:
        name = f"benchmark_{data.name}" + (f"@train{size}" if size else "")
        for seed in seeds:
            folder = out / "runs" / name / f"seed{seed}"
            run_benchmark(data, list(strategies), [seed], folder,
                          settings=BenchmarkSettings(train_size=size, **settings))  # fmt: skip
        written.append(merge_seeds(out, name))
    return written


def seed_reports(runs: Path) -> list[Path]:
    """The per-seed reports under ``runs`` (``seed<N>/report.json``), by seed."""
    found = [
        (int(m.group(1)), p) for p in runs.glob("seed*/report.json") if (m := _SEED.match(p.parent.name))
    ]
    return [p for _, p in sorted(found)]


def merge_seeds(out: Path, name: str, rows_in_common: bool = False) -> Path:
    """Merge every seed's report of ``OUT/runs/<name>`` into ``OUT/<name>/report.json``; return that path
    (``rows_in_common``: the seeds may have run different strategies; the rows they share are merged).

    Raises:
        FileNotFoundError: no seed report there (the message names the ``run`` step).
        EvaluationError: the seeds' reports differ in dataset or settings (``merge_benchmark_reports``).
    """
    from hn_evaluation.benchmark import merge_benchmark_reports

    reports = seed_reports(out / "runs" / name)
    if not reports:
        raise FileNotFoundError(
            f"No seed report under {out / 'runs' / name}: run `python benchmarks/learning_curve.py run` with OUT "
            f"{out} first, or copy seed<N>/report.json folders there."
        )
    merged = merge_benchmark_reports(reports, out / name, rows_in_common=rows_in_common)
    logger.info("%s: merged seeds %s", name, merged["config"]["seeds"])
    return out / name / "report.json"


def _sizes(text: str) -> list[int | None]:
    return [None if s.strip() == "all" else int(s) for s in text.split(",") if s.strip()]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="step", required=True)
    p_run = sub.add_parser("run", help="benchmark each train size and seed")
    p_run.add_argument("data", type=Path)
    p_run.add_argument("out", type=Path)
    p_run.add_argument("--sizes", default="50,100,200,400,all")
    p_run.add_argument("--seeds", default="0,1,2")
    p_run.add_argument("--strategies", default="none,zero-shot,paper,default")
    p_run.add_argument("--max-length", type=int, default=None)
    p_run.add_argument("--epochs", type=int, default=None)
    p_run.add_argument(
        "--cache", default=None, help="one embedding cache for every size (default: one per run)"
    )
    p_merge = sub.add_parser("merge", help="re-merge every size's seed reports under OUT/runs")
    p_merge.add_argument("out", type=Path)
    p_merge.add_argument(
        "--rows-in-common",
        action="store_true",
        help="merge seeds that ran different strategies (the rows every seed has)",
    )
    p_asm = sub.add_parser("assemble", help="table, JSON and plot from the reports")
    p_asm.add_argument("out", type=Path)
    p_asm.add_argument("--dataset", required=True)
    p_asm.add_argument("--rows", default=",".join(ROWS[:3]))
    p_asm.add_argument(
        "--extra",
        type=Path,
        action="append",
        default=[],
        help="another curve run's OUT with the same settings: rows a size's report lacks are read from it",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if args.step == "run":
        settings = {
            k: v
            for k, v in {
                "max_length": args.max_length,
                "epochs": args.epochs,
                "cache_dir": args.cache,
            }.items()
            if v is not None
        }
        run(args.data, args.out, _sizes(args.sizes), [int(s) for s in args.seeds.split(",")],
            args.strategies.split(","), settings)  # fmt: skip
        return 0
    if args.step == "merge":
        names = sorted(p.name for p in (args.out / "runs").glob("benchmark_*") if p.is_dir())
        if not names:
            raise FileNotFoundError(
                f"No benchmark_* folder under {args.out / 'runs'}: run the `run` step first."
            )
        for name in names:
            merge_seeds(args.out, name, rows_in_common=args.rows_in_common)
        return 0
    rows = [r for r in args.rows.split(",") if r.strip()]
    result = assemble(args.out, args.dataset, rows, args.extra)
    sys.stdout.write(markdown(result, rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
