"""Cross-fitted model selection: choose the number of epochs and the fusion weight on every train query.

With a single held-out share of a small train split (2-18 queries on ../shared/data), the checkpoint and the fusion
weight chosen on validation are noise: on Cranfield the validation MRR@10 rose while the test MRR@10 fell. Cross-
fitting trains one model per fold of the train queries, scores each fold's held-out queries after every epoch, and
pools the held-out scores, so every train query validates exactly one model. :func:`choose_by_cross_fitting` then
picks the epoch count (0 = keep the starting model) and the fusion weight with the best pooled MRR@10; the final
model is trained on all train queries for that many epochs (:func:`hn_plugins.training.fine_tune_reranker` with
``selection="cross-fit"``).

With ``alpha`` set, a best epoch count above 0 must also beat the starting model on the same pooled queries in a
paired permutation test (:func:`hn_plugins.significance.paired_permutation_test`, p < ``alpha``); a smaller gain
keeps the starting model, so a fine-tuned model ships only when its held-out gain is more than noise.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np

from hn_plugins.fusion import (
    DEFAULT_FUSION_RULE,
    FusionRule,
    Normalization,
    ScoreFusion,
    choose_fusion_weight,
    fused_reciprocal_ranks,
)
from hn_plugins.significance import paired_permutation_test
from hn_plugins.training.evaluator import mrr_at_k

logger = logging.getLogger(__name__)

__all__ = ["CrossFitDecision", "choose_by_cross_fitting"]


@dataclass(frozen=True)
class CrossFitDecision:
    """What cross-fitting chose.

    Args:
        epochs: epochs to train the final model for (0: keep the starting model).
        fusion: the fusion weight chosen on the pooled held-out queries (``None``: not chosen).
        curve: one entry per epoch count: ``{"epochs", "mrr@3", "mrr@10", "mrr@10_fused", "weight",
            "p_vs_start"}`` (pooled held-out values; the fused ones are ``None`` without fusion; ``p_vs_start``:
            paired permutation p of that epoch count against 0 epochs on the selection metric, ``None`` for 0).
        queries: pooled held-out queries.
        folds: number of folds.
        best_epochs: the epoch count with the best pooled value, before the significance rule.
        alpha: the significance rule's threshold (``None``: no rule).

    Example:
        >>> d = CrossFitDecision(epochs=0, fusion=None, curve=[], queries=10, folds=5)
        >>> d.epochs
        0
    """

    epochs: int
    fusion: ScoreFusion | None
    curve: list[dict[str, Any]] = field(default_factory=list)
    queries: int = 0
    folds: int = 0
    best_epochs: int | None = None
    alpha: float | None = None

    @property
    def kept_start_by_rule(self) -> bool:
        """True when the best pooled epoch count trained, but not significantly better than the starting model."""
        return bool(self.best_epochs) and self.epochs == 0


def choose_by_cross_fitting(
    evaluators: Sequence[Any],
    fuse: bool = True,
    normalization: Normalization = "z",
    alpha: float | None = None,
    fusion_rule: FusionRule = DEFAULT_FUSION_RULE,
) -> CrossFitDecision:
    """Pool the recorded held-out scores of each fold's evaluator and pick the epoch count and fusion weight.

    Args:
        evaluators: one :class:`~hn_plugins.training.evaluator.RerankingMRREvaluator` per fold, built with
            ``record_scores=True`` and called once at the start and after every epoch (``recorded[i]`` = after
            ``i`` epochs).
        fuse: also choose a fusion weight with the first stage (needs the evaluators' first-stage scores).
        normalization: per-query normalisation of the fused scores.
        alpha: keep the starting model unless the best epoch count beats it with a paired permutation p below
            ``alpha`` on the pooled per-query MRR@10 (fused when ``fuse``); ``None``: no such rule.
        fusion_rule: how each epoch count's fusion weight is chosen on the pooled queries
            (:func:`~hn_plugins.fusion.choose_fusion_weight`: ``one-se`` or ``best``).

    Returns:
        :class:`CrossFitDecision`. The epoch count maximises the pooled MRR@10 (fused with its best weight when
        ``fuse``); ties go to fewer epochs (the starting model first); with ``alpha``, 0 unless that maximum is
        significantly above the starting model.

    Raises:
        ValueError: no evaluator, or one that recorded nothing.

    Example:
        >>> from hn_plugins.data import RetrievalDataset
        >>> from hn_plugins.training.evaluator import RerankingMRREvaluator
        >>> ds = RetrievalDataset(corpus={"a": ("", "x"), "b": ("", "y")}, queries={"q": "x"}, qrels={"q": {"a": 1}})
        >>> ev = RerankingMRREvaluator(ds, candidates={"q": ["b", "a"]}, first_stage_scores={"q": [2.0, 1.0]},
        ...                            record_scores=True, write_csv=False)
        >>> ev.recorded = [{"epoch": 0.0, "step": 0, "scores": [np.array([0.9, 0.1])]},
        ...                {"epoch": 1.0, "step": 5, "scores": [np.array([0.1, 0.9])]}]
        >>> choose_by_cross_fitting([ev], fuse=False).epochs
        1
        >>> choose_by_cross_fitting([ev], fuse=False, alpha=0.05).epochs  # one query cannot show significance
        0
    """
    if not evaluators:
        raise ValueError("choose_by_cross_fitting() needs at least one fold evaluator.")
    counts = [len(ev.recorded) for ev in evaluators]
    if min(counts) == 0:
        raise ValueError(
            "A fold evaluator recorded no scores; build it with record_scores=True and train with it."
        )
    if len(set(counts)) > 1:
        logger.warning(
            "Folds recorded different numbers of evaluations %s; using the first %d.", counts, min(counts)
        )
    fuse = fuse and all(ev.first_stage_scores is not None for ev in evaluators)
    curve: list[dict[str, Any]] = []
    fusions: list[ScoreFusion | None] = []
    per_query: list[np.ndarray] = []
    for i in range(min(counts)):
        pooled, rr3, rr10 = [], [], []
        for ev in evaluators:
            scores = ev.recorded[i]["scores"]
            ranked = ev.order_by(scores)
            for q, s in zip(ev.query_ids, scores, strict=True):
                positives = ev.dataset.positives(q)
                rr3.append(mrr_at_k(ranked[q], positives, 3))
                rr10.append(mrr_at_k(ranked[q], positives, 10))
                first = ev.first_stage_scores[q] if ev.first_stage_scores is not None else None
                pooled.append((s, first, [d in positives for d in ev.candidates[q]]))
        entry: dict[str, Any] = {
            "epochs": i,
            "mrr@3": float(np.mean(rr3)),
            "mrr@10": float(np.mean(rr10)),
            "mrr@10_fused": None,
            "weight": None,
            "p_vs_start": None,
        }
        fusion = None
        values = np.asarray(rr10, dtype=np.float64)
        if fuse:
            # fuse holds only when every evaluator has first-stage scores, so no pooled entry carries None
            scored = cast("list[tuple[np.ndarray, list[float], list[bool]]]", pooled)
            weight, by_weight = choose_fusion_weight(scored, normalization=normalization, rule=fusion_rule)
            entry["mrr@10_fused"], entry["weight"] = by_weight[weight], weight
            values = fused_reciprocal_ranks(scored, weight, normalization=normalization)
            fusion = ScoreFusion(
                weight=weight,
                normalization=normalization,
                first_stage=evaluators[0].first_stage_name,
                validation={
                    "queries": len(pooled),
                    "mrr@10_fused": by_weight[weight],
                    "mrr@10_reranker": by_weight[1.0],
                    "mrr@10_first_stage": by_weight[0.0],
                    "method": f"cross-fit, {len(evaluators)} folds",
                    "rule": fusion_rule,
                },
            )
        if i > 0:
            entry["p_vs_start"] = paired_permutation_test(values, per_query[0])
        curve.append(entry)
        fusions.append(fusion)
        per_query.append(values)
    key = "mrr@10_fused" if fuse else "mrr@10"
    best = max(range(len(curve)), key=lambda i: (round(curve[i][key], 12), -i))
    chosen = best
    if alpha is not None and best > 0 and not curve[best]["p_vs_start"] < alpha:
        chosen = 0
        logger.info(
            "Cross-fitting keeps the starting model: %d epoch(s) scored %.4f against %.4f on %d held-out queries, "
            "p = %.3g, not below %.3g.",
            best,
            curve[best][key],
            curve[0][key],
            len(pooled),
            curve[best]["p_vs_start"],
            alpha,
        )
    logger.info(
        "Cross-fitting (%d folds, %d held-out queries): %s",
        len(evaluators),
        len(pooled),
        ", ".join(
            f"{c['epochs']} epoch(s) MRR@10 {c['mrr@10']:.4f}"
            + (f" fused {c['mrr@10_fused']:.4f} (w {c['weight']:.1f})" if fuse else "")
            for c in curve
        ),
    )
    return CrossFitDecision(
        epochs=chosen,
        fusion=fusions[chosen],
        curve=curve,
        queries=len(pooled),
        folds=len(evaluators),
        best_epochs=best,
        alpha=alpha,
    )
