"""What a fine-tuned reranker's folder says about itself: the metrics, the ``hn_reranker.json`` marker, the model
card (``README.md``) and the validation curve table.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from typing import Any

from hn_plugins import __version__
from hn_plugins.data import RetrievalDataset
from hn_plugins.mining.result import MiningResult
from hn_plugins.training.losses import default_margin
from hn_plugins.training.procedures import KeptModel
from hn_plugins.training.settings import FineTuneSettings

__all__ = [
    "card_lines",
    "folder_marker",
    "format_curve",
    "hyperparameters",
    "kept_start_note",
    "training_metrics",
]


def format_curve(history: Sequence[dict[str, Any]], selected_step: int | None = None) -> str:
    """A validation curve as a table (``*`` marks the kept model); cross-fitted curves add the fused MRR@10 and
    each epoch count's paired p against the starting model.

    Example:
        >>> print(format_curve([{"epoch": 0.0, "step": 0, "mrr@3": 0.5, "mrr@10": 0.55}], selected_step=0))
        epoch   step  val MRR@3  val MRR@10
         0.00      0     0.5000      0.5500 *
        >>> print(format_curve([{"epoch": 0.0, "step": 0, "mrr@3": 0.5, "mrr@10": 0.55, "mrr@10_fused": 0.6},
        ...                     {"epoch": 1.0, "step": 4, "mrr@3": 0.6, "mrr@10": 0.6, "mrr@10_fused": 0.62,
        ...                      "p_vs_start": 0.41}], selected_step=0))
        epoch   step  val MRR@3  val MRR@10  fused  p vs start
         0.00      0     0.5000      0.5500 0.6000           – *
         1.00      4     0.6000      0.6000 0.6200        0.41
    """
    fused = any("mrr@10_fused" in h for h in history)
    lines = [
        f"{'epoch':>5}  {'step':>5}  {'val MRR@3':>9}  {'val MRR@10':>10}"
        + ("  fused  p vs start" if fused else "")
    ]
    for h in history:
        mark = " *" if selected_step is not None and int(h["step"]) == int(selected_step) else ""
        extra = ""
        if fused:
            p = h.get("p_vs_start")
            extra = f" {h.get('mrr@10_fused', float('nan')):6.4f}  {'–' if p is None else f'{p:.2g}':>10}"
        lines.append(
            f"{h['epoch']:5.2f}  {int(h['step']):5d}  {h['mrr@3']:9.4f}  {h['mrr@10']:10.4f}{extra}{mark}"
        )
    return "\n".join(lines)


def kept_start_note(metrics: dict[str, Any]) -> str | None:
    """The line ``hn train`` prints when cross-fitting's significance rule kept the starting model, else ``None``.

    Example:
        >>> curve = [{"epochs": 0, "p_vs_start": None}, {"epochs": 1, "p_vs_start": 0.41}]
        >>> kept_start_note({"cross_fit": {"epochs": 0, "best_epochs": 1, "alpha": 0.05, "curve": curve}})
        'cross-fitting kept the starting model: 1 epoch(s) led, but p = 0.41 against the start is not below --selection-alpha 0.05'
        >>> kept_start_note({"cross_fit": {"epochs": 1, "best_epochs": 1, "alpha": 0.05, "curve": curve}}) is None
        True
    """
    cross_fit = metrics.get("cross_fit") or {}
    if not cross_fit.get("best_epochs") or cross_fit.get("epochs") != 0:
        return None
    best = cross_fit["curve"][cross_fit["best_epochs"]]
    return (
        f"cross-fitting kept the starting model: {cross_fit['best_epochs']} epoch(s) led, but p = "
        f"{best['p_vs_start']:.3g} against the start is not below --selection-alpha {cross_fit['alpha']}"
    )


def training_metrics(kept: KeptModel, settings: FineTuneSettings) -> dict[str, Any]:
    """The ``metrics`` of a fine-tuning: validation MRR@10 (start, best, kept), what was kept, steps, rows, examples
    trained on and per second, time (``train_seconds``, validation during training included, and the
    ``validation_seconds`` of it). A resumed run counts the examples of the steps before its checkpoint in
    ``train_examples`` and ``train_examples_before_resume``, and divides only the others by its own time."""
    start = kept.start
    history = kept.history
    metrics: dict[str, Any] = {
        "validation_mrr@10_start": start["mrr@10"] if start else None,
        "validation_mrr@10_best": max((h["mrr@10"] for h in history), default=None),
        "validation_mrr@10_selected": next(
            (h["mrr@10"] for h in history if h["step"] == kept.selected_step), None
        ),
        "validation_first_stage_mrr@10": kept.validation_first_stage,
        "validation_queries": kept.validation_queries,
        "selection": settings.selection,
        "selected": kept.selected,
        "selected_step": kept.selected_step,
        "steps": kept.fit.steps,
        "stopped_early": kept.stopped_early,
        "train_rows": kept.fit.rows,
        "train_seconds": round(kept.train_seconds, 1),
        "validation_seconds": round(kept.validation_seconds, 1),
        "train_rows_per_second_with_validation": round(kept.fit.rows_per_second, 2),
        "train_examples": kept.train_examples,
        "train_examples_before_resume": kept.train_examples_before_resume,
        "train_examples_per_second": round(
            (kept.train_examples - kept.train_examples_before_resume) / kept.train_seconds, 2
        )
        if kept.train_seconds > 0
        else None,
        **kept.stats,
    }
    if kept.decision is not None:
        decision = kept.decision
        metrics["cross_fit"] = {
            "folds": decision.folds,
            "epochs": decision.epochs,
            "best_epochs": decision.best_epochs,
            "alpha": decision.alpha,
            "curve": decision.curve,
        }
    return metrics


def hyperparameters(settings: FineTuneSettings, eval_dataset_given: bool) -> dict[str, Any]:
    """The training settings the marker and the card record (the margin resolved to the one the loss used)."""
    s = settings
    return {
        "epochs": s.epochs,
        "lr": s.lr,
        "batch_size": s.batch_size,
        "seed": s.seed,
        "margin": s.margin
        if s.margin is not None
        else (default_margin(s.kind) if s.loss == "triplet" else None),
        "num_negatives": s.num_negatives,
        "max_length": s.max_length,
        "warmup_ratio": s.warmup_ratio,
        "early_stopping_patience": s.early_stopping_patience,
        "eval_steps": s.eval_steps,
        "validation_fraction": None
        if eval_dataset_given or s.selection == "cross-fit"
        else s.validation_fraction,
        "selection": s.selection,
        "folds": s.folds if s.selection == "cross-fit" else None,
        "selection_alpha": s.selection_alpha if s.selection == "cross-fit" else None,
        "first_stage_top_k": s.first_stage_top_k,
        "fusion_rule": s.fusion_rule if s.choose_fusion else None,
    }


def folder_marker(
    kept: KeptModel,
    settings: FineTuneSettings,
    *,
    base_model: str | os.PathLike[str],
    dataset: RetrievalDataset,
    result: MiningResult,
    hyper: dict[str, Any],
    metrics: dict[str, Any],
    candidates_given: bool,
) -> dict[str, Any]:
    """The ``hn_reranker.json`` content: kind, versions, base model, data, negatives, loss, settings, validation,
    curve, metrics and fusion weight."""
    loss_module = kept.fit.loss_module
    base_info = kept.fit.base_info
    return {
        "kind": settings.kind,
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
        "loss": settings.loss,
        "loss_class": type(loss_module).__name__,
        "loss_config": loss_module.get_config_dict() if hasattr(loss_module, "get_config_dict") else {},
        "row_format": kept.fit.row_format,
        "hyperparameters": hyper,
        "validation": {
            "source": kept.validation_source,
            "first_stage": "given" if candidates_given else "bm25",
        },
        "validation_curve": kept.history,
        "metrics": metrics,
        "fusion": kept.fusion.to_dict() if kept.fusion is not None else None,
    }


def card_lines(
    kept: KeptModel,
    marker: dict[str, Any],
    *,
    base_model: str | os.PathLike[str],
    dataset: RetrievalDataset,
    result: MiningResult,
) -> list[str]:
    """The model card's lines: what was trained on what, how it was validated, the fusion weight and the curve."""
    kind = marker["kind"]
    fit, fusion = kept.fit, kept.fusion
    card = [
        f"A {'cross-encoder' if kind == 'cross' else 'bi-encoder'} reranker fine-tuned with hn-plugins {__version__} "
        f"on hard negatives (`{result.selector}`) of `{dataset.name}`.",
        "",
        f"- base model: `{base_model}`"
        + (" (head untrained at the start)" if fit.base_info.get("head") == "untrained" else ""),
        f"- loss: `{marker['loss']}` ({marker['loss_class']}, {json.dumps(marker['loss_config'])})",
        f"- hyper-parameters: `{json.dumps(marker['hyperparameters'])}`",
        f"- training rows: {fit.rows} ({fit.row_format}); negatives dropped as positives/excluded: "
        f"{kept.stats['negatives_dropped_never_negative']}",
        f"- validation: {kept.validation_queries} queries ({kept.validation_source}), reranking BM25 "
        f"top-{kept.validation_top_k} (first stage MRR@10 {kept.validation_first_stage:.4f}); kept: "
        f"{kept.selected} (step {kept.selected_step})",
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
        + ("; pooled over the folds, one row per epoch count):" if kept.decision is not None else "):"),
        "",
        "```",
        format_curve(kept.history, kept.selected_step),
        "```",
        "",
        "Load it with `hn_plugins.load_reranker(path)`, or with plain "
        f"`{'CrossEncoder' if kind == 'cross' else 'SentenceTransformer'}(path)`.",
    ]
    return card
