"""hn-evaluation: the evaluation harness of hn-plugins.

- :mod:`hn_evaluation.metrics`: MRR@k, nDCG@k, Recall@k, Precision@k, MAP; :func:`evaluate_run` on a run.
- :mod:`hn_evaluation.first_stage`: :class:`BM25Retriever` (bm25s) and :class:`DenseRetriever` (exact search).
- :mod:`hn_evaluation.rerank`: :func:`evaluate_reranking`, before/after evaluation of rerankers.
- :mod:`hn_evaluation.significance`: :func:`paired_permutation_test`.
- :mod:`hn_evaluation.report`: JSON/Markdown reports, mean ± std over seeds.
- :mod:`hn_evaluation.plots`: metric bars and the PCA picture of a query's neighbourhood.
- :mod:`hn_evaluation.benchmark`: :func:`run_benchmark`, negative strategies compared under identical training
  (:class:`BenchmarkSettings`); :mod:`hn_evaluation.model_evaluation`: one reranker evaluated (``hn eval``).
- :mod:`hn_evaluation.rag`: :func:`evaluate_rag`, downstream RAG quality of each ranking's top contexts
  (:mod:`hn_evaluation.rag_metrics`; generators in :mod:`hn_evaluation.generators`).

Names load from their modules on first use (PEP 562), so importing one submodule (e.g. the ``hn`` sub-commands
in :mod:`hn_evaluation.cli`) stays light; heavy libraries (bm25s, matplotlib) are imported only when used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .benchmark import (
        ALL_STRATEGIES,
        DEFAULT_STRATEGY,
        BenchmarkSettings,
        FusedScorer,
        join_benchmark_rows,
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
    "BenchmarkSettings",
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
    "join_benchmark_rows",
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

_EXPORTS = {
    "BenchmarkSettings": "hn_evaluation.benchmark",
    "ALL_STRATEGIES": "hn_evaluation.benchmark",
    "DEFAULT_STRATEGY": "hn_evaluation.benchmark",
    "FusedScorer": "hn_evaluation.benchmark",
    "join_benchmark_rows": "hn_evaluation.benchmark",
    "merge_benchmark_reports": "hn_evaluation.benchmark",
    "quality_bar": "hn_evaluation.benchmark",
    "run_benchmark": "hn_evaluation.benchmark",
    "BM25Retriever": "hn_evaluation.first_stage",
    "DenseRetriever": "hn_evaluation.first_stage",
    "ExtractiveGenerator": "hn_evaluation.generators",
    "TransformersGenerator": "hn_evaluation.generators",
    "load_generator": "hn_evaluation.generators",
    "DEFAULT_METRICS": "hn_evaluation.metrics",
    "EvaluationError": "hn_evaluation.metrics",
    "average_precision": "hn_evaluation.metrics",
    "evaluate_run": "hn_evaluation.metrics",
    "mrr_at_k": "hn_evaluation.metrics",
    "ndcg_at_k": "hn_evaluation.metrics",
    "precision_at_k": "hn_evaluation.metrics",
    "recall_at_k": "hn_evaluation.metrics",
    "plot_metric_bars": "hn_evaluation.plots",
    "plot_pca_neighbourhood": "hn_evaluation.plots",
    "RagReport": "hn_evaluation.rag",
    "evaluate_rag": "hn_evaluation.rag",
    "RAG_METRICS": "hn_evaluation.rag_metrics",
    "answer_f1": "hn_evaluation.rag_metrics",
    "answer_rouge_l": "hn_evaluation.rag_metrics",
    "context_precision": "hn_evaluation.rag_metrics",
    "context_recall": "hn_evaluation.rag_metrics",
    "aggregate_seed_rows": "hn_evaluation.report",
    "aggregate_seeds": "hn_evaluation.report",
    "write_report_json": "hn_evaluation.report",
    "write_report_markdown": "hn_evaluation.report",
    "BiEncoderScorer": "hn_evaluation.rerank",
    "RerankReport": "hn_evaluation.rerank",
    "evaluate_reranking": "hn_evaluation.rerank",
    "paired_permutation_test": "hn_evaluation.significance",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'hn_evaluation' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
