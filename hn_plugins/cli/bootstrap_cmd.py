"""``hn bootstrap``: warm-start a cross-encoder by distilling an embedding ensemble (no labels needed)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

logger = logging.getLogger(__name__)


def run(args: argparse.Namespace) -> int:
    from hn_plugins.data import load_beir, load_llamaindex_qa
    from hn_plugins.training.bootstrap import bootstrap_cross_encoder

    if args.data.is_file() and args.data.suffix == ".json":
        dataset = load_llamaindex_qa(args.data)
    else:
        dataset = load_beir(
            args.data, split=args.split, empty_documents="drop" if args.drop_empty else "raise"
        )
    teachers = [m.strip() for m in args.teacher_models.split(",") if m.strip()]
    result = bootstrap_cross_encoder(
        dataset,
        teachers,
        base_model=args.base_model,
        output_dir=args.out,
        num_pairs=args.pairs,
        epochs=args.epochs,
        seed=args.seed,
        batch_size=args.batch_size,
        max_length=args.max_length,
        num_layers=args.num_layers,
        held_out_queries=args.held_out,
        cache_dir=args.cache,
    )
    m = result.metrics
    sys.stdout.write(
        f"Held-out pseudo-queries: {m['pseudo_queries_held_out']} (teacher top-{m['eval_top_k']} candidates)\n"
        f"{'model':<28}{'MRR@3':>8}{'MRR@10':>8}\n"
        f"{'teacher ' + '+'.join(teachers):<28}{m['teacher_mrr@3']:8.4f}{m['teacher_mrr@10']:8.4f}\n"
        f"{'bootstrapped cross-encoder':<28}{m['student_mrr@3']:8.4f}{m['student_mrr@10']:8.4f}\n"
        f"{'reached teacher level' if result.reached_teacher else 'below the teacher'}; model -> {result.path}\n"
    )
    if args.json:
        args.json.write_text(
            json.dumps(
                {"path": str(result.path), "history": result.history, "metrics": m}, indent=2, default=str
            ),
            encoding="utf-8",
        )
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "bootstrap",
        help="warm-start a cross-encoder by distilling an embedding ensemble",
        description="Build a cross-encoder from a bi-encoder's transformer and train it to reproduce the teacher "
        "ensemble's rankings of unlabeled corpus pairs (titles / first sentences vs their neighbours and random "
        "documents). Reports student and teacher MRR@10 on held-out pseudo-queries.",
    )
    parser.add_argument("data", type=Path, help="BEIR folder or LlamaIndex QA JSON (only the corpus is used)")
    parser.add_argument(
        "--split", default="train", help="qrels split to load the folder with (default: train)"
    )
    parser.add_argument(
        "--teacher-models",
        default="all-MiniLM-L6-v2,static-model",
        help="comma-separated teacher ensemble (default: all-MiniLM-L6-v2,static-model)",
    )
    parser.add_argument(
        "--base-model",
        default="all-MiniLM-L6-v2",
        help="transformer the cross-encoder starts from (default: all-MiniLM-L6-v2)",
    )
    parser.add_argument("--out", type=Path, required=True, help="model folder to write")
    parser.add_argument(
        "--pairs", type=int, default=6000, help="training (query, document) pairs (default: 6000)"
    )
    parser.add_argument("--epochs", type=int, default=3, help="maximum epochs (default: 3)")
    parser.add_argument("--batch-size", type=int, default=8, help="pseudo-queries per step (default: 8)")
    parser.add_argument("--max-length", type=int, default=256, help="tokens per pair (default: 256)")
    parser.add_argument(
        "--num-layers",
        type=int,
        default=None,
        help="keep only the base model's first N transformer layers: a shallower, faster student (default: all)",
    )
    parser.add_argument("--held-out", type=int, default=60, help="held-out pseudo-queries (default: 60)")
    parser.add_argument("--seed", type=int, default=0, help="seed (default: 0)")
    parser.add_argument("--cache", type=Path, default=None, help="embedding cache folder of the teacher")
    parser.add_argument("--drop-empty", action="store_true", help="drop documents without text")
    parser.add_argument("--json", type=Path, default=None, help="also write the metrics as JSON")
    parser.set_defaults(func=run)
