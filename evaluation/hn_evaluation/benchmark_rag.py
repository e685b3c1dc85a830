"""Downstream RAG rows of ``hn benchmark`` (``run_benchmark(..., rag="extractive")``).

Every row of a benchmark (``none``, ``zero-shot``, each strategy, ``default``) ranks the test queries' candidates; with
``rag`` set, the top ``rag_contexts`` documents of each row, seed and query go to one generator, the answers are scored
by :func:`hn_evaluation.rag.evaluate_rag`, and the report gets a ``rag`` section: mean ± std over seeds of context
recall / precision, answer F1 and ROUGE-L per row, and ``default`` against every other row by a paired permutation
test on the per-query values (mean over seeds). A (question, contexts) pair is answered once for the whole benchmark,
so rows and seeds that put the same documents on top share one answer.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from hn_plugins.data import RetrievalDataset

from .generators import Generator, generator_name
from .metrics import EvaluationError, rank_documents
from .rag import evaluate_rag
from .report import aggregate_seeds
from .significance import compare_rows

logger = logging.getLogger(__name__)

__all__ = ["SharedAnswers", "aggregate_rag", "format_rag_section", "rag_reports_by_seed", "top_contexts"]

#: Metrics of the ``default`` vs other rows tests in the report.
RAG_COMPARED = ("context_recall", "answer_f1")


class SharedAnswers:
    """A generator that answers each (question, contexts) pair once and replays the answer afterwards.

    Args:
        generator: ``generator(question, contexts) -> str``.

    Example:
        >>> calls = []
        >>> def first(question, contexts):
        ...     calls.append(question)
        ...     return contexts[0]
        >>> shared = SharedAnswers(first)
        >>> shared("q", ["a", "b"]), shared("q", ["a", "b"]), len(calls), shared.name
        ('a', 'a', 1, 'first')
    """

    def __init__(self, generator: Generator) -> None:
        self.generator = generator
        self.name = generator_name(generator)
        self.answers: dict[tuple[str, tuple[str, ...]], Any] = {}

    def __call__(self, question: str, contexts: Sequence[str]) -> Any:
        key = (question, tuple(contexts))
        if key not in self.answers:
            self.answers[key] = self.generator(question, list(contexts))
        return self.answers[key]


def top_contexts(run: Mapping[str, Any], contexts: int) -> dict[str, list[str]]:
    """``{query_id: its top ``contexts`` document ids}`` of one ranking (all a RAG evaluation needs of it).

    Example:
        >>> top_contexts({"q": [("d2", 0.1), ("d1", 0.9)]}, 1)
        {'q': ['d1']}
    """
    return {q: rank_documents(results)[:contexts] for q, results in run.items()}


def rag_reports_by_seed(
    test: RetrievalDataset,
    tops: Mapping[int, Mapping[str, Mapping[str, Sequence[str]]]],
    generator: Generator,
    *,
    contexts: int,
    max_queries: int | None,
) -> dict[int, dict[str, Any]]:
    """Answer and score every row of every seed; ``{seed: {"rows": ..., "per_query": ...}}`` of each RagReport.

    Args:
        test: the benchmark's test split (the reranked one).
        tops: ``{seed: {row: {query_id: top document ids}}}`` (:func:`top_contexts` of each row's ranking).
        generator: shared by all seeds (wrap it in :class:`SharedAnswers` so rows and seeds share answers).
        contexts: documents per answer.
        max_queries: a seeded sample of this many judged queries (the same sample for every seed and row).
    """
    out: dict[int, dict[str, Any]] = {}
    for seed, runs in tops.items():
        report = evaluate_rag(test, runs, generator, contexts=contexts, max_queries=max_queries, seed=0)
        out[seed] = {"rows": report.rows, "per_query": report.per_query}
        logger.info(
            "RAG seed %d (%s, top %d): %s",
            seed,
            report.generator,
            contexts,
            {n: round(v["answer_f1"], 4) for n, v in report.rows.items()},
        )
    return out


def aggregate_rag(
    rag_config: Mapping[str, Any] | None,
    strategies: Mapping[str, Mapping[str, Any]],
    done: Sequence[str],
    n_resamples: int = 10000,
) -> dict[str, Any] | None:
    """The report's ``rag`` section from the ``rag`` entries of each row's ``per_seed`` list (None without them).

    Raises:
        EvaluationError: some rows or seeds have RAG values and others do not (reports of different settings).
    """
    if not rag_config:
        return None
    rows: dict[str, dict[str, dict[str, float]]] = {}
    per_query: dict[str, dict[str, dict[str, float]]] = {}
    metrics: list[str] = []
    for name in done:
        seeds = strategies[name]["per_seed"]
        missing = [s.get("seed") for s in seeds if "rag" not in s]
        if missing:
            raise EvaluationError(
                f"Row {name!r} has no RAG values for seeds {missing}; merge only reports run with the same rag "
                "settings."
            )
        metrics = list(seeds[0]["rag"]["rows"])
        # mean and sample std over seeds, as every retrieval row of the report (aggregate_seeds)
        aggregated = aggregate_seeds([s["rag"]["rows"] for s in seeds])
        rows[name] = {m: {"mean": v["mean"], "std": v["std"]} for m, v in aggregated.items()}
        qids = list(seeds[0]["rag"]["per_query"])
        per_query[name] = {
            q: {m: float(np.mean([s["rag"]["per_query"][q][m] for s in seeds])) for m in metrics}
            for q in qids
        }
    significance: dict[str, dict[str, dict[str, float]]] = {}
    if "default" in per_query:
        for metric in RAG_COMPARED:  # each row against default, turned round to read as default minus the row
            for other, test in compare_rows(per_query, metrics, "default", metric, n_resamples).items():
                significance.setdefault(other, {})[metric] = {
                    "delta": -test["delta"],
                    "p_value": test["p_value"],
                }
    return {
        **dict(rag_config),
        "queries": len(next(iter(per_query.values()), {})),
        "metrics": metrics,
        "rows": rows,
        "per_query": per_query,
        "significance_default": significance,
    }


def format_rag_section(rag: Mapping[str, Any] | None, digits: int = 3) -> list[str]:
    """report.md lines of the ``rag`` section (none without one).

    Example:
        >>> rag = {"generator": "extractive", "contexts": 3, "queries": 2, "metrics": ["answer_f1"],
        ...        "rows": {"none": {"answer_f1": {"mean": 0.25, "std": 0.0}}}, "significance_default": {}}
        >>> "| none | 0.250 ± 0.000 |" in "\\n".join(format_rag_section(rag))
        True
    """
    if not rag:
        return []
    from .report import format_markdown_table

    lines = [
        f"## Downstream RAG: top {rag['contexts']} documents of each row -> `{rag['generator']}`, "
        f"{rag['queries']} test queries",
        "",
        "Reference answer: each query's judged positive document (a proxy for a written answer); context recall and "
        "precision by document id. Mean ± std over seeds.",
        "",
        format_markdown_table(rag["rows"], rag["metrics"], digits, "row"),
        "",
    ]
    if rag.get("significance_default"):
        lines += [
            "`default` vs each row (paired permutation test, per-query values, mean over seeds):",
            "",
            "| row | " + " | ".join(f"Δ {m} | p" for m in RAG_COMPARED) + " |",
            "|---|" + "---|---|" * len(RAG_COMPARED),
        ]
        for name, tests in rag["significance_default"].items():
            cells = " | ".join(
                f"{tests[m]['delta']:+.{digits}f} | {tests[m]['p_value']:.4f}" for m in RAG_COMPARED
            )
            lines.append(f"| {name} | {cells} |")
        lines.append("")
    return lines
