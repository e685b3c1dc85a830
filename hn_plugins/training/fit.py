"""One training run: a base model trained on cleaned triplet rows with sentence-transformers' trainer.

:func:`fit_model` loads the base model and its loss, builds the rows, sets up ``CrossEncoderTrainer`` or
``SentenceTransformerTrainer`` (validation, early stopping, checkpoints) and returns the trained model with its
validation curve. :func:`~hn_plugins.training.trainer.fine_tune_reranker` decides which runs to make.
"""

from __future__ import annotations

import json
import logging
import os
import random
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from hn_plugins.data import DatasetError, RetrievalDataset
from hn_plugins.mining.result import MiningResult
from hn_plugins.training.evaluator import RerankingMRREvaluator
from hn_plugins.training.losses import build_loss
from hn_plugins.training.model_folder import load_base_model
from hn_plugins.training.rows import build_training_rows, clean_records
from hn_plugins.training.settings import FineTuneSettings

if TYPE_CHECKING:
    from transformers import TrainingArguments

logger = logging.getLogger(__name__)

__all__ = ["FitResult", "checkpoint_step", "examples_seen", "fit_model", "seed_everything"]


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy, torch and transformers; ask torch for deterministic kernels where it can."""
    import torch
    import transformers

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    transformers.set_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


@dataclass
class FitResult:
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
    examples: int = 0
    validation_seconds: float = 0.0
    examples_before_resume: int = 0


def examples_seen(rows: int, steps: int, steps_per_epoch: int, batch_size: int) -> int:
    """How many training rows the optimiser saw in ``steps`` steps: every row once per full epoch, then the
    batches of the epoch it stopped in.

    Args:
        rows: training rows in one epoch.
        steps: optimiser steps taken.
        steps_per_epoch: steps in one epoch (the last batch of an epoch may be short).
        batch_size: rows per step.

    Returns:
        The number of rows trained on, counted once per epoch they were seen in.

    Example:
        >>> examples_seen(rows=10, steps=7, steps_per_epoch=3, batch_size=4)  # 2 epochs of 10, then 1 batch of 4
        24
    """
    epochs, rest = divmod(steps, steps_per_epoch)
    return epochs * rows + min(rest * batch_size, rows)


def load_model_and_rows(
    settings: FineTuneSettings,
    base_model: str | os.PathLike[str],
    result: MiningResult,
    train_part: RetrievalDataset,
) -> tuple[Any, dict[str, Any], Any, str, list[dict[str, Any]], dict[str, int]]:
    """Seed, load ``base_model`` and its loss, and build the rows of ``result``'s records of ``train_part``.

    Returns:
        ``(model, base_info, loss_module, row_format, rows, stats)``.

    Raises:
        DatasetError: no training row (every record lacks a negative the loss needs).
    """
    records, stats = clean_records(result, train_part, settings.num_negatives)
    seed_everything(settings.seed)
    model, base_info = load_base_model(
        base_model, settings.kind, max_length=settings.max_length, device=settings.device
    )
    loss_module, row_format = build_loss(model, settings.kind, settings.loss, settings.margin)
    rows, row_stats = build_training_rows(records, train_part, row_format)
    stats.update(row_stats)
    if not rows:
        raise DatasetError(
            f"No training row: {stats['records']} record(s) for the training queries, "
            f"{stats['records_without_negative']} without a negative. Mine with another selector or loss='in-batch'."
        )
    return model, base_info, loss_module, row_format, rows, stats


def training_arguments(
    settings: FineTuneSettings,
    work: Path,
    epochs: int,
    steps_per_epoch: int,
    evaluator: RerankingMRREvaluator | None,
    eval_steps: int | None,
    checkpoints: bool,
) -> dict[str, Any]:
    """The ``TrainingArguments`` keywords of one run (validation and checkpoints as asked)."""
    strategy = "steps" if eval_steps else "epoch"
    args: dict[str, Any] = dict(
        output_dir=str(work),
        num_train_epochs=epochs,
        per_device_train_batch_size=settings.batch_size,
        per_device_eval_batch_size=settings.batch_size,
        learning_rate=settings.lr,
        warmup_steps=int(settings.warmup_ratio * (steps_per_epoch * epochs)),
        seed=settings.seed,
        data_seed=settings.seed,
        save_strategy=strategy,
        save_total_limit=2,
        logging_steps=max(1, min(50, steps_per_epoch)),
        report_to="none",
        disable_tqdm=True,
        dataloader_num_workers=0,
        use_cpu=settings.device == "cpu",
    )
    if evaluator is not None:
        args.update(
            eval_strategy=strategy,
            eval_on_start=True,
            load_best_model_at_end=checkpoints,
            metric_for_best_model=f"eval_{evaluator.name}_mrr@10",
            greater_is_better=True,
        )
    else:
        args.update(eval_strategy="no", save_total_limit=1)
    if eval_steps:
        args.update(eval_steps=eval_steps, save_steps=eval_steps)
    if not checkpoints:
        args.update(save_strategy="no")
    return args


def build_trainer(
    settings: FineTuneSettings,
    model: Any,
    arguments: dict[str, Any],
    rows: list[dict[str, Any]],
    loss_module: Any,
    evaluator: RerankingMRREvaluator | None,
    callbacks: Sequence[Any],
) -> Any:
    """A ``CrossEncoderTrainer`` (cross) or ``SentenceTransformerTrainer`` (bi) over ``rows``, printing nothing."""
    from datasets import Dataset
    from transformers.trainer_callback import PrinterCallback

    args: TrainingArguments
    if settings.kind == "cross":
        from sentence_transformers.cross_encoder import CrossEncoderTrainer, CrossEncoderTrainingArguments

        args = CrossEncoderTrainingArguments(**arguments)
        trainer_cls: Any = CrossEncoderTrainer
    else:
        from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
        from sentence_transformers.base.sampler import BatchSamplers

        sampler = BatchSamplers.NO_DUPLICATES if settings.loss == "in-batch" else BatchSamplers.BATCH_SAMPLER
        args = SentenceTransformerTrainingArguments(**arguments, batch_sampler=sampler)
        trainer_cls = SentenceTransformerTrainer
    trainer = trainer_cls(
        model=model,
        args=args,
        train_dataset=Dataset.from_list(rows),
        loss=loss_module,
        evaluator=evaluator,
        callbacks=list(callbacks),
    )
    # PrinterCallback prints raw log dicts to stdout; the evaluator already logs the validation curve
    trainer.remove_callback(PrinterCallback)
    return trainer


def validation_history(log_history: Sequence[dict[str, Any]], evaluator_name: str) -> list[dict[str, float]]:
    """The validation curve in a trainer's ``log_history``, one entry per step (the last value of a step wins).

    Example:
        >>> logs = [{"step": 0, "epoch": 0.0, "eval_v_mrr@3": 0.5, "eval_v_mrr@10": 0.6}, {"step": 3, "loss": 1.0}]
        >>> validation_history(logs, "v")
        [{'epoch': 0.0, 'step': 0, 'mrr@3': 0.5, 'mrr@10': 0.6}]
    """
    key = f"eval_{evaluator_name}_mrr@10"
    by_step: dict[int, dict[str, float]] = {}
    for entry in log_history:  # a resumed run repeats nothing, but keep the last value per step
        if key in entry:
            by_step[int(entry["step"])] = {
                "epoch": float(entry.get("epoch", 0.0)),
                "step": int(entry["step"]),
                "mrr@3": float(entry[f"eval_{evaluator_name}_mrr@3"]),
                "mrr@10": float(entry[key]),
            }
    return [by_step[s] for s in sorted(by_step)]


def _prepare_work_dir(work: Path, resume: bool) -> bool:
    """Clear ``work`` unless a run resumes from a checkpoint there; whether it does."""
    has_checkpoint = work.is_dir() and any(work.glob("checkpoint-*"))
    if work.exists() and not (resume and has_checkpoint):
        logger.info("Removing the scratch folder %s of an earlier run (resume=%s).", work, resume)
        shutil.rmtree(work)
    if resume and not has_checkpoint:
        logger.info("resume=True but no checkpoint in %s: training from the start.", work)
    return resume and has_checkpoint


def checkpoint_step(work: Path) -> int:
    """The global step of the last checkpoint in ``work``, where a resumed run starts (0 when there is none).

    Args:
        work: the trainer's scratch folder (``checkpoint-<step>`` folders with their ``trainer_state.json``).

    Returns:
        The ``global_step`` the trainer saved in that checkpoint's state.
    """
    from transformers.trainer_utils import get_last_checkpoint

    last = get_last_checkpoint(str(work)) if work.is_dir() else None
    if last is None:
        return 0
    return int(json.loads((Path(last) / "trainer_state.json").read_text())["global_step"])


def fit_model(
    settings: FineTuneSettings,
    *,
    base_model: str | os.PathLike[str],
    result: MiningResult,
    train_part: RetrievalDataset,
    evaluator: RerankingMRREvaluator | None,
    epochs: int,
    work: Path,
    resume: bool,
    eval_steps: int | None = None,
    early_stopping_patience: int | None = None,
    callbacks: Sequence[Any] | None = None,
    checkpoints: bool = True,
) -> FitResult:
    """Train ``base_model`` on ``result``'s records of ``train_part``'s queries (``epochs=0``: load it only).

    With an ``evaluator`` the model is validated at the start and after every epoch (or ``eval_steps``) and the
    best checkpoint is loaded at the end; without one it trains for exactly ``epochs`` epochs. ``checkpoints=False``
    saves nothing during training (no resume, no best-checkpoint reload: the last weights are returned), for the
    throw-away fold models of cross-fitting. ``settings`` gives the model, loss and optimiser settings; the
    arguments give what differs between the runs of one fine-tuning.
    """
    model, base_info, loss_module, row_format, rows, stats = load_model_and_rows(
        settings, base_model, result, train_part
    )
    steps_per_epoch = max(1, -(-len(rows) // settings.batch_size))
    if epochs == 0:
        return FitResult(
            model, [], stats, loss_module, row_format, base_info, len(rows), 0, 0, steps_per_epoch, 0.0, 0.0
        )
    resuming = _prepare_work_dir(work, resume)
    arguments = training_arguments(
        settings, work, epochs, steps_per_epoch, evaluator, eval_steps, checkpoints
    )
    from transformers import EarlyStoppingCallback

    all_callbacks = list(callbacks or [])
    if early_stopping_patience is not None and evaluator is not None:
        all_callbacks.append(EarlyStoppingCallback(early_stopping_patience=early_stopping_patience))
    trainer = build_trainer(settings, model, arguments, rows, loss_module, evaluator, all_callbacks)
    logger.info(
        "Training %s reranker from %s: %d rows (%s), %d steps/epoch, %s %d epochs; %s.",
        settings.kind,
        base_info["path"],
        len(rows),
        row_format,
        steps_per_epoch,
        "up to" if evaluator is not None else "exactly",
        epochs,
        f"validation: {len(evaluator.query_ids)} queries, BM25 top-{evaluator.top_k} (first-stage MRR@10 "
        f"{evaluator.first_stage['mrr@10']:.4f})"
        if evaluator is not None
        else "no validation (chosen beforehand)",
    )
    validated_before = evaluator.seconds if evaluator is not None else 0.0
    resumed_step = checkpoint_step(work) if resuming else 0
    train_started = time.perf_counter()
    output = trainer.train(resume_from_checkpoint=True if resuming else None)
    train_seconds = time.perf_counter() - train_started
    return FitResult(
        model=trainer.model,
        history=validation_history(trainer.state.log_history, evaluator.name)
        if evaluator is not None
        else [],
        stats=stats,
        loss_module=loss_module,
        row_format=row_format,
        base_info=base_info,
        rows=len(rows),
        steps=int(trainer.state.global_step),
        total_steps=steps_per_epoch * epochs,
        steps_per_epoch=steps_per_epoch,
        train_seconds=train_seconds,
        rows_per_second=float(output.metrics.get("train_samples_per_second", 0.0)),
        examples=examples_seen(
            len(rows), int(trainer.state.global_step), steps_per_epoch, settings.batch_size
        ),
        validation_seconds=evaluator.seconds - validated_before if evaluator is not None else 0.0,
        examples_before_resume=examples_seen(len(rows), resumed_step, steps_per_epoch, settings.batch_size),
    )
