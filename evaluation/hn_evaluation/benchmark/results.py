"""What the benchmark measured, row by row and seed by seed, and the per-row summaries the report is built from."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from hn_plugins.data import RetrievalDataset

from ..benchmark_rag import SharedAnswers, rag_reports_by_seed, top_contexts
from ..metrics import EvaluationError
from ..rerank import RerankReport
from .scoring import EmbeddedBiEncoderScorer
from .strategies import StrategyRow

logger = logging.getLogger(__name__)

__all__ = ["RowResults", "mean_dicts", "speed_entry"]


def mean_dicts(values: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """Key-wise mean of dicts with the same keys (``{}`` for none).

    Example:
        >>> mean_dicts([{"a": 1.0}, {"a": 3.0}])
        {'a': 2.0}
    """
    if not values:
        return {}
    return {k: float(np.mean([v[k] for v in values])) for k in values[0]}


def speed_entry(report: RerankReport, name: str, scorer: Any) -> dict[str, Any]:
    """The row's reranking speed, counting the up-front encoding of an :class:`EmbeddedBiEncoderScorer`."""
    speed = dict(report.speed.get(name) or {})
    encode = float(getattr(scorer, "encode_seconds", 0.0) or 0.0)
    documents = float(speed.get("documents") or 0.0)
    seconds = float(speed.get("seconds") or 0.0) + (
        encode if isinstance(scorer, EmbeddedBiEncoderScorer) else 0.0
    )
    speed.update(
        {
            "seconds_including_encoding": seconds,
            "docs_per_second": documents / seconds if seconds > 0 else None,
        }
    )
    return speed


class RowResults:
    """Every row's per-seed metrics, per-query MRR@10, mining and training details, and failures.

    Args:
        rows: the rows to run (each gets a ``details`` entry up front).
        rag_contexts: keep each recorded ranking's top this many documents for the RAG answers (``None``: no RAG).

    Attributes:
        details: per result name: ``per_seed``, ``short_long``, ``speed`` and, for rows, ``mining``, ``training``,
            ``fusion``; a result recorded under another name than its row (``<row>+fusion``,
            ``default-no-fusion``) names its row as ``source``.
        per_query: per result name, one ``{query: MRR@10}`` per seed.
        failed: per failed row (or ``rag``), why.
        controls: the fusion control table's result names, in order.
    """

    def __init__(self, rows: Sequence[StrategyRow], rag_contexts: int | None = None) -> None:
        self.rag_contexts = rag_contexts
        self.details: dict[str, dict[str, Any]] = {
            row.name: {"per_seed": [], "mining": None, "training": [], "short_long": [], "speed": []}
            for row in rows
        }
        self.per_seed_rows: dict[str, list[dict[str, float]]] = {}
        self.per_query: dict[str, list[dict[str, float]]] = {}
        self.failed: dict[str, str] = {}
        self.controls: list[str] = []
        self.rag_tops: dict[int, dict[str, dict[str, list[str]]]] = {}  # seed -> result -> query -> top ids

    def record(self, name: str, source: str, report: RerankReport, seed: int, scorer: Any = None) -> None:
        """Keep one seed's evaluation of result ``name`` (of row ``source``)."""
        if name not in self.details:
            self.details[name] = {"per_seed": [], "short_long": [], "speed": [], "source": source}
        info = self.details[name]
        name_in_report = next(iter(report.rows))
        metrics = report.rows[name_in_report]
        self.per_seed_rows.setdefault(name, []).append(metrics)
        self.per_query.setdefault(name, []).append(
            {q: v["mrr@10"] for q, v in report.per_query[name_in_report].items()}
        )
        info["per_seed"].append({"seed": seed, "metrics": metrics})
        info["short_long"].append(
            {g: i["rows"].get(name_in_report, {}) for g, i in report.short_long["groups"].items()}
        )
        if scorer is not None:
            info["speed"].append(speed_entry(report, name_in_report, scorer))
        if self.rag_contexts is not None:
            self.rag_tops.setdefault(seed, {})[name] = top_contexts(
                report.runs[name_in_report], self.rag_contexts
            )
        logger.info("%s seed %d: %s", name, seed, {k: round(v, 4) for k, v in metrics.items()})

    def record_mining(self, row: StrategyRow, seed: int, summary: dict[str, Any], every_seed: bool) -> None:
        """Keep a trained row's mining summary: of its first seed, or of every seed for rows (or runs,
        ``every_seed``) whose negatives change with the seed."""
        info = self.details[row.name]
        if info["mining"] is None or every_seed or row.name == "random" or row.name.startswith("default"):
            info.setdefault("mining_per_seed", []).append({"seed": seed, **summary})
            info["mining"] = summary

    def fail(self, row: str, seed: int, exc: Exception) -> None:
        """Mark ``row`` failed (its results are left out of the report)."""
        logger.warning("%s (seed %d) failed: %s", row, seed, exc)
        self.failed[row] = f"seed {seed}: {exc}"

    def add_control(self, alone_name: str, fused_name: str | None, row: str) -> None:
        """Put ``row``'s other result in the fusion control table (``default*`` ships fused: its control is the
        reranker alone; every other row's is its fused result)."""
        if fused_name is not None and fused_name in self.per_seed_rows:
            self.controls.append(alone_name if fused_name == row else fused_name)

    def finished(self, rows: Sequence[StrategyRow]) -> list[str]:
        """The results to report, rows first then controls; failed rows' results are dropped.

        Raises:
            EvaluationError: every row failed.
        """
        done = [r.name for r in rows if r.name in self.per_seed_rows and r.name not in self.failed]
        done += [
            c
            for c in self.controls
            if c in self.per_seed_rows and self.details[c]["source"] not in self.failed
        ]
        for name in list(self.per_seed_rows):
            if name in self.failed:
                self.per_seed_rows.pop(name)
                self.per_query.pop(name, None)
        if not done:
            raise EvaluationError(f"Every strategy failed: {self.failed}")
        return done

    def strategies_out(self, done: Sequence[str]) -> dict[str, Any]:
        """The report's ``strategies`` section (before the aggregated metrics are added)."""
        out: dict[str, Any] = {}
        for name in done:
            info = self.details[name]
            source = self.details.get(info.get("source", name), info)
            out[name] = {
                "per_seed": info["per_seed"],
                "mining": source.get("mining"),
                "training": source.get("training", []),
                "short_long": {
                    g: mean_dicts([s[g] for s in info["short_long"] if s.get(g)]) for g in ("short", "long")
                },
                "speed": info["speed"],
            }
            if source.get("fusion"):
                out[name]["fusion"] = source["fusion"]
            if source.get("mining_per_seed"):
                out[name]["mining_per_seed"] = source["mining_per_seed"]
        return out

    def add_rag_values(
        self,
        test: RetrievalDataset,
        done: Sequence[str],
        generator: SharedAnswers | None,
        max_queries: int | None,
    ) -> dict[str, Any] | None:
        """Answer from every finished result's top documents and put the scores in its ``per_seed`` entries
        (``"rag"``).

        Returns the report's ``config["rag"]``, or None without a generator or when generation failed (then
        ``failed["rag"]`` says why and the retrieval rows are reported as usual).
        """
        if generator is None or self.rag_contexts is None:
            return None
        try:
            by_seed = rag_reports_by_seed(
                test,
                {seed: {n: rows[n] for n in done} for seed, rows in self.rag_tops.items()},
                generator,
                contexts=self.rag_contexts,
                max_queries=max_queries,
            )
        except Exception as exc:  # the retrieval results are kept; only the RAG section is missing
            logger.error("RAG evaluation failed, reporting retrieval only: %s", exc)
            self.failed["rag"] = f"{type(exc).__name__}: {exc}"
            return None
        for name in done:
            for entry in self.details[name]["per_seed"]:
                values = by_seed[entry["seed"]]
                entry["rag"] = {"rows": values["rows"][name], "per_query": values["per_query"][name]}
        logger.info(
            "RAG: %d distinct answers for %d rows x %d seeds", len(generator.answers), len(done), len(by_seed)
        )
        return {"generator": generator.name, "contexts": self.rag_contexts, "max_queries": max_queries}
