"""``hn demo``: the shipped recipe on the embedded demo dataset, offline (the dataset is also written as a BEIR
folder, ``OUT/data``); ``hn demo --export DIR`` only writes that folder.

Registered as the ``demo`` entry point of the ``hn_plugins.cli`` group (hn-evaluation's pyproject.toml).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from hn_plugins.cli.validation import non_negative_int, positive_int

logger = logging.getLogger(__name__)


def run(args: argparse.Namespace) -> int:
    """Export the demo dataset (``--export``), or run the demo and print its report."""
    from hn_plugins.demo_data import export_demo_dataset, load_demo_dataset

    if args.force and args.export is None:
        raise ValueError("--force only applies to --export DIR (it overwrites the exported files).")
    if args.export is not None:
        folder = export_demo_dataset(args.export, force=args.force)
        sys.stdout.write(
            f"demo dataset -> {folder} (corpus.jsonl, queries.jsonl, qrels/train.tsv, qrels/test.tsv); every hn "
            f"command reads it, e.g. hn mine {folder} --selector default --out triplets.jsonl\n"
        )
        return 0

    from hn_evaluation.demo import DemoSettings, format_demo_report, run_demo

    settings = DemoSettings(  # checks the values before anything runs
        out=args.out,
        seed=args.seed,
        epochs=args.epochs,
        num_negatives=args.num_negatives,
        max_length=args.max_length,
        rag=not args.no_rag,
    )
    train, test = load_demo_dataset("train"), load_demo_dataset("test")
    folder = export_demo_dataset(settings.out / "data", force=True)
    sys.stdout.write(
        f"# 1. data: {train!r}\n#          {test!r}\n"
        f"#          as a BEIR folder: {folder} (every hn command and example reads it)\n"
    )
    sys.stdout.flush()
    report = run_demo(settings, train, test)
    sys.stdout.write(format_demo_report(report, settings.out) + "\n")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``hn demo`` to ``hn``'s subcommands."""
    parser = subparsers.add_parser(
        "demo",
        help="run the shipped recipe against the paper's method and the untuned model on the embedded dataset "
        "(offline), or export that dataset (--export DIR)",
        description="Mines, fine-tunes and evaluates on the embedded chatterbot-corpus Q->A dataset with packaged "
        "models (no network): rows none, zero-shot, zero-shot+fusion, paper and default (the shipped recipe), "
        "then a one-line verdict. --export DIR writes the dataset as a BEIR folder and stops.",
    )
    parser.add_argument(
        "--out", type=Path, default=Path("hn-demo"), help="output folder (default: ./hn-demo)"
    )
    parser.add_argument(
        "--num-negatives",
        type=positive_int,
        default=1,
        help="hard negatives per (query, positive) pair (default: 1)",
    )
    parser.add_argument(
        "--epochs", type=positive_int, default=1, help="maximum fine-tuning epochs (default: 1)"
    )
    parser.add_argument(
        "--seed",
        type=non_negative_int,
        default=0,
        help="seed of mining, validation and training (default: 0)",
    )
    parser.add_argument(
        "--max-length",
        type=positive_int,
        default=64,
        help="tokens per text in training and evaluation (default: 64)",
    )
    parser.add_argument("--no-rag", action="store_true", help="skip the downstream answer table")
    parser.add_argument(
        "--export",
        type=Path,
        default=None,
        metavar="DIR",
        help="write the demo dataset as a BEIR folder (corpus.jsonl, queries.jsonl, qrels/train.tsv, "
        "qrels/test.tsv) and exit without training",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="with --export: overwrite those files in a folder that is not empty",
    )
    parser.set_defaults(func=run)
