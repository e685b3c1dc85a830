"""``hn train``: fine-tune a reranker on a mined triplet file and print its validation curve."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from hn_plugins.cli.validation import (
    add_fusion_rule,
    add_selection_alpha,
    bounded_int,
    fraction_open,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
)

logger = logging.getLogger(__name__)


def run(args: argparse.Namespace) -> int:
    from hn_plugins.cli.mine_cmd import load_data
    from hn_plugins.training.model_card import kept_start_note
    from hn_plugins.training.trainer import fine_tune_reranker

    if args.split == "test":
        logger.warning("Training on the test split: evaluate on another split, or the numbers mean nothing.")
    dataset = load_data(args.data, args.split, args.drop_empty)
    logger.info("Loaded %r", dataset)
    result = fine_tune_reranker(
        args.triplets,
        dataset,
        args.base_model,
        kind=args.kind,
        loss=args.loss,
        margin=args.margin,
        num_negatives=args.num_negatives,
        epochs=args.epochs,
        lr=args.lr,
        batch_size=args.batch_size,
        seed=args.seed,
        validation_fraction=args.validation_fraction,
        first_stage_top_k=args.top_k,
        early_stopping_patience=None if args.patience < 0 else args.patience,
        keep_base_if_better=not args.always_keep_trained,
        output_dir=args.out,
        max_length=args.max_length,
        resume=args.resume,
        selection=args.selection,
        folds=args.folds,
        selection_alpha=args.selection_alpha or None,
        fusion_rule=args.fusion_rule,
    )
    how = (
        f"pooled over {args.folds} folds, one row per epoch count"
        if args.selection == "cross-fit"
        else "held-out"
    )
    sys.stdout.write(
        f"Validation curve ({result.metrics['validation_queries']} {how} train queries, "
        f"BM25 first stage MRR@10 {result.metrics['validation_first_stage_mrr@10']:.4f}):\n"
    )
    sys.stdout.write(result.format_curve() + "\n")
    sys.stdout.write(
        f"kept: {result.metrics['selected']} (step {result.metrics['selected_step']}); "
        f"model -> {result.path}\n"
    )
    note = kept_start_note(result.metrics)
    if note:
        sys.stdout.write(note + "\n")
    if result.fusion is not None and result.fusion.validation:
        v = result.fusion.validation
        sys.stdout.write(
            f"fusion with BM25: weight {result.fusion.weight:.1f} on the reranker (validation MRR@10 "
            f"{v['mrr@10_fused']:.4f} fused, {v['mrr@10_reranker']:.4f} reranker alone, "
            f"{v['mrr@10_first_stage']:.4f} BM25 alone); rerankers loaded from the folder apply it\n"
        )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps(
                {
                    "path": str(result.path),
                    "kind": result.kind,
                    "history": result.history,
                    "metrics": result.metrics,
                    "fusion": result.fusion.to_dict() if result.fusion is not None else None,
                },
                indent=2,
            ),
            encoding="utf-8",
        )
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="fine-tune a reranker on mined triplets",
        description="Fine-tune a cross-encoder or bi-encoder reranker on a triplet file written by `hn mine`, with "
        "early stopping on MRR@10 of queries held out of the training split.",
    )
    parser.add_argument("triplets", type=Path, help="triplet JSON Lines file (hn mine --out)")
    parser.add_argument(
        "--data", type=Path, required=True, help="BEIR folder (or LlamaIndex QA JSON) mined on"
    )
    parser.add_argument(
        "--split", default="train", help="qrels split the triplets come from (default: train)"
    )
    parser.add_argument(
        "--base-model",
        required=True,
        help="starting model: cross-encoder folder/name (--kind cross) or sentence-transformers "
        "model (--kind bi), e.g. all-MiniLM-L6-v2",
    )
    parser.add_argument(
        "--kind", choices=["cross", "bi"], default="cross", help="reranker kind (default: cross)"
    )
    parser.add_argument("--out", type=Path, required=True, help="model folder to write")
    parser.add_argument(
        "--loss",
        choices=["triplet", "listwise", "bce", "in-batch"],
        default="triplet",
        help="training loss (default: triplet, the paper's margin loss)",
    )
    parser.add_argument(
        "--margin",
        type=non_negative_float,
        default=None,
        help="triplet margin (default: 1.0 for cross, 0.2 for bi)",
    )
    parser.add_argument(
        "--num-negatives", type=positive_int, default=None, help="negatives per record (default: all)"
    )
    parser.add_argument("--epochs", type=positive_int, default=1, help="maximum epochs (default: 1)")
    parser.add_argument("--lr", type=positive_float, default=2e-5, help="learning rate (default: 2e-5)")
    parser.add_argument("--batch-size", type=positive_int, default=16, help="rows per step (default: 16)")
    parser.add_argument("--seed", type=non_negative_int, default=0, help="seed (default: 0)")
    parser.add_argument("--max-length", type=positive_int, default=None, help="maximum tokens per input")
    parser.add_argument(
        "--validation-fraction",
        type=fraction_open(),
        default=0.2,
        help="share of training queries held out for validation (default: 0.2)",
    )
    parser.add_argument(
        "--top-k", type=positive_int, default=100, help="BM25 candidates per validation query (default: 100)"
    )
    parser.add_argument(
        "--patience",
        type=bounded_int(1, also=(-1,), meaning="never stop"),
        default=2,
        help="evaluations without improvement before stopping; -1 never stops (default: 2)",
    )
    parser.add_argument(
        "--always-keep-trained",
        action="store_true",
        help="save the best checkpoint even when the starting model validates better",
    )
    parser.add_argument(
        "--resume", action="store_true", help="continue an interrupted run from its last checkpoint"
    )
    parser.add_argument(
        "--drop-empty", action="store_true", help="drop documents without text (and their qrels)"
    )
    parser.add_argument(
        "--selection",
        choices=["holdout", "cross-fit"],
        default="holdout",
        help="how the epochs and the fusion weight are chosen: on a hold-out of the train queries (default), or "
        "cross-fitted over --folds folds (every train query validates; folds + 1 trainings)",
    )
    parser.add_argument(
        "--folds", type=bounded_int(2), default=5, help="folds for --selection cross-fit (default: 5)"
    )
    add_selection_alpha(parser)
    add_fusion_rule(parser)
    parser.add_argument("--json", type=Path, default=None, help="also write the curve and metrics as JSON")
    parser.set_defaults(func=run)
