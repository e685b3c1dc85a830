"""The strategy benchmark's driver: check the input, load the data, run every row for every seed, write the report."""

from __future__ import annotations

import gc
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hn_plugins.data import DatasetError, RetrievalDataset
from hn_plugins.mining.default_recipe import DEFAULT_STRATEGY

from ..benchmark_rag import SharedAnswers
from ..generators import Generator
from ..rerank import RerankReport
from .data import BenchmarkData, TrainSplits, load_benchmark_data
from .miners import mining_summary
from .report import assemble_report, benchmark_config, pca_picture
from .results import RowResults
from .scoring import TestCandidates
from .settings import BenchmarkSettings, settings_with
from .strategies import ALL_STRATEGIES, StrategyNegatives, StrategyRow, build_rows, check_strategies
from .teacher import ZeroShotFusions
from .training import train_row

logger = logging.getLogger(__name__)

__all__ = ["run_benchmark"]


def _seed_list(seeds: int | Sequence[int]) -> list[int]:
    out = list(range(seeds)) if isinstance(seeds, int) else [int(s) for s in seeds]
    if not out:
        raise ValueError("seeds must be >= 1 (or a non-empty list of seeds).")
    return out


def _load_generator(rag: str | Generator | None) -> SharedAnswers | None:
    """The RAG generator, loaded before any mining so that a bad one costs nothing."""
    if rag is None:
        return None
    from ..generators import load_generator

    return SharedAnswers(load_generator(rag) if isinstance(rag, str) else rag)


def _train_minimum(strategies: Sequence[str], settings: BenchmarkSettings) -> tuple[int, str]:
    """The fewest train questions the rows asked for can train on, and why (for ``train_size``)."""
    cross_fit = DEFAULT_STRATEGY["selection"] == "cross-fit" and (
        "default" in strategies
        or settings.ablation_train_size
        or settings.ablation_verifier
        or settings.ablation_adapt
    )
    if cross_fit:
        folds = int(DEFAULT_STRATEGY["folds"])
        return folds, f"each of the {folds} cross-fitting folds of the default rows needs one question"
    if any(s not in ("none", "zero-shot") for s in strategies) or settings.has_ablations:
        return 2, "the validation hold-out of a trained row needs 2 questions"
    return 1, "the zero-shot fusion weight is chosen on at least one question"


class _BenchmarkRun:
    """One run of the benchmark: the rows, their results, the timings."""

    def __init__(
        self,
        data: BenchmarkData,
        splits: TrainSplits,
        strategies: list[str],
        seeds: list[int],
        out: Path,
        settings: BenchmarkSettings,
        generator: SharedAnswers | None,
    ) -> None:
        self.data, self.splits, self.strategies, self.seeds = data, splits, strategies, seeds
        self.out, self.settings, self.generator = out, settings, generator
        self.timings: dict[str, float] = {}
        t0 = time.perf_counter()
        self.candidates = TestCandidates(data.test, settings)
        self.timings["first_stage_s"] = time.perf_counter() - t0
        logger.info(
            "%s: %d train queries, %d test queries, %d distinct candidate documents (%s top-%d)",
            data.name,
            len(data.train.judged_query_ids),
            len(self.candidates.run),
            len(self.candidates.texts),
            settings.first_stage,
            settings.top_k,
        )
        cache_dir = Path(settings.cache_dir) if settings.cache_dir is not None else out / "cache"
        self.fusions = ZeroShotFusions(settings)
        self.negatives = StrategyNegatives(splits, settings, cache_dir, self.fusions, out)
        self.rows = build_rows(strategies, self.negatives)
        self.results = RowResults(self.rows, settings.rag_contexts if generator is not None else None)
        self._cache: dict[Any, Any] = {}

    def names_for(self, row: StrategyRow) -> tuple[str, str | None]:
        """(name of the reranker-alone result, name of the fused result); ``default*`` ships fused."""
        if not self.settings.fusion or row.kind == "none":
            return row.name, None
        if row.name.startswith("default"):
            return f"{row.name}-no-fusion", row.name
        return row.name, f"{row.name}+fusion"

    def run_row(self, row: StrategyRow) -> None:
        """Evaluate ``row`` for every seed (a failing seed stops the row and marks it failed)."""
        alone_name, fused_name = self.names_for(row)
        for seed in self.seeds:
            t_row = time.perf_counter()
            try:
                report, fused_report, scorer = self._evaluate(row, seed, fused_name)
            except (DatasetError, ValueError) as exc:
                self.results.fail(row.name, seed, exc)
                break
            self.results.record(alone_name, row.name, report, seed, scorer)
            if fused_name is not None and fused_report is not None:
                self.results.record(fused_name, row.name, fused_report, seed, scorer)
            self.timings[f"{row.name}/seed{seed}_s"] = round(time.perf_counter() - t_row, 1)
            del scorer
        self.results.add_control(alone_name, fused_name, row.name)
        gc.collect()

    def _evaluate(
        self, row: StrategyRow, seed: int, fused_name: str | None
    ) -> tuple[RerankReport, RerankReport | None, Any]:
        """``(report alone, fused report or None, scorer or None)`` of ``row`` for ``seed``."""
        if row.kind == "none":
            return self._first_stage(row), None, None
        if row.kind == "zero-shot":
            return self._zero_shot(row, seed, fused_name)
        return self._trained(row, seed, fused_name)

    def _first_stage(self, row: StrategyRow) -> RerankReport:
        if "none" not in self._cache:
            report = self.candidates.evaluate("none", None)
            self._cache["none"] = report
            self.results.details[row.name]["short_long_info"] = {
                "threshold": report.short_long["threshold"],
                "length_unit": report.short_long["length_unit"],
                "n_queries": {g: i["n_queries"] for g, i in report.short_long["groups"].items()},
            }
        return self._cache["none"]

    def _zero_shot(
        self, row: StrategyRow, seed: int, fused_name: str | None
    ) -> tuple[RerankReport, RerankReport | None, Any]:
        """The untrained base model (scored once), fused by the weight chosen on this seed's train split."""
        fused_key = ("zero-shot+fusion", self.splits.key(seed))
        if "zero-shot" not in self._cache:
            scorer = self.candidates.scorer_for(self.settings.base_model)
            self._cache[fused_key] = self._zero_shot_fused(row, seed, fused_name, scorer)
            self._cache["zero-shot"] = (self.candidates.evaluate("zero-shot", scorer), scorer)
        report, scorer = self._cache["zero-shot"]
        if fused_key not in self._cache:  # another train subset (train_size): its own fusion weight
            self._cache[fused_key] = self._zero_shot_fused(row, seed, fused_name, scorer)
        return report, self._cache[fused_key], scorer

    def _zero_shot_fused(
        self, row: StrategyRow, seed: int, fused_name: str | None, scorer: Any
    ) -> RerankReport | None:
        if not self.settings.fusion or fused_name is None:
            return None
        choice = self.fusions.choice(self.splits.key(seed), self.splits.for_seed(seed))
        self.results.details[row.name].setdefault("fusion", choice.to_dict())
        return self.candidates.evaluate(fused_name, self.candidates.fused(scorer, choice))

    def _trained(
        self, row: StrategyRow, seed: int, fused_name: str | None
    ) -> tuple[RerankReport, RerankReport | None, Any]:
        """Mine, fine-tune, evaluate the reranker alone and (with fusion) fused with the first stage."""
        assert row.mine is not None  # every trained row has a way to mine
        result = row.mine(seed)
        self.results.record_mining(row, seed, mining_summary(result), every_seed=self.splits.subsampled)
        s = self.settings
        made = train_row(row, seed, result, self.splits.for_seed(seed), self.out, s, choose_fusion=s.fusion)
        self.results.details[row.name]["training"].append(made.training)
        scorer = self.candidates.scorer_for(made.trained.path)
        report = self.candidates.evaluate(row.name, scorer)
        fused = None
        if s.fusion and made.trained.fusion is not None and fused_name is not None:
            fused = self.candidates.evaluate(fused_name, self.candidates.fused(scorer, made.trained.fusion))
        if not s.keep_models:
            made.remove_models()
        return report, fused, scorer

    def report(self, started: float) -> dict[str, Any]:
        """Add the RAG values, assemble and write the report."""
        done = self.results.finished(self.rows)
        t0 = time.perf_counter()
        rag_config = self.results.add_rag_values(
            self.data.test, done, self.generator, self.settings.rag_max_queries
        )
        if self.generator is not None:
            self.timings["rag_s"] = round(time.perf_counter() - t0, 1)
        strategies_out = self.results.strategies_out(done)
        config = benchmark_config(
            self.data.name,
            self.data.train,
            self.data.test,
            self.strategies,
            self.seeds,
            self.settings,
            len(self.candidates.run),
            [c for c in self.results.controls if c in done],
            rag_config,
        )
        picture = pca_picture(
            self.out / "pca_neighbourhood.png", self.negatives.first_miners(), self.data.name
        )
        self.timings["total_s"] = round(time.perf_counter() - started, 1)
        return assemble_report(
            self.out,
            config,
            list(self.candidates.metrics),
            done,
            {n: self.results.per_query[n] for n in done},
            strategies_out,
            self.results.details.get("none", {}).get("short_long_info"),
            self.results.failed,
            self.timings,
            self.settings.n_resamples,
            [picture] if picture is not None else [],
        )


def run_benchmark(
    data: str | os.PathLike[str] | tuple[RetrievalDataset, RetrievalDataset],
    strategies: Sequence[str] = ALL_STRATEGIES,
    seeds: int | Sequence[int] = 3,
    out_dir: str | os.PathLike[str] = "benchmark",
    *,
    settings: BenchmarkSettings | None = None,
    **overrides: Any,
) -> dict[str, Any]:
    """Mine with each strategy, fine-tune one reranker per strategy and seed, evaluate all on the test split.

    Every row shares ``settings``, so the rows differ only by their negatives. The settings may also be given as
    keyword arguments named after the fields of :class:`~hn_evaluation.benchmark.settings.BenchmarkSettings`
    (``run_benchmark(data, epochs=1, top_k=20)``); they replace those fields of ``settings``.

    Args:
        data: a BEIR folder with ``train`` and ``settings.split`` (default ``test``) qrels, or ``(train, test)``
            datasets.
        strategies: rows to produce, from :data:`~hn_evaluation.benchmark.strategies.ALL_STRATEGIES` (``none`` and
            ``zero-shot`` need no training).
        seeds: number of seeds (``0..n-1``) or the seeds themselves; each seeds mining (random), the validation
            split, training and, with ``train_size``, the train questions.
        out_dir: where ``report.json``, ``report.md``, the PNG plots, the mined triplets and (``keep_models``) the
            models go.
        settings: every other setting (default: :class:`~hn_evaluation.benchmark.settings.BenchmarkSettings` ()).
        **overrides: fields of ``settings`` to replace.

    Returns:
        The report dict that was written to ``out_dir/report.json``: ``config``, ``metrics``,
        ``default_strategy``, ``strategies`` (per row: ``metrics`` {metric: {mean, std, values}}, ``per_seed``,
        ``mining``, ``training``, ``short_long``, ``speed``), ``rows`` (means ± std, as in the table),
        ``quality_bar``, ``significance`` (``default`` and ``paper`` vs every other row: Δ and p of per-query
        MRR@10), ``per_query`` (MRR@10 per test query, mean over seeds), ``rag`` (with ``rag`` set: per row mean ±
        std of the RAG metrics, per-query values, ``default`` vs each row), ``failed``, ``plots``, ``timings_s``.
        Fine-tuned rows are reported alone; with ``fusion``, ``default`` rows are reported fused with BM25 and a
        control table holds every other row fused (``<row>+fusion``) and ``default-no-fusion``.

    Raises:
        ValueError: unknown strategies, settings or seeds; a ``train_size`` the train split cannot give.
        TypeError: a keyword argument that is not a setting.
        DatasetError: a split without judgments, a missing folder or a missing test split.

    Example:
        >>> report = run_benchmark("../shared/data/medline", ["none", "zero-shot", "random", "paper"], seeds=1,
        ...                        out_dir="bench/medline", settings=BenchmarkSettings(epochs=1, max_test_queries=10))  # doctest: +SKIP
        >>> report["rows"]["paper"]["mrr@10"]["mean"]  # doctest: +SKIP
        0.71
    """
    started = time.perf_counter()
    settings = settings_with(settings, overrides)
    names = check_strategies(strategies, settings)
    seed_list = _seed_list(seeds)
    generator = _load_generator(settings.rag)
    loaded = load_benchmark_data(data, settings)
    splits = TrainSplits(loaded.train, settings.train_size, *_train_minimum(names, settings))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    run = _BenchmarkRun(loaded, splits, names, seed_list, out, settings, generator)
    for row in run.rows:
        run.run_row(row)
    report = run.report(started)
    logger.info("benchmark of %s written to %s (%.0fs)", loaded.name, out, report["timings_s"]["total_s"])
    return report
