"""Downstream RAG quality before and after fine-tuning: do better rankings give better answers?

BM25's top-100 of every judged test query, re-ranked by the untuned all-MiniLM-L6-v2 (``zero-shot``) and by a
fine-tuned reranker folder (``--model``, alone and fused with BM25 as the adapters serve it); then each row's top
``--contexts`` documents are handed to each generator and the answers scored with
:func:`hn_evaluation.rag.evaluate_rag` (context recall/precision by id; answer token F1 and ROUGE-L against the
query's judged positive, which on python-docs-faq is the FAQ's own answer). Writes one JSON::

    python experiments/rag_by_strategy/rag_quality.py --data ../shared/data/python-docs-faq --model runs/faq-default \\
        --generators extractive,smollm2 --llm-queries 50 --out experiments/rag_by_strategy/results/rag_python-docs-faq.json

``--llm-queries`` limits the language-model generators to a seeded sample of the queries (SmolLM2-135M takes a
few seconds per answer on 2 cores); the extractive generator answers every query.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Any

logger = logging.getLogger("rag_quality")


def rankings(
    data: Path, model: str, max_length: int, top_k: int
) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    """The test split, ``{row: run}`` for bm25 / zero-shot / fine-tuned (/ +fusion), and their MRR rows."""
    from hn_evaluation.model_evaluation import evaluate_model
    from hn_plugins.cli.mine_cmd import load_data

    test = load_data(data, "test", False)
    runs: dict[str, Any] = {}
    rows: dict[str, Any] = {}
    for spec, name in (("zero-shot:all-MiniLM-L6-v2", "zero-shot"), (model, "fine-tuned")):
        report = evaluate_model(test, spec, top_k=top_k, max_length=max_length, row_name=name)
        for row in report["rows_order"]:
            runs[row] = {q: [(d, s) for d, s in ranked] for q, ranked in report["runs"][row].items()}
            rows[row] = report["rows"][row]
    return test, runs, rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, required=True, help="BEIR folder with a judged test split")
    parser.add_argument("--model", required=True, help="fine-tuned reranker folder (hn train output)")
    parser.add_argument(
        "--extra-model",
        action="append",
        default=[],
        metavar="NAME=FOLDER",
        help="another reranker folder, as row NAME (repeatable)",
    )
    parser.add_argument("--generators", default="extractive,smollm2", help="comma-separated generator specs")
    parser.add_argument("--contexts", type=int, default=3, help="contexts per answer (3)")
    parser.add_argument(
        "--llm-queries", type=int, default=50, help="queries answered by language models (50)"
    )
    parser.add_argument("--max-length", type=int, default=128, help="reranker tokens per text (128)")
    parser.add_argument("--top-k", type=int, default=100, help="BM25 candidates reranked (100)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the --llm-queries sample (0)")
    parser.add_argument("--out", type=Path, required=True, help="JSON output")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    from hn_evaluation.generators import load_generator
    from hn_evaluation.rag import evaluate_rag

    start = time.perf_counter()
    extra = [tuple(item.split("=", 1)) for item in args.extra_model]
    if any(len(pair) != 2 or not all(pair) for pair in extra):
        parser.error(f"--extra-model takes NAME=FOLDER, got {args.extra_model}")
    models = [("fine-tuned", args.model), *extra]
    test, runs, retrieval = rankings(args.data, models, args.max_length, args.top_k)  # type: ignore[arg-type]
    result: dict[str, Any] = {
        "dataset": test.name,
        "model": args.model,
        "extra_models": dict(extra),
        "contexts": args.contexts,
        "max_length": args.max_length,
        "top_k": args.top_k,
        "retrieval": retrieval,
        "generators": {},
    }
    for spec in [s.strip() for s in args.generators.split(",") if s.strip()]:
        generator = load_generator(spec)
        extractive = spec.startswith("extractive")
        began = time.perf_counter()
        report = evaluate_rag(
            test,
            runs,
            generator,
            contexts=args.contexts,
            max_queries=None if extractive else args.llm_queries,
            seed=args.seed,
        )
        out = report.to_dict()
        out["significance"] = {
            metric: {base: report.compare(baseline=base, metric=metric) for base in ("bm25", "zero-shot")}
            for metric in report.metrics
        }
        out["wall_seconds"] = round(time.perf_counter() - began, 1)
        result["generators"][spec] = out
        logger.info(
            "%s: %s", spec, {row: {m: round(v, 4) for m, v in r.items()} for row, r in out["rows"].items()}
        )
    result["seconds"] = round(time.perf_counter() - start, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    logger.info("wrote %s in %.0f s", args.out, result["seconds"])


if __name__ == "__main__":
    main()
