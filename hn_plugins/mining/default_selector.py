"""The negatives we ship: the paper's, a positive-aware fallback where none qualifies, and one random negative.

This is the mining half of the benchmark's ``default`` row (``hn_evaluation.DEFAULT_STRATEGY``), available to
users as ``--selector default`` / ``selector="default"`` everywhere a selector is named (``hn mine``,
:class:`~hn_plugins.mining.miner.HardNegativeMiner`, the LlamaIndex and Haystack fine-tuning helpers). Per
(query, positive) pair:

1. the paper's selector (Eq. 5 + Eq. 6 in the ensemble + PCA space), ``num_negatives`` by rank;
2. where nothing qualifies, NV-Retriever's positive-aware selector (TopK-PercPos, ``relative_margin`` 0.05) in the
   same space;
3. then ``random_negatives`` seeded random documents that are not already there.

The training half of ``default`` is ``loss="in-batch"`` (batch-mates plus these negatives), cross-fitted selection
and fusion with the first stage (``hn train --loss in-batch --selection cross-fit``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from hn_plugins.mining.result import TripletRecord
from hn_plugins.mining.selectors import (
    NegativeSelector,
    PaperSelector,
    PositiveAwareSelector,
    RandomSelector,
    SelectionContext,
)

__all__ = [
    "DEFAULT_FALLBACK_MARGIN",
    "DEFAULT_RANDOM_NEGATIVES",
    "DefaultSelector",
    "merge_default_records",
]

#: ``relative_margin`` of the positive-aware fallback ("below 95% of the positive's score").
DEFAULT_FALLBACK_MARGIN = 0.05
#: Random negatives appended to every pair.
DEFAULT_RANDOM_NEGATIVES = 1


def merge_default_records(
    primary: Sequence[TripletRecord],
    fallback: Sequence[TripletRecord],
    random_records: Sequence[TripletRecord] = (),
    random_negatives: int = DEFAULT_RANDOM_NEGATIVES,
    name: str = "default",
) -> tuple[list[TripletRecord], dict[str, int], list[str | None]]:
    """Merge per-pair records into ``default``'s: the primary's negatives, else the fallback's, plus random ones.

    Args:
        primary: the paper selector's records (one per pair; they fix the order of the output).
        fallback: the fallback selector's records (pairs missing here count as without a hard negative).
        random_records: a random selector's records (empty: no random negative).
        random_negatives: random negatives appended per pair (those already in the list are skipped).
        name: the ``selector`` of the merged records.

    Returns:
        The merged records; the counts ``pairs_from_primary``, ``pairs_from_fallback``,
        ``pairs_without_hard_negative`` and ``random_negatives_added``; and, per merged record, the ``selector`` of
        the record its hard negatives came from (``None`` where neither part found one).

    Example:
        >>> p = [TripletRecord("q", "d1", [], 0.3, [], [], "paper")]
        >>> f = [TripletRecord("q", "d1", ["d5"], 0.3, [0.4], [0.6], "positive-aware")]
        >>> r = [TripletRecord("q", "d1", ["d9"], None, [None], [None], "random")]
        >>> records, counts, sources = merge_default_records(p, f, r)
        >>> records[0].negative_ids, counts["pairs_from_fallback"], sources
        (['d5', 'd9'], 1, ['positive-aware'])
    """
    if random_negatives < 0:
        raise ValueError(f"random_negatives must be >= 0, got {random_negatives}.")
    fb = {(r.query_id, r.positive_id): r for r in fallback}
    rnd = {(r.query_id, r.positive_id): r for r in random_records}
    counts = {
        "pairs_from_primary": 0,
        "pairs_from_fallback": 0,
        "pairs_without_hard_negative": 0,
        "random_negatives_added": 0,
    }
    records = []
    sources: list[str | None] = []
    for rec in primary:
        key = (rec.query_id, rec.positive_id)
        source = rec
        if rec.negative_ids:
            counts["pairs_from_primary"] += 1
        elif key in fb and fb[key].negative_ids:
            source = fb[key]
            counts["pairs_from_fallback"] += 1
        else:
            counts["pairs_without_hard_negative"] += 1
        sources.append(source.selector if source.negative_ids else None)
        negatives = list(source.negative_ids)
        d_q_neg = list(source.d_q_neg) or [None] * len(negatives)
        d_pos_neg = list(source.d_pos_neg) or [None] * len(negatives)
        added = 0
        for neg in rnd[key].negative_ids if key in rnd else []:
            if added >= random_negatives:
                break
            if neg not in negatives:
                negatives.append(neg)
                d_q_neg.append(None)
                d_pos_neg.append(None)
                added += 1
        counts["random_negatives_added"] += added
        records.append(
            TripletRecord(rec.query_id, rec.positive_id, negatives, rec.d_q_pos, d_q_neg, d_pos_neg, name)
        )
    return records, counts, sources


class DefaultSelector(NegativeSelector):
    """The configuration we ship: the paper's negatives, the positive-aware fallback, one random negative.

    Every pair gets the paper selector's negatives (Eq. 5 + Eq. 6); a pair where nothing qualifies gets the
    positive-aware selector's instead (run only on the queries that need it, in the same space); then
    ``random_negatives`` seeded random documents are appended. A record's distances are those of its hard
    negatives' selector (``None`` for the random ones). The result equals the benchmark's ``default`` mining
    (``hn_evaluation.combine_default_negatives`` of the three selectors run separately).

    Args:
        relative_margin: the fallback's margin (0.05: below 95% of the positive's score).
        random_negatives: random negatives appended per pair (0: none).

    Example:
        >>> from hn_plugins.mining.named_selectors import get_selector
        >>> selector = get_selector("default")
        >>> selector.name, selector.get_config_dict()["fallback"]["relative_margin"]
        ('default', 0.05)
    """

    name = "default"

    def __init__(
        self,
        relative_margin: float = DEFAULT_FALLBACK_MARGIN,
        random_negatives: int = DEFAULT_RANDOM_NEGATIVES,
    ) -> None:
        super().__init__()
        if random_negatives < 0:
            raise ValueError(f"DefaultSelector: random_negatives must be >= 0, got {random_negatives}.")
        self.primary = PaperSelector()
        self.fallback = PositiveAwareSelector(relative_margin=relative_margin)
        self.random = RandomSelector()
        self.random_negatives = random_negatives
        #: after :meth:`select`: per (query, positive), the selector its hard negatives came from (``"paper"``,
        #: ``"positive-aware"``, or ``None`` where neither found one); the records themselves all say ``default``
        self.sources: dict[tuple[str, str], str | None] = {}

    def select(self, context: SelectionContext) -> list[TripletRecord]:
        primary = self._run(self.primary, context)
        needy = list(dict.fromkeys(r.query_id for r in primary if not r.negative_ids))
        fallback: list[TripletRecord] = []
        if needy:
            subset = context.dataset.subset(needy)
            fallback = self._run(self.fallback, dataclasses.replace(context, dataset=subset))
        random_records = self._run(self.random, context) if self.random_negatives else []
        records, counts, sources = merge_default_records(
            primary, fallback, random_records, self.random_negatives, self.name
        )
        self.sources = {(r.query_id, r.positive_id): src for r, src in zip(records, sources, strict=True)}
        for key, value in counts.items():
            self._count(key, value)
        self._count("fallback_queries", len(needy))
        return records

    def _run(self, selector: NegativeSelector, context: SelectionContext) -> list[TripletRecord]:
        """Run one part and keep its counters, prefixed with its name (``paper.rejected_eq5``, ...)."""
        selector.counters = {}
        records = selector.select(context)
        for key, value in selector.counters.items():
            self._count(f"{selector.name}.{key}", value)
        return records

    def get_config_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "primary": self.primary.get_config_dict(),
            "fallback": self.fallback.get_config_dict(),
            "random_negatives": self.random_negatives,
        }
