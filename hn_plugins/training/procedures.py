"""The two ways :func:`~hn_plugins.training.trainer.fine_tune_reranker` chooses the model it keeps.

- :func:`run_holdout`: validate on queries held out of the train split (or a given validation set) after every
  epoch, keep the best checkpoint (or the starting model when nothing beats it);
- :func:`run_cross_fit`: one model per fold of the train queries, the number of epochs (and the fusion weight)
  chosen on every fold's held-out scores at once, then one final model on all train queries.

Both return a :class:`KeptModel`: the model and what the folder's marker and card say about how it was chosen.
"""

from __future__ import annotations

import functools
import gc
import logging
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hn_plugins.data import RetrievalDataset
from hn_plugins.fusion import ScoreFusion
from hn_plugins.mining.result import MiningResult
from hn_plugins.training.evaluator import RerankingMRREvaluator
from hn_plugins.training.fit import FitResult, fit_model, seed_everything
from hn_plugins.training.model_folder import load_base_model
from hn_plugins.training.selection import CrossFitDecision, choose_by_cross_fitting
from hn_plugins.training.settings import FineTuneSettings

logger = logging.getLogger(__name__)

__all__ = ["KeptModel", "evaluator_factory", "run_cross_fit", "run_holdout"]


@dataclass
class KeptModel:
    """The model a fine-tuning keeps and how it was chosen.

    Args:
        model: the kept model (trained, or the starting model).
        fit: the run whose rows, loss and speed the marker reports (the final run of cross-fitting).
        history: the validation curve (``{"epoch", "step", "mrr@3", "mrr@10"}`` per evaluation; step 0 = start).
        stats: record and row counts of that run.
        selected: ``"checkpoint"``, ``"final"`` or ``"base"`` (the starting model).
        selected_step: the step of the kept model on the curve.
        fusion: the weight chosen to mix the reranker's scores with BM25's (``None``: not chosen).
        validation_queries: how many queries validated.
        validation_top_k: BM25 candidates reranked per validation query.
        validation_first_stage: the first stage's MRR@10 on the validation queries.
        validation_source: where the validation queries came from, in words.
        train_seconds: training time of every run (validation during training included).
        stopped_early: whether early stopping ended the run before its last epoch.
        decision: the cross-fitting decision (``None`` for hold-out).
        train_examples: training rows seen by every run, counted once per epoch (the fold models included).
        validation_seconds: the part of ``train_seconds`` spent validating during training.
        train_examples_before_resume: the part of ``train_examples`` an interrupted earlier process trained
            before this one resumed from its checkpoint (outside ``train_seconds``).
    """

    model: Any
    fit: FitResult
    history: list[dict[str, float]]
    stats: dict[str, int]
    selected: str
    selected_step: int
    fusion: ScoreFusion | None
    validation_queries: int
    validation_top_k: int
    validation_first_stage: float
    validation_source: str
    train_seconds: float
    stopped_early: bool
    decision: CrossFitDecision | None = None
    train_examples: int = 0
    validation_seconds: float = 0.0
    train_examples_before_resume: int = 0

    @property
    def start(self) -> dict[str, float] | None:
        """The starting model's entry of the curve (``None`` when it was not validated)."""
        return next((h for h in self.history if h["step"] == 0), None)


def evaluator_factory(
    settings: FineTuneSettings, validation_candidates: dict[str, list[str]] | None
) -> Callable[..., RerankingMRREvaluator]:
    """``RerankingMRREvaluator`` with the candidates and batch size of this fine-tuning; without given candidates the
    evaluator retrieves BM25's top-k itself and keeps the scores for fusion."""
    return functools.partial(
        RerankingMRREvaluator,
        candidates=validation_candidates,
        top_k=settings.first_stage_top_k,
        batch_size=max(32, settings.batch_size),
    )


def run_cross_fit(
    settings: FineTuneSettings,
    *,
    base_model: str | os.PathLike[str],
    result: MiningResult,
    dataset: RetrievalDataset,
    make_evaluator: Callable[..., RerankingMRREvaluator],
    work: Path,
    callbacks: Sequence[Any] | None = None,
) -> KeptModel:
    """Cross-fitting: ``settings.folds`` fold models (every train query validates exactly one of them), the number
    of epochs and the fusion weight chosen on all their held-out scores, then the final model on all of
    ``dataset`` for that many epochs (0: the starting model, loaded only)."""
    run = functools.partial(fit_model, settings, base_model=base_model, result=result, callbacks=callbacks)
    fold_evaluators = []
    fold_seconds = 0.0
    fold_validation_seconds = 0.0
    fold_examples = 0
    for i, (rest, held) in enumerate(dataset.folds(settings.folds, settings.seed)):
        evaluator = make_evaluator(held, name=f"fold{i}", record_scores=True, write_csv=False)
        logger.info(
            "Cross-fitting fold %d/%d: %d held-out queries.", i + 1, settings.folds, len(evaluator.query_ids)
        )
        fold_work = work.parent / f"{work.name}-fold{i}"
        fold_fit = run(
            train_part=rest,
            evaluator=evaluator,
            epochs=settings.epochs,
            work=fold_work,
            resume=False,
            checkpoints=False,
        )
        fold_seconds += fold_fit.train_seconds
        fold_validation_seconds += fold_fit.validation_seconds
        fold_examples += fold_fit.examples
        shutil.rmtree(fold_work, ignore_errors=True)
        del fold_fit
        gc.collect()
        fold_evaluators.append(evaluator)
    decision = choose_by_cross_fitting(
        fold_evaluators,
        fuse=settings.choose_fusion,
        alpha=settings.selection_alpha,
        fusion_rule=settings.fusion_rule,
    )
    fit = run(train_part=dataset, evaluator=None, epochs=decision.epochs, work=work, resume=settings.resume)
    fit.stats["records_validation_queries"] = 0
    history = [
        {
            "epoch": float(c["epochs"]),
            "step": int(c["epochs"] * fit.steps_per_epoch),
            "mrr@3": c["mrr@3"],
            "mrr@10": c["mrr@10"],
            **({"mrr@10_fused": c["mrr@10_fused"]} if c["mrr@10_fused"] is not None else {}),
            **({"p_vs_start": c["p_vs_start"]} if c.get("p_vs_start") is not None else {}),
        }
        for c in decision.curve
    ]
    first_stage = sum(ev.first_stage["mrr@10"] * len(ev.query_ids) for ev in fold_evaluators)
    return KeptModel(
        model=fit.model,
        fit=fit,
        history=history,
        stats=fit.stats,
        selected="base" if decision.epochs == 0 else "final",
        selected_step=int(decision.epochs * fit.steps_per_epoch),
        fusion=decision.fusion,
        validation_queries=decision.queries,
        validation_top_k=max(ev.top_k for ev in fold_evaluators),
        validation_first_stage=first_stage / decision.queries,
        validation_source=f"cross-fit: {decision.folds} folds of the train queries",
        train_seconds=fold_seconds + fit.train_seconds,
        stopped_early=False,
        decision=decision,
        train_examples=fold_examples + fit.examples,
        validation_seconds=fold_validation_seconds + fit.validation_seconds,
        train_examples_before_resume=fit.examples_before_resume,
    )


def _best_or_base(
    settings: FineTuneSettings, base_model: str | os.PathLike[str], fit: FitResult
) -> tuple[Any, str, int]:
    """``(model, selected, selected_step)``: the best checkpoint, or the starting model when
    ``keep_base_if_better`` is set and no checkpoint beat it on validation."""
    start = next((h for h in fit.history if h["step"] == 0), None)
    trained = [h for h in fit.history if h["step"] > 0]
    best_trained = max(trained, key=lambda h: h["mrr@10"], default=None)
    if (
        settings.keep_base_if_better
        and start is not None
        and (best_trained is None or best_trained["mrr@10"] < start["mrr@10"])
    ):
        logger.warning(
            "No checkpoint beat the starting model on validation (MRR@10 %.4f vs best %.4f): keeping the "
            "starting model (keep_base_if_better=True).",
            start["mrr@10"],
            best_trained["mrr@10"] if best_trained else float("nan"),
        )
        # the same start as the one validated at step 0 (an untrained head is seeded)
        seed_everything(settings.seed)
        model, _ = load_base_model(
            base_model, settings.kind, max_length=settings.max_length, device=settings.device
        )
        return model, "base", 0
    return fit.model, "checkpoint", int(best_trained["step"]) if best_trained else 0


def run_holdout(
    settings: FineTuneSettings,
    *,
    base_model: str | os.PathLike[str],
    result: MiningResult,
    dataset: RetrievalDataset,
    eval_dataset: RetrievalDataset | None,
    make_evaluator: Callable[..., RerankingMRREvaluator],
    work: Path,
    callbacks: Sequence[Any] | None = None,
) -> KeptModel:
    """Hold-out validation: validation queries from ``eval_dataset`` or held out of ``dataset`` (never the test
    split), validated after every epoch (or ``eval_steps``) with early stopping; the best checkpoint is kept."""
    if eval_dataset is None:
        train_part, validation = dataset.split(settings.validation_fraction, settings.seed)
    else:
        train_part, validation = dataset, eval_dataset
        overlap = set(train_part.judged_query_ids) & set(eval_dataset.judged_query_ids)
        if overlap:
            logger.warning(
                "eval_dataset shares %d query id(s) with the training data; validation will be optimistic.",
                len(overlap),
            )
    evaluator = make_evaluator(validation, name="validation")
    fit = fit_model(
        settings,
        base_model=base_model,
        result=result,
        train_part=train_part,
        evaluator=evaluator,
        epochs=settings.epochs,
        eval_steps=settings.eval_steps,
        early_stopping_patience=settings.early_stopping_patience,
        work=work,
        resume=settings.resume,
        callbacks=callbacks,
    )
    if eval_dataset is None:
        fit.stats["records_validation_queries"] = fit.stats.pop("records_other_queries")
    model, selected, selected_step = _best_or_base(settings, base_model, fit)
    return KeptModel(
        model=model,
        fit=fit,
        history=fit.history,
        stats=fit.stats,
        selected=selected,
        selected_step=selected_step,
        fusion=evaluator.choose_fusion(model, rule=settings.fusion_rule) if settings.choose_fusion else None,
        validation_queries=len(evaluator.query_ids),
        validation_top_k=evaluator.top_k,
        validation_first_stage=evaluator.first_stage["mrr@10"],
        validation_source="eval_dataset" if eval_dataset is not None else "held-out train queries",
        train_seconds=fit.train_seconds,
        stopped_early=bool(fit.steps < fit.total_steps),
        decision=None,
        train_examples=fit.examples,
        validation_seconds=fit.validation_seconds,
        train_examples_before_resume=fit.examples_before_resume,
    )
