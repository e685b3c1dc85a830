"""Adapt a bi-encoder to a corpus without labels: pseudo-queries with in-batch negatives (``hn bootstrap --kind bi``).

Every document with a title of 3+ words (or a first sentence followed by 10+ words) gives a pseudo-query whose
answer is the rest of the document (:func:`~hn_plugins.training.bootstrap.make_pseudo_queries`, the pairs
``hn bootstrap`` uses for cross-encoders too). The bi-encoder learns to find each answer among the other answers
of its batch (``MultipleNegativesRankingLoss``), which teaches it the corpus' vocabulary before any judged query
exists. The result is a normal sentence-transformers folder marked ``kind: "bi"``: a reranker for
:func:`~hn_plugins.reranker.load_reranker` and the adapters, and a base model for ``hn train --kind bi``.

Adaptation does not help every corpus, so when the dataset has judged queries the untuned and the adapted model
are both measured on them (BM25 top-k reranked, each fused with BM25 at its best weight) and the marker records
whether adapting helped.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from hn_plugins import __version__
from hn_plugins.data import DatasetError, RetrievalDataset
from hn_plugins.models import DEFAULT_ENSEMBLE
from hn_plugins.training.bootstrap import corpus_of, make_pseudo_queries
from hn_plugins.training.model_folder import (
    TrainingError,
    install_folder,
    load_base_model,
    save_staged,
    work_dir_for,
    write_marker_and_card,
)

logger = logging.getLogger(__name__)

__all__ = ["ADAPTATION_NEGATIVES", "adapt_bi_encoder"]

#: negatives of :func:`adapt_bi_encoder`: batch-mates only, or batch-mates plus one mined hard negative each
ADAPTATION_NEGATIVES = ("in-batch", "mined")


def adapt_bi_encoder(
    data: RetrievalDataset | Mapping[str, tuple[str, str]],
    base_model: str | os.PathLike[str] = "all-MiniLM-L6-v2",
    *,
    output_dir: str | os.PathLike[str] = "models/adapted",
    epochs: int = 1,
    lr: float = 2e-5,
    batch_size: int = 32,
    max_length: int | None = 128,
    min_pseudo_queries: int = 100,
    check_top_k: int | None = 100,
    negatives: str = "in-batch",
    mining_models: Sequence[Any] = DEFAULT_ENSEMBLE,
    cache_dir: str | os.PathLike[str] | None = None,
    seed: int = 0,
    device: str | None = None,
) -> Path:
    """Fine-tune a sentence-transformers model on the corpus' pseudo-queries (in-batch negatives) and save it.

    With judged queries in ``data`` both models (start and adapted) are scored on them (``check_top_k``) so that the
    caller can keep the better one; without them, compare them on your own judged queries (``hn eval --model
    zero-shot:<folder>``) before keeping it. Measurements: ``experiments/corpus_adaptation/README.md``.

    Args:
        data: a dataset (its corpus is trained on; its judged queries, if any, only serve the check) or a corpus
            ``{doc_id: (title, text)}``.
        base_model: the sentence-transformers model to adapt (name or folder; a cross-encoder is refused).
        output_dir: the model folder (replaced only once the new one is complete).
        epochs: passes over the pseudo-queries.
        lr: learning rate.
        batch_size: pseudo-queries per step; each one's answer is a negative for the others.
        max_length: tokens per text while training (``None``: the model's own limit).
        min_pseudo_queries: fewer pseudo-queries than this is an error (too little text to adapt to).
        check_top_k: when ``data`` is a dataset with judged queries, rerank each one's BM25 top ``check_top_k``
            with the untuned and with the adapted model, each fused with BM25 at the weight best on these queries,
            and record both MRR@10 in the marker (``metrics["check"]``, with ``"adapted_is_better"``). ``None``
            skips the check (it costs two passes over the candidates).
        negatives: ``"in-batch"`` (each pseudo-query's batch-mates' passages) or ``"mined"`` (those plus one hard
            negative per pseudo-query, mined by :func:`~hn_plugins.training.pseudo_negatives.mine_pseudo_query_negatives`
            with ``mining_models``: the paper's selector, positive-aware where nothing qualifies).
        mining_models: the ensemble that mines with ``negatives="mined"`` (names, folders or encoders).
        cache_dir: embedding cache of the mining ensemble (default: a temporary one, removed afterwards).
        seed: seeds initialisation and data order.
        device: torch device.

    Returns:
        The model folder (``hn_reranker.json`` kind ``"bi"``, safetensors, a model card).

    Raises:
        DatasetError: too few documents give a pseudo-query.
        TrainingError: ``base_model`` is a cross-encoder, or a setting is out of range.

    Example:
        >>> from hn_plugins import load_beir  # doctest: +SKIP
        >>> corpus = load_beir("data/cisi", split="train").corpus  # doctest: +SKIP
        >>> folder = adapt_bi_encoder(corpus, "all-MiniLM-L6-v2", output_dir="models/cisi-adapted")  # doctest: +SKIP
        >>> load_reranker(folder).score("library use studies", ["Use Made of Technical Libraries"])  # doctest: +SKIP
    """
    from datasets import Dataset
    from sentence_transformers import (  # type: ignore[attr-defined]  # 6.x: losses is an import-time alias
        SentenceTransformerTrainer,
        SentenceTransformerTrainingArguments,
        losses,
    )
    from transformers.trainer_callback import PrinterCallback

    from hn_plugins.training.fit import seed_everything

    if epochs < 1 or batch_size < 2 or lr <= 0:
        raise TrainingError(
            f"epochs must be >= 1, batch_size >= 2 (in-batch negatives) and lr > 0; got {epochs}, {batch_size}, {lr}."
        )
    if check_top_k is not None and check_top_k < 1:
        raise TrainingError(f"check_top_k must be >= 1 or None (no check), got {check_top_k}.")
    if negatives not in ADAPTATION_NEGATIVES:
        raise TrainingError(f"negatives must be one of {ADAPTATION_NEGATIVES}, got {negatives!r}.")
    started = time.perf_counter()
    corpus = corpus_of(data)
    pairs = make_pseudo_queries(corpus)
    if len(pairs) < min_pseudo_queries:
        raise DatasetError(
            f"Only {len(pairs)} of {len(corpus)} documents give a pseudo-query (a title of 3+ words, or a first "
            f"sentence followed by 10+ words); adapting needs {min_pseudo_queries}. Give the documents titles, or "
            "lower min_pseudo_queries (--min-pseudo-queries)."
        )
    seed_everything(seed)
    model, _ = load_base_model(base_model, "bi", max_length=max_length, device=device)
    check = _JudgedQueryCheck.for_data(data, check_top_k)
    untuned = check.measure(model) if check is not None else None
    out = Path(output_dir).expanduser().resolve()
    work = work_dir_for(out)
    if work.exists():
        shutil.rmtree(work)
    args = SentenceTransformerTrainingArguments(
        output_dir=str(work),
        num_train_epochs=epochs,
        per_device_train_batch_size=batch_size,
        learning_rate=lr,
        warmup_steps=0.1,
        seed=seed,
        save_strategy="no",
        report_to="none",
        batch_sampler="no_duplicates",
        disable_tqdm=True,
    )
    columns = {"anchor": [p.query for p in pairs], "positive": [p.passage for p in pairs]}
    mined = None
    if negatives == "mined":
        from hn_plugins.training.pseudo_negatives import mine_pseudo_query_negatives

        mined = mine_pseudo_query_negatives(
            corpus,
            pairs,
            models=mining_models,
            seed=seed,
            cache_dir=cache_dir if cache_dir is not None else work / "embeddings",
            device=device,
        )
        columns["negative"] = mined.texts
    rows = Dataset.from_dict(columns)
    loss = losses.MultipleNegativesRankingLoss(model)
    trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=rows, loss=loss)
    trainer.remove_callback(PrinterCallback)  # it prints raw log dicts to stdout; the summary is logged below
    logger.info("Adapting %s to %d pseudo-queries (%d epoch(s)).", base_model, len(pairs), epochs)
    t0 = time.perf_counter()
    trainer.train()
    hyper: dict[str, Any] = {
        "epochs": epochs,
        "lr": lr,
        "batch_size": batch_size,
        "max_length": max_length,
        "negatives": negatives,
        "seed": seed,
    }
    if mined is not None:
        hyper["mining_models"] = mined.models
    metrics: dict[str, Any] = {
        "pseudo_queries": len(pairs),
        "from_titles": sum(p.source == "title" for p in pairs),
        "steps": int(trainer.state.global_step),
        "train_loss": float(trainer.state.log_history[-1].get("train_loss", float("nan"))),
        "train_seconds": round(time.perf_counter() - t0, 1),
    }
    if mined is not None:
        metrics["mined_negatives"] = mined.counts()
    if check is not None and untuned is not None:
        model.eval()
        metrics["check"] = check.compare(untuned, check.measure(model))
    staging = save_staged(model, out)
    marker = {
        "kind": "bi",
        "hn_plugins_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "base_model": str(base_model),
        "data": getattr(data, "name", "corpus"),
        "loss": "in-batch (pseudo-queries)"
        if mined is None
        else "in-batch + mined hard negative (pseudo-queries)",
        "adaptation": hyper,
        "hyperparameters": hyper,
        "metrics": metrics,
    }
    card = [
        f"`{base_model}` adapted by hn-plugins {__version__} (`hn bootstrap --kind bi`) to the corpus `{marker['data']}` "
        f"without labels: {len(pairs)} pseudo-queries (titles or first sentences of documents) each matched to the "
        f"rest of its document among the other answers of its batch of {batch_size}"
        + (
            ""
            if mined is None
            else f" and one hard negative mined by {', '.join(hyper['mining_models'])} ({mined.counts()})"
        )
        + f", {epochs} epoch(s), lr {lr}.",
        "",
        "Check it against the untuned model on judged queries (`hn eval DATA --model zero-shot:<this folder>`), then "
        "fine-tune it on mined hard negatives with `hn train TRIPLETS --base-model <this folder> --kind bi`.",
    ]
    write_marker_and_card(staging, marker, "hn-plugins corpus-adapted bi-encoder", card)
    install_folder(staging, out)
    shutil.rmtree(work, ignore_errors=True)
    if "check" in metrics:
        c = metrics["check"]
        logger.info(
            "On %d judged queries (BM25 top-%d, fused with BM25): MRR@10 %.4f untuned, %.4f adapted%s.",
            c["queries"],
            c["top_k"],
            c["untuned_mrr@10_fused"],
            c["adapted_mrr@10_fused"],
            "" if c["adapted_is_better"] else "; the untuned model is at least as good here",
        )
    logger.info(
        "Adapted bi-encoder saved to %s (%d pseudo-queries, %.0f s).",
        out,
        len(pairs),
        time.perf_counter() - started,
    )
    return out


class _JudgedQueryCheck:
    """MRR@10 of a bi-encoder on a dataset's judged queries: BM25 top-k reranked, fused with BM25 at its best weight."""

    def __init__(self, evaluator: Any, top_k: int) -> None:
        self.evaluator = evaluator
        self.top_k = top_k

    @classmethod
    def for_data(cls, data: Any, top_k: int | None) -> _JudgedQueryCheck | None:
        """The check for ``data``, or ``None`` when it is off or there is no judged query to run it on."""
        if top_k is None or not isinstance(data, RetrievalDataset) or not data.judged_query_ids:
            return None
        from hn_plugins.training.evaluator import RerankingMRREvaluator

        return cls(RerankingMRREvaluator(data, top_k=top_k, name="adaptation-check", write_csv=False), top_k)

    def measure(self, model: Any) -> dict[str, float]:
        """``mrr@10_fused``, ``mrr@10_reranker``, ``mrr@10_first_stage`` and the fusion ``weight`` for ``model``."""
        fusion = self.evaluator.choose_fusion(model)
        if fusion is None:  # pragma: no cover - BM25 candidates always carry scores
            raise TrainingError("The judged-query check needs first-stage scores.")
        return {**fusion.validation, "weight": fusion.weight}

    def compare(self, untuned: Mapping[str, float], adapted: Mapping[str, float]) -> dict[str, Any]:
        """The marker's ``check`` entry: both models' MRR@10 (fused and alone) and whether adapting helped."""
        return {
            "queries": int(untuned["queries"]),
            "first_stage": "bm25",
            "top_k": self.top_k,
            "first_stage_mrr@10": untuned["mrr@10_first_stage"],
            "untuned_mrr@10": untuned["mrr@10_reranker"],
            "adapted_mrr@10": adapted["mrr@10_reranker"],
            "untuned_mrr@10_fused": untuned["mrr@10_fused"],
            "adapted_mrr@10_fused": adapted["mrr@10_fused"],
            "untuned_fusion_weight": untuned["weight"],
            "adapted_fusion_weight": adapted["weight"],
            "adapted_is_better": adapted["mrr@10_fused"] > untuned["mrr@10_fused"],
        }
