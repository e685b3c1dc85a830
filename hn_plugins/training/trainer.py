"""Fine-tune a reranker (cross-encoder or bi-encoder) on mined triplets, with early stopping on validation MRR@10.

:func:`fine_tune_reranker` turns a :class:`~hn_plugins.mining.result.MiningResult` (or a triplet JSONL file) into
training rows (:mod:`~hn_plugins.training.rows`), trains with sentence-transformers' ``CrossEncoderTrainer`` /
``SentenceTransformerTrainer`` and one of our losses (:mod:`~hn_plugins.training.fit`), validates on queries held
out of the *train* split, never the test split (:mod:`~hn_plugins.training.procedures`), keeps the best model, and
writes a folder (:mod:`~hn_plugins.training.model_card`) that plain ``CrossEncoder(path)`` /
``SentenceTransformer(path)`` and :func:`hn_plugins.rerankers.loading.load_reranker` load. Its settings are one
:class:`~hn_plugins.training.settings.FineTuneSettings`.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from hn_plugins.data import RetrievalDataset
from hn_plugins.fusion import ScoreFusion
from hn_plugins.mining.result import MiningResult
from hn_plugins.rerankers.base import RERANKER_MARKER
from hn_plugins.training.fit import seed_everything
from hn_plugins.training.model_card import (
    card_lines,
    folder_marker,
    format_curve,
    hyperparameters,
    training_metrics,
)
from hn_plugins.training.model_folder import (
    CURVE_FILE,
    TrainingError,
    install_folder,
    save_staged,
    work_dir_for,
    write_marker_and_card,
)
from hn_plugins.training.procedures import KeptModel, evaluator_factory, run_cross_fit, run_holdout
from hn_plugins.training.rows import build_training_rows, load_triplets
from hn_plugins.training.settings import FineTuneSettings

logger = logging.getLogger(__name__)

__all__ = [
    "FineTuneSettings",
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
        path: the model folder (load it with :func:`hn_plugins.rerankers.loading.load_reranker`).
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


def fine_tune_reranker(
    triplets: MiningResult | str | os.PathLike[str],
    dataset: RetrievalDataset,
    base_model: str | os.PathLike[str],
    settings: FineTuneSettings | None = None,
    *,
    eval_dataset: RetrievalDataset | None = None,
    validation_candidates: dict[str, list[str]] | None = None,
    callbacks: Sequence[Any] | None = None,
    **setting_overrides: Any,
) -> TrainedReranker:
    """Fine-tune a reranker on mined negatives and keep the checkpoint with the best validation MRR@10.

    Args:
        triplets: a :class:`MiningResult` or a triplet JSON Lines file (``hn mine`` output).
        dataset: the train split the triplets were mined on (ids must match).
        base_model: starting model: a cross-encoder (``cross-encoder/ms-marco-MiniLM-L6-v2``, a folder written by
            ``hn bootstrap``) for ``kind="cross"``; a sentence-transformers model (``all-MiniLM-L6-v2``) for
            ``kind="bi"``. A bi-encoder folder is also accepted for ``kind="cross"`` (its head starts untrained).
        settings: how to train, validate and save (:class:`FineTuneSettings`; default: its defaults).
        eval_dataset: validation queries; by default ``settings.validation_fraction`` of ``dataset``'s judged
            queries are held out (``dataset.split(validation_fraction, seed)``) and their triplets are not trained on.
        validation_candidates: precomputed ``{query_id: [doc_id, ...]}`` to rerank for validation instead of BM25's.
        callbacks: extra ``transformers.TrainerCallback`` objects.
        **setting_overrides: any :class:`FineTuneSettings` field by name (``kind="bi"``, ``epochs=2``,
            ``output_dir=...``), applied over ``settings``; this is also the keyword form of the settings.

    Returns:
        :class:`TrainedReranker` with the folder, the validation curve and the metrics.

    Raises:
        TypeError: a keyword that is neither an argument nor a setting.
        DatasetError: missing/empty triplet file, ids unknown to ``dataset``, no usable training row.
        FileNotFoundError: a base model path that does not exist (or a hub name while offline).
        TrainingError: a base model of the wrong kind, a folder that holds no model, bad settings.

    Example:
        >>> from hn_plugins import load_beir, MiningResult  # doctest: +SKIP
        >>> train = load_beir("data/cranfield", split="train", empty_documents="drop")  # doctest: +SKIP
        >>> settings = FineTuneSettings(kind="bi", epochs=2, output_dir="models/bi")
        >>> result = fine_tune_reranker(MiningResult.from_jsonl("triplets.jsonl"), train, "all-MiniLM-L6-v2",
        ...                             settings)  # doctest: +SKIP
        >>> print(result.format_curve())  # doctest: +SKIP
    """
    started = time.perf_counter()
    if settings is not None and not isinstance(settings, FineTuneSettings):
        raise TypeError(
            f"fine_tune_reranker(): settings must be a FineTuneSettings, got {type(settings).__name__}; pass "
            "settings by name (kind='bi', epochs=2, ...) or as FineTuneSettings(...)."
        )
    settings = (settings or FineTuneSettings()).with_overrides(**setting_overrides)
    out = Path(settings.output_dir).expanduser().resolve()
    if out.exists() and not out.is_dir():
        raise TrainingError(f"output_dir {out} is a file; pass a folder path.")
    result = load_triplets(triplets)
    result.check_ids(dataset)
    if settings.selection == "cross-fit" and eval_dataset is not None:
        raise TrainingError(
            "selection='cross-fit' validates on folds of `dataset`'s own queries; drop eval_dataset, or use "
            "selection='holdout' to validate on it."
        )
    work = work_dir_for(out)
    make_evaluator = evaluator_factory(settings, validation_candidates)
    common: dict[str, Any] = dict(
        base_model=base_model, result=result, dataset=dataset, make_evaluator=make_evaluator, work=work
    )
    if settings.selection == "cross-fit":
        kept = run_cross_fit(settings, callbacks=callbacks, **common)
    else:
        kept = run_holdout(settings, eval_dataset=eval_dataset, callbacks=callbacks, **common)
    metrics = training_metrics(kept, settings)
    marker = folder_marker(
        kept,
        settings,
        base_model=base_model,
        dataset=dataset,
        result=result,
        hyper=hyperparameters(settings, eval_dataset_given=eval_dataset is not None),
        metrics=metrics,
        candidates_given=validation_candidates is not None,
    )
    _write_model_folder(
        out, kept, marker, card_lines(kept, marker, base_model=base_model, dataset=dataset, result=result)
    )
    if not settings.keep_checkpoints:
        shutil.rmtree(work, ignore_errors=True)
    metrics["seconds"] = round(time.perf_counter() - started, 1)
    logger.info(
        "Saved %s reranker to %s (kept %s, validation MRR@10 %.4f).\n%s",
        settings.kind,
        out,
        kept.selected,
        metrics["validation_mrr@10_selected"] or float("nan"),
        format_curve(kept.history, kept.selected_step),
    )
    return TrainedReranker(
        path=out, kind=settings.kind, history=kept.history, metrics=metrics, fusion=kept.fusion
    )


def _write_model_folder(out: Path, kept: KeptModel, marker: dict[str, Any], card: list[str]) -> None:
    """Write the kept model, its curve, marker and card next to ``out``, then swap the folder in."""
    staging = save_staged(kept.model, out)
    (staging / CURVE_FILE).write_text(json.dumps(kept.history, indent=1), encoding="utf-8")
    write_marker_and_card(staging, marker, "hn-plugins reranker", card)
    install_folder(staging, out)


def trained_reranker_from_folder(path: str | os.PathLike[str]) -> TrainedReranker:
    """Read a folder written by :func:`fine_tune_reranker` back into a :class:`TrainedReranker`."""
    folder = Path(path)
    marker = json.loads((folder / RERANKER_MARKER).read_text(encoding="utf-8"))
    return TrainedReranker(
        path=folder,
        kind=marker["kind"],
        history=marker.get("validation_curve", []),
        metrics=marker.get("metrics", {}),
        fusion=ScoreFusion.from_dict(marker.get("fusion")),
    )
