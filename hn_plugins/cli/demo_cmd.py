"""``hn demo``: the main job on the embedded default, offline.

Mines hard negatives on the chatterbot-corpus Q->A dataset with an ensemble of two packaged bi-encoders
(all-MiniLM-L6-v2 and a model2vec static model) + PCA + the paper's criteria, prints the diagnostics, then
(unless ``--mine-only``) fine-tunes the bi-encoder reranker on the triplets and prints the before/after table.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from hn_plugins.cli.validation import non_negative_int, positive_int
from hn_plugins.models import DEFAULT_ENSEMBLE

logger = logging.getLogger(__name__)


def run(args: argparse.Namespace) -> int:
    from hn_plugins.demo_data import load_demo_dataset
    from hn_plugins.embedders import EmbedderEnsemble
    from hn_plugins.mining.miner import HardNegativeMiner
    from hn_plugins.reduction import PCAReducer

    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    train = load_demo_dataset("train")
    test = load_demo_dataset("test")
    sys.stdout.write(f"# 1. data: {train!r}\n#          {test!r}\n")

    ensemble = EmbedderEnsemble(list(DEFAULT_ENSEMBLE), cache_dir=out / "cache", show_progress_bar=True)
    miner = HardNegativeMiner(
        ensemble,
        PCAReducer(variance=0.95),
        selector="paper",
        num_negatives=args.num_negatives,
        seed=args.seed,
        show_progress_bar=True,
    )
    result = miner.fit(train).mine(train)
    triplets = result.to_jsonl(out / "triplets.jsonl")
    result.save_diagnostics(out / "triplets.diagnostics.json")
    sys.stdout.write("# 2. mining (ensemble + PCA 95% + Eq. 5/6)\n" + result.format_summary() + "\n")
    sys.stdout.write(f"triplets -> {triplets}\n")
    if args.mine_only:
        return 0

    from hn_plugins.demo_pipeline import train_and_evaluate

    table = train_and_evaluate(result, train, test, out=out, seed=args.seed, epochs=args.epochs)
    sys.stdout.write(
        "# 3. reranker before / after fine-tuning (test split, BM25 top-100 reranked)\n" + table + "\n"
    )
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="mine, fine-tune and evaluate on the embedded default dataset (offline)",
        description="Runs the whole method on chatterbot-corpus with packaged models; no network needed.",
    )
    parser.add_argument(
        "--out", type=Path, default=Path("hn-demo"), help="output folder (default: ./hn-demo)"
    )
    parser.add_argument(
        "--num-negatives", type=positive_int, default=3, help="negatives per pair (default: 3)"
    )
    parser.add_argument("--epochs", type=positive_int, default=1, help="fine-tuning epochs (default: 1)")
    parser.add_argument("--seed", type=non_negative_int, default=0)
    parser.add_argument("--mine-only", action="store_true", help="stop after mining")
    parser.set_defaults(func=run)
