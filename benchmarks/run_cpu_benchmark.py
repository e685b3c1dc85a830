"""Reduced CPU run of ``hn benchmark`` (one process, a few rows, shorter texts) for a 2-core machine.

Usage::

    python benchmarks/run_cpu_benchmark.py ../shared/data/cranfield /tmp/exp/cpu_cran \
        --strategies none,zero-shot,in-batch,paper,default --seeds 0 --max-length 128
    # a cross-encoder from `hn bootstrap` as the start:
    python benchmarks/run_cpu_benchmark.py ../shared/data/cranfield /tmp/exp/cpu_cran_cross \
        --strategies none,zero-shot,random,paper --seeds 0 --max-length 128 --kind cross --base-model /tmp/boot/model

Prints one ``RESULT`` line per row and the quality-bar verdict; the report folder is what ``hn benchmark`` writes.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a file: the repository root makes `experiments` and `tools` importable
    sys.path.insert(0, str(ROOT))

from tools.script_logging import quiet_logging  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("data", help="BEIR dataset folder")
    parser.add_argument("out", help="report folder")
    parser.add_argument("--strategies", default="none,zero-shot,in-batch,paper,default")
    parser.add_argument("--seeds", default="0", help="comma-separated seeds (default: 0)")
    parser.add_argument("--max-length", type=int, default=128, help="tokens per text (default: 128)")
    parser.add_argument("--cache-dir", default=None, help="embedding cache (default: OUT/cache)")
    parser.add_argument(
        "--ablation-verifier",
        action="store_true",
        help="add the default+verify row (false-negative verifier)",
    )
    parser.add_argument(
        "--ablation-adapt",
        action="store_true",
        help="add the default+adapt row (default from the base model adapted to the corpus)",
    )
    parser.add_argument(
        "--ablation-variance",
        default="",
        help="extra rows paper@pca<v>, comma-separated PCA variances (e.g. 0.7,0.9,0.99)",
    )
    parser.add_argument("--ablation-single-model", action="store_true", help="add the paper@single-model row")
    parser.add_argument(
        "--num-negatives", type=int, default=1, help="mined negatives per (query, positive) pair (default: 1)"
    )
    parser.add_argument(
        "--kind", choices=["bi", "cross"], default="bi", help="reranker kind of --base-model (default: bi)"
    )
    parser.add_argument(
        "--base-model",
        default="all-MiniLM-L6-v2",
        help="starting reranker: a bi-encoder name or folder, or (--kind cross) a cross-encoder folder such as "
        "hn bootstrap's output (default: all-MiniLM-L6-v2)",
    )
    args = parser.parse_args()
    try:
        variances = [float(v) for v in args.ablation_variance.split(",") if v.strip()]
        if not all(0.0 < v <= 1.0 for v in variances):
            raise ValueError(args.ablation_variance)
    except ValueError:
        parser.error(
            f"--ablation-variance takes comma-separated numbers in (0, 1], got {args.ablation_variance!r}"
        )
    quiet_logging(driver=True)
    import transformers

    from hn_evaluation.benchmark import run_benchmark

    transformers.logging.set_verbosity_error()
    report = run_benchmark(
        args.data,
        args.strategies.split(","),
        [int(s) for s in args.seeds.split(",")],
        args.out,
        kind=args.kind,
        base_model=args.base_model,
        max_length=args.max_length,
        cache_dir=args.cache_dir,
        ablation_verifier=args.ablation_verifier,
        ablation_adapt=args.ablation_adapt,
        ablation_variance=variances,
        ablation_single_model=args.ablation_single_model,
        num_negatives=args.num_negatives,
    )
    for row, values in report["rows"].items():
        sys.stdout.write(f"RESULT {row} {json.dumps({m: round(x['mean'], 4) for m, x in values.items()})}\n")
    sys.stdout.write(f"BAR {json.dumps(report.get('quality_bar'))}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
