"""The recipe we ship as ``default``: its definition (:data:`DEFAULT_STRATEGY`) and how its negatives are merged.

The mining half lives in :mod:`hn_plugins.mining.default_selector` (``selector="default"``); this module holds the
whole recipe as data, for reports and for the strategy benchmark of ``hn-evaluation``, and merges separately mined
parts (the paper's, the fallback's, the random ones) into ``default``'s negatives, with or without a
false-negative verifier in between.
"""

from __future__ import annotations

from typing import Any

from hn_plugins.mining.default_selector import (
    DEFAULT_FALLBACK_MARGIN,
    DEFAULT_RANDOM_NEGATIVES,
    merge_default_records,
)
from hn_plugins.mining.result import MiningResult

__all__ = ["DEFAULT_STRATEGY", "combine_default_negatives", "combine_verified_default_negatives"]

#: The configuration we ship as ``default`` (the only place it is defined).
#:
#: 1. the paper's selector (ensemble + PCA 95% + Eq. 5/6) gives the primary hard negatives;
#: 2. a (query, positive) pair for which nothing satisfies Eq. 5/6 falls back to NV-Retriever's positive-aware
#:    selector in the same ensemble + PCA space (score < 95% of the positive's: a false-negative guard) instead
#:    of being dropped, as the paper does;
#: 3. one seeded random negative is added to every pair: an easy negative that is almost surely not relevant.
#: Loss: in-batch negatives plus the mined ones (multiple-negatives ranking loss over (query, positive, hard
#: negative, random negative) rows and every other row's documents). At test time ``default`` fuses its scores
#: with the first stage's (weight chosen on validation, :mod:`hn_plugins.fusion`).
#: Selection: cross-fitted (``selection="cross-fit"``, ``folds`` folds): the number of epochs (0 = keep the start
#: model) and the fusion weight are chosen on every train query's held-out scores, then the final model trains on
#: all train queries (``folds + 1`` trainings), but only when the chosen epochs beat the start model on those
#: pooled held-out queries with a paired permutation p < ``selection_alpha``; otherwise the start model is kept,
#: fused with BM25.
DEFAULT_STRATEGY: dict[str, Any] = {
    "primary": {"selector": "paper", "space": "ensemble+pca"},
    "fallback": {
        "selector": "positive-aware",
        "space": "ensemble+pca",
        "relative_margin": DEFAULT_FALLBACK_MARGIN,
    },
    "random_negatives": DEFAULT_RANDOM_NEGATIVES,
    "loss": "in-batch",
    "fusion": "bm25, weight chosen on validation",
    "selection": "cross-fit",
    "folds": 5,
    "selection_alpha": 0.05,
}


def combine_default_negatives(
    primary: MiningResult,
    fallback: MiningResult,
    random_result: MiningResult | None = None,
    random_negatives: int = DEFAULT_STRATEGY["random_negatives"],
    name: str = "default",
) -> MiningResult:
    """Merge mined results into the ``default`` strategy's negatives (see :data:`DEFAULT_STRATEGY`).

    Per (query, positive) pair: the primary selector's negatives when it found any, else the fallback's; then up
    to ``random_negatives`` of the random result's negatives that are not already there.

    Args:
        primary: the paper selector's :class:`~hn_plugins.mining.result.MiningResult`.
        fallback: the fallback selector's result on the same pairs.
        random_result: a random selector's result (``None``: no random negative).
        random_negatives: random negatives appended per pair.
        name: the merged result's selector name.

    Returns:
        A ``MiningResult`` with diagnostics ``pairs_from_primary``, ``pairs_from_fallback``,
        ``pairs_without_hard_negative`` and ``random_negatives_added``.

    Example:
        >>> from hn_plugins.mining.result import MiningResult, TripletRecord
        >>> p = MiningResult([TripletRecord("q", "d1", [], 0.3, [], [], "paper")], "paper")
        >>> f = MiningResult([TripletRecord("q", "d1", ["d5"], 0.3, [0.4], [0.6], "positive-aware")], "pa")
        >>> r = MiningResult([TripletRecord("q", "d1", ["d9"], None, [None], [None], "random")], "random")
        >>> combine_default_negatives(p, f, r).records[0].negative_ids
        ['d5', 'd9']
    """
    records, counts, _ = merge_default_records(
        primary.records,
        fallback.records,
        random_result.records if random_result else (),
        random_negatives,
        name,
    )
    diagnostics = {**counts, "definition": DEFAULT_STRATEGY}
    return MiningResult(records, selector=name, diagnostics=diagnostics)


def _pairs_with_negatives(result: MiningResult, count_dropped: bool) -> set[tuple[str, str]]:
    """(query, positive) pairs of ``result`` that have a negative; with ``count_dropped`` also those that had one
    before the verifier dropped it."""
    keys = {(r.query_id, r.positive_id) for r in result.records if r.negative_ids}
    if count_dropped:
        keys |= {(d["query_id"], d["positive_id"]) for d in result.diagnostics.get("dropped") or []}
    return keys


def combine_verified_default_negatives(
    primary: MiningResult,
    fallback: MiningResult,
    random_result: MiningResult | None = None,
    random_negatives: int = DEFAULT_STRATEGY["random_negatives"],
    name: str = "default+verify",
) -> MiningResult:
    """:func:`combine_default_negatives` of a primary and a fallback result that both went through the same
    :class:`~hn_plugins.mining.verifier.FalseNegativeVerifier`, with the verifier's counts.

    A pair whose primary negatives were all dropped takes the fallback's kept negatives; when those were dropped
    too, it keeps only the random negative(s).

    Args:
        primary: the paper selector's result after ``verifier.verify``.
        fallback: the fallback selector's result after ``verifier.verify``.
        random_result: a random selector's result (not verified: ``None`` for none).
        random_negatives: random negatives appended per pair.
        name: the merged result's selector name.

    Returns:
        The merged ``MiningResult``; its diagnostics add to those of :func:`combine_default_negatives`:
        ``verifier`` (teacher, margin), ``negatives_checked`` and ``negatives_dropped`` (primary + fallback),
        ``pairs_emptied_by_verifier`` (pairs that had a hard negative, from the primary or the fallback, before
        verification and have none after), ``pairs_moved_to_fallback`` (pairs whose primary negatives were all
        dropped and that took the fallback's) and ``verifier_by_source`` (the per-source counts).

    Raises:
        ValueError: ``primary`` or ``fallback`` carries no verifier diagnostics.

    Example:
        >>> from hn_plugins.mining.result import MiningResult, TripletRecord
        >>> from hn_plugins.mining.verifier import FalseNegativeVerifier
        >>> from hn_plugins.data import RetrievalDataset
        >>> data = RetrievalDataset({"p": ("", "a b"), "n": ("", "a b c"), "m": ("", "z")}, {"q": "a b"},
        ...                         {"q": {"p": 1}})
        >>> teacher = lambda query, docs: [len(set(query.split()) & set(d.split())) for d in docs]
        >>> verifier = FalseNegativeVerifier(teacher)
        >>> p = verifier.verify(MiningResult([TripletRecord("q", "p", ["n"], 0.3, [0.2], [0.1], "paper")], "paper"),
        ...                     data)
        >>> f = verifier.verify(MiningResult([TripletRecord("q", "p", ["m"], 0.3, [0.5], [0.6], "pa")], "pa"), data)
        >>> merged = combine_verified_default_negatives(p, f)
        >>> merged.records[0].negative_ids, merged.diagnostics["pairs_moved_to_fallback"]
        (['m'], 1)
    """
    sources = {"primary": primary, "fallback": fallback}
    for label, res in sources.items():
        if "negatives_checked" not in res.diagnostics or "verifier" not in res.diagnostics:
            raise ValueError(
                f"combine_verified_default_negatives(): the {label} result was not verified; pass "
                "FalseNegativeVerifier(...).verify(result, dataset), or use combine_default_negatives()."
            )
    merged = combine_default_negatives(primary, fallback, random_result, random_negatives, name)
    before_p, after_p = _pairs_with_negatives(primary, True), _pairs_with_negatives(primary, False)
    before_f, after_f = _pairs_with_negatives(fallback, True), _pairs_with_negatives(fallback, False)
    emptied = moved = 0
    for rec in primary.records:
        key = (rec.query_id, rec.positive_id)
        if (key in before_p or key in before_f) and key not in after_p and key not in after_f:
            emptied += 1
        if key in before_p and key not in after_p and key in after_f:
            moved += 1
    by_source = {
        label: {
            k: res.diagnostics[k]
            for k in ("negatives_checked", "negatives_dropped", "pairs_emptied_by_verifier")
        }
        for label, res in sources.items()
    }
    merged.diagnostics.update(
        {
            "verifier": {**primary.diagnostics["verifier"], "applied_to": ["primary", "fallback"]},
            "negatives_checked": sum(c["negatives_checked"] for c in by_source.values()),
            "negatives_dropped": sum(c["negatives_dropped"] for c in by_source.values()),
            "pairs_emptied_by_verifier": emptied,
            "pairs_moved_to_fallback": moved,
            "verifier_by_source": by_source,
        }
    )
    return merged
