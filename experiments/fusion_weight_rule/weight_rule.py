"""How the untrained model's fusion weight is chosen, and what each rule gives on test, by train size.

The benchmark's ``zero-shot+fusion`` row (and ``default`` when cross-fitting keeps the start) fuses the untrained
bi-encoder with BM25 at the weight that maximises MRR@10 on the train questions (``choose_fusion_weight``). This
script scores every train and test question's BM25 top-k with the untrained model once, then, for each train size
and seed (the benchmark's nested subsets, ``TrainSplits``), chooses the weight by each rule and scores it on test:

- ``argmax``: the best mean MRR@10 (ties towards 0.5), the rule shipped until this experiment;
- ``one-se``: the most balanced weight within one standard error of the best, the rule shipped since;
- ``significant-0.05`` / ``significant-0.2``: ``argmax`` only if it beats 0.5 with a paired permutation p below
  0.05 / 0.2 on the same train questions, else 0.5;
- ``interior``: ``argmax`` over 0.1..0.9 (both signals always count);
- ``bagged-mean`` / ``bagged-median``: the mean / median of ``argmax`` over 200 bootstrap resamples;
- ``smoothed``: ``argmax`` of the curve averaged with its neighbours.

Usage::

    python experiments/fusion_weight_rule/weight_rule.py --data ../shared/data/scifact --max-length 128 \
        --sizes 50,100,200,400,all --seeds 0,1,2 --work WORK --out results/scifact.json
    python experiments/fusion_weight_rule/weight_rule.py --table results/*.json
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hn_evaluation.benchmark import BenchmarkSettings
from hn_evaluation.benchmark.data import TrainSplits, load_benchmark_data
from hn_evaluation.benchmark.scoring import load_bi_encoder
from hn_plugins.fusion import FUSION_WEIGHTS, best_fusion_weight, choose_fusion_weight, fused_reciprocal_ranks
from hn_plugins.significance import paired_permutation_test
from hn_plugins.training.evaluator import RerankingMRREvaluator

logger = logging.getLogger("weight_rule")

Query = tuple[np.ndarray, np.ndarray, np.ndarray]
INTERIOR = tuple(w for w in FUSION_WEIGHTS if 0.0 < w < 1.0)


def scored_queries(split: Any, model: Any, top_k: int, cache: Path) -> dict[str, Query]:
    """``{query id: (model cosine, BM25 score, is positive)}`` over BM25's top ``top_k``, cached in ``cache``.

    The cache stores each query's candidate ids with its scores; a cache whose candidates differ from today's
    first stage is scored again.
    """
    evaluator = RerankingMRREvaluator(split, top_k=top_k, name=split.name, write_csv=False)
    qids = evaluator.query_ids
    scores: list[np.ndarray] | None = None
    if cache.is_file():
        stored = np.load(cache, allow_pickle=False)
        if all(f"ids{i}" in stored for i in range(len(qids))):
            by_id = [
                dict(zip(stored[f"ids{i}"].tolist(), stored[f"s{i}"], strict=True)) for i in range(len(qids))
            ]
            if all(set(evaluator.candidates[q]) <= set(m) for q, m in zip(qids, by_id, strict=True)):
                scores = [
                    np.array([m[d] for d in evaluator.candidates[q]])
                    for q, m in zip(qids, by_id, strict=True)
                ]
        if scores is None:
            logger.info("%s: the cache's candidates differ from the first stage's; scoring again", cache)
    if scores is None:
        started = time.perf_counter()
        scores = evaluator.scores(model)
        logger.info("%s: %d queries scored in %.0f s", split.name, len(scores), time.perf_counter() - started)
        arrays: dict[str, Any] = {f"s{i}": s for i, s in enumerate(scores)}
        arrays.update({f"ids{i}": np.array(evaluator.candidates[q]) for i, q in enumerate(qids)})
        np.savez(cache, **arrays)
    assert evaluator.first_stage_scores is not None  # BM25 candidates carry scores
    return {
        q: (
            np.asarray(s, dtype=np.float64),
            np.asarray(evaluator.first_stage_scores[q], dtype=np.float64),
            np.array([d in split.positives(q) for d in evaluator.candidates[q]], dtype=bool),
        )
        for q, s in zip(qids, scores, strict=True)
    }


def _per_weight(queries: Sequence[Query]) -> dict[float, np.ndarray]:
    return {float(w): fused_reciprocal_ranks(queries, w) for w in FUSION_WEIGHTS}


def rule_argmax(queries: Sequence[Query]) -> float:
    """The best mean MRR@10, whatever the evidence (the rule shipped until this experiment)."""
    return choose_fusion_weight(queries, rule="best")[0]


def rule_one_se(queries: Sequence[Query]) -> float:
    """The most balanced weight within one standard error of the best (the rule shipped since)."""
    return choose_fusion_weight(queries)[0]


def _significant(queries: Sequence[Query], alpha: float) -> float:
    per_weight = _per_weight(queries)
    best = best_fusion_weight({w: float(v.mean()) for w, v in per_weight.items()})
    if best == 0.5:
        return best
    return best if paired_permutation_test(per_weight[best], per_weight[0.5]) < alpha else 0.5


def rule_significant_05(queries: Sequence[Query]) -> float:
    """``argmax`` only where it beats 0.5 with a paired permutation p < 0.05 on these queries, else 0.5."""
    return _significant(queries, 0.05)


def rule_significant_20(queries: Sequence[Query]) -> float:
    """As ``significant-0.05`` with p < 0.2."""
    return _significant(queries, 0.2)


def rule_interior(queries: Sequence[Query]) -> float:
    """``argmax`` over 0.1..0.9 (both signals always count)."""
    return choose_fusion_weight(queries, weights=INTERIOR, rule="best")[0]


def _bootstrap_picks(queries: Sequence[Query], resamples: int = 200, seed: int = 0) -> np.ndarray:
    per_weight = _per_weight(queries)
    weights = list(per_weight)
    matrix = np.stack([per_weight[w] for w in weights])
    rng = np.random.default_rng(seed)
    picks = []
    for _ in range(resamples):
        means = matrix[:, rng.integers(0, matrix.shape[1], matrix.shape[1])].mean(axis=1)
        picks.append(best_fusion_weight(dict(zip(weights, means.tolist(), strict=True))))
    return np.asarray(picks)


def rule_bagged_mean(queries: Sequence[Query]) -> float:
    """Mean of ``argmax`` over 200 bootstrap resamples of the queries, rounded to 0.1."""
    return float(np.round(_bootstrap_picks(queries).mean(), 1))


def rule_bagged_median(queries: Sequence[Query]) -> float:
    """Median of ``argmax`` over 200 bootstrap resamples of the queries, rounded to 0.1."""
    return float(np.round(np.median(_bootstrap_picks(queries)), 1))


def rule_smoothed(queries: Sequence[Query]) -> float:
    """``argmax`` of the curve averaged over each weight and its two neighbours."""
    means = {w: float(v.mean()) for w, v in _per_weight(queries).items()}
    weights = list(means)
    smooth = {
        w: float(np.mean([means[weights[j]] for j in (i - 1, i, i + 1) if 0 <= j < len(weights)]))
        for i, w in enumerate(weights)
    }
    return best_fusion_weight(smooth)


RULES: dict[str, Callable[[Sequence[Query]], float]] = {
    "argmax": rule_argmax,
    "one-se": rule_one_se,
    "significant-0.05": rule_significant_05,
    "significant-0.2": rule_significant_20,
    "interior": rule_interior,
    "bagged-mean": rule_bagged_mean,
    "bagged-median": rule_bagged_median,
    "smoothed": rule_smoothed,
}


def evaluate(
    train: Any, train_q: Mapping[str, Query], test_q: Mapping[str, Query], sizes: Sequence[int | None],
    seeds: Sequence[int],
) -> dict[str, Any]:  # fmt: skip
    """Each rule's weight and test MRR@10 for every size and seed, and the untrained rows on test."""
    test_list = list(test_q.values())
    on_test = _per_weight(test_list)
    out: dict[str, Any] = {
        "test_queries": len(test_list),
        "test_mrr@10_by_weight": {str(w): float(v.mean()) for w, v in on_test.items()},
        "none": float(on_test[0.0].mean()),
        "zero-shot": float(on_test[1.0].mean()),
        "points": [],
    }
    for size in sizes:
        for seed in seeds if size is not None else seeds[:1]:
            part = TrainSplits(train, size).for_seed(seed)
            chosen = [train_q[q] for q in part.judged_query_ids if q in train_q]
            point: dict[str, Any] = {"train_size": len(chosen), "seed": seed if size is not None else None}
            picks = {name: rule(chosen) for name, rule in RULES.items()}
            for name, w in picks.items():
                point[name] = {
                    "weight": w,
                    "test_mrr@10": float(on_test[w].mean()),
                    "p_vs_argmax": paired_permutation_test(on_test[w], on_test[picks["argmax"]]),
                }
            out["points"].append(point)
            logger.info("%s", point)
    return out


def summary(result: Mapping[str, Any]) -> dict[str, Any]:
    """Per rule: mean test MRR@10 per size, and the worst shortfall below max(none, zero-shot, argmax)."""
    rows: dict[str, Any] = {}
    for name in RULES:
        by_size: dict[int, list[float]] = {}
        worst = 0.0
        for p in result["points"]:
            value = p[name]["test_mrr@10"]
            by_size.setdefault(p["train_size"], []).append(value)
            floor = max(result["none"], result["zero-shot"], p["argmax"]["test_mrr@10"])
            worst = min(worst, value - floor)
        rows[name] = {
            "mean_by_size": {str(k): float(np.mean(v)) for k, v in sorted(by_size.items())},
            "worst_below_best_untrained": worst,
        }
    return rows


def table(results: Sequence[Mapping[str, Any]]) -> str:
    """Markdown: per dataset and train size, each rule's test MRR@10 (mean over seeds; worst seed in brackets)
    and the best untrained single signal (``none`` or ``zero-shot``)."""
    lines = [
        "| dataset | train questions | seeds | BM25 / zero-shot | " + " | ".join(RULES) + " |",
        "|---|---|---|---|" + "---|" * len(RULES),
    ]
    for r in results:
        by_size: dict[int, list[Mapping[str, Any]]] = {}
        for p in r["points"]:
            by_size.setdefault(p["train_size"], []).append(p)
        for size, points in sorted(by_size.items()):
            cells = []
            for name in RULES:
                values = [p[name]["test_mrr@10"] for p in points]
                cells.append(f"{np.mean(values):.3f}" + (f" ({min(values):.3f})" if len(values) > 1 else ""))
            lines.append(
                f"| {r['dataset']} ({r['max_length']} tokens) | {size} | {len(points)} | "
                f"{r['none']:.3f} / {r['zero-shot']:.3f} | " + " | ".join(cells) + " |"
            )
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--table", nargs="+", type=Path, help="print the table of these result files and stop"
    )
    parser.add_argument("--data", type=Path)
    parser.add_argument("--model", default="all-MiniLM-L6-v2")
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--top-k", type=int, default=100)
    parser.add_argument("--sizes", default="all", help="comma-separated train sizes; 'all' = the whole split")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--work", type=Path, help="score cache")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    if args.table:
        sys.stdout.write(table([json.loads(p.read_text(encoding="utf-8")) for p in args.table]))
        return 0
    if args.data is None or args.work is None or args.out is None:
        parser.error("--data, --work and --out are needed (or --table FILES)")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    started = time.perf_counter()
    args.work.mkdir(parents=True, exist_ok=True)
    data = load_benchmark_data(args.data, BenchmarkSettings())  # the splits `hn benchmark` scores
    train, test = data.train, data.test
    model = load_bi_encoder(args.model, args.max_length)
    tag = f"{args.data.name}-{args.max_length}-{args.top_k}"
    train_q = scored_queries(train, model, args.top_k, args.work / f"{tag}-train.npz")
    test_q = scored_queries(test, model, args.top_k, args.work / f"{tag}-test.npz")
    sizes = [None if s.strip() == "all" else int(s) for s in args.sizes.split(",")]
    seeds = [int(s) for s in args.seeds.split(",")]
    result = evaluate(train, train_q, test_q, sizes, seeds)
    result.update(
        dataset=args.data.name, model=args.model, max_length=args.max_length, top_k=args.top_k,
        summary=summary(result), seconds=time.perf_counter() - started,
        command=" ".join(["python", "experiments/fusion_weight_rule/weight_rule.py", *sys.argv[1:]]),
    )  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    logger.info("summary: %s", json.dumps(result["summary"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
