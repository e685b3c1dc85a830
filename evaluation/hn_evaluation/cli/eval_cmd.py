"""``hn eval``: evaluate a reranker on a judged split: the first stage alone, then the reranker on its top-k.

Writes a JSON report (metric keys ``mrr@3``, ``mrr@10``, ``ndcg@10``, ``recall@k`` per row, per-query values,
the short-vs-long document split, reranking documents/s) and prints the table; the evaluation itself is
:func:`hn_evaluation.model_evaluation.evaluate_model`.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from hn_plugins.cli.validation import positive_int

from .rag_options import add_rag_arguments, check_rag_args

logger = logging.getLogger(__name__)


def run(args: argparse.Namespace) -> int:
    """Run ``hn eval`` with the parsed arguments; returns the exit code."""
    from hn_plugins.cli.mine_cmd import load_data
    from hn_plugins.reranker import zero_shot_model_name

    from ..model_evaluation import (
        ZERO_SHOT_PREFIX,
        add_rag_evaluation,
        check_window_args,
        evaluate_model,
        format_rows,
    )
    from ..report import write_report_json

    check_window_args(args.window_words, args.stride_words)  # bad window settings fail before any loading
    for spec in (args.model, args.prerank_model):
        if spec is not None and spec.startswith(ZERO_SHOT_PREFIX):
            zero_shot_model_name(spec)  # an empty zero-shot: name fails before any loading too
    if args.prerank_model is not None and args.prerank_top_k < 1:
        raise ValueError(f"--prerank-top-k must be >= 1, got {args.prerank_top_k}.")
    check_rag_args(args.rag_contexts, args.rag_max_queries)
    dataset = load_data(args.data, args.split, args.drop_empty)
    logger.info("Loaded %r", dataset)
    generator = None
    if args.rag is not None:  # loaded before the reranking: a bad generator costs no reranking work
        from ..generators import load_generator

        generator = load_generator(args.rag)
    report = evaluate_model(
        dataset,
        args.model,
        first_stage=args.first_stage,
        top_k=args.top_k,
        dense_model=args.dense_model,
        max_length=args.max_length,
        backend=args.backend,
        window_words=args.window_words,
        stride_words=args.stride_words,
        prerank_model=args.prerank_model,
        prerank_top_k=args.prerank_top_k,
    )
    if args.json is not None:  # written before the answers are generated: a failed generation loses nothing
        write_report_json(report, args.json)
    if generator is not None:
        add_rag_evaluation(
            report, dataset, generator, contexts=args.rag_contexts, max_queries=args.rag_max_queries
        )
        if args.json is not None:
            write_report_json(report, args.json)
    sys.stdout.write(format_rows(report) + "\n")
    if args.json is not None:
        sys.stdout.write(f"report -> {args.json}\n")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``hn eval`` to ``hn``'s sub-commands (the ``hn_plugins.cli`` entry point ``eval``)."""
    parser = subparsers.add_parser(
        "eval",
        help="evaluate a reranker: first stage alone, then reranked (MRR@3/10, nDCG@10, Recall@k)",
        description="First stage (BM25 or dense) top-k of every judged query, then the reranker on those "
        "candidates; per-query values, short-vs-long documents and speed go to the JSON report.",
    )
    parser.add_argument("data", type=Path, help="BEIR folder or QA JSON file")
    parser.add_argument("--split", default="test", help="qrels split with judgments (default: test)")
    parser.add_argument(
        "--model",
        required=True,
        help="reranker: a folder (hn train output, registry, cross-encoder) or zero-shot:<bi-encoder name>",
    )
    parser.add_argument("--first-stage", choices=["bm25", "dense"], default="bm25", help="default: bm25")
    parser.add_argument(
        "--top-k", type=positive_int, default=100, help="candidates reranked per query (default: 100)"
    )
    parser.add_argument(
        "--dense-model",
        default="all-MiniLM-L6-v2",
        help="model of --first-stage dense (default: all-MiniLM-L6-v2)",
    )
    parser.add_argument(
        "--max-length", type=positive_int, default=None, help="maximum tokens per text (default: model's)"
    )
    parser.add_argument(
        "--backend",
        choices=["torch", "onnx", "onnx-int8"],
        default="torch",
        help="run a cross-encoder folder with onnxruntime (after `hn export-onnx`); default: torch",
    )
    parser.add_argument(
        "--window-words",
        type=positive_int,
        default=None,
        help="score long documents window by window (this many words) and keep the best window (MaxP)",
    )
    parser.add_argument(
        "--stride-words",
        type=positive_int,
        default=None,
        help="words between window starts (default: 3/4 of --window-words)",
    )
    parser.add_argument(
        "--prerank-model",
        default=None,
        help="cascade: this faster reranker (folder or zero-shot:<bi-encoder>) orders the top-k first and --model "
        "re-orders only its best --prerank-top-k",
    )
    parser.add_argument(
        "--prerank-top-k",
        type=positive_int,
        default=20,
        help="candidates --model re-orders after --prerank-model (20)",
    )
    add_rag_arguments(parser)
    parser.add_argument("--json", type=Path, default=None, help="write the JSON report here")
    parser.add_argument("--drop-empty", action="store_true", help="skip documents without text")
    parser.set_defaults(func=run)
