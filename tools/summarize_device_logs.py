"""Summarise per-row results from the logs of benchmark processes stopped before they wrote report.json.

``run_benchmark`` logs one line per finished row and seed (``hn_evaluation.benchmark[.results] <row> seed <n>: {...}``); a
process killed by the device's time budget leaves those lines behind. This prints a Markdown table of test MRR@10
(mean over the seeds that finished the row, and how many did) per dataset.

Usage::

    python tools/summarize_device_logs.py benchmarks/results/device_partial_cross_fit
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
from collections import defaultdict
from pathlib import Path

#: a row's line as ``run_benchmark`` logs it (logger ``hn_evaluation.benchmark``, or its ``.results`` module)
LINE = re.compile(r"hn_evaluation\.benchmark(?:\.results)? (\S+) seed (\d+): (\{.*?\})")
NAME = re.compile(r"run\d+_(.+)-seed(\d+)\.log$")


def logged_rows(folder: Path) -> dict[str, dict[str, dict[int, dict[str, float]]]]:
    """``{dataset: {row: {seed: metrics}}}`` from the ``run<n>_<dataset>-seed<seed>.log`` files of ``folder``.

    Only a process's own seed counts (a line of another seed is not that process's result).
    """
    values: dict[str, dict[str, dict[int, dict[str, float]]]] = defaultdict(lambda: defaultdict(dict))
    for log in sorted(folder.glob("run*-seed*.log")):
        match = NAME.search(log.name)
        if match is None:
            continue
        dataset, seed = match.group(1), int(match.group(2))
        for row, row_seed, metrics in LINE.findall(log.read_text(encoding="utf-8")):
            if int(row_seed) == seed:
                values[dataset][row][seed] = {k: float(v) for k, v in ast.literal_eval(metrics).items()}
    return {dataset: dict(rows) for dataset, rows in values.items()}


def summarize(folder: Path, metric: str = "mrr@10") -> str:
    lines = []
    for dataset, rows in sorted(logged_rows(folder).items()):
        lines += [f"### {dataset}", "", f"| row | {metric} (mean) | seeds finished |", "|---|---|---|"]
        for row, by_seed in rows.items():
            mean = sum(m[metric] for m in by_seed.values()) / len(by_seed)
            lines.append(f"| {row} | {mean:.4f} | {','.join(map(str, sorted(by_seed)))} |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path, help="folder of run<n>_<dataset>-seed<seed>.log files")
    sys.stdout.write(summarize(parser.parse_args().folder) + "\n")
