"""Every setting of :func:`~hn_plugins.training.trainer.fine_tune_reranker` in one dataclass.

As sentence-transformers' training arguments: the settings travel as one object that can be built, checked, stored
and changed (``dataclasses.replace``) apart from the data (triplets, datasets) and the run-time objects (callbacks)
the trainer is given.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Any, Literal

from hn_plugins.fusion import DEFAULT_FUSION_RULE, FusionRule, check_fusion_rule
from hn_plugins.training.model_folder import TrainingError

__all__ = ["LOSS_NAMES", "SELECTIONS", "FineTuneSettings"]

#: Loss names the trainer and ``hn train --loss`` accept.
LOSS_NAMES = ("triplet", "listwise", "bce", "in-batch")
#: How the kept model is chosen (``FineTuneSettings.selection``).
SELECTIONS = ("holdout", "cross-fit")


@dataclass
class FineTuneSettings:
    """How :func:`~hn_plugins.training.trainer.fine_tune_reranker` trains, validates and saves a reranker.

    Args:
        output_dir: the model folder; written only when training ends, so a previous model there stays intact.
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
        max_length: maximum tokens per (query, document) pair or text.
        warmup_ratio: share of the steps with linear warm-up.
        device: torch device.
        selection: ``"holdout"``: validate on ``validation_fraction`` of the train queries (or the trainer's
            ``eval_dataset``), keep the best checkpoint. ``"cross-fit"``: train one model per fold of the train
            queries (``folds``), pool every fold's held-out scores after each epoch, choose the number of epochs
            (0: the starting model) and the fusion weight on all train queries at once
            (:mod:`hn_plugins.training.selection`), then train the final model on all train queries for that many
            epochs; ``folds + 1`` trainings, for small train splits where a 20% hold-out is a handful of queries.
            ``resume`` applies to the final training.
        validation_fraction: share of train queries held out for validation (``selection="holdout"``).
        folds: number of folds for ``selection="cross-fit"``.
        selection_alpha: with ``selection="cross-fit"``, train (epochs > 0) only when the best epoch count beats
            the starting model on the pooled held-out queries with a two-sided paired permutation p below this
            value (per-query MRR@10, each fused with its own chosen weight); otherwise keep the starting model
            (with its fusion weight). ``None``: take the best pooled value however small the gain.
        first_stage_top_k: BM25 candidates reranked per validation query.
        eval_steps: validate every ``eval_steps`` steps (default: once per epoch).
        early_stopping_patience: stop after this many evaluations without improvement (``None``: never).
        keep_base_if_better: when no checkpoint beats the starting model on validation, save the starting model
            (the marker says so) instead of a worse one.
        choose_fusion: after training, choose on the validation queries the weight that mixes the reranker's
            scores with BM25's (:mod:`hn_plugins.fusion`) and store it in ``hn_reranker.json``; rerankers loaded
            from the folder apply it when first-stage scores are given. Needs BM25 validation candidates.
        fusion_rule: how that weight (and cross-fitting's pooled one) is chosen: ``one-se``, the most balanced
            weight within one standard error of the best validation MRR@10; ``best``, the best weight
            (:func:`~hn_plugins.fusion.choose_fusion_weight`).
        resume: continue from the last checkpoint of an interrupted run with the same ``output_dir``.
        keep_checkpoints: keep the trainer's scratch folder (checkpoints) after success.

    Raises:
        TrainingError: a setting out of range or a combination that cannot train (checked when the object is built,
            before anything is loaded).

    Example:
        >>> settings = FineTuneSettings(kind="bi", epochs=2, output_dir="models/bi")
        >>> settings.with_overrides(lr=1e-5).lr
        1e-05
        >>> FineTuneSettings(kind="bi", loss="bce")
        Traceback (most recent call last):
        ...
        hn_plugins.training.model_folder.TrainingError: Loss 'bce' is for cross-encoders; with kind='bi' use 'triplet' or 'in-batch'.
    """

    output_dir: str | os.PathLike[str] = "models/reranker"
    kind: Literal["cross", "bi"] = "cross"
    loss: str = "triplet"
    margin: float | None = None
    num_negatives: int | None = None
    epochs: int = 1
    lr: float = 2e-5
    batch_size: int = 16
    seed: int = 0
    max_length: int | None = None
    warmup_ratio: float = 0.1
    device: str | None = None
    selection: Literal["holdout", "cross-fit"] = "holdout"
    validation_fraction: float = 0.2
    folds: int = 5
    selection_alpha: float | None = 0.05
    first_stage_top_k: int = 100
    eval_steps: int | None = None
    early_stopping_patience: int | None = 2
    keep_base_if_better: bool = True
    choose_fusion: bool = True
    fusion_rule: FusionRule = DEFAULT_FUSION_RULE
    resume: bool = False
    keep_checkpoints: bool = False

    def __post_init__(self) -> None:
        if self.kind not in ("cross", "bi"):
            raise TrainingError(f"kind must be 'cross' or 'bi', got {self.kind!r}.")
        if self.loss not in LOSS_NAMES:
            raise TrainingError(f"Unknown loss {self.loss!r}; choose one of {', '.join(LOSS_NAMES)}.")
        if self.kind == "bi" and self.loss in ("listwise", "bce"):
            raise TrainingError(
                f"Loss {self.loss!r} is for cross-encoders; with kind='bi' use 'triplet' or 'in-batch'."
            )
        if self.epochs < 1 or self.batch_size < 1 or self.lr <= 0:
            raise TrainingError(
                f"Need epochs >= 1, batch_size >= 1 and lr > 0 (got {self.epochs}, {self.batch_size}, {self.lr})."
            )
        if self.num_negatives is not None and self.num_negatives < 1:
            raise TrainingError(f"num_negatives must be >= 1 or None, got {self.num_negatives}.")
        if self.selection not in SELECTIONS:
            raise TrainingError(f"selection must be 'holdout' or 'cross-fit', got {self.selection!r}.")
        if self.selection_alpha is not None and not 0.0 < self.selection_alpha <= 1.0:
            raise TrainingError(
                f"selection_alpha must be in (0, 1] (e.g. 0.05), or None to train whenever the pooled gain is "
                f"positive; got {self.selection_alpha!r}."
            )
        try:
            check_fusion_rule(self.fusion_rule)
        except ValueError as exc:
            raise TrainingError(f"fusion_rule: {exc}") from None

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        """The settings' names, in order.

        Example:
            >>> FineTuneSettings.field_names()[:3]
            ('output_dir', 'kind', 'loss')
        """
        return tuple(f.name for f in dataclasses.fields(cls))

    def with_overrides(self, **overrides: Any) -> FineTuneSettings:
        """A copy with ``overrides`` applied (checked like a new object); ``self`` when there are none.

        Raises:
            TypeError: a name that is not a setting (the message lists the settings).
            TrainingError: an overridden value out of range.
        """
        unknown = sorted(set(overrides) - set(self.field_names()))
        if unknown:
            raise TypeError(
                f"Unknown fine-tuning setting(s) {', '.join(map(repr, unknown))}; the settings are the fields of "
                f"FineTuneSettings: {', '.join(self.field_names())}."
            )
        return dataclasses.replace(self, **overrides) if overrides else self
