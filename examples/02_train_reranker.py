"""Mine hard negatives and fine-tune a bi-encoder reranker on them: the shipped ``default`` recipe, or the paper's.

    python examples/02_train_reranker.py                           # the embedded demo set (./hn-demo/data)
    python examples/02_train_reranker.py --data my-beir-folder --out runs/train --recipe paper

``--data`` is a BEIR folder with ``qrels/train.tsv``; by default the demo set ``hn demo`` writes to ``hn-demo/data``
(``hn demo --export DIR`` writes it anywhere), written there on first use. ``--recipe default`` (the default) is the
recipe ``hn demo`` runs as ``default`` and ``hn mine --selector default`` + ``hn train --loss in-batch --selection
cross-fit`` run: the paper's negatives, the positive-aware fallback where none qualifies, one random negative per
pair, the in-batch loss, and the epochs and the fusion weight chosen by cross-fitting (one model per fold of the
train queries, 5 folds, then the final model on all of them: 6 trainings), training only when the folds' pooled
gain over the untuned model is significant (paired p < 0.05; otherwise the untuned model is kept, fused with BM25).
``--recipe paper`` is the paper's method:
its negatives, the triplet loss (Eq. 8) and a 20% hold-out of the train queries. ``--selection`` overrides either
recipe's selection.

Prints the mining summary, the validation curve (MRR@10 of held-out *train* queries after every epoch; step 0 is the
starting model, ``*`` marks the kept one) and the weight chosen to fuse the reranker's scores with BM25's. Writes the
triplets (``<recipe>.jsonl``) and the model folder (``model/``, with ``hn_reranker.json``); evaluate it with
``examples/03_evaluate_reranker.py``. Runs offline with the packaged models (a few minutes on 2 cores for the demo
set).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from hn_plugins import EmbedderEnsemble, HardNegativeMiner, PCAReducer, load_beir
from hn_plugins.demo_data import export_demo_dataset
from hn_plugins.fusion import ScoreFusion
from hn_plugins.training import fine_tune_reranker
from hn_plugins.training.model_card import kept_start_note

logger = logging.getLogger("example.train")

#: Where the embedded demo set goes when no --data is given.
DEMO_DATA = Path("hn-demo/data")
#: Selector, loss and selection of each recipe (``default``: as ``DEFAULT_STRATEGY`` ships it).
RECIPES = {
    "default": {"selector": "default", "loss": "in-batch", "selection": "cross-fit"},
    "paper": {"selector": "paper", "loss": "triplet", "selection": "holdout"},
}


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
    parser.add_argument("--data", type=Path, default=DEMO_DATA, help="BEIR folder (default: the demo set)")
    parser.add_argument("--out", type=Path, default=Path("runs/train"))
    parser.add_argument(
        "--recipe", choices=sorted(RECIPES), default="default", help="default (shipped) or paper"
    )
    parser.add_argument("--epochs", type=int, default=2, help="maximum epochs (early stopping on validation)")
    parser.add_argument("--lr", type=float, default=5e-5, help="learning rate")
    parser.add_argument("--max-length", type=int, default=128, help="maximum tokens per text")
    parser.add_argument(
        "--seed", type=int, default=0, help="seeds mining order, training and validation split"
    )
    parser.add_argument(
        "--selection",
        choices=["holdout", "cross-fit"],
        default=None,
        help="validate on a 20%% hold-out or cross-fit over 5 folds of the train queries (default: the recipe's)",
    )
    args = parser.parse_args()
    recipe = RECIPES[args.recipe]
    selection = args.selection or recipe["selection"]

    # 1. load the train split (the trainer validates on held-out train queries, never on the test split)
    if args.data == DEMO_DATA and not DEMO_DATA.exists():
        export_demo_dataset(DEMO_DATA)  # what `hn demo` writes there
    train = load_beir(args.data, split="train", empty_documents="drop")
    logger.info("%r", train)

    # 2. mine: ensemble of two diverse bi-encoders -> PCA (95% of the variance) -> the recipe's selector
    ensemble = EmbedderEnsemble(["all-MiniLM-L6-v2", "static-model"], cache_dir=args.out / "cache")
    miner = HardNegativeMiner(
        ensemble, PCAReducer(variance=0.95), selector=recipe["selector"], num_negatives=1
    )
    result = miner.fit(train).mine(train)
    result.to_jsonl(args.out / f"{args.recipe}.jsonl")
    summary = result.summary()
    logger.info(
        "%s selector: %d of %d pairs got a negative",
        recipe["selector"],
        summary["pairs_with_negative"],
        summary["pairs"],
    )

    # 3. fine-tune all-MiniLM-L6-v2 as a cosine reranker with the recipe's loss; the folder is written when
    #    training ends and keeps the best validation checkpoint (or the starting model) and the fusion weight
    trained = fine_tune_reranker(
        result,
        train,
        "all-MiniLM-L6-v2",
        kind="bi",
        loss=recipe["loss"],
        epochs=args.epochs,
        lr=args.lr,
        output_dir=args.out / "model",
        max_length=args.max_length,
        seed=args.seed,
        selection=selection,
    )

    # 4. what was mined, how validation moved, what was kept
    m = trained.metrics
    sys.stdout.write(f"recipe {args.recipe}: {recipe['selector']} negatives, {recipe['loss']} loss\n")
    sys.stdout.write("negatives\n" + result.format_summary() + "\n\n")
    how = "pooled over 5 folds" if selection == "cross-fit" else "held-out"
    sys.stdout.write(
        f"validation curve ({m['validation_queries']} {how} train queries, "
        f"BM25 first stage MRR@10 {m['validation_first_stage_mrr@10']:.4f})\n"
    )
    sys.stdout.write(trained.format_curve() + "\n")
    sys.stdout.write(f"kept: {m['selected']} (step {m['selected_step']}); model -> {trained.path}\n")
    note = kept_start_note(m)
    if note:
        sys.stdout.write(note + "\n")
    sys.stdout.write(format_fusion(trained.fusion) + "\n")


if __name__ == "__main__":
    main()
