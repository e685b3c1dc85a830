"""How the benchmark retrieves test candidates and scores rerankers on them: the first stage, the precomputed
bi-encoder scorer, fusion with the first stage's scores, and the test split's evaluation."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from hn_plugins.data import RetrievalDataset
from hn_plugins.scoring import EmbeddedBiEncoderScorer

from ..first_stage import BM25Retriever, DenseRetriever
from ..metrics import EvaluationError, judged_queries, rank_documents
from ..rerank import RerankReport, evaluate_reranking
from .settings import BenchmarkSettings

__all__ = [
    "EmbeddedBiEncoderScorer",
    "FusedScorer",
    "TestCandidates",
    "benchmark_metrics",
    "candidate_texts",
    "first_stage_run",
    "first_stage_scores_by_text",
    "load_bi_encoder",
]


def benchmark_metrics(top_k: int) -> tuple[str, ...]:
    """Metric keys of ``hn eval`` and ``hn benchmark``: MRR@3, MRR@10, nDCG@10, Recall@10 and Recall@top_k.

    Example:
        >>> benchmark_metrics(100)
        ('mrr@3', 'mrr@10', 'ndcg@10', 'recall@10', 'recall@100')
    """
    recall = [f"recall@{k}" for k in dict.fromkeys((10, int(top_k)))]
    return ("mrr@3", "mrr@10", "ndcg@10", *recall)


class FusedScorer:
    """A scorer whose scores are fused with the first stage's (see :mod:`hn_plugins.fusion`).

    Args:
        scorer: ``score(query, documents)`` object or callable (the reranker alone).
        fusion: the :class:`~hn_plugins.fusion.ScoreFusion` to apply.
        first_stage_scores: ``{query text: {document text: first-stage score}}`` of the candidates.

    Example:
        >>> from hn_plugins.fusion import ScoreFusion
        >>> alone = lambda query, docs: [1.0, 0.0]
        >>> fused = FusedScorer(alone, ScoreFusion(0.2, "minmax"), {"q": {"a": 0.0, "b": 9.0}})
        >>> [round(float(x), 2) for x in fused.score("q", ["a", "b"])]
        [0.2, 0.8]
    """

    def __init__(
        self, scorer: Any, fusion: Any, first_stage_scores: Mapping[str, Mapping[str, float]]
    ) -> None:
        self.scorer, self.fusion, self.first_stage_scores = scorer, fusion, first_stage_scores

    def score(self, query: str, documents: Sequence[str]) -> np.ndarray:
        """The reranker's scores of ``documents`` fused with their first-stage scores."""
        alone = self.scorer.score if hasattr(self.scorer, "score") else self.scorer
        values = np.asarray(alone(query, documents), dtype=np.float64)
        if len(documents) < 2:
            return values.astype(np.float32)
        first = self.first_stage_scores[query]
        return self.fusion(values, [first[d] for d in documents]).astype(np.float32)


def first_stage_scores_by_text(
    dataset: RetrievalDataset, run: Mapping[str, Sequence[tuple[str, float]]]
) -> dict[str, dict[str, float]]:
    """``{query text: {document text: score}}`` of a first-stage run, for :class:`FusedScorer`."""
    out: dict[str, dict[str, float]] = {}
    for qid, ranked in run.items():
        scores = out.setdefault(dataset.queries[qid], {})
        for doc_id, value in ranked:
            scores.setdefault(dataset.document_text(doc_id), float(value))
    return out


def first_stage_run(
    dataset: RetrievalDataset,
    first_stage: Literal["bm25", "dense"] = "bm25",
    top_k: int = 100,
    dense_model: Any = "all-MiniLM-L6-v2",
) -> dict[str, list[tuple[str, float]]]:
    """Retrieve the top ``top_k`` documents of every judged query of ``dataset`` (excluded documents removed).

    Args:
        dataset: a split with judgments.
        first_stage: ``bm25`` (bm25s, the settings of ``shared/data/bm25_sanity.py``) or ``dense`` (exact cosine).
        top_k: candidates per query.
        dense_model: model of the dense first stage (name, folder or loaded model).

    Raises:
        EvaluationError: the split has no judgments, or an unknown first stage.

    Example:
        >>> from hn_plugins.data import RetrievalDataset
        >>> ds = RetrievalDataset({"d1": ("", "cloud network"), "d2": ("", "pasta")}, {"q": "network"},
        ...                       {"q": {"d1": 1}})
        >>> first_stage_run(ds, "bm25", top_k=1)["q"][0][0]
        'd1'
    """
    try:
        qids = [q for q in judged_queries(dataset.qrels) if q in dataset.queries]
    except EvaluationError as exc:
        raise EvaluationError(
            f"Dataset {dataset.name!r} has no relevance judgments, so it cannot be evaluated: {exc}"
        ) from exc
    queries = {q: dataset.queries[q] for q in qids}
    k = min(top_k, len(dataset.corpus))
    if first_stage == "bm25":
        return BM25Retriever(dataset).retrieve(queries, top_k=k, exclude=dataset.excluded)
    if first_stage == "dense":
        model = dense_model
        if isinstance(model, (str, os.PathLike)):
            from hn_plugins.models import load_sentence_transformer

            model = load_sentence_transformer(model)
        return DenseRetriever(model, dataset).retrieve(queries, top_k=k, exclude=dataset.excluded)
    raise EvaluationError(f"first_stage must be 'bm25' or 'dense', got {first_stage!r}.")


def candidate_texts(dataset: RetrievalDataset, run: Mapping[str, Any], top_k: int) -> list[str]:
    """The distinct texts of the top ``top_k`` documents of every query of ``run``, in first-seen order."""
    return list(dict.fromkeys(dataset.document_text(d) for q in run for d in rank_documents(run[q])[:top_k]))


def load_bi_encoder(path: str | os.PathLike[str], max_length: int | None) -> Any:
    """A packaged or local sentence-transformers model, cut at ``max_length`` tokens when given."""
    from hn_plugins.models import load_sentence_transformer

    model = load_sentence_transformer(path)
    if max_length is not None:
        model.max_seq_length = max_length
    return model


class TestCandidates:
    """The test split's first-stage candidates, retrieved once, and every reranker's evaluation on them.

    Args:
        test: the (sampled) test split.
        settings: the benchmark's settings (kind, base model, first stage, ``top_k``, ``max_length``, fusion).

    Attributes:
        run: the first stage's top ``top_k`` of every judged test query.
        texts: the distinct candidate documents (bi-encoders encode them once, up front).
        queries: the test queries' texts.
        metrics: the metric keys of every row.
        first_stage_scores: ``{query text: {document text: score}}`` for fused rows (empty without fusion).
    """

    __test__ = False  # not a pytest class

    def __init__(self, test: RetrievalDataset, settings: BenchmarkSettings) -> None:
        self.test, self.settings = test, settings
        self.run = first_stage_run(
            test, settings.first_stage, settings.top_k, dense_model=settings.base_model
        )
        self.texts = candidate_texts(test, self.run, settings.top_k)
        self.queries = [test.queries[q] for q in self.run]
        self.metrics = benchmark_metrics(settings.top_k)
        self.first_stage_scores = first_stage_scores_by_text(test, self.run) if settings.fusion else {}

    def evaluate(self, name: str, reranker: Any) -> RerankReport:
        """``reranker`` (``None``: the first stage alone) on the candidates, as row ``name``."""
        return evaluate_reranking(
            self.test, self.run, {name: reranker}, top_k=self.settings.top_k, metrics=self.metrics
        )

    def fused(self, scorer: Any, fusion: Any) -> FusedScorer:
        """``scorer`` fused with the first stage by ``fusion``."""
        return FusedScorer(scorer, fusion, self.first_stage_scores)

    def scorer_for(self, model_path: str | os.PathLike[str]) -> Any:
        """The reranker of a model or folder as the benchmark scores it (bi-encoders: candidates encoded once)."""
        if self.settings.kind == "bi":
            model = load_bi_encoder(model_path, self.settings.max_length)
            return EmbeddedBiEncoderScorer(model, self.texts, self.queries, batch_size=64)
        from hn_plugins.reranker import CrossEncoderReranker, load_reranker

        path = Path(str(model_path))
        if path.is_dir() and (path / "hn_reranker.json").is_file():
            return load_reranker(path, batch_size=64)
        return CrossEncoderReranker(model_path, batch_size=64, max_length=self.settings.max_length)
