"""Exploration: interpolate the fine-tuned bi-encoder's weights with its starting model's (WiSE-FT).

``default``'s fine-tune on a few dozen train queries moves the reranker little and noisily. Weight-space
ensembling (Wortsman et al., 2022, "Robust fine-tuning of zero-shot models") keeps
``(1 - alpha) * start + alpha * fine-tuned`` (``alpha > 1`` extrapolates past the fine-tuned model, along the
direction fine-tuning moved); this script trains ``default`` once per dataset and seed (the shipped
recipe: default negatives, in-batch loss, cross-fitted selection) and reports test MRR@10 for a grid of ``alpha``,
alone and fused with BM25 at the weight cross-fitting chose for the fine-tuned model.

It reads the test split for every ``alpha``, so it only says whether some ``alpha`` could help at all (an upper
bound); a shipped ``alpha`` would have to be chosen on the train queries, as cross-fitting chooses the epochs.

    python experiments/weight_interpolation/weight_interpolation.py --data ../shared/data --datasets cacm,python-docs-faq,cranfield --seeds 0 \
        --out experiments/weight_interpolation/results/weight_interpolation.json
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from pathlib import Path
from typing import Any

logger = logging.getLogger("weight_interpolation")

ALPHAS = (0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0)


def interpolate_state(start: dict[str, Any], tuned: dict[str, Any], alpha: float) -> dict[str, Any]:
    """``(1 - alpha) * start + alpha * tuned`` for floating-point tensors; other entries from ``tuned``."""
    out = {}
    for key, value in tuned.items():
        if value.is_floating_point():
            out[key] = (1.0 - alpha) * start[key].to(value.dtype) + alpha * value
        else:
            out[key] = value
    return out


def run_dataset(path: Path, seed: int, max_length: int, work: Path) -> dict[str, Any]:
    from hn_evaluation.benchmark import (
        EmbeddedBiEncoderScorer,
        FusedScorer,
        candidate_texts,
        first_stage_run,
        first_stage_scores_by_text,
    )
    from hn_evaluation.rerank import evaluate_reranking
    from hn_evaluation.significance import compare_rows
    from hn_plugins import EmbedderEnsemble, HardNegativeMiner, PCAReducer, load_beir
    from hn_plugins.models import load_sentence_transformer
    from hn_plugins.training.trainer import fine_tune_reranker, trained_reranker_from_folder

    train = load_beir(path, split="train", empty_documents="drop")
    test = load_beir(path, split="test", empty_documents="drop")
    start_time = time.perf_counter()
    model_dir = work / f"{path.name}-seed{seed}-len{max_length}"
    if (model_dir / "hn_reranker.json").is_file():  # kept by an earlier run with --work: evaluate it again
        trained = trained_reranker_from_folder(model_dir)
    else:
        ensemble = EmbedderEnsemble(["all-MiniLM-L6-v2", "static-model"], cache_dir=work / "cache")
        miner = HardNegativeMiner(
            ensemble, PCAReducer(variance=0.95), selector="default", num_negatives=1, seed=seed
        )
        trained = fine_tune_reranker(
            miner.fit(train).mine(train),
            train,
            "all-MiniLM-L6-v2",
            kind="bi",
            loss="in-batch",
            epochs=4,
            lr=2e-5,
            batch_size=16,
            seed=seed,
            max_length=max_length,
            output_dir=model_dir,
            device="cpu",
            selection="cross-fit",
            folds=5,
        )
    train_s = time.perf_counter() - start_time
    fs_run = first_stage_run(test, "bm25", top_k=100)
    fs_scores = first_stage_scores_by_text(test, fs_run)
    candidates = candidate_texts(test, fs_run, 100)
    queries = [test.queries[q] for q in fs_run]
    start = load_sentence_transformer("all-MiniLM-L6-v2").state_dict()
    tuned_model = load_sentence_transformer(trained.path)
    tuned_model.max_seq_length = max_length
    tuned = {k: v.clone() for k, v in tuned_model.state_dict().items()}
    rows: dict[str, Any] = {}
    per_query: dict[str, dict[str, float]] = {}
    for alpha in ALPHAS:
        tuned_model.load_state_dict(interpolate_state(start, tuned, alpha))
        scorer = EmbeddedBiEncoderScorer(tuned_model, candidates, queries, batch_size=64)
        rerankers: dict[str, Any] = {f"alpha={alpha}": scorer}
        if trained.fusion is not None:
            rerankers[f"alpha={alpha}+fusion"] = FusedScorer(scorer, trained.fusion, fs_scores)
        report = evaluate_reranking(test, fs_run, rerankers, top_k=100, metrics=("mrr@10",))
        for name, values in report.rows.items():
            rows[name] = values["mrr@10"]
            per_query[name] = {q: v["mrr@10"] for q, v in report.per_query[name].items()}
        logger.info(
            "%s seed %d alpha %.2f: %s", path.name, seed, alpha, {k: round(v, 4) for k, v in rows.items()}
        )
    # the rows as shipped (fused when a weight was chosen) against alpha = 1, query ids in sorted order
    suffix = "+fusion" if trained.fusion is not None else ""
    compared = {
        name: {q: {"mrr@10": by_query[q]} for q in sorted(by_query)}
        for name, by_query in per_query.items()
        if name.endswith(suffix)
    }
    tests = compare_rows(compared, ["mrr@10"], f"alpha=1.0{suffix}", "mrr@10")
    p_values = {name: test["p_value"] for name, test in tests.items()}
    cross_fit = trained.metrics.get("cross_fit", {})
    return {
        "seed": seed,
        "max_length": max_length,
        "train_queries": len(train.judged_query_ids),
        "test_queries": len(fs_run),
        "cross_fit_epochs": cross_fit.get("epochs"),
        "fusion_weight": trained.fusion.weight if trained.fusion is not None else None,
        "test_mrr@10": rows,
        "p_vs_alpha1": p_values,
        "train_seconds": round(train_s, 1),
        "seconds": round(time.perf_counter() - start_time, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="folder holding the BEIR datasets")
    parser.add_argument("--datasets", default="cacm", help="comma-separated dataset names")
    parser.add_argument("--seeds", default="0", help="comma-separated seeds")
    parser.add_argument("--max-length", type=int, default=128, help="tokens per text")
    parser.add_argument("--out", type=Path, required=True, help="JSON file (results are added to it)")
    parser.add_argument(
        "--work", type=Path, help="keep the embedding cache and the models here (default: a temp dir)"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    results = json.loads(args.out.read_text(encoding="utf-8")) if args.out.is_file() else {}
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        for name in args.datasets.split(","):
            for seed in (int(s) for s in args.seeds.split(",")):
                entry = run_dataset(args.data / name, seed, args.max_length, work)
                results.setdefault(name, {})[f"seed{seed}"] = entry
                args.out.parent.mkdir(parents=True, exist_ok=True)
                args.out.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
                logger.info("%s seed %d: %s", name, seed, json.dumps(entry["test_mrr@10"]))


if __name__ == "__main__":
    main()
