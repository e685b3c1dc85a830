"""Fine-tune a reranker (cross-encoder or bi-encoder) on mined triplets, with early stopping on validation MRR@10.

:func:`fine_tune_reranker` turns a :class:`~hn_plugins.mining.result.MiningResult` (or a triplet JSONL file) into
training rows, trains with sentence-transformers' ``CrossEncoderTrainer`` / ``SentenceTransformerTrainer`` and
one of our losses, validates on queries held out of the *train* split (never the test split), keeps the best
checkpoint, and writes a folder that plain ``CrossEncoder(path)`` / ``SentenceTransformer(path)`` and
:func:`hn_plugins.reranker.load_reranker` load.
"""

from __future__ import annotations

import functools
import gc
import json
import logging
import os
import random
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from hn_plugins import __version__
from hn_plugins.data import DatasetError, RetrievalDataset
from hn_plugins.fusion import ScoreFusion
from hn_plugins.mining.result import MiningResult, TripletRecord
from hn_plugins.training.evaluator import RerankingMRREvaluator
from hn_plugins.training.losses import LOSS_NAMES, build_loss, default_margin
from hn_plugins.training.model_folder import (
    CURVE_FILE,
    TrainingError,
    install_folder,
    load_base_model,
    save_staged,
    work_dir_for,
    write_marker_and_card,
)
from hn_plugins.training.selection import CrossFitDecision, choose_by_cross_fitting

if TYPE_CHECKING:
    from transformers import TrainingArguments

logger = logging.getLogger(__name__)

__all__ = [
    "TrainedReranker",
    "TrainingError",
    "build_training_rows",
    "fine_tune_reranker",
    "format_curve",
    "seed_everything",
    "trained_reranker_from_folder",
]


@dataclass
class TrainedReranker:
    """What :func:`fine_tune_reranker` produced.

    Args:
        path: the model folder (load it with :func:`hn_plugins.reranker.load_reranker`).
        kind: ``"cross"`` or ``"bi"``.
        history: the validation curve, one entry per evaluation: ``{"epoch", "step", "mrr@3", "mrr@10"}``; the
            first entry (step 0) is the starting model.
        metrics: best and starting validation MRR@10, the selected step, counts of rows and dropped negatives,
            training time.
        fusion: the weight chosen on validation to mix the reranker's scores with BM25's (``None``: not chosen).

    Example:
        >>> t = TrainedReranker(Path("m"), "bi", [{"epoch": 0.0, "step": 0, "mrr@3": 0.5, "mrr@10": 0.55}], {})
        >>> t.best_validation_mrr10
        0.55
    """

    path: Path
    kind: Literal["cross", "bi"]
    history: list[dict[str, float]] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    fusion: ScoreFusion | None = None

    @property
    def best_validation_mrr10(self) -> float | None:
        values = [h["mrr@10"] for h in self.history]
        return max(values) if values else None

    def format_curve(self) -> str:
        """The validation curve as a plain-text table."""
        return format_curve(self.history, self.metrics.get("selected_step"))


def format_curve(history: Sequence[dict[str, Any]], selected_step: int | None = None) -> str:
    """A validation curve as a table (``*`` marks the kept model).

    Example:
        >>> print(format_curve([{"epoch": 0.0, "step": 0, "mrr@3": 0.5, "mrr@10": 0.55}], selected_step=0))
        epoch   step  val MRR@3  val MRR@10
         0.00      0     0.5000      0.5500 *
    """
    lines = [f"{'epoch':>5}  {'step':>5}  {'val MRR@3':>9}  {'val MRR@10':>10}"]
    for h in history:
        mark = " *" if selected_step is not None and int(h["step"]) == int(selected_step) else ""
        lines.append(f"{h['epoch']:5.2f}  {int(h['step']):5d}  {h['mrr@3']:9.4f}  {h['mrr@10']:10.4f}{mark}")
    return "\n".join(lines)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy, torch and transformers; ask torch for deterministic kernels where it can."""
    import torch
    import transformers

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    transformers.set_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


def _load_triplets(triplets: MiningResult | str | os.PathLike[str]) -> MiningResult:
    if isinstance(triplets, MiningResult):
        if not triplets.records:
            raise DatasetError(
                "The MiningResult holds no record; mine first (or check the selector's diagnostics)."
            )
        return triplets
    return MiningResult.from_jsonl(triplets)


def _clean_records(
    result: MiningResult, dataset: RetrievalDataset, num_negatives: int | None
) -> tuple[list[TripletRecord], dict[str, int]]:
    """Records of ``dataset``'s queries with never-negative documents removed and at most ``num_negatives`` each."""
    kept: list[TripletRecord] = []
    stats = {
        "records_in": len(result.records),
        "records_other_queries": 0,
        "negatives_dropped_never_negative": 0,
        "positives_not_judged": 0,
        "duplicate_negatives": 0,
    }
    for rec in result.records:
        if rec.query_id not in dataset.queries:
            stats["records_other_queries"] += 1
            continue
        banned = dataset.never_negative(rec.query_id) | {rec.positive_id}
        negatives: list[str] = []
        for n in rec.negative_ids:
            if n in banned:
                stats["negatives_dropped_never_negative"] += 1
            elif n in negatives:
                stats["duplicate_negatives"] += 1
            else:
                negatives.append(n)
        if rec.positive_id not in dataset.positives(rec.query_id):
            stats["positives_not_judged"] += 1
        if num_negatives is not None:
            negatives = negatives[:num_negatives]
        kept.append(
            TripletRecord(rec.query_id, rec.positive_id, negatives, rec.d_q_pos, [], [], rec.selector)
        )
    if stats["negatives_dropped_never_negative"]:
        logger.warning(
            "Dropped %d negative(s) that are positives or excluded documents of their query "
            "(dataset.never_negative); they are never trained on as negatives.",
            stats["negatives_dropped_never_negative"],
        )
    if stats["positives_not_judged"]:
        logger.warning(
            "%d record(s) name a positive that the dataset does not judge relevant; trained on as given.",
            stats["positives_not_judged"],
        )
    return kept, stats


def build_training_rows(
    records: Sequence[TripletRecord], dataset: RetrievalDataset, row_format: str
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Rows for a loss's format (see :func:`hn_plugins.training.losses.build_loss`).

    - ``triplet``: one ``{anchor, positive, negative}`` per (record, negative);
    - ``n-tuple``: ``{anchor, positive, negative_1..k}`` with ``k`` = the most negatives any record has; a record
      with fewer repeats its own negatives in order (records without a negative are skipped);
    - ``labeled-pair``: ``{anchor, passage, label}`` (1 for the positive, 0 per negative);
    - ``pair-or-n-tuple``: n-tuples when every record has a negative, else ``{anchor, positive}`` pairs (in-batch
      negatives only).
    """
    with_neg = [r for r in records if r.negative_ids]
    stats = {"records": len(records), "records_without_negative": len(records) - len(with_neg)}
    q = dataset.queries
    text = dataset.document_text
    rows: list[dict[str, Any]] = []
    if row_format == "pair-or-n-tuple":
        if with_neg and len(with_neg) == len(records):
            row_format = "n-tuple"
        else:
            if with_neg:
                logger.info(
                    "in-batch: %d of %d records have no mined negative, so all train on in-batch negatives "
                    "only.",
                    stats["records_without_negative"],
                    len(records),
                )
            return [{"anchor": q[r.query_id], "positive": text(r.positive_id)} for r in records], stats
    if row_format == "triplet":
        rows = [
            {"anchor": q[r.query_id], "positive": text(r.positive_id), "negative": text(n)}
            for r in with_neg
            for n in r.negative_ids
        ]
    elif row_format == "n-tuple":
        k = max((len(r.negative_ids) for r in with_neg), default=0)
        for r in with_neg:
            row = {"anchor": q[r.query_id], "positive": text(r.positive_id)}
            for i in range(k):
                row[f"negative_{i + 1}"] = text(r.negative_ids[i % len(r.negative_ids)])
            rows.append(row)
    elif row_format == "labeled-pair":
        for r in with_neg:
            rows.append({"anchor": q[r.query_id], "passage": text(r.positive_id), "label": 1.0})
            rows.extend({"anchor": q[r.query_id], "passage": text(n), "label": 0.0} for n in r.negative_ids)
    else:
        raise ValueError(f"Unknown row format {row_format!r}.")
    return rows, stats


@dataclass
class _Fit:
    """One training run's model and what the folder's marker needs to say about it."""

    model: Any
    history: list[dict[str, float]]
    stats: dict[str, int]
    loss_module: Any
    row_format: str
    base_info: dict[str, Any]
    rows: int
    steps: int
    total_steps: int
    steps_per_epoch: int
    train_seconds: float
    rows_per_second: float


def _fit(
    *,
    result: MiningResult,
    train_part: RetrievalDataset,
    evaluator: RerankingMRREvaluator | None,
    base_model: str | os.PathLike[str],
    kind: Literal["cross", "bi"],
    loss: str,
    margin: float | None,
    num_negatives: int | None,
    epochs: int,
    lr: float,
    batch_size: int,
    seed: int,
    max_length: int | None,
    warmup_ratio: float,
    work: Path,
    resume: bool,
    eval_steps: int | None = None,
    early_stopping_patience: int | None = None,
    callbacks: Sequence[Any] | None = None,
    device: str | None = None,
    checkpoints: bool = True,
) -> _Fit:
    """Train ``base_model`` on ``result``'s records of ``train_part``'s queries (``epochs=0``: load it only).

    With an ``evaluator`` the model is validated at the start and after every epoch (or ``eval_steps``) and the
    best checkpoint is loaded at the end; without one it trains for exactly ``epochs`` epochs. ``checkpoints=False``
    saves nothing during training (no resume, no best-checkpoint reload: the last weights are returned), for the
    throw-away fold models of cross-fitting.
    """
    records, stats = _clean_records(result, train_part, num_negatives)
    seed_everything(seed)
    model, base_info = load_base_model(base_model, kind, max_length=max_length, device=device)
    loss_module, row_format = build_loss(model, kind, loss, margin)
    rows, row_stats = build_training_rows(records, train_part, row_format)
    stats.update(row_stats)
    if not rows:
        raise DatasetError(
            f"No training row: {stats['records']} record(s) for the training queries, "
            f"{stats['records_without_negative']} without a negative. Mine with another selector or loss='in-batch'."
        )
    steps_per_epoch = max(1, -(-len(rows) // batch_size))
    if epochs == 0:
        return _Fit(
            model, [], stats, loss_module, row_format, base_info, len(rows), 0, 0, steps_per_epoch, 0.0, 0.0
        )
    from datasets import Dataset

    train_rows = Dataset.from_list(rows)
    has_checkpoint = work.is_dir() and any(work.glob("checkpoint-*"))
    if work.exists() and not (resume and has_checkpoint):
        logger.info("Removing the scratch folder %s of an earlier run (resume=%s).", work, resume)
        shutil.rmtree(work)
    if resume and not has_checkpoint:
        logger.info("resume=True but no checkpoint in %s: training from the start.", work)
    total_steps = steps_per_epoch * epochs
    strategy = "steps" if eval_steps else "epoch"
    common: dict[str, Any] = dict(
        output_dir=str(work),
        num_train_epochs=epochs,
        per_device_train_batch_size=batch_size,
        per_device_eval_batch_size=batch_size,
        learning_rate=lr,
        warmup_steps=int(warmup_ratio * total_steps),
        seed=seed,
        data_seed=seed,
        save_strategy=strategy,
        save_total_limit=2,
        logging_steps=max(1, min(50, steps_per_epoch)),
        report_to="none",
        disable_tqdm=True,
        dataloader_num_workers=0,
        use_cpu=device == "cpu",
    )
    if evaluator is not None:
        common.update(
            eval_strategy=strategy,
            eval_on_start=True,
            load_best_model_at_end=checkpoints,
            metric_for_best_model=f"eval_{evaluator.name}_mrr@10",
            greater_is_better=True,
        )
    else:
        common.update(eval_strategy="no", save_total_limit=1)
    if eval_steps:
        common.update(eval_steps=eval_steps, save_steps=eval_steps)
    if not checkpoints:
        common.update(save_strategy="no")
    from transformers import EarlyStoppingCallback

    cbs = list(callbacks or [])
    if early_stopping_patience is not None and evaluator is not None:
        cbs.append(EarlyStoppingCallback(early_stopping_patience=early_stopping_patience))
    args: TrainingArguments
    if kind == "cross":
        from sentence_transformers.cross_encoder import CrossEncoderTrainer, CrossEncoderTrainingArguments

        args = CrossEncoderTrainingArguments(**common)
        trainer_cls: Any = CrossEncoderTrainer
    else:
        from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
        from sentence_transformers.base.sampler import BatchSamplers

        args = SentenceTransformerTrainingArguments(
            **common,
            batch_sampler=BatchSamplers.NO_DUPLICATES if loss == "in-batch" else BatchSamplers.BATCH_SAMPLER,
        )
        trainer_cls = SentenceTransformerTrainer
    trainer = trainer_cls(
        model=model, args=args, train_dataset=train_rows, loss=loss_module, evaluator=evaluator, callbacks=cbs
    )
    from transformers.trainer_callback import PrinterCallback

    # PrinterCallback prints raw log dicts to stdout; the evaluator already logs the validation curve
    trainer.remove_callback(PrinterCallback)
    logger.info(
        "Training %s reranker from %s: %d rows (%s), %d steps/epoch, %s %d epochs; %s.",
        kind,
        base_info["path"],
        len(train_rows),
        row_format,
        steps_per_epoch,
        "up to" if evaluator is not None else "exactly",
        epochs,
        f"validation: {len(evaluator.query_ids)} queries, BM25 top-{evaluator.top_k} (first-stage MRR@10 "
        f"{evaluator.first_stage['mrr@10']:.4f})"
        if evaluator is not None
        else "no validation (chosen beforehand)",
    )
    train_started = time.perf_counter()
    output = trainer.train(resume_from_checkpoint=True if (resume and has_checkpoint) else None)
    train_seconds = time.perf_counter() - train_started
    history: list[dict[str, float]] = []
    if evaluator is not None:
        key = f"eval_{evaluator.name}_mrr@10"
        dedup: dict[int, dict[str, float]] = {}
        for h in trainer.state.log_history:  # a resumed run repeats nothing, but keep the last value per step
            if key in h:
                dedup[int(h["step"])] = {
                    "epoch": float(h.get("epoch", 0.0)),
                    "step": int(h["step"]),
                    "mrr@3": float(h[f"eval_{evaluator.name}_mrr@3"]),
                    "mrr@10": float(h[key]),
                }
        history = [dedup[s] for s in sorted(dedup)]
    return _Fit(
        model=trainer.model,
        history=history,
        stats=stats,
        loss_module=loss_module,
        row_format=row_format,
        base_info=base_info,
        rows=len(train_rows),
        steps=int(trainer.state.global_step),
        total_steps=total_steps,
        steps_per_epoch=steps_per_epoch,
        train_seconds=train_seconds,
        rows_per_second=float(output.metrics.get("train_samples_per_second", 0.0)),
    )


def fine_tune_reranker(
    triplets: MiningResult | str | os.PathLike[str],
    dataset: RetrievalDataset,
    base_model: str | os.PathLike[str],
    *,
    kind: Literal["cross", "bi"] = "cross",
    loss: str = "triplet",
    margin: float | None = None,
    num_negatives: int | None = None,
    epochs: int = 1,
    lr: float = 2e-5,
    batch_size: int = 16,
    seed: int = 0,
    eval_dataset: RetrievalDataset | None = None,
    validation_fraction: float = 0.2,
    first_stage_top_k: int = 100,
    validation_candidates: dict[str, list[str]] | None = None,
    eval_steps: int | None = None,
    early_stopping_patience: int | None = 2,
    keep_base_if_better: bool = True,
    output_dir: str | os.PathLike[str] = "models/reranker",
    max_length: int | None = None,
    warmup_ratio: float = 0.1,
    resume: bool = False,
    keep_checkpoints: bool = False,
    callbacks: Sequence[Any] | None = None,
    device: str | None = None,
    choose_fusion: bool = True,
    selection: Literal["holdout", "cross-fit"] = "holdout",
    folds: int = 5,
) -> TrainedReranker:
    """Fine-tune a reranker on mined negatives and keep the checkpoint with the best validation MRR@10.

    Args:
        triplets: a :class:`MiningResult` or a triplet JSON Lines file (``hn mine`` output).
        dataset: the train split the triplets were mined on (ids must match).
        base_model: starting model: a cross-encoder (``cross-encoder/ms-marco-MiniLM-L6-v2``, a folder written by
            ``hn bootstrap``) for ``kind="cross"``; a sentence-transformers model (``all-MiniLM-L6-v2``) for
            ``kind="bi"``. A bi-encoder folder is also accepted for ``kind="cross"`` (its head starts untrained).
        kind: ``"cross"`` or ``"bi"``.
        loss: ``"triplet"`` (the paper's Eq. 7/9 or Eq. 8), ``"listwise"`` (LCE, cross only), ``"bce"`` (cross
            only) or ``"in-batch"`` (multiple-negatives ranking loss, plus the mined negatives when every record has
            one).
        margin: triplet margin; default 1.0 (cross, logits) or 0.2 (bi, cosine distance).
        num_negatives: negatives used per record (default: all mined).
        epochs: maximum epochs.
        lr: learning rate.
        batch_size: rows per step.
        seed: seeds Python, NumPy, torch, transformers and the data order; the same seed gives the same weights.
        eval_dataset: validation queries; by default ``validation_fraction`` of ``dataset``'s judged queries are
            held out (``dataset.split(validation_fraction, seed)``) and their triplets are not trained on.
        validation_fraction: share of train queries held out for validation.
        first_stage_top_k: BM25 candidates reranked per validation query.
        validation_candidates: precomputed ``{query_id: [doc_id, ...]}`` instead of BM25.
        eval_steps: validate every ``eval_steps`` steps (default: once per epoch).
        early_stopping_patience: stop after this many evaluations without improvement (``None``: never).
        keep_base_if_better: when no checkpoint beats the starting model on validation, save the starting model
            (the marker says so) instead of a worse one.
        output_dir: the model folder; written only when training ends, so a previous model there stays intact.
        max_length: maximum tokens per (query, document) pair or text.
        warmup_ratio: share of the steps with linear warm-up.
        resume: continue from the last checkpoint of an interrupted run with the same ``output_dir``.
        keep_checkpoints: keep the trainer's scratch folder (checkpoints) after success.
        callbacks: extra ``transformers.TrainerCallback`` objects.
        device: torch device.
        choose_fusion: after training, choose on the validation queries the weight that mixes the reranker's
            scores with BM25's (:mod:`hn_plugins.fusion`) and store it in ``hn_reranker.json``; rerankers loaded
            from the folder apply it when first-stage scores are given. Needs BM25 validation candidates.
        selection: ``"holdout"``: validate on ``validation_fraction`` of the train queries (or ``eval_dataset``),
            keep the best checkpoint. ``"cross-fit"``: train one model per fold of the train queries (``folds``),
            pool every fold's held-out scores after each epoch, choose the number of epochs (0: the starting
            model) and the fusion weight on all train queries at once (:mod:`hn_plugins.training.selection`), then
            train the final model on all train queries for that many epochs; ``folds + 1`` trainings, for small
            train splits where a 20% hold-out is a handful of queries. ``resume`` applies to the final training.
        folds: number of folds for ``selection="cross-fit"``.

    Returns:
        :class:`TrainedReranker` with the folder, the validation curve and the metrics.

    Raises:
        DatasetError: missing/empty triplet file, ids unknown to ``dataset``, no usable training row.
        FileNotFoundError: a base model path that does not exist (or a hub name while offline).
        TrainingError: a base model of the wrong kind, a folder that holds no model, bad settings.

    Example:
        >>> from hn_plugins import load_beir, MiningResult  # doctest: +SKIP
        >>> train = load_beir("data/cranfield", split="train", empty_documents="drop")  # doctest: +SKIP
        >>> result = fine_tune_reranker(MiningResult.from_jsonl("triplets.jsonl"), train, "all-MiniLM-L6-v2",
        ...                             kind="bi", epochs=2, output_dir="models/bi")  # doctest: +SKIP
        >>> print(result.format_curve())  # doctest: +SKIP
    """
    started = time.perf_counter()
    if kind not in ("cross", "bi"):
        raise TrainingError(f"kind must be 'cross' or 'bi', got {kind!r}.")
    if loss not in LOSS_NAMES:
        raise TrainingError(f"Unknown loss {loss!r}; choose one of {', '.join(LOSS_NAMES)}.")
    if kind == "bi" and loss in ("listwise", "bce"):
        raise TrainingError(
            f"Loss {loss!r} is for cross-encoders; with kind='bi' use 'triplet' or 'in-batch'."
        )
    if epochs < 1 or batch_size < 1 or lr <= 0:
        raise TrainingError(
            f"Need epochs >= 1, batch_size >= 1 and lr > 0 (got {epochs}, {batch_size}, {lr})."
        )
    if num_negatives is not None and num_negatives < 1:
        raise TrainingError(f"num_negatives must be >= 1 or None, got {num_negatives}.")
    out = Path(output_dir).expanduser().resolve()
    if out.exists() and not out.is_dir():
        raise TrainingError(f"output_dir {out} is a file; pass a folder path.")

    result = _load_triplets(triplets)
    result.check_ids(dataset)

    if selection not in ("holdout", "cross-fit"):
        raise TrainingError(f"selection must be 'holdout' or 'cross-fit', got {selection!r}.")
    if selection == "cross-fit" and eval_dataset is not None:
        raise TrainingError(
            "selection='cross-fit' validates on folds of `dataset`'s own queries; drop eval_dataset, or use "
            "selection='holdout' to validate on it."
        )
    work = work_dir_for(out)
    setup: dict[str, Any] = dict(
        result=result,
        base_model=base_model,
        kind=kind,
        loss=loss,
        margin=margin,
        num_negatives=num_negatives,
        lr=lr,
        batch_size=batch_size,
        seed=seed,
        max_length=max_length,
        warmup_ratio=warmup_ratio,
        callbacks=callbacks,
        device=device,
    )
    # without given candidates the evaluator retrieves BM25's top-k itself and keeps the scores for fusion
    make_evaluator = functools.partial(
        RerankingMRREvaluator,
        candidates=validation_candidates,
        top_k=first_stage_top_k,
        batch_size=max(32, batch_size),
    )
    decision: CrossFitDecision | None = None
    start: dict[str, Any] | None
    if selection == "cross-fit":
        # 1. one model per fold of the train queries; every train query validates exactly one of them
        fold_evaluators = []
        fold_seconds = 0.0
        for i, (rest, held) in enumerate(dataset.folds(folds, seed)):
            evaluator = make_evaluator(held, name=f"fold{i}", record_scores=True, write_csv=False)
            logger.info(
                "Cross-fitting fold %d/%d: %d held-out queries.", i + 1, folds, len(evaluator.query_ids)
            )
            fold_fit = _fit(
                train_part=rest,
                evaluator=evaluator,
                epochs=epochs,
                eval_steps=None,
                early_stopping_patience=None,
                work=work.parent / f"{work.name}-fold{i}",
                resume=False,
                checkpoints=False,
                **setup,
            )
            fold_seconds += fold_fit.train_seconds
            shutil.rmtree(work.parent / f"{work.name}-fold{i}", ignore_errors=True)
            del fold_fit
            gc.collect()
            fold_evaluators.append(evaluator)
        decision = choose_by_cross_fitting(fold_evaluators, fuse=choose_fusion)
        # 2. the final model: all train queries, the chosen number of epochs (0: the starting model, loaded only)
        fit = _fit(
            train_part=dataset, evaluator=None, epochs=decision.epochs, work=work, resume=resume, **setup
        )
        model = fit.model
        stats = fit.stats
        stats["records_validation_queries"] = 0
        steps_per_epoch = fit.steps_per_epoch
        history = [
            {
                "epoch": float(c["epochs"]),
                "step": int(c["epochs"] * steps_per_epoch),
                "mrr@3": c["mrr@3"],
                "mrr@10": c["mrr@10"],
                **({"mrr@10_fused": c["mrr@10_fused"]} if c["mrr@10_fused"] is not None else {}),
            }
            for c in decision.curve
        ]
        selected = "base" if decision.epochs == 0 else "final"
        selected_step = int(decision.epochs * steps_per_epoch)
        fusion = decision.fusion
        n_val = decision.queries
        val_top_k = max(ev.top_k for ev in fold_evaluators)
        val_first_stage = sum(ev.first_stage["mrr@10"] * len(ev.query_ids) for ev in fold_evaluators) / n_val
        start = history[0]
        train_seconds = fold_seconds + fit.train_seconds
        stopped_early = False
        validation_source = f"cross-fit: {decision.folds} folds of the train queries"
    else:
        # 1. validation queries come from the train split, never from the test split
        if eval_dataset is None:
            train_part, validation = dataset.split(validation_fraction, seed)
        else:
            train_part, validation = dataset, eval_dataset
            overlap = set(train_part.judged_query_ids) & set(eval_dataset.judged_query_ids)
            if overlap:
                logger.warning(
                    "eval_dataset shares %d query id(s) with the training data; validation will be optimistic.",
                    len(overlap),
                )
        evaluator = make_evaluator(validation, name="validation")
        # 2. train with validation after every epoch (or eval_steps), early stopping, best checkpoint loaded
        fit = _fit(
            train_part=train_part,
            evaluator=evaluator,
            epochs=epochs,
            eval_steps=eval_steps,
            early_stopping_patience=early_stopping_patience,
            work=work,
            resume=resume,
            **setup,
        )
        stats = fit.stats
        if eval_dataset is None:
            stats["records_validation_queries"] = stats.pop("records_other_queries")
        history = fit.history
        start = next((h for h in history if h["step"] == 0), None)
        trained = [h for h in history if h["step"] > 0]
        best_trained = max(trained, key=lambda h: h["mrr@10"], default=None)
        selected_step = int(best_trained["step"]) if best_trained else 0
        selected = "checkpoint"
        if (
            keep_base_if_better
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
            seed_everything(seed)
            model, _ = load_base_model(base_model, kind, max_length=max_length, device=device)
            selected, selected_step = "base", 0
        else:
            model = fit.model
        fusion = evaluator.choose_fusion(model) if choose_fusion else None
        n_val = len(evaluator.query_ids)
        val_top_k = evaluator.top_k
        val_first_stage = evaluator.first_stage["mrr@10"]
        train_seconds = fit.train_seconds
        stopped_early = bool(fit.steps < fit.total_steps)
        validation_source = "eval_dataset" if eval_dataset is not None else "held-out train queries"
    loss_module, row_format, base_info = fit.loss_module, fit.row_format, fit.base_info

    metrics: dict[str, Any] = {
        "validation_mrr@10_start": start["mrr@10"] if start else None,
        "validation_mrr@10_best": max((h["mrr@10"] for h in history), default=None),
        "validation_mrr@10_selected": next(
            (h["mrr@10"] for h in history if h["step"] == selected_step), None
        ),
        "validation_first_stage_mrr@10": val_first_stage,
        "validation_queries": n_val,
        "selection": selection,
        "selected": selected,
        "selected_step": selected_step,
        "steps": fit.steps,
        "stopped_early": stopped_early,
        "train_rows": fit.rows,
        "train_seconds": round(train_seconds, 1),
        "train_rows_per_second_with_validation": round(fit.rows_per_second, 2),
        **stats,
    }
    if decision is not None:
        metrics["cross_fit"] = {"folds": decision.folds, "epochs": decision.epochs, "curve": decision.curve}

    # 5. write the folder next to the target, then swap it in
    staging = save_staged(model, out)
    hyper = {
        "epochs": epochs,
        "lr": lr,
        "batch_size": batch_size,
        "seed": seed,
        "margin": margin if margin is not None else (default_margin(kind) if loss == "triplet" else None),
        "num_negatives": num_negatives,
        "max_length": max_length,
        "warmup_ratio": warmup_ratio,
        "early_stopping_patience": early_stopping_patience,
        "eval_steps": eval_steps,
        "validation_fraction": None
        if eval_dataset is not None or selection == "cross-fit"
        else validation_fraction,
        "selection": selection,
        "folds": folds if selection == "cross-fit" else None,
        "first_stage_top_k": first_stage_top_k,
    }
    marker = {
        "kind": kind,
        "hn_plugins_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "base_model": str(base_model),
        "base_model_head": base_info.get("head"),
        "base_model_dtype": base_info.get("loaded_dtype"),
        "data": dataset.name,
        "negatives": {
            "selector": result.selector,
            "summary": {k: v for k, v in result.summary().items() if k != "queries_without_negative"},
        },
        "loss": loss,
        "loss_class": type(loss_module).__name__,
        "loss_config": loss_module.get_config_dict() if hasattr(loss_module, "get_config_dict") else {},
        "row_format": row_format,
        "hyperparameters": hyper,
        "validation": {
            "source": validation_source,
            "first_stage": "bm25" if validation_candidates is None else "given",
        },
        "validation_curve": history,
        "metrics": metrics,
        "fusion": fusion.to_dict() if fusion is not None else None,
    }
    (staging / CURVE_FILE).write_text(json.dumps(history, indent=1), encoding="utf-8")
    card = [
        f"A {'cross-encoder' if kind == 'cross' else 'bi-encoder'} reranker fine-tuned with hn-plugins {__version__} "
        f"on hard negatives (`{result.selector}`) of `{dataset.name}`.",
        "",
        f"- base model: `{base_model}`"
        + (" (head untrained at the start)" if base_info.get("head") == "untrained" else ""),
        f"- loss: `{loss}` ({type(loss_module).__name__}, {json.dumps(marker['loss_config'])})",
        f"- hyper-parameters: `{json.dumps(hyper)}`",
        f"- training rows: {fit.rows} ({row_format}); negatives dropped as positives/excluded: "
        f"{stats['negatives_dropped_never_negative']}",
        f"- validation: {n_val} queries ({validation_source}), reranking BM25 top-{val_top_k} (first stage MRR@10 "
        f"{val_first_stage:.4f}); kept: {selected} (step {selected_step})",
    ]
    if fusion is not None and fusion.validation:
        card.append(
            f"- fusion with the first stage ({fusion.first_stage}): weight {fusion.weight:.1f} on the reranker, "
            f"{fusion.normalization}-normalised per query; validation MRR@10 {fusion.validation['mrr@10_fused']:.4f} "
            f"fused vs {fusion.validation['mrr@10_reranker']:.4f} reranker alone"
        )
    card += [
        "",
        "Validation curve (MRR@10 on the held-out queries; step 0 = the starting model"
        + ("; pooled over the folds, one row per epoch count):" if decision is not None else "):"),
        "",
        "```",
        format_curve(history, selected_step),
        "```",
        "",
        "Load it with `hn_plugins.load_reranker(path)`, or with plain "
        f"`{'CrossEncoder' if kind == 'cross' else 'SentenceTransformer'}(path)`.",
    ]
    write_marker_and_card(staging, marker, "hn-plugins reranker", card)
    install_folder(staging, out)
    if not keep_checkpoints:
        shutil.rmtree(work, ignore_errors=True)
    metrics["seconds"] = round(time.perf_counter() - started, 1)
    logger.info(
        "Saved %s reranker to %s (kept %s, validation MRR@10 %.4f).\n%s",
        kind,
        out,
        selected,
        metrics["validation_mrr@10_selected"] or float("nan"),
        format_curve(history, selected_step),
    )
    return TrainedReranker(path=out, kind=kind, history=history, metrics=metrics, fusion=fusion)


def trained_reranker_from_folder(path: str | os.PathLike[str]) -> TrainedReranker:
    """Read a folder written by :func:`fine_tune_reranker` back into a :class:`TrainedReranker`."""
    from hn_plugins.reranker import RERANKER_MARKER

    folder = Path(path)
    marker = json.loads((folder / RERANKER_MARKER).read_text(encoding="utf-8"))
    return TrainedReranker(
        path=folder,
        kind=marker["kind"],
        history=marker.get("validation_curve", []),
        metrics=marker.get("metrics", {}),
        fusion=ScoreFusion.from_dict(marker.get("fusion")),
    )
