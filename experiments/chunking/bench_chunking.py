"""Chunk-level scoring (MaxP) vs truncation: does scoring long documents window by window help a reranker?

For each dataset: BM25 top-100 of every test query, reranked by all-MiniLM-L6-v2 zero-shot (a bi-encoder, 256
tokens) three ways: whole documents truncated by the model (``firstp``, what every other row of this project does)
and :class:`hn_plugins.chunking.ChunkedReranker` with 128-word and 200-word windows (stride 3/4 of the window),
each document scored by its best window (MaxP). Paired permutation test of each MaxP row against ``firstp`` on
per-query MRR@10. Writes ``benchmarks/results/chunking_<datasets>.json``.

    python experiments/chunking/bench_chunking.py --data ../shared/data --datasets python-docs-faq,cranfield
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

logger = logging.getLogger("bench_chunking")

WINDOWS = (128, 200)


def measure(data: Path, model: str, threads: int) -> dict:
    import torch

    from hn_evaluation.benchmark import benchmark_metrics, first_stage_run
    from hn_evaluation.rerank import evaluate_reranking
    from hn_plugins.chunking import ChunkedReranker, default_stride, split_into_windows
    from hn_plugins.data import load_beir
    from hn_plugins.reranker import BiEncoderReranker

    torch.set_num_threads(threads)
    test = load_beir(data, split="test", empty_documents="drop")
    run = first_stage_run(test, "bm25", 100)
    rows = {"bm25": None, "firstp": BiEncoderReranker(model)}
    for window in WINDOWS:
        rows[f"maxp{window}"] = ChunkedReranker(BiEncoderReranker(model), window_words=window)
    start = time.perf_counter()
    report = evaluate_reranking(test, run, rows, top_k=100, metrics=benchmark_metrics(100))
    candidates = {d for q in run for d, _ in run[q][:100]}
    windows_per_doc = {
        w: sum(len(split_into_windows(test.document_text(d), w, default_stride(w))) for d in candidates)
        / len(candidates)
        for w in WINDOWS
    }
    significance = {
        name: value
        for name, value in report.compare(baseline="firstp", metric="mrr@10").items()
        if name.startswith("maxp")
    }
    return {
        "queries": len(report.per_query["firstp"]),
        "candidate_documents": len(candidates),
        "mean_windows_per_candidate": windows_per_doc,
        "rows": report.rows,
        "short_long": {
            g: {"queries": v["n_queries"], "rows": v["rows"]} for g, v in report.short_long["groups"].items()
        },
        "short_long_threshold_words": report.short_long["threshold"],
        "maxp_vs_firstp_mrr@10": significance,
        "seconds": round(time.perf_counter() - start, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--datasets", default="python-docs-faq,cranfield")
    parser.add_argument("--model", default="all-MiniLM-L6-v2")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    for name in ("sentence_transformers", "transformers", "bm25s", "httpx", "urllib3"):
        logging.getLogger(name).setLevel(logging.WARNING)
    names = args.datasets.split(",")
    result = {"model": args.model, "windows_words": list(WINDOWS), "datasets": {}}
    out = args.out or Path(__file__).parent / "results" / f"chunking_{'_'.join(names)}.json"
    for name in names:
        result["datasets"][name] = measure(args.data / name, args.model, args.threads)
        logger.info("%s: %s", name, json.dumps(result["datasets"][name]["maxp_vs_firstp_mrr@10"]))
        out.write_text(json.dumps(result, indent=1), encoding="utf-8")  # each dataset kept as it finishes
    logger.info("-> %s", out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
