"""How each row of the strategy benchmark gets its negatives: the strategies, the ablation rows, and the mining
(shared across rows) that produces each row's negatives for a seed."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from hn_plugins.data import RetrievalDataset
from hn_plugins.mining.default_recipe import (
    DEFAULT_STRATEGY,
    combine_default_negatives,
    combine_verified_default_negatives,
)
from hn_plugins.mining.result import MiningResult

from .data import TrainSplits
from .miners import Miners, positive_pairs_result
from .settings import BenchmarkSettings
from .teacher import ZeroShotFusions, zero_shot_fusion_teacher

__all__ = [
    "ALL_STRATEGIES",
    "MINED_STRATEGIES",
    "SINGLE_MODEL_STRATEGIES",
    "StrategyNegatives",
    "StrategyRow",
    "build_rows",
    "check_strategies",
]

#: Every strategy ``hn benchmark --strategies`` accepts, in report order.
ALL_STRATEGIES: tuple[str, ...] = (
    "none",
    "zero-shot",
    "random",
    "bm25",
    "in-batch",
    "dense-topk",
    "positive-aware",
    "st",
    "paper",
    "default",
)
#: Strategies whose negatives one selector mines.
MINED_STRATEGIES = frozenset({"random", "bm25", "dense-topk", "positive-aware", "st", "paper"})
#: Mined baselines that run in the first ensemble member's space alone (one model, no PCA), as those tools do.
SINGLE_MODEL_STRATEGIES = frozenset({"dense-topk", "positive-aware", "st"})


@dataclass
class StrategyRow:
    """How to produce one row: which negatives, which loss, which training data.

    Attributes:
        name: the row's name in the report.
        kind: ``none`` (first stage alone), ``zero-shot`` (the untrained base model) or ``trained``.
        mine: ``mine(seed)`` -> the row's :class:`~hn_plugins.mining.result.MiningResult` (trained rows).
        loss: the training loss.
        train_fraction: train on this seeded share of the train queries (``None``: all).
        selection: ``holdout`` or ``cross-fit`` model selection.
        adapt: start from the base model adapted to the corpus without labels.
    """

    name: str
    kind: Literal["none", "zero-shot", "trained"]
    mine: Callable[[int], MiningResult] | None = None
    loss: str = "triplet"
    train_fraction: float | None = None
    selection: Literal["holdout", "cross-fit"] = "holdout"
    adapt: bool = False


def check_strategies(strategies: Sequence[str], settings: BenchmarkSettings) -> list[str]:
    """The strategy names, stripped and without repeats, checked against :data:`ALL_STRATEGIES`.

    Raises:
        ValueError: an unknown strategy, or no row at all (no strategy and no ablation).

    Example:
        >>> check_strategies([" none", "paper", "none"], BenchmarkSettings())
        ['none', 'paper']
    """
    names = list(dict.fromkeys(s.strip() for s in strategies if s and s.strip()))
    unknown = [s for s in names if s not in ALL_STRATEGIES]
    if unknown:
        raise ValueError(f"Unknown strategies {unknown}; choose from {', '.join(ALL_STRATEGIES)}.")
    if not names and not settings.has_ablations:
        raise ValueError(
            "No strategy to run; pass e.g. strategies=['none', 'zero-shot', 'paper', 'default']."
        )
    return names


class StrategyNegatives:
    """Each row's negatives for a seed, mined on that seed's train split (every result computed once).

    Args:
        splits: the train split of each seed.
        settings: the benchmark's settings (ensemble, PCA variance, negatives, candidates, base model).
        cache_dir: embedding cache of the mining ensembles.
        fusions: the zero-shot fusion weights (the ``default+verify`` teacher's).
        out: the benchmark's folder (the verifier's audit goes there).
    """

    def __init__(
        self,
        splits: TrainSplits,
        settings: BenchmarkSettings,
        cache_dir: Path,
        fusions: ZeroShotFusions,
        out: Path,
    ) -> None:
        self.splits, self.settings, self.cache_dir = splits, settings, cache_dir
        self.fusions, self.out = fusions, out
        self._miners: dict[int | None, Miners] = {}
        self._verified: dict[int | None, tuple[MiningResult, MiningResult]] = {}

    @property
    def single(self) -> list[str]:
        """The single-model baselines' model: the ensemble's first member."""
        return [self.settings.model_list[0]]

    def miners(self, seed: int) -> Miners:
        """The miners of ``seed``'s train split (one for all seeds without ``train_size``); loaded models are shared."""
        key = self.splits.key(seed)
        if key not in self._miners:
            shared = next(iter(self._miners.values()), None)
            s = self.settings
            self._miners[key] = Miners(
                self.splits.for_seed(seed),
                s.model_list,
                s.variance,
                s.num_negatives,
                s.candidates,
                self.cache_dir,
                batch_size=64,
                **({"ensembles": shared.ensembles} if shared is not None else {}),
            )
        return self._miners[key]

    def first_miners(self) -> Miners | None:
        """The miners built first (the PCA picture is drawn from them), or None before any mining."""
        return next(iter(self._miners.values()), None)

    def mine(self, seed: int, selector: str, models: Sequence[str], variance: float | None, **kw: Any) -> Any:
        """``selector``'s result on ``seed``'s train split (``seed`` seeds only the random selector)."""
        return self.miners(seed).mine(selector, models, variance, seed, **kw)

    def in_batch(self, seed: int) -> MiningResult:
        """The positive pairs of ``seed``'s train split, without a mined negative."""
        return positive_pairs_result(self.splits.for_seed(seed))

    def default_parts(
        self, seed: int, models: Sequence[str] | None = None, variance: float | None = None
    ) -> tuple[Any, Any, Any]:
        """``default``'s mined parts: the paper's negatives, the positive-aware fallback, the seeded random ones."""
        models = self.settings.model_list if models is None else models
        variance = self.settings.variance if variance is None else variance
        miners = self.miners(seed)
        fb = DEFAULT_STRATEGY["fallback"]
        primary = miners.mine("paper", models, variance)
        fallback = miners.mine(fb["selector"], models, variance, relative_margin=fb["relative_margin"])
        rnd = miners.mine("random", models, None, seed) if DEFAULT_STRATEGY["random_negatives"] else None
        return primary, fallback, rnd

    def default(self, seed: int) -> MiningResult:
        """``default``'s negatives (:func:`~hn_plugins.mining.default_recipe.combine_default_negatives`)."""
        return combine_default_negatives(*self.default_parts(seed), DEFAULT_STRATEGY["random_negatives"])

    def default_verified(self, seed: int) -> MiningResult:
        """``default``'s negatives with the paper and fallback results verified (once per train split; the random
        part per seed); the dropped negatives are written to ``verifier_dropped.json``."""
        primary, fallback, rnd = self.default_parts(seed)
        key = self.splits.key(seed)
        if key not in self._verified:
            self._verified[key] = self._verify(seed, primary, fallback)
        verified_primary, verified_fallback = self._verified[key]
        return combine_verified_default_negatives(
            verified_primary, verified_fallback, rnd, DEFAULT_STRATEGY["random_negatives"]
        )

    def _verify(self, seed: int, primary: Any, fallback: Any) -> tuple[MiningResult, MiningResult]:
        from hn_plugins.mining.verifier import FalseNegativeVerifier

        s = self.settings
        train: RetrievalDataset = self.splits.for_seed(seed)
        fusion = self.fusions.choice(self.splits.key(seed), train)
        teacher, context = zero_shot_fusion_teacher(
            train, s.base_model, s.kind, fusion, max_length=s.max_length
        )
        verifier = FalseNegativeVerifier(teacher, margin=0.0, context=context)
        verified = verifier.verify(primary, train), verifier.verify(fallback, train)
        audit = {k: v.diagnostics["dropped"] for k, v in zip(("primary", "fallback"), verified, strict=True)}
        name = (
            "verifier_dropped.json" if self.splits.key(seed) is None else f"verifier_dropped-seed{seed}.json"
        )
        (self.out / name).write_text(
            json.dumps({"verifier": verifier.get_config_dict(), **audit}, indent=1), encoding="utf-8"
        )
        return verified


def _default_row(name: str, mine: Callable[[int], MiningResult], **kw: Any) -> StrategyRow:
    """A row trained as ``default`` is (its loss and selection), on ``mine``'s negatives."""
    return StrategyRow(
        name,
        "trained",
        mine=mine,
        loss=DEFAULT_STRATEGY["loss"],
        selection=DEFAULT_STRATEGY["selection"],
        **kw,
    )


def _mined_by(
    negatives: StrategyNegatives, selector: str, models: Sequence[str], variance: float | None
) -> Callable[[int], MiningResult]:
    """``mine(seed)``: ``selector``'s negatives in the space of ``models`` (PCA to ``variance``)."""

    def mine(seed: int) -> MiningResult:
        return negatives.mine(seed, selector, models, variance)

    return mine


def _strategy_row(name: str, negatives: StrategyNegatives) -> StrategyRow:
    """The row of one strategy of :data:`ALL_STRATEGIES`."""
    s, single = negatives.settings, negatives.single
    if name == "none" or name == "zero-shot":
        return StrategyRow(name, "none" if name == "none" else "zero-shot")
    if name == "in-batch":
        return StrategyRow(name, "trained", mine=negatives.in_batch, loss="in-batch")
    if name == "paper":
        return StrategyRow(name, "trained", mine=_mined_by(negatives, "paper", s.model_list, s.variance))
    if name == "default":
        return _default_row(name, negatives.default)
    if name == "random":
        return StrategyRow(name, "trained", mine=_mined_by(negatives, "random", single, None))
    models = single if name in SINGLE_MODEL_STRATEGIES else s.model_list
    return StrategyRow(name, "trained", mine=_mined_by(negatives, name, models, None))


def build_rows(strategies: Sequence[str], negatives: StrategyNegatives) -> list[StrategyRow]:
    """The rows of ``strategies`` (checked names, in order) followed by the ablation rows the settings ask for."""
    s = negatives.settings
    rows = [_strategy_row(name, negatives) for name in strategies]
    for v in s.ablation_variance:
        label = f"paper@pca{v:g}" if v < 1.0 else "paper@nopca"
        rows.append(StrategyRow(label, "trained", mine=_mined_by(negatives, "paper", s.model_list, v)))
    if s.ablation_single_model:
        mine = _mined_by(negatives, "paper", negatives.single, s.variance)
        rows.append(StrategyRow("paper@single-model", "trained", mine=mine))
    for f in s.ablation_train_size:
        rows.append(_default_row(f"default@train{f:g}", negatives.default, train_fraction=f))
    if s.ablation_verifier:
        rows.append(_default_row("default+verify", negatives.default_verified))
    if s.ablation_adapt:
        rows.append(_default_row("default+adapt", negatives.default, adapt=True))
    return rows
