"""Before/after evaluation of rerankers on a first-stage run.

Each reranker re-scores the ``top_k`` candidates of every judged query; the first stage alone is a row too
(``None``). The report holds mean metrics per row, per-query metrics (for significance tests), metrics split
by the length of the queries' positive documents (the paper's Table 5: short documents gain more than long
ones, because a reranker truncates long ones) and the reranking speed.

A reranker is any object with ``score(query: str, documents: Sequence[str]) -> array`` (higher = more
relevant), an object with a sentence-transformers ``CrossEncoder``-style ``predict(list[(query, document)])``,
or a plain callable ``f(query, documents)``.
"""

from __future__ import annotations

import logging
import math
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from hn_plugins.data import RetrievalDataset

from .first_stage import encode_texts
from .metrics import DEFAULT_METRICS, EvaluationError, Run, evaluate_run, judged_queries, rank_documents
from .significance import compare_rows

logger = logging.getLogger(__name__)

__all__ = ["BiEncoderScorer", "RerankReport", "Reranker", "evaluate_reranking", "whitespace_length"]


@runtime_checkable
class Reranker(Protocol):
    """Anything that scores documents for a query; higher = more relevant."""

    def score(self, query: str, documents: Sequence[str]) -> np.ndarray:  # pragma: no cover - protocol
        ...


def whitespace_length(text: str) -> int:
    """Number of whitespace-separated tokens of a text (the default length for the short/long split)."""
    return len(text.split())


class BiEncoderScorer:
    """Score documents by cosine similarity of bi-encoder embeddings: a zero-shot reranker baseline.

    Document vectors are cached by text, so re-scoring the same candidates for several queries encodes each
    document once.

    Args:
        model: a ``SentenceTransformer`` or anything with ``encode(list[str]) -> array``.
        batch_size: encoding batch size.
        cache: keep document vectors between calls.

    Example:
        >>> class Letters:
        ...     def encode(self, texts):
        ...         return [[t.count("a"), t.count("b"), 1.0] for t in texts]
        >>> int(BiEncoderScorer(Letters()).score("aa", ["aaaa", "bbbb"]).argmax())
        0
    """

    def __init__(self, model: Any, batch_size: int = 32, cache: bool = True) -> None:
        self.model, self.batch_size, self.cache = model, batch_size, cache
        self._vectors: dict[str, np.ndarray] = {}

    def score(self, query: str, documents: Sequence[str]) -> np.ndarray:
        """Cosine similarity of the query with each document."""
        if not documents:
            return np.zeros(0, dtype=np.float32)
        todo = [d for d in dict.fromkeys(documents) if d not in self._vectors]
        if todo:
            for text, vector in zip(todo, encode_texts(self.model, todo, self.batch_size), strict=True):
                self._vectors[text] = vector
        doc_matrix = np.stack([self._vectors[d] for d in documents])
        if not self.cache:
            self._vectors.clear()
        query_vector = encode_texts(self.model, [query], self.batch_size)[0]
        return doc_matrix @ query_vector


def _scorer(name: str, reranker: Any) -> Callable[[str, Sequence[str]], Any]:
    if callable(getattr(reranker, "score", None)):
        return reranker.score
    if callable(getattr(reranker, "predict", None)):
        predict = reranker.predict
        return lambda query, documents: predict([(query, d) for d in documents])
    if callable(reranker):
        return reranker
    raise EvaluationError(
        f"Reranker {name!r} is a {type(reranker).__name__}, which has no score(query, documents) method; "
        "pass an object with score(), a CrossEncoder (predict), a callable f(query, documents), or None for "
        "the first stage."
    )


def _scores(name: str, scorer: Callable, query: str, documents: Sequence[str]) -> np.ndarray:
    raw = scorer(query, list(documents))
    if hasattr(raw, "detach"):
        raw = raw.detach().cpu().numpy()
    values = np.asarray(raw, dtype=np.float64).reshape(-1)
    if values.shape[0] != len(documents):
        raise EvaluationError(
            f"Reranker {name!r} returned {values.shape[0]} scores for {len(documents)} documents; score() "
            "must return one score per document."
        )
    if not np.all(np.isfinite(values)):
        raise EvaluationError(
            f"Reranker {name!r} returned NaN or infinite scores; check the model's outputs."
        )
    return values


@dataclass
class RerankReport:
    """Result of :func:`evaluate_reranking`.

    Attributes:
        dataset: the dataset's name.
        top_k: candidates re-scored per query.
        metrics: metric keys, in order.
        rows: ``{row_name: {metric: mean}}``.
        per_query: ``{row_name: {query_id: {metric: value}}}``.
        short_long: threshold, rule and ``{"short"|"long": {"n_queries", "query_ids", "rows"}}``.
        speed: ``{row_name: {"documents", "seconds", "docs_per_second"}}`` (``None`` for the first stage
            alone).
        runs: ``{row_name: {query_id: [(doc_id, score), ...]}}``, the reranked candidate lists (not
            serialised).

    Example:
        >>> report = RerankReport("toy", 2, ["mrr@10"], {"none": {"mrr@10": 0.5}}, {}, {}, {})
        >>> report.to_dict()["rows"]
        {'none': {'mrr@10': 0.5}}
    """

    dataset: str
    top_k: int
    metrics: list[str]
    rows: dict[str, dict[str, float]]
    per_query: dict[str, dict[str, dict[str, float]]]
    short_long: dict[str, Any]
    speed: dict[str, dict[str, float | None]]
    runs: dict[str, dict[str, list[tuple[str, float]]]] = field(default_factory=dict, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dict: ``dataset``, ``top_k``, ``metrics``, ``rows``, ``per_query``,
        ``short_long``, ``speed``."""
        return {
            "dataset": self.dataset,
            "top_k": self.top_k,
            "metrics": list(self.metrics),
            "rows": {name: dict(values) for name, values in self.rows.items()},
            "per_query": {name: {q: dict(v) for q, v in pq.items()} for name, pq in self.per_query.items()},
            "short_long": self.short_long,
            "speed": {name: dict(values) for name, values in self.speed.items()},
        }

    def compare(
        self, baseline: str = "none", metric: str = "mrr@10", n_resamples: int = 10000, seed: int = 0
    ) -> dict[str, dict[str, float]]:
        """Each row against ``baseline`` on ``metric``: mean difference and paired permutation p-value.

        Raises:
            EvaluationError: unknown row or metric.
        """
        return compare_rows(self.per_query, self.metrics, baseline, metric, n_resamples, seed)


def _mean_rows(
    per_query: Mapping[str, Mapping[str, float]], qids: Sequence[str], metrics: Sequence[str]
) -> dict:
    if not qids:
        return {}
    return {m: float(np.mean([per_query[q][m] for q in qids])) for m in metrics}


def evaluate_reranking(
    dataset: RetrievalDataset,
    first_stage_run: Run,
    rerankers: Mapping[str, Any],
    top_k: int = 100,
    metrics: Sequence[str] = DEFAULT_METRICS,
    *,
    short_long_threshold: float | None = None,
    length_fn: Callable[[str], int] | None = None,
) -> RerankReport:
    """Re-score the first stage's top-k candidates with each reranker and evaluate every ranking.

    Args:
        dataset: queries, corpus and judgments (e.g. ``load_beir(path, split="test")``). Documents are shown
            to the rerankers as ``dataset.document_text(doc_id)``.
        first_stage_run: ``{query_id: results}`` for the dataset's judged queries (results as accepted by
            :func:`hn_evaluation.metrics.evaluate_run`).
        rerankers: ``{row_name: reranker}``; ``None`` evaluates the first stage alone (cut at ``top_k``, so
            recall is comparable across rows). Rows keep this order.
        top_k: candidates per query that each reranker re-scores.
        metrics: metric keys (``"mrr@3"``, ``"mrr@10"``, ``"ndcg@10"``, ``"recall@k"``, ...).
        short_long_threshold: length at or above which a positive document counts as long. Default: the median
            length of the evaluated queries' positive documents (two groups of similar size); the paper used
            1024 tokens.
        length_fn: document length in tokens; default: whitespace tokens (pass e.g.
            ``lambda t: len(tokenizer(t)["input_ids"])`` for model tokens).

    Returns:
        A :class:`RerankReport`. A query is *short* when the median length of its positive documents is below
        the threshold, *long* otherwise.

    Raises:
        EvaluationError: no judged queries, run and dataset that do not match, unknown document ids, a
            reranker without ``score``, scores of the wrong length or not finite.

    Example:
        >>> from hn_plugins.data import RetrievalDataset
        >>> ds = RetrievalDataset(corpus={"d1": ("", "cloud network"), "d2": ("", "cooking pasta")},
        ...                       queries={"q": "network"}, qrels={"q": {"d1": 1}})
        >>> flip = lambda query, docs: [float("network" in d) for d in docs]
        >>> report = evaluate_reranking(ds, {"q": [("d2", 2.0), ("d1", 1.0)]}, {"none": None, "flip": flip},
        ...                             top_k=2, metrics=["mrr@10"])
        >>> report.rows
        {'none': {'mrr@10': 0.5}, 'flip': {'mrr@10': 1.0}}
    """
    if not isinstance(dataset, RetrievalDataset):
        raise EvaluationError(
            f"evaluate_reranking needs a RetrievalDataset, got {type(dataset)}; see load_beir()."
        )
    if not isinstance(top_k, (int, np.integer)) or top_k < 1:
        raise EvaluationError(f"top_k must be a positive integer, got {top_k!r}.")
    if not rerankers:
        raise EvaluationError("No rerankers given; pass e.g. {'none': None, 'my-model': scorer}.")
    try:
        judged = judged_queries(dataset.qrels)
    except EvaluationError as exc:
        raise EvaluationError(f"Dataset {dataset.name!r}: {exc}") from exc
    judged = [q for q in judged if q in dataset.queries]
    foreign = [q for q in first_stage_run if q not in dataset.queries]
    if foreign:
        raise EvaluationError(
            f"The first-stage run has {len(foreign)} query id(s) that are not in dataset {dataset.name!r} "
            f"(first: {foreign[:5]}); retrieve with dataset.queries of the same split."
        )
    absent = [q for q in judged if q not in first_stage_run]
    if absent:
        raise EvaluationError(
            f"{len(absent)} judged query(ies) of {dataset.name!r} have no first-stage results (first: "
            f"{absent[:5]}); retrieve for every query, e.g. retriever.retrieve(dataset.queries)."
        )
    candidates = {q: rank_documents(first_stage_run[q])[:top_k] for q in judged}
    unknown = sorted({d for docs in candidates.values() for d in docs if d not in dataset.corpus})
    if unknown:
        raise EvaluationError(
            f"The first-stage run names {len(unknown)} document id(s) not in the corpus of {dataset.name!r} "
            f"(first: {unknown[:5]}); build the retriever on the same corpus."
        )
    scorers = {name: (None if r is None else _scorer(name, r)) for name, r in rerankers.items()}
    qrels = {q: dataset.qrels[q] for q in judged}
    texts: dict[str, str] = {}

    rows: dict[str, dict[str, float]] = {}
    per_query_rows: dict[str, dict[str, dict[str, float]]] = {}
    speed: dict[str, dict[str, float | None]] = {}
    runs: dict[str, dict[str, list[tuple[str, float]]]] = {}
    for name, scorer in scorers.items():
        run: dict[str, list[tuple[str, float]]] = {}
        n_docs, seconds = 0, 0.0
        for qid in judged:
            docs = candidates[qid]
            if scorer is None:
                run[qid] = [(d, float(len(docs) - i)) for i, d in enumerate(docs)]
                continue
            doc_texts = [texts.setdefault(d, dataset.document_text(d)) for d in docs]
            start = time.perf_counter()
            values = _scores(name, scorer, dataset.queries[qid], doc_texts) if docs else np.zeros(0)
            seconds += time.perf_counter() - start
            n_docs += len(docs)
            run[qid] = sorted(zip(docs, values.tolist(), strict=True), key=lambda pair: (-pair[1], pair[0]))
        means, per_query = evaluate_run({q: [d for d, _ in r] for q, r in run.items()}, qrels, metrics)
        rows[name], per_query_rows[name], runs[name] = means, per_query, run
        speed[name] = {
            "documents": float(n_docs),
            "seconds": seconds,
            "docs_per_second": (n_docs / seconds if seconds > 0 else None) if scorer is not None else None,
        }
        logger.info("%s on %s: %s", name, dataset.name, {k: round(v, 4) for k, v in means.items()})

    short_long = _short_long(dataset, judged, per_query_rows, list(metrics), short_long_threshold, length_fn)
    return RerankReport(
        dataset=dataset.name,
        top_k=int(top_k),
        metrics=list(metrics),
        rows=rows,
        per_query=per_query_rows,
        short_long=short_long,
        speed=speed,
        runs=runs,
    )


def _short_long(
    dataset: RetrievalDataset,
    qids: Sequence[str],
    per_query_rows: Mapping[str, Mapping[str, Mapping[str, float]]],
    metrics: list[str],
    threshold: float | None,
    length_fn: Callable[[str], int] | None,
) -> dict[str, Any]:
    measure = length_fn or whitespace_length
    doc_length: dict[str, int] = {}
    query_length: dict[str, float] = {}
    for qid in qids:
        lengths = []
        for doc_id in sorted(dataset.positives(qid)):
            if doc_id not in doc_length:
                doc_length[doc_id] = int(measure(dataset.document_text(doc_id)))
            lengths.append(doc_length[doc_id])
        query_length[qid] = float(statistics.median(lengths))
    if threshold is None:
        threshold = float(statistics.median(doc_length.values()))
    elif not (isinstance(threshold, (int, float)) and math.isfinite(threshold) and threshold > 0):
        raise EvaluationError(f"short_long_threshold must be a positive number of tokens, got {threshold!r}.")
    groups: dict[str, dict[str, Any]] = {}
    for group, members in (
        ("short", [q for q in qids if query_length[q] < threshold]),
        ("long", [q for q in qids if query_length[q] >= threshold]),
    ):
        groups[group] = {
            "n_queries": len(members),
            "query_ids": members,
            "rows": {name: _mean_rows(pq, members, metrics) for name, pq in per_query_rows.items()},
        }
    return {
        "threshold": float(threshold),
        "length_unit": "whitespace tokens" if length_fn is None else getattr(length_fn, "__name__", "custom"),
        "rule": "a query is short when the median length of its positive documents is below the threshold",
        "groups": groups,
    }
