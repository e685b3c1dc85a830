"""Training rows from mined triplets: read the triplets, clean each record against the dataset, and lay the records
out in the row format a loss expects.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any

from hn_plugins.data import DatasetError, RetrievalDataset
from hn_plugins.mining.result import MiningResult, TripletRecord

logger = logging.getLogger(__name__)

__all__ = ["build_training_rows", "clean_records", "load_triplets"]


def load_triplets(triplets: MiningResult | str | os.PathLike[str]) -> MiningResult:
    """``triplets`` as a :class:`MiningResult`: as given, or read from a triplet JSON Lines file (``hn mine`` output).

    Raises:
        DatasetError: a result without records, a missing or empty file.
    """
    if isinstance(triplets, MiningResult):
        if not triplets.records:
            raise DatasetError(
                "The MiningResult holds no record; mine first (or check the selector's diagnostics)."
            )
        return triplets
    return MiningResult.from_jsonl(triplets)


def clean_records(
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
