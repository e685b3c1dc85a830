"""Ranking metrics: MRR@k, nDCG@k, Recall@k, Precision@k and average precision, per query and over a run.

Definitions follow trec_eval and ranx, so numbers are comparable with published ones:

- a document is relevant when its judged grade is > 0;
- ``mrr@k``: 1 / rank of the first relevant document within the top k (0 when none);
- ``ndcg@k``: graded, linear gain (the grade), ``log2(rank + 1)`` discount; the ideal DCG is built from all
  judged relevant documents of the query, not only the retrieved ones;
- ``recall@k``: relevant documents in the top k / all relevant documents of the query;
- ``map`` / ``map@k``: average precision over the ranking (or its top k), divided by all relevant documents.

A run maps each query id to its results: ``{doc_id: score}``, a ranked ``[doc_id, ...]`` or a list of
``(doc_id, score)`` pairs (what :meth:`hn_plugins.bm25.BM25Index.retrieve` returns). Scored results are ranked
by score, highest first, ties broken by document id, so the same run always gives the same numbers.

:func:`mrr_at_k` is the one definition of the reciprocal rank in the package; :func:`mrr_at_k_of_order` gives
the same value for a ranking held as candidate positions (``np.argsort`` output), without building id lists.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Collection, Container, Hashable, Iterable, Mapping, Sequence
from typing import Any, Literal

import numpy as np

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_METRICS",
    "EvaluationError",
    "Qrels",
    "Run",
    "average_precision",
    "evaluate_run",
    "judged_queries",
    "mrr_at_k",
    "mrr_at_k_of_order",
    "ndcg_at_k",
    "parse_metric",
    "precision_at_k",
    "rank_documents",
    "recall_at_k",
]

QueryResults = Mapping[str, float] | Sequence[str] | Sequence[tuple[str, float]]
Run = Mapping[str, QueryResults]
Qrels = Mapping[str, Mapping[str, int]]

DEFAULT_METRICS: tuple[str, ...] = ("mrr@3", "mrr@10", "ndcg@10", "recall@10", "recall@100")

_METRIC_RE = re.compile(r"^(mrr|ndcg|recall|precision|map)(?:@(\d+))?$")
_NEED_K = {"ndcg", "recall", "precision"}


class EvaluationError(ValueError):
    """Raised on input that cannot be evaluated; the message names the problem and the fix."""


# ---------------------------------------------------------------------- helpers
def rank_documents(results: QueryResults) -> list[str]:
    """Document ids of one query's results, best first.

    Args:
        results: ``{doc_id: score}``, a list of ``(doc_id, score)`` pairs (both ranked by score descending,
            ties by document id ascending) or an already ranked list of ids (kept as given).

    Returns:
        The ranked document ids.

    Raises:
        EvaluationError: a score is not a finite number, or a document id appears twice.
    """
    if isinstance(results, Mapping):
        pairs = list(results.items())
    elif isinstance(results, str):
        raise EvaluationError(f"Expected the results of one query, got the string {results[:40]!r}.")
    else:
        items: list[Any] = list(results)
        if not items:
            return []
        if all(isinstance(item, str) for item in items):
            if len(set(items)) != len(items):
                raise EvaluationError("A ranked list names the same document twice; remove the duplicates.")
            return [str(item) for item in items]
        try:
            pairs = [(str(doc_id), score) for doc_id, score in items]
        except (TypeError, ValueError) as exc:
            raise EvaluationError(
                "Results must be {doc_id: score}, [doc_id, ...] or [(doc_id, score), ...]; "
                f"got items like {items[0]!r}."
            ) from exc
        if len({doc_id for doc_id, _ in pairs}) != len(pairs):
            raise EvaluationError("A result list names the same document twice; remove the duplicates.")
    checked: list[tuple[str, float]] = []
    for doc_id, score in pairs:
        value = float(score)
        if not math.isfinite(value):
            raise EvaluationError(f"Document {doc_id!r} has score {score!r}; scores must be finite numbers.")
        checked.append((str(doc_id), value))
    checked.sort(key=lambda pair: (-pair[1], pair[0]))
    return [doc_id for doc_id, _ in checked]


def _relevant_set(relevant: Mapping[str, int] | Collection[str]) -> set[str]:
    if isinstance(relevant, Mapping):
        return {doc_id for doc_id, grade in relevant.items() if grade > 0}
    return set(relevant)


def _check_k(k: int | None) -> None:
    if k is not None and (not isinstance(k, (int, np.integer)) or k < 1):
        raise EvaluationError(f"k must be a positive integer (or None for the whole ranking), got {k!r}.")


def _top(ranked_ids: Sequence[str], k: int | None) -> Sequence[str]:
    _check_k(k)
    return ranked_ids if k is None else ranked_ids[:k]


# ---------------------------------------------------------------------- per-query metrics
def _reciprocal_rank(ranked: Iterable[Hashable], relevant: Container[Hashable]) -> float:
    for rank, item in enumerate(ranked, start=1):
        if item in relevant:
            return 1.0 / rank
    return 0.0


def mrr_at_k(
    ranked_ids: Sequence[str], relevant: Mapping[str, int] | Collection[str], k: int | None = 10
) -> float:
    """Reciprocal rank of the first relevant document within the top ``k``.

    Args:
        ranked_ids: document ids, best first.
        relevant: ``{doc_id: grade}`` (relevant when grade > 0) or a set of relevant ids.
        k: cut-off; ``None`` for the whole ranking.

    Example:
        >>> mrr_at_k(["d3", "d1", "d2"], {"d1": 1}, k=10)
        0.5
    """
    return _reciprocal_rank(_top(ranked_ids, k), _relevant_set(relevant))


def mrr_at_k_of_order(
    order: Sequence[int] | np.ndarray, is_relevant: Sequence[bool] | np.ndarray, k: int | None = 10
) -> float:
    """:func:`mrr_at_k` of a ranking given as candidate positions.

    Args:
        order: candidate positions, best first (e.g. ``np.argsort(-scores, kind="stable")``).
        is_relevant: one flag per candidate position.
        k: cut-off; ``None`` for the whole ranking.

    Example:
        >>> mrr_at_k_of_order(np.array([2, 0, 1]), np.array([True, False, False]), k=10)
        0.5
    """
    _check_k(k)
    positions = np.asarray(order).reshape(-1)
    if k is not None:
        positions = positions[:k]
    relevant = set(np.flatnonzero(np.asarray(is_relevant, dtype=bool).reshape(-1)).tolist())
    return _reciprocal_rank(positions.tolist(), relevant)


def ndcg_at_k(ranked_ids: Sequence[str], qrels_for_query: Mapping[str, int], k: int = 10) -> float:
    """Normalised discounted cumulative gain with graded (linear) gains, as trec_eval and ranx compute it.

    ``DCG = sum(grade_i / log2(i + 1))`` over ranks ``i <= k``; the ideal DCG sorts all judged relevant
    documents of the query by grade, so relevant documents that were never retrieved lower the score.

    Args:
        ranked_ids: document ids, best first.
        qrels_for_query: ``{doc_id: grade}``; grades <= 0 count as non-relevant.
        k: cut-off.

    Example:
        >>> round(ndcg_at_k(["d2", "d1"], {"d1": 2, "d2": 1}, k=10), 4)
        0.8597
    """
    if not isinstance(qrels_for_query, Mapping):
        raise EvaluationError(
            "ndcg_at_k needs graded judgments {doc_id: grade}; got " + type(qrels_for_query).__name__
        )
    dcg = 0.0
    for i, doc_id in enumerate(_top(ranked_ids, k)):
        grade = qrels_for_query.get(doc_id, 0)
        if grade > 0:
            dcg += grade / math.log2(i + 2)
    ideal = sorted((g for g in qrels_for_query.values() if g > 0), reverse=True)[:k]
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg if idcg > 0 else 0.0


def recall_at_k(
    ranked_ids: Sequence[str], relevant: Mapping[str, int] | Collection[str], k: int = 100
) -> float:
    """Share of the query's relevant documents found in the top ``k`` (0 when it has none).

    Example:
        >>> recall_at_k(["d1", "d9", "d2"], {"d1", "d2", "d3", "d4"}, k=2)
        0.25
    """
    rel = _relevant_set(relevant)
    if not rel:
        return 0.0
    return len(rel.intersection(_top(ranked_ids, k))) / len(rel)


def precision_at_k(
    ranked_ids: Sequence[str], relevant: Mapping[str, int] | Collection[str], k: int = 10
) -> float:
    """Relevant documents in the top ``k`` divided by ``k`` (trec_eval's P@k).

    Example:
        >>> precision_at_k(["d1", "d9", "d2"], {"d1", "d2"}, k=4)
        0.5
    """
    rel = _relevant_set(relevant)
    return len(rel.intersection(_top(ranked_ids, k))) / k


def average_precision(
    ranked_ids: Sequence[str], relevant: Mapping[str, int] | Collection[str], k: int | None = None
) -> float:
    """Average precision: mean of Precision@rank over the relevant documents, unretrieved ones counting 0.

    Args:
        ranked_ids: document ids, best first.
        relevant: ``{doc_id: grade}`` or a set of relevant ids.
        k: only the top ``k`` count (``map@k``); ``None`` for the whole ranking.

    Example:
        >>> average_precision(["d1", "d9", "d2"], {"d1", "d2"})  # (1/1 + 2/3) / 2
        0.8333333333333333
    """
    rel = _relevant_set(relevant)
    if not rel:
        return 0.0
    hits, total = 0, 0.0
    for rank, doc_id in enumerate(_top(ranked_ids, k), start=1):
        if doc_id in rel:
            hits += 1
            total += hits / rank
    return total / len(rel)


# ---------------------------------------------------------------------- whole runs
def parse_metric(name: str) -> tuple[str, int | None]:
    """Split a metric key such as ``"ndcg@10"`` into ``("ndcg", 10)``.

    ``"mrr"`` and ``"map"`` may omit ``@k`` (the whole ranking counts).

    Raises:
        EvaluationError: an unknown metric, or one that needs a cut-off and has none.
    """
    match = _METRIC_RE.match(name.strip().lower()) if isinstance(name, str) else None
    if match is None:
        raise EvaluationError(
            f"Unknown metric {name!r}; use mrr@k, ndcg@k, recall@k, precision@k, map or map@k (e.g. "
            "'ndcg@10')."
        )
    family, k_text = match.group(1), match.group(2)
    if k_text is None and family in _NEED_K:
        raise EvaluationError(f"Metric {name!r} needs a cut-off: write e.g. '{family}@10'.")
    k = int(k_text) if k_text is not None else None
    if k is not None and k < 1:
        raise EvaluationError(f"Metric {name!r}: the cut-off must be >= 1.")
    return family, k


def _metric_value(family: str, k: int | None, ranked: Sequence[str], judged: Mapping[str, int]) -> float:
    if family == "mrr":
        return mrr_at_k(ranked, judged, k)
    if family == "ndcg":
        return ndcg_at_k(ranked, judged, k)  # type: ignore[arg-type]
    if family == "recall":
        return recall_at_k(ranked, judged, k)  # type: ignore[arg-type]
    if family == "precision":
        return precision_at_k(ranked, judged, k)  # type: ignore[arg-type]
    return average_precision(ranked, judged, k)


def judged_queries(qrels: Qrels) -> list[str]:
    """Query ids with at least one relevant (grade > 0) judgment, in qrels order.

    Raises:
        EvaluationError: no query has a relevant judgment (an unjudged split).
    """
    judged = [qid for qid, rel in qrels.items() if any(g > 0 for g in rel.values())]
    if not judged:
        raise EvaluationError(
            "The qrels hold no judgment with grade > 0, so nothing can be evaluated. Evaluate on a split "
            "with relevance judgments, e.g. load_beir(path, split='test')."
        )
    return judged


def evaluate_run(
    run: Run,
    qrels: Qrels,
    metrics: Sequence[str] = DEFAULT_METRICS,
    *,
    missing_queries: Literal["zero", "raise"] = "zero",
) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """Score a run against relevance judgments.

    Args:
        run: ``{query_id: results}``; results as ``{doc_id: score}``, ``[doc_id, ...]`` (ranked) or
            ``[(doc_id, score), ...]``.
        qrels: ``{query_id: {doc_id: grade}}``. Queries without any grade > 0 are not evaluated.
        metrics: metric keys such as ``"mrr@3"``, ``"mrr@10"``, ``"ndcg@10"``, ``"recall@100"``, ``"map"``.
        missing_queries: what to do with a judged query absent from the run: ``"zero"`` (default) scores it 0
            on every metric, as a retriever that found nothing; ``"raise"`` stops.

    Returns:
        ``(means, per_query)``: ``{metric: mean over judged queries}`` and ``{query_id: {metric: value}}``.

    Raises:
        EvaluationError: unknown metrics, qrels without judgments, run query ids that have no judgments (a run
            made for another split), malformed results.

    Example:
        >>> means, per_query = evaluate_run({"q1": {"d1": 0.2, "d2": 0.9}}, {"q1": {"d1": 1}}, ["mrr@10"])
        >>> means
        {'mrr@10': 0.5}
    """
    parsed = [(name, *parse_metric(name)) for name in metrics]
    if not parsed:
        raise EvaluationError("No metric requested; pass e.g. metrics=('mrr@10', 'ndcg@10').")
    if len({name for name, _, _ in parsed}) != len(parsed):
        raise EvaluationError(f"Metric list {list(metrics)} repeats a metric; give each once.")
    judged = judged_queries(qrels)
    unknown = [qid for qid in run if qid not in qrels]
    if unknown:
        raise EvaluationError(
            f"The run has {len(unknown)} query id(s) without judgments in the qrels (first: {unknown[:5]}). "
            "Evaluate with the qrels of the split the run was made for, or restrict the run to judged "
            "queries: {q: run[q] for q in run if q in qrels}."
        )
    absent = [qid for qid in judged if qid not in run]
    if absent:
        if missing_queries == "raise":
            raise EvaluationError(
                f"{len(absent)} judged query(ies) have no results in the run (first: {absent[:5]}); retrieve "
                "for every query of the split, or pass missing_queries='zero' to score them 0."
            )
        if missing_queries != "zero":
            raise EvaluationError(f"missing_queries must be 'zero' or 'raise', got {missing_queries!r}.")
        logger.warning(
            "%d judged query(ies) are absent from the run and score 0: %s", len(absent), absent[:5]
        )
    per_query: dict[str, dict[str, float]] = {}
    for qid in judged:
        ranked = rank_documents(run[qid]) if qid in run else []
        judged_docs = qrels[qid]
        per_query[qid] = {name: _metric_value(family, k, ranked, judged_docs) for name, family, k in parsed}
    means = {name: float(np.mean([per_query[qid][name] for qid in judged])) for name, _, _ in parsed}
    return means, per_query
