"""How a trained row's reranker is made for a seed: its negatives (on a share of the train queries when asked),
an optional corpus-adapted start, and the fine-tune, under the benchmark's shared settings."""

from __future__ import annotations

import json
import logging
import random
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hn_plugins.data import RetrievalDataset
from hn_plugins.mining.default_recipe import DEFAULT_STRATEGY
from hn_plugins.mining.result import MiningResult

from .settings import BenchmarkSettings
from .strategies import StrategyRow

logger = logging.getLogger(__name__)

__all__ = ["TrainedRow", "has_cuda", "row_negatives", "train_row"]


@dataclass
class TrainedRow:
    """A row's fine-tuned reranker for one seed and what the report says about its training.

    Attributes:
        trained: the :class:`~hn_plugins.training.trainer.TrainedReranker`.
        training: the report's ``training`` entry of this seed.
        model_dir: the fine-tuned model's folder.
        adapted_start: the corpus-adapted starting model's folder when the fine-tune started from it.
    """

    trained: Any
    training: dict[str, Any]
    model_dir: Path
    adapted_start: Path | None = None

    def remove_models(self) -> None:
        """Delete the fine-tuned model (and the adapted start it came from)."""
        shutil.rmtree(self.model_dir, ignore_errors=True)
        if self.adapted_start is not None:
            shutil.rmtree(self.adapted_start, ignore_errors=True)


def has_cuda() -> bool:
    """Whether torch sees a CUDA device."""
    try:
        import torch

        return bool(torch.cuda.is_available())
    except ImportError:  # pragma: no cover
        return False


def row_negatives(
    row: StrategyRow, result: MiningResult, seed: int, train: RetrievalDataset
) -> tuple[MiningResult, RetrievalDataset]:
    """The row's negatives and train split: with ``row.train_fraction`` < 1, a seeded share of the train queries
    (at least 2) and only their records."""
    if row.train_fraction is None or row.train_fraction >= 1.0:
        return result, train
    qids = sorted(train.judged_query_ids)
    n = max(2, round(row.train_fraction * len(qids)))
    keep = set(random.Random(seed).sample(qids, n))
    train_data = train.subset([q for q in train.judged_query_ids if q in keep], name=f"{train.name}[{n}q]")
    records = [r for r in result.records if r.query_id in train_data.queries]
    return MiningResult(records, selector=result.selector, diagnostics=result.diagnostics), train_data


def _device() -> str | None:
    return "cpu" if not has_cuda() else None


def _adapted_start(
    row: StrategyRow, seed: int, train: RetrievalDataset, folder: Path, settings: BenchmarkSettings
) -> tuple[str | Path, dict[str, Any] | None]:
    """The model ``row`` fine-tunes from and the adaptation's report entry (``None`` without ``row.adapt``).

    With ``row.adapt`` the base model is adapted to the train corpus (``folder``); the adapted model is kept as the
    start only if it raised the fused MRR@10 of the judged train queries, else ``folder`` is removed.
    """
    if not row.adapt:
        return settings.base_model, None
    from hn_plugins.training.corpus_adaptation import adapt_bi_encoder

    adapted = adapt_bi_encoder(
        train,
        settings.base_model,
        output_dir=folder,
        check_top_k=settings.validation_top_k,
        seed=seed,
        device=_device(),
    )
    adaptation = json.loads((adapted / "hn_reranker.json").read_text(encoding="utf-8"))["metrics"]
    adaptation["started_from_adapted"] = bool(adaptation["check"]["adapted_is_better"])
    if adaptation["started_from_adapted"]:
        return adapted, adaptation
    logger.info(
        "%s seed %d: adapting did not help the train queries; fine-tuning the base model.", row.name, seed
    )
    shutil.rmtree(adapted, ignore_errors=True)
    return settings.base_model, adaptation


def _training_entry(trained: Any, seed: int, adaptation: dict[str, Any] | None) -> dict[str, Any]:
    m = trained.metrics
    return {
        "seed": seed,
        "selected": m.get("selected"),
        "selected_step": m.get("selected_step"),
        "steps": m.get("steps"),
        "train_rows": m.get("train_rows"),
        "train_seconds": m.get("train_seconds"),
        "validation_seconds": m.get("validation_seconds"),
        "train_examples": m.get("train_examples"),
        "train_examples_per_second": m.get("train_examples_per_second"),
        "validation_mrr@10_start": m.get("validation_mrr@10_start"),
        "validation_mrr@10_selected": m.get("validation_mrr@10_selected"),
        "validation_curve": trained.history,
        "selection": m.get("selection"),
        "validation_queries": m.get("validation_queries"),
        **(
            {"best_epochs": m["cross_fit"].get("best_epochs"), "selection_alpha": m["cross_fit"].get("alpha")}
            if m.get("cross_fit")
            else {}
        ),
        "fusion": trained.fusion.to_dict() if trained.fusion is not None else None,
        **({"adaptation": adaptation} if adaptation is not None else {}),
    }


def train_row(
    row: StrategyRow,
    seed: int,
    result: MiningResult,
    train: RetrievalDataset,
    out: Path,
    settings: BenchmarkSettings,
    choose_fusion: bool,
) -> TrainedRow:
    """Write the row's triplets under ``out/triplets`` and fine-tune its reranker into ``out/models``.

    Args:
        row: the row (loss, selection, share of the train queries, adapted start).
        seed: seeds the train share, the adaptation and the fine-tune.
        result: the row's negatives for this seed (on ``train``).
        train: this seed's train split.
        out: the benchmark's folder.
        settings: the settings every row shares.
        choose_fusion: also choose the weight that fuses the reranker with BM25 on its validation queries.
    """
    from hn_plugins.training.trainer import fine_tune_reranker

    result, train_data = row_negatives(row, result, seed, train)
    safe = row.name.replace("@", "_").replace("/", "_")
    result.to_jsonl(out / "triplets" / f"{safe}-seed{seed}.jsonl")
    model_dir = out / "models" / f"{safe}-seed{seed}"
    start, adaptation = _adapted_start(
        row, seed, train_data, out / "models" / f"{safe}-start-seed{seed}", settings
    )
    trained = fine_tune_reranker(
        result,
        train_data,
        start,
        kind=settings.kind,
        loss=row.loss,
        margin=settings.margin,
        num_negatives=None,  # every negative the row mined (default's random one too)
        epochs=settings.epochs,
        lr=settings.lr,
        batch_size=settings.batch_size,
        seed=seed,
        first_stage_top_k=settings.validation_top_k,
        output_dir=model_dir,
        max_length=settings.max_length,
        device=_device(),
        choose_fusion=choose_fusion,
        selection=row.selection,
        folds=DEFAULT_STRATEGY["folds"],
        selection_alpha=DEFAULT_STRATEGY["selection_alpha"],
        fusion_rule=settings.fusion_rule,
    )
    adapted = Path(start) if adaptation is not None and adaptation["started_from_adapted"] else None
    return TrainedRow(trained, _training_entry(trained, seed, adaptation), model_dir, adapted)
