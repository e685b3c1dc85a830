"""``hn retrain``: re-mine, retrain and promote into a model registry only when the new reranker evaluates better."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from hn_plugins.cli.validation import (
    add_fusion_rule,
    add_selection_alpha,
    bounded_float,
    bounded_int,
    non_negative_int,
    pca_variance,
    positive_float,
    positive_int,
    probability,
)
from hn_plugins.encoders.engines import ENGINES
from hn_plugins.models import DEFAULT_ENSEMBLE

if TYPE_CHECKING:
    from hn_plugins.retrain import RetrainingJob

logger = logging.getLogger(__name__)

DEFAULT_MODELS = ",".join(DEFAULT_ENSEMBLE)


def job_from_args(args: argparse.Namespace) -> RetrainingJob:
    """The :class:`~hn_plugins.retrain.RetrainingJob` of ``hn retrain``'s options (creates the registry folder)."""
    from hn_plugins.retrain import RetrainingJob

    return RetrainingJob(
        args.registry,
        base_model=args.base_model,
        kind=args.kind,
        mining_models=[m.strip() for m in args.models.split(",") if m.strip()],
        variance=args.variance if 0.0 < args.variance < 1.0 else None,
        selector=args.selector,
        num_negatives=args.num_negatives,
        cache_dir=args.cache,
        loss=args.loss,
        selection=args.selection,
        folds=args.folds,
        selection_alpha=args.selection_alpha or None,
        fusion_rule=args.fusion_rule,
        epochs=args.epochs,
        lr=args.lr,
        batch_size=args.batch_size,
        seed=args.seed,
        max_length=args.max_length,
        top_k=args.top_k,
        min_improvement=args.min_improvement,
        start_from=args.start_from,
        max_p_value=args.max_p_value,
        engine=args.engine,
    )


def run(args: argparse.Namespace) -> int:
    from hn_plugins.cli.mine_cmd import load_data

    eval_data = args.eval_data if args.eval_data is not None else args.data
    if args.data.is_file() and args.eval_data is None:
        raise ValueError(
            f"{args.data} is a QA JSON file, which has no splits; give the held-out QA pairs of the promotion check "
            "with --eval-data FILE."
        )
    if eval_data == args.data and args.split == args.eval_split:
        raise ValueError(
            f"--split and --eval-split are both {args.split!r}; the promotion check must use queries the candidate "
            "did not train on (e.g. --eval-split test)."
        )
    train = load_data(args.data, args.split, args.drop_empty)
    evaluation = load_data(eval_data, args.eval_split, args.drop_empty)
    logger.info("Loaded %r and %r", train, evaluation)
    job = job_from_args(args)  # creates the registry folder: only once the data has loaded
    result = job.run(train, evaluation, force=args.force)
    sys.stdout.write(result.format_summary() + "\n")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result.to_dict(), indent=2), encoding="utf-8")
        sys.stdout.write(f"report -> {args.json}\n")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "retrain",
        help="re-mine and retrain after the documents or QA pairs changed; promote only if it evaluates better",
        description="Periodic retraining into a model registry: only new or changed documents are embedded (the "
        "cache lives in the registry), the candidate is registered whatever the outcome and becomes current only "
        "if its MRR@10 on --eval-split beats the current version's (the base model's before the first promotion) "
        "by more than --min-improvement. Nothing is recomputed when data and settings are unchanged.",
    )
    parser.add_argument(
        "data", type=Path, help="BEIR folder (corpus.jsonl, queries.jsonl, qrels/) or LlamaIndex QA JSON file"
    )
    parser.add_argument(
        "--eval-data",
        type=Path,
        default=None,
        help="where the promotion check's judged queries are (default: DATA, split --eval-split); needed when DATA "
        "is a QA JSON file",
    )
    parser.add_argument("--registry", type=Path, required=True, help="registry folder (created if missing)")
    parser.add_argument("--split", default="train", help="qrels split to mine and train on (default: train)")
    parser.add_argument(
        "--eval-split", default="test", help="judged split of the promotion check (default: test)"
    )
    parser.add_argument(
        "--base-model", default="all-MiniLM-L6-v2", help="starting reranker (default: all-MiniLM-L6-v2)"
    )
    parser.add_argument("--kind", choices=["bi", "cross"], default="bi", help="reranker kind (default: bi)")
    parser.add_argument(
        "--models",
        default=DEFAULT_MODELS,
        help=f"mining ensemble, comma-separated (default: {DEFAULT_MODELS})",
    )
    parser.add_argument(
        "--engine",
        choices=list(ENGINES),
        default="auto",
        help="how the mining ensemble runs: auto (ONNX Runtime / numpy on a CPU), torch, onnx or onnx-int8",
    )
    parser.add_argument(
        "--variance", type=pca_variance, default=0.95, help="PCA variance; 0 or 1 disables PCA"
    )
    parser.add_argument(
        "--selector",
        default="default",
        choices=["default", "paper", "random", "bm25", "dense-topk", "positive-aware"],
        help="negative selector (default: default, the configuration we ship)",
    )
    parser.add_argument(
        "--num-negatives", type=positive_int, default=1, help="hard negatives per pair (default: 1)"
    )
    parser.add_argument(
        "--cache", type=Path, default=None, help="embedding cache (default: REGISTRY/embedding-cache)"
    )
    parser.add_argument(
        "--loss",
        default="in-batch",
        choices=["in-batch", "triplet", "listwise", "bce"],
        help="training loss (default: in-batch, with the mined negatives)",
    )
    parser.add_argument(
        "--selection", choices=["cross-fit", "holdout"], default="cross-fit", help="default: cross-fit"
    )
    parser.add_argument(
        "--folds", type=bounded_int(2), default=5, help="folds of --selection cross-fit (default: 5)"
    )
    add_selection_alpha(parser)
    add_fusion_rule(parser)
    parser.add_argument("--epochs", type=positive_int, default=4, help="maximum epochs (default: 4)")
    parser.add_argument("--lr", type=positive_float, default=2e-5, help="learning rate (default: 2e-5)")
    parser.add_argument("--batch-size", type=positive_int, default=16, help="rows per step (default: 16)")
    parser.add_argument(
        "--seed", type=non_negative_int, default=0, help="seed of mining and training (default: 0)"
    )
    parser.add_argument("--max-length", type=positive_int, default=None, help="maximum tokens per text")
    parser.add_argument(
        "--top-k", type=positive_int, default=100, help="BM25 candidates per query (default: 100)"
    )
    parser.add_argument(
        "--min-improvement",
        type=bounded_float(-1.0, 1.0),
        default=0.0,
        help="promote only if MRR@10 beats the current version by more than this (default: 0.0)",
    )
    parser.add_argument(
        "--max-p-value",
        type=probability,
        default=1.0,
        help="also require a paired permutation p-value <= this to promote (default: 1.0, no test)",
    )
    parser.add_argument(
        "--start-from",
        choices=["base", "current"],
        default="base",
        help="train the candidate from --base-model (default) or from the current version",
    )
    parser.add_argument("--force", action="store_true", help="retrain even if nothing changed")
    parser.add_argument("--json", type=Path, default=None, help="write the result as JSON")
    parser.add_argument("--drop-empty", action="store_true", help="skip documents without text")
    parser.set_defaults(func=run)
