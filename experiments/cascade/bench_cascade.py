"""Cascade reranking on CPU: a cached bi-encoder orders BM25's top-100, a cross-encoder re-orders its top-k.

Issue 3 asks that reranking the top-100 of a query take well under a second on 2 cores with the MiniLM base. The
int8 cross-encoder needs about 1.5 s for 100 pairs there (``experiments/onnx_int8/results/onnx_int8_cranfield.json``); the
bi-encoder with cached document vectors about 0.03 s. This measures :class:`hn_plugins.cascade.CascadeReranker`
(bi-encoder over all 100, the cross-encoder's int8 copy over the bi-encoder's top ``k``) against each stage alone:

- speed: seconds per query (median over ``--speed-queries`` timed test queries, one untimed warm-up; the rows take
  turns query by query), the bi-encoder's document vectors precomputed for the corpus first (as
  ``BiEncoderReranker.precompute`` does at start-up);
- quality: MRR@10, nDCG@10, Recall@10 on every judged test query (BM25 top-100 reranked), with paired permutation
  p-values of every row against the cross-encoder over the full top-100.

Writes ``benchmarks/results/cascade_<data>.json``::

    python experiments/cascade/bench_cascade.py --cross-model models/bootstrap --data ../shared/data/cranfield \
        --speed-queries 16

``--cross-model`` is a trained cross-encoder folder (here: ``models/bootstrap``, the student of
``experiments/cross_encoder_bootstrap/results/bootstrap_cranfield_cpu``, whose README has the command); it is copied and exported to ONNX
in a temporary folder.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # run as a file: the repository root makes `experiments` and `tools` importable
    sys.path.insert(0, str(ROOT))

from experiments.onnx_int8.bench_onnx_reranker import (  # noqa: E402
    exported_copy,
    model_training,
    round_robin_times,
    start_cpu_run,
)

logger = logging.getLogger("bench_cascade")


def _speed(
    rows: dict[str, Any], test: Any, candidates: dict, queries: list[str]
) -> dict[str, dict[str, float]]:
    """Median and largest seconds per query of each row (:func:`bench_onnx_reranker.round_robin_times`)."""
    out = {}
    for name, values in round_robin_times(rows, test, candidates, queries).items():
        median = statistics.median(values)
        out[name] = {"seconds_per_query": median, "max_seconds": max(values)}
        logger.info("%s: %.3f s/query (max %.3f)", name, median, max(values))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cross-model", type=Path, required=True, help="trained cross-encoder folder")
    parser.add_argument("--bi-model", default="all-MiniLM-L6-v2", help="bi-encoder (fast stage)")
    parser.add_argument("--data", type=Path, default=Path("../shared/data/cranfield"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--top-k", type=int, default=100, help="BM25 candidates per query")
    parser.add_argument("--cascade-k", default="10,20,30", help="candidates the cross-encoder re-orders")
    parser.add_argument("--max-length", type=int, default=128, help="token limit of both stages")
    parser.add_argument("--speed-queries", type=int, default=16, help="timed queries (+1 untimed warm-up)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    load_before = start_cpu_run(args.threads)
    import torch

    from hn_evaluation.benchmark import benchmark_metrics, first_stage_run
    from hn_evaluation.rerank import evaluate_reranking
    from hn_plugins.cascade import CascadeReranker
    from hn_plugins.data import load_beir
    from hn_plugins.onnx_backend import OnnxCrossEncoderReranker
    from hn_plugins.reranker import BiEncoderReranker

    work = Path(tempfile.mkdtemp(prefix="bench-cascade-"))
    try:
        folder = work / "cross"
        exported_copy(args.cross_model, folder)
        test = load_beir(args.data, split="test", empty_documents="drop")
        run = first_stage_run(test, "bm25", args.top_k)
        candidates = {q: [d for d, _ in ranked[: args.top_k]] for q, ranked in run.items()}
        bi = BiEncoderReranker(args.bi_model)
        bi.model.max_seq_length = args.max_length
        start = time.perf_counter()
        bi.precompute([test.document_text(d) for d in test.doc_ids])
        precompute_seconds = time.perf_counter() - start
        cross = OnnxCrossEncoderReranker(folder, "int8", threads=args.threads, max_length=args.max_length)
        ks = [int(k) for k in args.cascade_k.split(",")]
        rows: dict[str, Any] = {"bi-encoder (cached)": bi, "cross-encoder int8": cross}
        rows.update({f"cascade top-{k}": CascadeReranker(bi, cross, top_k=k) for k in ks})
        speed_queries = list(candidates)[: args.speed_queries + 1]
        speed = _speed(rows, test, candidates, speed_queries)
        metrics = benchmark_metrics(args.top_k)
        report = evaluate_reranking(test, run, {"bm25": None, **rows}, top_k=args.top_k, metrics=metrics)
        against_cross = report.compare("cross-encoder int8", metric="mrr@10")
        result = {
            "data": args.data.name,
            "cross_model": str(args.cross_model),
            "cross_training": model_training(folder),
            "bi_model": args.bi_model,
            "max_length": args.max_length,
            "top_k": args.top_k,
            "machine": {
                "cpu": platform.processor() or platform.machine(),
                "threads": args.threads,
                "cores_available": len(os.sched_getaffinity(0)),
                "load_average_before": load_before,
                "torch": torch.__version__,
            },
            "bi_precompute_seconds": round(precompute_seconds, 1),
            "speed_queries": args.speed_queries,
            "speed": speed,
            "test_queries": len(report.per_query["bm25"]),
            "quality": report.rows,
            "mrr@10_vs_cross_encoder_int8": against_cross,
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)
    out = args.out or Path("benchmarks/results") / f"cascade_{args.data.name}.json"
    out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    logger.info("wrote %s", out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
