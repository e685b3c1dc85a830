"""hn-evaluation: the evaluation harness of hn-plugins.

- :mod:`hn_evaluation.metrics`: MRR@k, nDCG@k, Recall@k, Precision@k, MAP; :func:`evaluate_run` on a run.
- :mod:`hn_evaluation.first_stage`: :class:`BM25Retriever` (bm25s) and :class:`DenseRetriever` (exact search).
- :mod:`hn_evaluation.rerank`: :func:`evaluate_reranking`, before/after evaluation of rerankers.
- :mod:`hn_evaluation.significance`: :func:`paired_permutation_test`.
- :mod:`hn_evaluation.report`: JSON/Markdown reports, mean ± std over seeds.
- :mod:`hn_evaluation.plots`: metric bars and the PCA picture of a query's neighbourhood.
- :mod:`hn_evaluation.benchmark`: :func:`run_benchmark`, negative strategies compared under identical training.
- :mod:`hn_evaluation.rag`: :func:`evaluate_rag`, downstream RAG quality of each ranking's top contexts
  (:mod:`hn_evaluation.rag_metrics`; generators in :mod:`hn_evaluation.generators`).

Heavy libraries (bm25s, matplotlib) are imported only when used.
"""

from __future__ import annotations

from .benchmark import (
    ALL_STRATEGIES,
    DEFAULT_STRATEGY,
    FusedScorer,
    merge_benchmark_reports,
    quality_bar,
    run_benchmark,
)
from .first_stage import BM25Retriever, DenseRetriever
from .generators import ExtractiveGenerator, TransformersGenerator, load_generator
from .metrics import (
    DEFAULT_METRICS,
    EvaluationError,
    average_precision,
    evaluate_run,
    mrr_at_k,
    ndcg_at_k,
    precision_at_k,
    recall_at_k,
)
from .plots import plot_metric_bars, plot_pca_neighbourhood
from .rag import RagReport, evaluate_rag
from .rag_metrics import RAG_METRICS, answer_f1, answer_rouge_l, context_precision, context_recall
from .report import aggregate_seed_rows, aggregate_seeds, write_report_json, write_report_markdown
from .rerank import BiEncoderScorer, RerankReport, evaluate_reranking
from .significance import paired_permutation_test

__version__ = "0.1.0"

__all__ = [
    "ALL_STRATEGIES",
    "DEFAULT_METRICS",
    "DEFAULT_STRATEGY",
    "RAG_METRICS",
    "BM25Retriever",
    "BiEncoderScorer",
    "DenseRetriever",
    "EvaluationError",
    "ExtractiveGenerator",
    "FusedScorer",
    "RagReport",
    "RerankReport",
    "TransformersGenerator",
    "aggregate_seed_rows",
    "aggregate_seeds",
    "answer_f1",
    "answer_rouge_l",
    "average_precision",
    "context_precision",
    "context_recall",
    "evaluate_rag",
    "evaluate_reranking",
    "evaluate_run",
    "load_generator",
    "merge_benchmark_reports",
    "mrr_at_k",
    "ndcg_at_k",
    "paired_permutation_test",
    "plot_metric_bars",
    "plot_pca_neighbourhood",
    "precision_at_k",
    "quality_bar",
    "recall_at_k",
    "run_benchmark",
    "write_report_json",
    "write_report_markdown",
]
