"""Hard negatives for pseudo-queries: the paper's selector over the mining ensemble, with a positive-aware fallback.

Corpus adaptation (``hn bootstrap --kind bi``) teaches a bi-encoder to find each pseudo-query's document among the
other documents of its batch. Random batch-mates are easy to tell apart, so with ``negatives="mined"`` every
pseudo-query also gets one hard negative mined the way ``default`` mines judged pairs: the paper's selector
(Eq. 5 + 6 in the ensemble's PCA space), and where nothing qualifies, the positive-aware selector (below 95% of the
positive's score). A negative is shown to the model as its own pseudo-query's passage (the document without its
title), like every positive, so the presence of a title cannot give the answer away.

``negatives="in-batch"`` is the default of ``adapt_bi_encoder``; how the two compare is in
``experiments/corpus_adaptation/README.md``.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hn_plugins.data import join_title_text
from hn_plugins.models import DEFAULT_ENSEMBLE
from hn_plugins.training.bootstrap import PseudoQuery

logger = logging.getLogger(__name__)

__all__ = ["PseudoQueryNegatives", "mine_pseudo_query_negatives"]


@dataclass
class PseudoQueryNegatives:
    """One mined negative per pseudo-query, aligned with the pseudo-queries it was mined for.

    Attributes:
        doc_ids: the negative document of each pseudo-query.
        texts: the text the model trains on for each negative (its passage, or the whole document when it has no
            pseudo-query of its own).
        selectors: which selector gave each negative (``"paper"`` or ``"positive-aware"``).
        models: the names of the mining ensemble's members.

    Example:
        >>> PseudoQueryNegatives(["d7", "d2"], ["...", "..."], ["paper", "positive-aware"]).counts()
        {'paper': 1, 'positive-aware': 1}
    """

    doc_ids: list[str]
    texts: list[str]
    selectors: list[str] = field(default_factory=list)
    models: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        """How many negatives each selector gave, e.g. ``{"paper": 812, "positive-aware": 646}``."""
        return dict(Counter(self.selectors))


def mine_pseudo_query_negatives(
    corpus: Mapping[str, tuple[str, str]],
    pairs: Sequence[PseudoQuery],
    *,
    models: Sequence[Any] = DEFAULT_ENSEMBLE,
    variance: float = 0.95,
    seed: int = 0,
    cache_dir: str | os.PathLike[str] | None = None,
    device: str | None = None,
) -> PseudoQueryNegatives:
    """Mine one hard negative per pseudo-query among the corpus (paper selector, positive-aware fallback).

    Args:
        corpus: ``{doc_id: (title, text)}``; every pseudo-query's document must be in it.
        pairs: the pseudo-queries (:func:`~hn_plugins.training.bootstrap.make_pseudo_queries`).
        models: the mining ensemble (names, folders or encoders), L2-normalised and concatenated.
        variance: PCA variance kept (``1.0`` or more: no reduction).
        seed: the miner's seed.
        cache_dir: embedding cache (a later run embeds only new or changed documents).
        device: torch device for the ensemble.

    Returns:
        The negatives, in the order of ``pairs``.

    Raises:
        ValueError: no pseudo-query, or one whose document is not in ``corpus``.

    Example:
        >>> from hn_plugins import load_beir  # doctest: +SKIP
        >>> from hn_plugins.training.bootstrap import make_pseudo_queries  # doctest: +SKIP
        >>> corpus = load_beir("data/cisi", split="train").corpus  # doctest: +SKIP
        >>> pairs = make_pseudo_queries(corpus)  # doctest: +SKIP
        >>> mine_pseudo_query_negatives(corpus, pairs).counts()  # doctest: +SKIP
        {'paper': 1013, 'positive-aware': 445}
    """
    from hn_plugins.data import RetrievalDataset
    from hn_plugins.embedders import EmbedderEnsemble
    from hn_plugins.mining.default_selector import DefaultSelector
    from hn_plugins.mining.miner import HardNegativeMiner
    from hn_plugins.reduction import PCAReducer

    if not pairs:
        raise ValueError("mine_pseudo_query_negatives() needs at least one pseudo-query.")
    unknown = sorted({p.doc_id for p in pairs} - set(corpus))
    if unknown:
        raise ValueError(
            f"{len(unknown)} pseudo-quer(ies) come from documents missing from the corpus (first: {unknown[:5]}); "
            "make the pseudo-queries from this corpus."
        )
    query_ids = [f"pseudo-query-{i}" for i in range(len(pairs))]
    dataset = RetrievalDataset(
        corpus=dict(corpus),
        queries={qid: p.query for qid, p in zip(query_ids, pairs, strict=True)},
        qrels={qid: {p.doc_id: 1} for qid, p in zip(query_ids, pairs, strict=True)},
        name="pseudo-queries",
    )
    ensemble = EmbedderEnsemble(list(models), cache_dir=cache_dir, device=device)
    reducer = PCAReducer(variance=variance) if 0.0 < variance < 1.0 else None
    # what `default` mines, without its random negative: the paper's selector, positive-aware where nothing qualifies
    selector = DefaultSelector(random_negatives=0)
    miner = HardNegativeMiner(ensemble, reducer, selector=selector, num_negatives=1, seed=seed)
    records = {r.query_id: r for r in miner.fit(dataset).mine(dataset).records}
    missing = [qid for qid in query_ids if not records[qid].negative_ids]
    # reachable only when every other document scores within 5% of the positive
    if missing:  # pragma: no cover
        raise ValueError(
            f"No document qualifies as a negative for {len(missing)} pseudo-queries (first: {missing[:5]}): every "
            "other document scores within 5% of their own. Adapt with negatives='in-batch' on this corpus."
        )
    passage_of = {p.doc_id: p.passage for p in pairs}
    doc_ids = [records[qid].negative_ids[0] for qid in query_ids]
    texts = [passage_of.get(d) or join_title_text(*corpus[d]) for d in doc_ids]
    selectors = [str(selector.sources[(qid, records[qid].positive_id)]) for qid in query_ids]
    negatives = PseudoQueryNegatives(doc_ids, texts, selectors, list(ensemble.names))
    logger.info("Mined a hard negative for each of %d pseudo-queries: %s.", len(pairs), negatives.counts())
    return negatives
