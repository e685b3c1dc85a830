"""Mine hard negatives with the paper's method and fine-tune a bi-encoder reranker on them.

    python examples/02_train_reranker.py --data ../shared/data/medline --out runs/train

Prints the mining summary, the validation curve (MRR@10 on held-out *train* queries after every epoch; step 0 is
the starting model, ``*`` marks the kept checkpoint) and the weight chosen on those queries to fuse the reranker's
scores with BM25's. Writes the triplets (``paper.jsonl``) and the model folder (``model/``, with
``hn_reranker.json``); evaluate it with ``examples/03_evaluate_reranker.py``. Runs offline with the packaged models
(a few minutes on 2 cores for Medline with ``--epochs 1 --max-length 64``).

``--selection cross-fit`` selects as the shipped ``default`` does: one model per fold of the train queries (5 folds),
the epochs and the fusion weight chosen on every train query's held-out scores, then the final model trained on all
train queries; the curve then has one row per epoch count (6 trainings instead of 1).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from hn_plugins import EmbedderEnsemble, HardNegativeMiner, PCAReducer, load_beir
from hn_plugins.fusion import ScoreFusion
from hn_plugins.training import fine_tune_reranker

logger = logging.getLogger("example.train")


def format_fusion(fusion: ScoreFusion | None) -> str:
    """One line describing the fusion weight chosen on validation (``None``: none was chosen).

    Args:
        fusion: the trained reranker's fusion setting.

    Returns:
        A human-readable line.

    Example:
        >>> format_fusion(None)
        'fusion with the first stage: none chosen (the reranker is used alone)'
    """
    if fusion is None:
        return "fusion with the first stage: none chosen (the reranker is used alone)"
    line = (
        f"fusion with the first stage ({fusion.first_stage}): weight {fusion.weight:.1f} on the reranker, "
        f"{fusion.normalization}-normalised per query"
    )
    if fusion.validation:
        v = fusion.validation
        line += (
            f"; validation MRR@10 {v['mrr@10_fused']:.4f} fused, {v['mrr@10_reranker']:.4f} reranker alone, "
            f"{v['mrr@10_first_stage']:.4f} first stage alone"
        )
    return line


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared/data/medline"
    )
    parser.add_argument("--out", type=Path, default=Path("runs/train"))
    parser.add_argument("--epochs", type=int, default=2, help="maximum epochs (early stopping on validation)")
    parser.add_argument("--lr", type=float, default=5e-5, help="learning rate")
    parser.add_argument("--max-length", type=int, default=128, help="maximum tokens per text")
    parser.add_argument(
        "--seed", type=int, default=0, help="seeds mining order, training and validation split"
    )
    parser.add_argument(
        "--selection",
        choices=["holdout", "cross-fit"],
        default="holdout",
        help="validate on a 20%% hold-out (default) or cross-fit over 5 folds of the train queries",
    )
    args = parser.parse_args()

    # 1. load the train split; the trainer holds out 20% of its judged queries for validation
    train = load_beir(args.data, split="train", empty_documents="drop")
    logger.info("%r", train)

    # 2. the paper: ensemble of two diverse bi-encoders -> PCA (95% of the variance) -> Eq. 5 and Eq. 6
    ensemble = EmbedderEnsemble(["all-MiniLM-L6-v2", "static-model"], cache_dir=args.out / "cache")
    miner = HardNegativeMiner(ensemble, PCAReducer(variance=0.95), selector="paper", num_negatives=1)
    result = miner.fit(train).mine(train)
    result.to_jsonl(args.out / "paper.jsonl")
    summary = result.summary()
    logger.info(
        "paper selector: %d of %d pairs got a negative", summary["pairs_with_negative"], summary["pairs"]
    )

    # 3. fine-tune all-MiniLM-L6-v2 as a cosine reranker with the paper's triplet loss (Eq. 8); the folder is
    #    written when training ends and keeps the best validation checkpoint (or the starting model)
    trained = fine_tune_reranker(
        result,
        train,
        "all-MiniLM-L6-v2",
        kind="bi",
        epochs=args.epochs,
        lr=args.lr,
        output_dir=args.out / "model",
        max_length=args.max_length,
        seed=args.seed,
        selection=args.selection,
    )

    # 4. what was mined, how validation moved, what was kept
    m = trained.metrics
    sys.stdout.write("negatives\n" + result.format_summary() + "\n\n")
    how = "pooled over 5 folds" if args.selection == "cross-fit" else "held-out"
    sys.stdout.write(
        f"validation curve ({m['validation_queries']} {how} train queries, "
        f"BM25 first stage MRR@10 {m['validation_first_stage_mrr@10']:.4f})\n"
    )
    sys.stdout.write(trained.format_curve() + "\n")
    sys.stdout.write(f"kept: {m['selected']} (step {m['selected_step']}); model -> {trained.path}\n")
    sys.stdout.write(format_fusion(trained.fusion) + "\n")


if __name__ == "__main__":
    main()
