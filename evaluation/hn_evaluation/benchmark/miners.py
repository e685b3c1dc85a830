"""The benchmark's miners: ensembles loaded once, each selector fitted and mined once, shared by every row."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hn_plugins.data import RetrievalDataset
from hn_plugins.mining.result import MiningResult, TripletRecord

logger = logging.getLogger(__name__)

__all__ = ["Miners", "mining_summary", "positive_pairs_result"]

#: Keys of a mining result's summary that the benchmark report keeps when present.
_SUMMARY_EXTRAS = (
    "pairs_from_primary",
    "pairs_from_fallback",
    "pairs_without_hard_negative",
    "random_negatives_added",
    "pca_components",
    "pca_variance_kept",
    "verifier",
    "negatives_checked",
    "negatives_dropped",
    "pairs_emptied_by_verifier",
    "pairs_moved_to_fallback",
    "verifier_by_source",
)


@dataclass
class Miners:
    """Lazily built ensembles and fitted miners of one train split, shared by every strategy and seed.

    Args:
        train: the train split to mine.
        models: the ensemble's model names (``paper`` and ``default``).
        variance: PCA variance of the ensemble space.
        num_negatives: negatives per (query, positive) pair.
        candidates: FAISS depth of the dense selectors.
        cache_dir: embedding cache of the ensembles.
        batch_size: encoding batch size.
        ensembles: loaded ensembles by member names; pass another ``Miners``' to share loaded models.

    Attributes:
        fitted: the fitted miner of every mined key.
        results: the mining result of every mined key ``(selector, models, variance, seed, options)``.
    """

    train: RetrievalDataset
    models: list[str]
    variance: float
    num_negatives: int
    candidates: int
    cache_dir: Path | None
    batch_size: int
    ensembles: dict[tuple[str, ...], Any] = field(default_factory=dict)
    fitted: dict[tuple[Any, ...], Any] = field(default_factory=dict)
    results: dict[tuple[Any, ...], Any] = field(default_factory=dict)

    def ensemble(self, models: Sequence[str]) -> Any:
        """The :class:`~hn_plugins.embedders.EmbedderEnsemble` of ``models`` (members loaded once)."""
        from hn_plugins.embedders import EmbedderEnsemble

        key = tuple(models)
        if key not in self.ensembles:
            loaded = self._loaded_members()
            specs = [loaded.get(m, m) for m in models]
            self.ensembles[key] = EmbedderEnsemble(
                specs, cache_dir=self.cache_dir, batch_size=self.batch_size
            )
        return self.ensembles[key]

    def _loaded_members(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for names, ensemble in self.ensembles.items():
            for name, member in zip(names, ensemble.members, strict=True):
                out.setdefault(name, member.encoder)
        return out

    def miner(
        self, selector: str, models: Sequence[str], variance: float | None, seed: int, **kw: Any
    ) -> Any:
        """An unfitted :class:`~hn_plugins.mining.miner.HardNegativeMiner` (PCA when 0 < ``variance`` < 1)."""
        from hn_plugins.mining.miner import HardNegativeMiner
        from hn_plugins.reduction import PCAReducer

        needs_embeddings = selector not in {"random", "bm25"}
        ensemble = self.ensemble(models) if needs_embeddings else None
        reducer = PCAReducer(variance=variance) if variance is not None and 0.0 < variance < 1.0 else None
        return HardNegativeMiner(
            ensemble,
            reducer,
            selector=selector,
            num_negatives=self.num_negatives,
            candidates=self.candidates,
            seed=seed,
            **kw,
        )

    def mine(
        self, selector: str, models: Sequence[str], variance: float | None, seed: int = 0, **kw: Any
    ) -> Any:
        """The train split mined by ``selector`` (once per setting; ``seed`` only matters for ``random``)."""
        seeded = selector == "random"
        if selector in {"random", "bm25"}:
            models, variance = (), None
        key = (selector, tuple(models), variance, seed if seeded else None, tuple(sorted(kw.items())))
        if key not in self.results:
            miner = self.miner(selector, models, variance, seed if seeded else 0, **kw)
            start = time.perf_counter()
            self.results[key] = miner.fit(self.train).mine(self.train)
            self.fitted[key] = miner
            logger.info("mined %s (%s) in %.1fs", selector, ",".join(models), time.perf_counter() - start)
        return self.results[key]


def positive_pairs_result(train: RetrievalDataset) -> MiningResult:
    """The train split's (query, positive) pairs without a mined negative (the ``in-batch`` row's input)."""
    records = [TripletRecord(q, p, [], None, [], [], "in-batch") for q, p in train.positive_pairs()]
    return MiningResult(
        records, selector="in-batch", diagnostics={"note": "no mined negative (loss in-batch)"}
    )


def mining_summary(result: MiningResult) -> dict[str, Any]:
    """The part of a mining result's summary that the benchmark report shows."""
    summary = result.summary()
    keep = ("selector", "pairs", "pairs_with_negative", "selection_rate", "negatives", "queries")
    out = {k: summary[k] for k in keep if k in summary}
    out["queries_without_negative"] = len(summary.get("queries_without_negative") or [])
    for key in _SUMMARY_EXTRAS:
        if key in summary:
            out[key] = summary[key]
    return out
