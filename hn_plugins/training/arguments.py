"""Trainer arguments for a run that keeps its best epoch on a validation evaluator.

:func:`best_epoch_arguments` returns the ``TrainingArguments`` keywords shared by every run that evaluates before
training and after each epoch, checkpoints each epoch and loads the best one at the end (MRR@10 of a
:class:`~hn_plugins.training.evaluator.RerankingMRREvaluator`). Pass them to ``CrossEncoderTrainingArguments``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["EpochSchedule", "best_epoch_arguments"]


@dataclass(frozen=True)
class EpochSchedule:
    """How one run trains: epochs, batch, learning rates, warm-up and seed.

    Attributes:
        epochs: passes over the rows.
        batch_size: rows per step (train and evaluation).
        lr: learning rate of the encoder.
        seed: seed of the trainer and its data order.
        warmup_ratio: share of all steps spent warming the learning rate up.
        head_lr: learning rate of parameters named ``classifier.*`` (an untrained head learns faster than the
            encoder under it); ``None`` keeps ``lr`` for them.
    """

    epochs: int
    batch_size: int
    lr: float
    seed: int = 0
    warmup_ratio: float = 0.1
    head_lr: float | None = None

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError(
                f"EpochSchedule needs epochs >= 1 and batch_size >= 1, got epochs={self.epochs} and "
                f"batch_size={self.batch_size}."
            )
        if not 0.0 <= self.warmup_ratio < 1.0:
            raise ValueError(f"EpochSchedule.warmup_ratio must be in [0, 1), got {self.warmup_ratio}.")


def best_epoch_arguments(
    output_dir: str | Path, schedule: EpochSchedule, rows: int, evaluator_name: str
) -> dict[str, Any]:
    """``TrainingArguments`` keywords: evaluate at the start and after each epoch, keep the best epoch.

    Args:
        output_dir: folder for the epoch checkpoints (two are kept, model weights only).
        schedule: epochs, batch, learning rates, warm-up and seed.
        rows: training rows, which set the steps per epoch (for warm-up and logging).
        evaluator_name: the evaluator's ``name``; its ``mrr@10`` picks the epoch kept.

    Returns:
        Keywords for ``CrossEncoderTrainingArguments``.

    Raises:
        ValueError: ``rows`` is below 1.

    Example:
        >>> kw = best_epoch_arguments("work", EpochSchedule(epochs=2, batch_size=8, lr=3e-5, head_lr=1e-3), 40, "val")
        >>> kw["warmup_steps"], kw["metric_for_best_model"], kw["learning_rate_mapping"]
        (1, 'eval_val_mrr@10', {'classifier\\\\.': 0.001})
    """
    if rows < 1:
        raise ValueError(f"best_epoch_arguments() needs at least one training row, got {rows}.")
    steps_per_epoch = -(-rows // schedule.batch_size)
    kwargs: dict[str, Any] = dict(
        output_dir=str(output_dir),
        num_train_epochs=schedule.epochs,
        per_device_train_batch_size=schedule.batch_size,
        per_device_eval_batch_size=schedule.batch_size,
        learning_rate=schedule.lr,
        warmup_steps=int(schedule.warmup_ratio * steps_per_epoch * schedule.epochs),
        seed=schedule.seed,
        data_seed=schedule.seed,
        eval_strategy="epoch",
        save_strategy="epoch",
        eval_on_start=True,
        load_best_model_at_end=True,
        metric_for_best_model=f"eval_{evaluator_name}_mrr@10",
        greater_is_better=True,
        save_total_limit=2,
        save_only_model=True,
        logging_steps=max(1, min(50, steps_per_epoch)),
        report_to="none",
        disable_tqdm=True,
        dataloader_num_workers=0,
    )
    if schedule.head_lr is not None:
        kwargs["learning_rate_mapping"] = {r"classifier\.": schedule.head_lr}
    return kwargs
