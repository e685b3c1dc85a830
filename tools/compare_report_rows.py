"""Compare one row of a benchmark report with one row of another report of the same dataset, query by query.

Two GPU runs can measure two rows that one 15-minute session cannot hold together (e.g. ``default`` in one run,
the ``default+verify`` ablation in a later one). Their per-query MRR@10 values are comparable when both runs
evaluated the same test queries the same way: this script checks that on a reference row both reports hold
(``none``, deterministic) before it compares anything, restricts both rows to the seeds they share, averages each
query's value over those seeds and runs :func:`hn_evaluation.significance.paired_permutation_test` (the test of
the reports' own significance tables), per seed and on the seed means.

Usage::

    python tools/compare_report_rows.py \
        --a benchmarks/results/benchmark_cranfield/report.json --row-a default \
        --b benchmarks/results/device_cisi_verify/merged/benchmark_cranfield/report.json --row-b default+verify \
        --json benchmarks/results/device_cisi_verify/verify_vs_default_cranfield.json
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Collection
from pathlib import Path
from typing import Any

import numpy as np

from hn_evaluation.significance import paired_permutation_test
from hn_plugins.data import load_beir

logger = logging.getLogger("compare_report_rows")


def _per_seed_values(report: dict[str, Any], row: str, path: str) -> dict[int, dict[str, float]]:
    """``{seed: {query id: value}}`` of one row of a merged report (its ``per_query.per_seed``)."""
    per_query = report.get("per_query") or {}
    if row not in (per_query.get("per_seed") or {}):
        have = sorted((per_query.get("per_seed") or {}).keys())
        raise SystemExit(f"{path} has no per-query values of row {row!r}; its rows with them: {have}.")
    seeds = list(report["config"]["seeds"])
    return {int(s): dict(v) for s, v in zip(seeds, per_query["per_seed"][row], strict=True)}


def compare_rows(
    report_a: dict[str, Any],
    row_a: str,
    report_b: dict[str, Any],
    row_b: str,
    reference_row: str = "none",
    tolerance: float = 1e-9,
    n_resamples: int = 10000,
    names: tuple[str, str] = ("a", "b"),
    query_ids: Collection[str] | None = None,
) -> dict[str, Any]:
    """Paired comparison of ``row_a`` of ``report_a`` with ``row_b`` of ``report_b`` on their shared seeds.

    Args:
        report_a: a merged ``report.json`` (as ``run_benchmark`` / ``merge_benchmark_reports`` write it).
        row_a: the row of ``report_a`` to compare.
        report_b: a report of the same dataset from another run.
        row_b: the row of ``report_b`` to compare.
        reference_row: a deterministic row both reports hold; its per-query values must agree (same test set,
            same evaluation) within ``tolerance`` on every shared seed, or nothing is compared.
        tolerance: largest per-query difference allowed on the reference row.
        n_resamples: sign patterns of the permutation test.
        names: labels of the two reports in the messages.
        query_ids: compare on these test queries only (e.g. test-unseen's, a part of the test split); each must
            be in both reports. ``None``: every test query.

    Returns:
        ``metric``, ``seeds`` (shared), ``queries``, ``mean_a``, ``mean_b``, ``delta`` (b - a, on the seed means),
        ``p`` (paired permutation test on the per-query seed means) and ``per_seed`` (the same per seed).

    Raises:
        SystemExit: a row without per-query values, no shared seed, other test queries, a reference row that
            differs, or a ``query_ids`` entry the reports did not score.
    """
    a = _per_seed_values(report_a, row_a, names[0])
    b = _per_seed_values(report_b, row_b, names[1])
    ref_a = _per_seed_values(report_a, reference_row, names[0])
    ref_b = _per_seed_values(report_b, reference_row, names[1])
    seeds = sorted(set(a) & set(b))
    if not seeds:
        raise SystemExit(f"{names[0]} (seeds {sorted(a)}) and {names[1]} (seeds {sorted(b)}) share no seed.")
    queries = sorted(a[seeds[0]])
    for s in seeds:
        for label, values in ((names[0], a[s]), (names[1], b[s]), (names[0], ref_a[s]), (names[1], ref_b[s])):
            if sorted(values) != queries:
                raise SystemExit(
                    f"{label} seed {s} scores other test queries; the reports are not comparable."
                )
        worst = max(abs(ref_a[s][q] - ref_b[s][q]) for q in queries)
        if worst > tolerance:
            raise SystemExit(
                f"{reference_row!r} differs between {names[0]} and {names[1]} on seed {s} (up to {worst:.3g} per "
                "query): the two runs did not evaluate alike, so their rows cannot be compared."
            )
    if query_ids is not None:
        missing = sorted(set(query_ids) - set(queries))
        if missing or not query_ids:
            raise SystemExit(
                f"The reports did not score {len(missing)} of the {len(set(query_ids))} queries asked for "
                f"(e.g. {missing[:3]}); pass queries of their test split."
            )
        queries = sorted(set(query_ids))
    per_seed = []
    for s in seeds:
        x = np.array([a[s][q] for q in queries])
        y = np.array([b[s][q] for q in queries])
        per_seed.append(
            {
                "seed": s,
                "mean_a": float(x.mean()),
                "mean_b": float(y.mean()),
                "p": paired_permutation_test(y, x, n_resamples=n_resamples),
            }
        )
    x = np.mean([[a[s][q] for q in queries] for s in seeds], axis=0)
    y = np.mean([[b[s][q] for q in queries] for s in seeds], axis=0)
    return {
        "metric": (report_a.get("per_query") or {}).get("metric", "mrr@10"),
        "a": f"{names[0]}:{row_a}",
        "b": f"{names[1]}:{row_b}",
        "reference_row": reference_row,
        "seeds": seeds,
        "queries": len(queries),
        "mean_a": float(x.mean()),
        "mean_b": float(y.mean()),
        "delta": float(y.mean() - x.mean()),
        "p": paired_permutation_test(y, x, n_resamples=n_resamples),
        "per_seed": per_seed,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--a", type=Path, required=True, help="report.json holding row A")
    parser.add_argument("--row-a", required=True)
    parser.add_argument("--b", type=Path, required=True, help="report.json holding row B")
    parser.add_argument("--row-b", required=True)
    parser.add_argument("--reference-row", default="none")
    parser.add_argument("--json", type=Path, help="write the comparison here")
    parser.add_argument("--data", type=Path, help="BEIR folder of --subset-split")
    parser.add_argument(
        "--subset-split", help="compare on the judged queries of DATA/qrels/SPLIT.tsv only (e.g. test-unseen)"
    )
    args = parser.parse_args()
    if (args.data is None) != (args.subset_split is None):
        parser.error("--data and --subset-split go together.")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    result = compare_rows(
        json.loads(args.a.read_text(encoding="utf-8")),
        args.row_a,
        json.loads(args.b.read_text(encoding="utf-8")),
        args.row_b,
        reference_row=args.reference_row,
        names=(args.a.as_posix(), args.b.as_posix()),
        query_ids=(
            load_beir(args.data, split=args.subset_split).judged_query_ids if args.subset_split else None
        ),
    )
    logger.info(
        "%s %.4f vs %s %.4f on seeds %s (%d queries): delta %+.4f, p = %.4f",
        result["a"],
        result["mean_a"],
        result["b"],
        result["mean_b"],
        result["seeds"],
        result["queries"],
        result["delta"],
        result["p"],
    )
    if args.json:
        if args.subset_split:
            result["subset_split"] = args.subset_split
        args.json.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
