"""Speed measurements for the benchmark report: training cost per loss and reranking throughput.

:func:`measure_loss_overhead` times forward + backward + optimizer step of each loss on the *same records* (the
same queries, positives and negatives), interleaving the losses step by step so that a busy machine slows them
all alike; it reports the median step time and the overhead against BCE. :func:`measure_reranking_speed` times
reranking the top-100 documents of queries.
"""

from __future__ import annotations

import copy
import logging
import os
import statistics
import time
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from hn_plugins.data import RetrievalDataset
from hn_plugins.mining.result import TripletRecord

logger = logging.getLogger(__name__)

__all__ = ["measure_loss_overhead", "measure_reranking_speed"]


def _rows_for(
    records: Sequence[TripletRecord], dataset: RetrievalDataset, k: int
) -> dict[str, list[list[str]] | list[list[float]]]:
    """Columns for one batch: n-tuple columns and the labeled pairs of the same records."""
    anchors = [dataset.queries[r.query_id] for r in records]
    positives = [dataset.document_text(r.positive_id) for r in records]
    negatives = [[dataset.document_text(r.negative_ids[i]) for r in records] for i in range(k)]
    pair_anchor, pair_text, labels = [], [], []
    for r, a, p in zip(records, anchors, positives, strict=True):
        pair_anchor.append(a)
        pair_text.append(p)
        labels.append(1.0)
        for n in r.negative_ids[:k]:
            pair_anchor.append(a)
            pair_text.append(dataset.document_text(n))
            labels.append(0.0)
    return {"tuple": [anchors, positives, *negatives], "pairs": [pair_anchor, pair_text], "labels": [labels]}


def measure_loss_overhead(
    dataset: RetrievalDataset,
    records: Sequence[TripletRecord],
    base_model: str | os.PathLike[str] | Any = "all-MiniLM-L6-v2",
    *,
    losses: Sequence[str] = ("bce", "triplet", "listwise"),
    num_negatives: int = 1,
    batch_size: int = 16,
    steps: int = 6,
    warmup_steps: int = 1,
    max_length: int | None = 128,
    lr: float = 2e-5,
    seed: int = 0,
) -> dict[str, Any]:
    """Per-step cost of each cross-encoder loss on the same records, and its overhead over BCE.

    Every loss sees the same ``batch_size`` records per step: BCE scores the ``1 + k`` labeled pairs of each
    record; the triplet and listwise losses score the same ``1 + k`` pairs as one (anchor, positive, negative_1..k)
    row. Each loss trains its own copy of the model; steps are interleaved across losses.

    Args:
        dataset: texts of the records' ids.
        records: triplet records with at least ``num_negatives`` negatives each (others are skipped).
        base_model: a cross-encoder (object, folder or name); a bi-encoder folder gets an untrained head.
        losses: among ``bce``, ``triplet``, ``listwise``.
        num_negatives: negatives per record (``k``).
        batch_size: records per step.
        steps: timed steps per loss (after ``warmup_steps`` untimed ones).
        warmup_steps: untimed steps per loss.
        max_length: tokens per pair.
        lr: AdamW learning rate.
        seed: model initialisation and record order.

    Returns:
        ``{"setup": {...}, "<loss>": {"seconds_per_step", "records_per_second", "pairs_per_second",
        "overhead_vs_bce"}}`` (median over the timed steps; overhead = time / BCE time - 1).

    Example:
        >>> report = measure_loss_overhead(train, records, "all-MiniLM-L6-v2", steps=4)  # doctest: +SKIP
        >>> report["triplet"]["overhead_vs_bce"]  # doctest: +SKIP
        0.01
    """
    import torch
    from sentence_transformers.cross_encoder import CrossEncoder
    from sentence_transformers.cross_encoder.losses import BinaryCrossEntropyLoss

    from hn_plugins.training.fit import seed_everything
    from hn_plugins.training.losses import CrossEncoderListwiseSoftmaxLoss, CrossEncoderTripletMarginLoss
    from hn_plugins.training.model_folder import load_base_model

    usable = [r for r in records if len(r.negative_ids) >= num_negatives]
    needed = batch_size * (steps + warmup_steps)
    if len(usable) < batch_size:
        raise ValueError(
            f"measure_loss_overhead(): {len(usable)} records with >= {num_negatives} negatives; need "
            f"at least batch_size={batch_size}."
        )
    seed_everything(seed)
    if isinstance(base_model, CrossEncoder):
        base = base_model
    else:
        base, _ = load_base_model(base_model, "cross", max_length=max_length)
    batches = [
        [usable[(s * batch_size + i) % len(usable)] for i in range(batch_size)]
        for s in range(steps + warmup_steps)
    ]
    columns = [_rows_for(b, dataset, num_negatives) for b in batches]
    runs: dict[str, dict[str, Any]] = {}
    for name in losses:
        model = copy.deepcopy(base)
        model.train()
        if name == "bce":
            loss: torch.nn.Module = BinaryCrossEntropyLoss(model)
        elif name == "triplet":
            loss = CrossEncoderTripletMarginLoss(model)
        elif name == "listwise":
            loss = CrossEncoderListwiseSoftmaxLoss(model)
        else:
            raise ValueError(f"measure_loss_overhead(): unknown loss {name!r}; use bce, triplet or listwise.")
        runs[name] = {"loss": loss, "optimizer": torch.optim.AdamW(model.parameters(), lr=lr), "times": []}
    for step, cols in enumerate(columns):
        for name, run in runs.items():
            start = time.perf_counter()
            if name == "bce":
                value = run["loss"](cols["pairs"], torch.tensor(cols["labels"][0]))
            else:
                value = run["loss"](cols["tuple"], None)
            value.backward()
            run["optimizer"].step()
            run["optimizer"].zero_grad()
            if step >= warmup_steps:
                run["times"].append(time.perf_counter() - start)
    pairs_per_step = batch_size * (1 + num_negatives)
    report: dict[str, Any] = {
        "setup": {
            "records_per_step": batch_size,
            "negatives_per_record": num_negatives,
            "pairs_per_step": pairs_per_step,
            "timed_steps": steps,
            "max_length": max_length,
            "torch_threads": torch.get_num_threads(),
            "records_available": len(usable),
            "records_needed_no_repeat": needed,
        }
    }
    for name, run in runs.items():
        med = statistics.median(run["times"])
        report[name] = {
            "seconds_per_step": med,
            "records_per_second": batch_size / med,
            "pairs_per_second": pairs_per_step / med,
        }
    if "bce" in report:
        for name in runs:
            report[name]["overhead_vs_bce"] = (
                report[name]["seconds_per_step"] / report["bce"]["seconds_per_step"] - 1
            )
    return report


def measure_reranking_speed(
    model: Any,
    dataset: RetrievalDataset,
    *,
    top_k: int = 100,
    queries: int = 5,
    kind: Literal["auto", "cross", "bi"] = "auto",
    batch_size: int = 32,
    max_length: int | None = None,
) -> dict[str, Any]:
    """Seconds to rerank BM25's top-``k`` of a few queries (the first query is a warm-up and not timed).

    Args:
        model: a reranker folder or name (loaded with :func:`hn_plugins.reranker.load_reranker`, or as a bi-encoder
            when ``kind="bi"``), or a loaded ``CrossEncoder`` / ``SentenceTransformer`` / object with ``score``.
        dataset: queries and corpus.
        top_k: documents per query.
        queries: timed queries.
        kind: force ``cross`` or ``bi`` for a plain model name.
        batch_size: scoring batch size.
        max_length: truncate inputs to this many tokens (``None``: the model's own).

    Returns:
        ``{"documents_per_second", "seconds_per_query" (median), "top_k", "queries"}``. A bi-encoder encodes the
        documents at query time here (no precomputed document vectors).
    """
    from hn_plugins.training.evaluator import bm25_candidates, score_documents

    if isinstance(model, (str, os.PathLike)):
        if kind == "bi":
            from hn_plugins.models import load_sentence_transformer

            model = load_sentence_transformer(model)
        elif kind == "cross":
            from hn_plugins.training.model_folder import load_base_model

            model, _ = load_base_model(model, "cross")
        else:
            from hn_plugins.rerankers.loading import load_reranker

            model = load_reranker(model).model
    if max_length is not None and hasattr(model, "max_seq_length"):
        model.max_seq_length = max_length
    qids = dataset.judged_query_ids[: queries + 1]
    candidates = bm25_candidates(dataset, qids, top_k=top_k)
    times = []
    for i, q in enumerate(qids):
        docs = [dataset.document_text(d) for d in candidates[q]]
        start = time.perf_counter()
        score_documents(model, [dataset.queries[q]], [docs], batch_size=batch_size)
        if i > 0:
            times.append((time.perf_counter() - start, len(docs)))
    seconds = [t for t, _ in times]
    return {
        "seconds_per_query": float(np.median(seconds)),
        "documents_per_second": sum(n for _, n in times) / sum(seconds),
        "top_k": top_k,
        "queries": len(times),
        "model": type(model).__name__,
    }
