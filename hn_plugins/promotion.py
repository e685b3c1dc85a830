"""The promotion check of ``hn retrain``: a candidate reranker against the current one, each as it is served.

Both rerank BM25's top-k of every judged query of the evaluation split (:func:`hn_plugins.bm25.bm25_run`); a model
folder that holds a fusion weight is fused with the BM25 scores as the LlamaIndex postprocessor and the Haystack
ranker fuse it (:func:`hn_plugins.reranker.fuse_with_first_stage`); each query's MRR@10 is compared with a paired
permutation test. Bi-encoders are scored as ``hn eval`` scores them (every candidate and query encoded once, in
batches of 64), so both give the same MRR@10 for the same model and split.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from hn_plugins.bm25 import RetrievedRun, bm25_run
from hn_plugins.data import RetrievalDataset
from hn_plugins.fusion import ScoreFusion
from hn_plugins.metrics import EvaluationError, mrr_at_k
from hn_plugins.models import load_sentence_transformer
from hn_plugins.reranker import (
    ZERO_SHOT_PREFIX,
    BiEncoderReranker,
    folder_fusion,
    fuse_with_first_stage,
    load_reranker,
    zero_shot_model_name,
)
from hn_plugins.scoring import EmbeddedBiEncoderScorer
from hn_plugins.significance import paired_permutation_test

logger = logging.getLogger(__name__)

__all__ = ["ServedComparison", "compare_served", "served_mrr10", "served_scorer"]

#: Scoring batch size of the promotion check (the one ``hn eval`` uses).
BATCH_SIZE = 64


@dataclass(frozen=True)
class ServedComparison:
    """MRR@10 of a candidate and a baseline on the same queries and candidates, and their paired p-value.

    Attributes:
        candidate_mrr10: the candidate's mean MRR@10.
        baseline_mrr10: the baseline's mean MRR@10.
        p_value: two-sided paired permutation test of the per-query MRR@10 values.
        candidate_per_query: ``{query_id: MRR@10}`` of the candidate.
        baseline_per_query: ``{query_id: MRR@10}`` of the baseline.
    """

    candidate_mrr10: float
    baseline_mrr10: float
    p_value: float
    candidate_per_query: Mapping[str, float]
    baseline_per_query: Mapping[str, float]


def served_scorer(
    spec: str, documents: Sequence[str], queries: Sequence[str], max_length: int | None = None
) -> tuple[Any, ScoreFusion | None]:
    """The scorer of ``spec`` as ``hn eval`` builds it, and the fusion weight its folder holds.

    Args:
        spec: ``zero-shot:<bi-encoder>`` (untuned, no fusion), a reranker or registry folder, or a cross-encoder.
        documents: candidate texts a bi-encoder encodes up front.
        queries: query texts a bi-encoder encodes up front.
        max_length: maximum tokens per text or pair (``None``: the model's).

    Returns:
        ``(scorer, fusion)``: an object with ``score(query, documents)``, and ``None`` when nothing is fused.

    Raises:
        RerankerLoadError: nothing usable at ``spec``.
    """
    if spec.startswith(ZERO_SHOT_PREFIX):
        model = load_sentence_transformer(zero_shot_model_name(spec))
        if max_length is not None:
            model.max_seq_length = max_length
        return EmbeddedBiEncoderScorer(model, documents, queries, batch_size=BATCH_SIZE), None
    reranker = load_reranker(spec, batch_size=BATCH_SIZE)
    fusion = folder_fusion(spec)
    if isinstance(reranker, BiEncoderReranker) and not (reranker.query_prompt or reranker.document_prompt):
        if max_length is not None:
            reranker.model.max_seq_length = max_length
        return EmbeddedBiEncoderScorer(reranker.model, documents, queries, batch_size=BATCH_SIZE), fusion
    if max_length is not None and hasattr(reranker, "model"):
        reranker.model.max_length = max_length
    return reranker, fusion


def served_mrr10(
    dataset: RetrievalDataset, spec: str, run: RetrievedRun, max_length: int | None = None
) -> dict[str, float]:
    """MRR@10 of each query of ``run`` after ``spec`` reranks its candidates, fused when its folder says so.

    Args:
        dataset: the judged split ``run`` was retrieved for.
        spec: the model, see :func:`served_scorer`.
        run: ``{query_id: [(doc_id, first-stage score), ...]}``, e.g. :func:`hn_plugins.bm25.bm25_run`.
        max_length: maximum tokens per text or pair.

    Returns:
        ``{query_id: MRR@10}`` in ``run`` order. Equal scores rank by document id.

    Raises:
        EvaluationError: the model returns the wrong number of scores, or scores that are not finite.
    """
    texts = {d: dataset.document_text(d) for ranked in run.values() for d, _ in ranked}
    documents = list(dict.fromkeys(texts[d] for ranked in run.values() for d, _ in ranked))
    scorer, fusion = served_scorer(spec, documents, [dataset.queries[q] for q in run], max_length)
    out: dict[str, float] = {}
    for qid, ranked in run.items():
        ids = [d for d, _ in ranked]
        values = np.asarray(
            scorer.score(dataset.queries[qid], [texts[d] for d in ids]) if ids else [], dtype=np.float64
        ).reshape(-1)
        if values.shape[0] != len(ids) or not np.all(np.isfinite(values)):
            raise EvaluationError(
                f"{spec!r} returned {values.shape[0]} scores for {len(ids)} documents of query {qid!r}, or "
                "scores that are not finite; check the model's outputs."
            )
        served = fuse_with_first_stage(values, fusion, [s for _, s in ranked])
        order = sorted(zip(ids, np.asarray(served, dtype=np.float64).tolist(), strict=True), key=_by_score)
        out[qid] = mrr_at_k([d for d, _ in order], dataset.qrels[qid], 10)
    return out


def _by_score(pair: tuple[str, float]) -> tuple[float, str]:
    return -pair[1], pair[0]


def compare_served(
    dataset: RetrievalDataset,
    candidate: str,
    baseline: str,
    *,
    top_k: int = 100,
    max_length: int | None = None,
    seed: int = 0,
) -> ServedComparison:
    """Rerank BM25's ``top_k`` of every judged query with both models as served; compare their MRR@10.

    Args:
        dataset: a judged split neither model trained on.
        candidate: the new model (folder), see :func:`served_scorer`.
        baseline: the model it must beat (a folder, or ``zero-shot:<bi-encoder>`` before any promotion).
        top_k: BM25 candidates per query.
        max_length: maximum tokens per text or pair.
        seed: seed of the permutation test when it samples.

    Raises:
        EvaluationError: the split has no judged query.

    Example:
        >>> from hn_plugins.data import load_beir  # doctest: +SKIP
        >>> test = load_beir("data/medline", split="test")  # doctest: +SKIP
        >>> compare_served(test, "models/candidate", "zero-shot:all-MiniLM-L6-v2").p_value  # doctest: +SKIP
    """
    run = bm25_run(dataset, top_k)
    cand = served_mrr10(dataset, candidate, run, max_length)
    base = served_mrr10(dataset, baseline, run, max_length)
    qids = sorted(cand)
    a, b = [cand[q] for q in qids], [base[q] for q in qids]
    return ServedComparison(
        candidate_mrr10=sum(a) / len(a),
        baseline_mrr10=sum(b) / len(b),
        p_value=paired_permutation_test(a, b, seed=seed),
        candidate_per_query=cand,
        baseline_per_query=base,
    )
