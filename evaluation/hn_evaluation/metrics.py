"""Ranking metrics, re-exported from :mod:`hn_plugins.metrics` (where they are defined) under their old path."""

from hn_plugins.metrics import (
    DEFAULT_METRICS,
    EvaluationError,
    Qrels,
    QueryResults,
    Run,
    average_precision,
    evaluate_run,
    judged_queries,
    mrr_at_k,
    mrr_at_k_of_order,
    ndcg_at_k,
    parse_metric,
    precision_at_k,
    rank_documents,
    recall_at_k,
)

__all__ = [
    "DEFAULT_METRICS",
    "EvaluationError",
    "Qrels",
    "QueryResults",
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
