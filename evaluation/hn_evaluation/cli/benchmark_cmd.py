"""``hn benchmark``: compare negative strategies under identical training settings (train split -> test split).

Parses the options into a :class:`~hn_evaluation.benchmark.settings.BenchmarkSettings` and runs
:func:`hn_evaluation.benchmark.run_benchmark`.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hn_plugins.cli.validation import (
    add_fusion_rule,
    non_negative_float,
    pca_variance,
    positive_float,
    positive_int,
)

from .rag_options import add_rag_arguments

if TYPE_CHECKING:
    from ..benchmark.settings import BenchmarkSettings

logger = logging.getLogger(__name__)

DEFAULT_STRATEGIES = "none,zero-shot,random,bm25,in-batch,dense-topk,positive-aware,st,paper,default"


def _floats(text: str | None) -> list[float]:
    if not text:
        return []
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError as exc:
        raise ValueError(f"Expected comma-separated numbers, got {text!r}.") from exc


def settings_from_args(args: argparse.Namespace) -> BenchmarkSettings:
    """The :class:`~hn_evaluation.benchmark.settings.BenchmarkSettings` of ``hn benchmark``'s options."""
    from ..benchmark import BenchmarkSettings

    return BenchmarkSettings(
        kind=args.kind,
        base_model=args.base_model,
        models=args.models,
        variance=args.variance,
        num_negatives=args.num_negatives,
        candidates=args.candidates,
        epochs=args.epochs,
        lr=args.lr,
        batch_size=args.train_batch_size,
        margin=args.margin,
        max_length=args.max_length,
        first_stage=args.first_stage,
        top_k=args.top_k,
        validation_top_k=args.validation_top_k,
        max_test_queries=args.max_test_queries,
        ablation_variance=_floats(args.ablation_variance),
        ablation_single_model=args.ablation_single_model,
        ablation_train_size=_floats(args.ablation_train_size),
        ablation_verifier=args.ablation_verifier,
        ablation_adapt=args.ablation_adapt,
        keep_models=args.keep_models,
        cache_dir=args.cache,
        fusion=not args.no_fusion,
        fusion_rule=args.fusion_rule,
        rag=args.rag,
        rag_contexts=args.rag_contexts,
        rag_max_queries=args.rag_max_queries,
        train_size=args.train_size,
        split=args.split,
    )


def subset_folder(split: str) -> str:
    """The folder of a subset report inside the benchmark's output: the split name without a ``test-`` prefix."""
    return split.removeprefix("test-") or split


def subset_queries(data: Path, split: str, subsets: Sequence[str]) -> dict[str, list[str]]:
    """The judged query ids of each ``--subset-split``, read before any training.

    Raises:
        DatasetError: a subset split has no qrels file, or judges a query the test split does not have.
    """
    from hn_plugins.data import DatasetError, load_beir

    if not subsets:
        return {}
    test_ids = set(load_beir(data, split=split, empty_documents="drop").qrels)
    out: dict[str, list[str]] = {}
    for name in subsets:
        ids = sorted(load_beir(data, split=name, empty_documents="drop").qrels)
        outside = [q for q in ids if q not in test_ids]
        if outside:
            raise DatasetError(
                f"--subset-split {name}: {len(outside)} of its queries are not judged in --split {split} (e.g. "
                f"{outside[:3]}); a subset split must be part of the test split."
            )
        out[name] = ids
    return out


def write_subsets(report: Mapping[str, Any], subsets: Mapping[str, Sequence[str]], out: Path) -> None:
    """Write ``OUT/<folder>/report.json`` for each subset: the same trained rows, scored on its queries only."""
    from ..query_subset import subset_report
    from ..report import format_markdown_table, write_report_json

    for name, ids in subsets.items():
        folder = out / subset_folder(name)
        subset = subset_report(report, ids, name)
        write_report_json(subset, folder / "report.json")
        rows = {row: {"mrr@10": values["mrr@10"]} for row, values in subset["rows"].items()}
        sys.stdout.write(f"\n{name} ({subset['queries']} queries):\n")
        sys.stdout.write(format_markdown_table(rows, ["mrr@10"], 3, "strategy") + "\n")
        sys.stdout.write(f"report -> {folder / 'report.json'}\n")


def run(args: argparse.Namespace) -> int:
    """Run ``hn benchmark`` with the parsed arguments; returns the exit code."""
    from ..benchmark import run_benchmark
    from ..report import format_markdown_table

    if args.seeds < 1:
        raise ValueError(f"--seeds must be >= 1, got {args.seeds}.")
    settings = settings_from_args(args)
    strategies = [s for s in args.strategies.split(",") if s.strip()]
    subsets = subset_queries(args.data, args.split, args.subset_split or [])
    report = run_benchmark(args.data, strategies, args.seeds, args.out, settings=settings)
    sys.stdout.write(format_markdown_table(report["rows"], report["metrics"], 3, "strategy") + "\n")
    write_subsets(report, subsets, args.out)
    rag = report.get("rag")
    if rag:
        sys.stdout.write(
            f"\nRAG: top {rag['contexts']} contexts -> {rag['generator']}, {rag['queries']} queries\n"
            + format_markdown_table(rag["rows"], rag["metrics"], 3, "row")
            + "\n"
        )
    bar = report.get("quality_bar")
    if bar:
        sys.stdout.write(
            f"default vs {bar['start']}: {100 * (bar['lift_over_start'] or 0):+.1f}% MRR@10; vs best other "
            f"({bar['best_other']}): {100 * (bar['lift_over_best_other'] or 0):+.1f}%; bar met: {bar['met']}\n"
        )
    if report["failed"]:
        sys.stdout.write(f"failed: {report['failed']}\n")
    sys.stdout.write(f"report -> {args.out / 'report.json'}, {args.out / 'report.md'}\n")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``hn benchmark`` to ``hn``'s sub-commands (the ``hn_plugins.cli`` entry point ``benchmark``)."""
    from hn_plugins.cli.mine_cmd import DEFAULT_MODELS

    parser = subparsers.add_parser(
        "benchmark",
        help="mine with each negative strategy, fine-tune one reranker per strategy and seed, evaluate on test",
        description="Mines on the train split, trains one reranker per strategy and seed under identical "
        "settings, evaluates on the test split (first stage top-k reranked) and writes report.json, report.md "
        "and PNG plots.",
    )
    parser.add_argument("data", type=Path, help="BEIR folder with train and test qrels")
    parser.add_argument(
        "--split",
        default="test",
        help="test split: the qrels file qrels/SPLIT.tsv of the folder, e.g. test-unseen (default: test)",
    )
    parser.add_argument(
        "--subset-split",
        action="append",
        metavar="SPLIT",
        help="also report the same trained rows on the test queries of qrels/SPLIT.tsv (a part of --split, e.g. "
        "test-unseen), written to OUT/<SPLIT without 'test-'>/report.json; repeatable",
    )
    parser.add_argument(
        "--strategies",
        default=DEFAULT_STRATEGIES,
        help=f"comma-separated rows (default: {DEFAULT_STRATEGIES})",
    )
    parser.add_argument("--seeds", type=positive_int, default=3, help="seeds per strategy (default: 3)")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--kind", choices=["bi", "cross"], default="bi", help="reranker kind (default: bi)")
    parser.add_argument(
        "--base-model", default="all-MiniLM-L6-v2", help="starting reranker (default: all-MiniLM-L6-v2)"
    )
    parser.add_argument(
        "--models",
        default=DEFAULT_MODELS,
        help=f"mining ensemble for paper/default (default: {DEFAULT_MODELS})",
    )
    parser.add_argument("--variance", type=pca_variance, default=0.95, help="PCA variance (default: 0.95)")
    parser.add_argument(
        "--num-negatives", type=positive_int, default=1, help="mined negatives per pair (default: 1)"
    )
    parser.add_argument("--candidates", type=positive_int, default=100, help="FAISS depth of dense selectors")
    parser.add_argument(
        "--epochs",
        type=positive_int,
        default=4,
        help="maximum training epochs, early stopping on validation (default: 4)",
    )
    parser.add_argument("--lr", type=positive_float, default=2e-5, help="learning rate (default: 2e-5)")
    parser.add_argument(
        "--train-batch-size", type=positive_int, default=16, help="training batch size (default: 16)"
    )
    parser.add_argument(
        "--margin", type=non_negative_float, default=None, help="triplet margin (default: the trainer's)"
    )
    parser.add_argument(
        "--max-length", type=positive_int, default=None, help="maximum tokens per text (default: model's)"
    )
    parser.add_argument("--first-stage", choices=["bm25", "dense"], default="bm25", help="default: bm25")
    parser.add_argument(
        "--top-k", type=positive_int, default=100, help="test candidates reranked per query (default: 100)"
    )
    parser.add_argument(
        "--validation-top-k",
        type=positive_int,
        default=100,
        help="BM25 candidates per validation query (default: 100)",
    )
    parser.add_argument(
        "--max-test-queries", type=positive_int, default=None, help="evaluate a seeded sample of N queries"
    )
    parser.add_argument(
        "--train-size",
        type=positive_int,
        default=None,
        metavar="N",
        help="train on N train questions, a seeded random subset per seed (nested: for one seed the N=50 subset "
        "is part of the N=100 one); default: all",
    )
    parser.add_argument(
        "--ablation-variance", default=None, help="extra rows paper@pca<v>, e.g. 0.7,0.8,0.9,0.95,0.99"
    )
    parser.add_argument(
        "--ablation-single-model",
        action="store_true",
        help="extra row paper@single-model (first member only)",
    )
    parser.add_argument(
        "--ablation-train-size", default=None, help="extra rows default@train<f>, e.g. 0.25,0.5,1.0"
    )
    parser.add_argument(
        "--ablation-verifier",
        action="store_true",
        help="extra row default+verify: default with a false-negative verifier (teacher: the zero-shot base "
        "model fused with BM25 on the train split) applied to its paper and fallback negatives",
    )
    parser.add_argument(
        "--ablation-adapt",
        action="store_true",
        help="extra row default+adapt (--kind bi): default fine-tuned from the base model first adapted to the "
        "corpus without labels (as `hn bootstrap --kind bi`)",
    )
    parser.add_argument(
        "--keep-models", action="store_true", help="keep every fine-tuned model in OUT/models"
    )
    parser.add_argument("--cache", type=Path, default=None, help="embedding cache (default: OUT/cache)")
    parser.add_argument(
        "--no-fusion",
        action="store_true",
        help="report rerankers alone: no BM25 fusion for default and no fused control rows",
    )
    add_fusion_rule(parser)
    add_rag_arguments(parser)
    parser.set_defaults(func=run)
