"""Strategy benchmark: mine negatives on the train split with each strategy, fine-tune one reranker per strategy and
seed under identical settings, evaluate every reranker on the test split (first stage -> rerank), write a report.

Rows of the report:

- ``none``: the first stage alone (BM25 top-k by default);
- ``zero-shot``: the starting reranker, not fine-tuned (for ``kind="bi"``: the base bi-encoder scoring by cosine);
- ``random``, ``bm25``, ``dense-topk``, ``positive-aware``, ``st``: mined baselines (the dense ones in the space of
  the first ensemble member alone, as those tools run: one embedding model, no PCA);
- ``in-batch``: no mined negative, loss ``in-batch`` on the positive pairs (other pairs' positives are the
  negatives);
- ``paper``: the paper's exact method: ensemble + PCA (95% variance) + Eq. 5 and Eq. 6, triplet loss;
- ``default``: the configuration we ship, :data:`DEFAULT_STRATEGY` (defined only there);
- ablation rows (``paper@pca0.7``, ``paper@single-model``, ``default@train0.25``, ...) when asked for;
- ``default+verify`` (ablation, ``ablation_verifier=True``): ``default`` with a false-negative verifier
  (:class:`~hn_plugins.mining.verifier.FalseNegativeVerifier`) applied to the paper's and the fallback's negatives
  before they are combined; the teacher is the zero-shot base model fused with BM25 on the train split
  (:func:`zero_shot_fusion_teacher`). Pairs whose hard negatives were all dropped fall back to positive-aware, then
  to the random negative alone.
- ``default+adapt`` (ablation, ``ablation_adapt=True``, ``kind="bi"``): ``hn bootstrap --kind bi`` then ``default``:
  the base model is adapted to the train corpus without labels
  (:func:`~hn_plugins.training.corpus_adaptation.adapt_bi_encoder`, one adaptation per seed) and ``default`` is
  fine-tuned from the adapted model if adapting raised the fused MRR@10 of the judged train queries (the check
  ``hn bootstrap`` reports), else from the base model, as ``hn bootstrap`` advises.

Everything else (base model, loss, epochs, learning rate, batch size, number of negatives, validation) is the same
for every row, so the rows differ only by their negatives.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import random
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from hn_plugins.data import DatasetError, RetrievalDataset
from hn_plugins.mining.default_selector import DEFAULT_FALLBACK_MARGIN, DEFAULT_RANDOM_NEGATIVES
from hn_plugins.models import DEFAULT_ENSEMBLE

from .benchmark_rag import SharedAnswers, aggregate_rag, format_rag_section, rag_reports_by_seed, top_contexts
from .first_stage import BM25Retriever, DenseRetriever, encode_texts
from .generators import Generator
from .metrics import EvaluationError, judged_queries, rank_documents
from .plots import plot_metric_bars, plot_pca_neighbourhood
from .report import aggregate_seed_rows, format_markdown_table, write_report_json
from .rerank import RerankReport, evaluate_reranking
from .significance import paired_permutation_test

logger = logging.getLogger(__name__)

__all__ = [
    "ALL_STRATEGIES",
    "DEFAULT_STRATEGY",
    "EmbeddedBiEncoderScorer",
    "FusedScorer",
    "benchmark_metrics",
    "combine_default_negatives",
    "combine_verified_default_negatives",
    "first_stage_run",
    "first_stage_scores_by_text",
    "format_benchmark_markdown",
    "quality_bar",
    "run_benchmark",
    "zero_shot_fusion_teacher",
]

#: BM25 candidates per train query of the ``default+verify`` row's teacher (its first stage and its context).
VERIFIER_TEACHER_TOP_K = 100

#: Every strategy ``hn benchmark --strategies`` accepts, in report order.
ALL_STRATEGIES: tuple[str, ...] = (
    "none",
    "zero-shot",
    "random",
    "bm25",
    "in-batch",
    "dense-topk",
    "positive-aware",
    "st",
    "paper",
    "default",
)

#: The configuration we ship as ``default`` (the only place it is defined).
#:
#: 1. the paper's selector (ensemble + PCA 95% + Eq. 5/6) gives the primary hard negatives;
#: 2. a (query, positive) pair for which nothing satisfies Eq. 5/6 falls back to NV-Retriever's positive-aware
#:    selector in the same ensemble + PCA space (score < 95% of the positive's: a false-negative guard), instead
#:    of being dropped, as the paper does (it drops 23-60% of the train pairs of ../shared/data);
#: 3. one seeded random negative is added to every pair: on collections with many unjudged relevant documents
#:    hard negatives are often false negatives, and a random negative keeps an easy, almost surely correct signal.
#: Loss: in-batch negatives plus the mined ones (multiple-negatives ranking loss over (query, positive, hard
#: negative, random negative) rows and every other row's documents), the standard bi-encoder recipe; every other
#: mined row trains with the paper's triplet loss. At test time ``default`` fuses its scores with the first stage's
#: (weight chosen on validation, :mod:`hn_plugins.fusion`); :func:`run_benchmark` reports it without fusion too.
#: Selection: cross-fitted (``selection="cross-fit"``, 5 folds): the number of epochs (0 = keep the start model) and
#: the fusion weight are chosen on every train query's held-out scores instead of a 20% hold-out of 2-18 queries,
#: then the final model trains on all train queries. Every other row keeps the single hold-out (cross-fitting costs
#: ``folds + 1`` trainings).
DEFAULT_STRATEGY: dict[str, Any] = {
    "primary": {"selector": "paper", "space": "ensemble+pca"},
    "fallback": {
        "selector": "positive-aware",
        "space": "ensemble+pca",
        "relative_margin": DEFAULT_FALLBACK_MARGIN,
    },
    "random_negatives": DEFAULT_RANDOM_NEGATIVES,
    "loss": "in-batch",
    "fusion": "bm25, weight chosen on validation",
    "selection": "cross-fit",
    "folds": 5,
}

_MINED = {"random", "bm25", "dense-topk", "positive-aware", "st", "paper"}
_SINGLE_MODEL = {"dense-topk", "positive-aware", "st"}


def benchmark_metrics(top_k: int) -> tuple[str, ...]:
    """Metric keys of ``hn eval`` and ``hn benchmark``: MRR@3, MRR@10, nDCG@10, Recall@10 and Recall@top_k.

    Example:
        >>> benchmark_metrics(100)
        ('mrr@3', 'mrr@10', 'ndcg@10', 'recall@10', 'recall@100')
    """
    recall = [f"recall@{k}" for k in dict.fromkeys((10, int(top_k)))]
    return ("mrr@3", "mrr@10", "ndcg@10", *recall)


# ---------------------------------------------------------------------------------------------- scoring
class EmbeddedBiEncoderScorer:
    """A bi-encoder reranker whose document and query vectors are computed once, in large batches, up front.

    ``score(query, documents)`` is then a lookup and a matrix product, so reranking a test split costs one
    encoding pass over the distinct candidate documents instead of one per query. Texts not seen up front are
    encoded on demand (and kept).

    Args:
        model: a ``SentenceTransformer`` (or anything with ``encode(list[str])``).
        documents: document texts to encode now (e.g. every first-stage candidate of the test queries).
        queries: query texts to encode now.
        batch_size: encoding batch size.

    Attributes:
        encode_seconds: time spent encoding (up front and on demand).

    Example:
        >>> class Letters:
        ...     def encode(self, texts):
        ...         return [[t.count("a"), t.count("b"), 1.0] for t in texts]
        >>> scorer = EmbeddedBiEncoderScorer(Letters(), documents=["aaaa", "bbbb"], queries=["aa"])
        >>> int(scorer.score("aa", ["aaaa", "bbbb"]).argmax())
        0
    """

    def __init__(
        self, model: Any, documents: Sequence[str] = (), queries: Sequence[str] = (), batch_size: int = 32
    ) -> None:
        self.model, self.batch_size = model, batch_size
        self._docs: dict[str, np.ndarray] = {}
        self._queries: dict[str, np.ndarray] = {}
        self.encode_seconds = 0.0
        self._add(self._docs, documents)
        self._add(self._queries, queries)

    def _add(self, store: dict[str, np.ndarray], texts: Sequence[str]) -> None:
        todo = [t for t in dict.fromkeys(texts) if t not in store]
        if not todo:
            return
        start = time.perf_counter()
        vectors = encode_texts(self.model, todo, self.batch_size)
        self.encode_seconds += time.perf_counter() - start
        store.update(zip(todo, vectors, strict=True))

    def score(self, query: str, documents: Sequence[str]) -> np.ndarray:
        """Cosine similarity of the query with each document."""
        if not documents:
            return np.zeros(0, dtype=np.float32)
        self._add(self._docs, documents)
        self._add(self._queries, [query])
        matrix = np.stack([self._docs[d] for d in documents])
        return (matrix @ self._queries[query]).astype(np.float32)


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


def _candidate_texts(dataset: RetrievalDataset, run: Mapping[str, Any], top_k: int) -> list[str]:
    return list(dict.fromkeys(dataset.document_text(d) for q in run for d in rank_documents(run[q])[:top_k]))


# ---------------------------------------------------------------------------------------------- mining
def combine_default_negatives(
    primary: Any,
    fallback: Any,
    random_result: Any | None = None,
    random_negatives: int = DEFAULT_STRATEGY["random_negatives"],
    name: str = "default",
) -> Any:
    """Merge mined results into the ``default`` strategy's negatives (see :data:`DEFAULT_STRATEGY`).

    Per (query, positive) pair: the primary selector's negatives when it found any, else the fallback's; then up
    to ``random_negatives`` of the random result's negatives that are not already there.

    Args:
        primary: the paper selector's :class:`~hn_plugins.mining.result.MiningResult`.
        fallback: the fallback selector's result on the same pairs.
        random_result: a random selector's result (``None``: no random negative).
        random_negatives: random negatives appended per pair.
        name: the merged result's selector name.

    Returns:
        A ``MiningResult`` with diagnostics ``pairs_from_primary``, ``pairs_from_fallback``,
        ``pairs_without_hard_negative`` and ``random_negatives_added``.

    Example:
        >>> from hn_plugins.mining.result import MiningResult, TripletRecord
        >>> p = MiningResult([TripletRecord("q", "d1", [], 0.3, [], [], "paper")], "paper")
        >>> f = MiningResult([TripletRecord("q", "d1", ["d5"], 0.3, [0.4], [0.6], "positive-aware")], "pa")
        >>> r = MiningResult([TripletRecord("q", "d1", ["d9"], None, [None], [None], "random")], "random")
        >>> combine_default_negatives(p, f, r).records[0].negative_ids
        ['d5', 'd9']
    """
    from hn_plugins.mining.default_selector import merge_default_records
    from hn_plugins.mining.result import MiningResult

    records, counts, _ = merge_default_records(
        primary.records,
        fallback.records,
        random_result.records if random_result else (),
        random_negatives,
        name,
    )
    diagnostics = {**counts, "definition": DEFAULT_STRATEGY}
    return MiningResult(records, selector=name, diagnostics=diagnostics)


def combine_verified_default_negatives(
    primary: Any,
    fallback: Any,
    random_result: Any | None = None,
    random_negatives: int = DEFAULT_STRATEGY["random_negatives"],
    name: str = "default+verify",
) -> Any:
    """:func:`combine_default_negatives` of a primary and a fallback result that both went through the same
    :class:`~hn_plugins.mining.verifier.FalseNegativeVerifier`, with the verifier's counts.

    A pair whose primary negatives were all dropped takes the fallback's kept negatives; when those were dropped
    too, it keeps only the random negative(s).

    Args:
        primary: the paper selector's result after ``verifier.verify``.
        fallback: the fallback selector's result after ``verifier.verify``.
        random_result: a random selector's result (not verified: ``None`` for none).
        random_negatives: random negatives appended per pair.
        name: the merged result's selector name.

    Returns:
        The merged ``MiningResult``; its diagnostics add to those of :func:`combine_default_negatives`:
        ``verifier`` (teacher, margin), ``negatives_checked`` and ``negatives_dropped`` (primary + fallback),
        ``pairs_emptied_by_verifier`` (pairs that had a hard negative, from the primary or the fallback, before
        verification and have none after), ``pairs_moved_to_fallback`` (pairs whose primary negatives were all
        dropped and that took the fallback's) and ``verifier_by_source`` (the per-source counts).

    Raises:
        ValueError: ``primary`` or ``fallback`` carries no verifier diagnostics.

    Example:
        >>> from hn_plugins.mining.result import MiningResult, TripletRecord
        >>> from hn_plugins.mining.verifier import FalseNegativeVerifier
        >>> from hn_plugins.data import RetrievalDataset
        >>> data = RetrievalDataset({"p": ("", "a b"), "n": ("", "a b c"), "m": ("", "z")}, {"q": "a b"},
        ...                         {"q": {"p": 1}})
        >>> teacher = lambda query, docs: [len(set(query.split()) & set(d.split())) for d in docs]
        >>> verifier = FalseNegativeVerifier(teacher)
        >>> p = verifier.verify(MiningResult([TripletRecord("q", "p", ["n"], 0.3, [0.2], [0.1], "paper")], "paper"),
        ...                     data)
        >>> f = verifier.verify(MiningResult([TripletRecord("q", "p", ["m"], 0.3, [0.5], [0.6], "pa")], "pa"), data)
        >>> merged = combine_verified_default_negatives(p, f)
        >>> merged.records[0].negative_ids, merged.diagnostics["pairs_moved_to_fallback"]
        (['m'], 1)
    """
    sources = {"primary": primary, "fallback": fallback}
    for label, res in sources.items():
        if "negatives_checked" not in res.diagnostics or "verifier" not in res.diagnostics:
            raise ValueError(
                f"combine_verified_default_negatives(): the {label} result was not verified; pass "
                "FalseNegativeVerifier(...).verify(result, dataset), or use combine_default_negatives()."
            )
    merged = combine_default_negatives(primary, fallback, random_result, random_negatives, name)

    def had_before(res: Any) -> set[tuple[str, str]]:
        keys = {(r.query_id, r.positive_id) for r in res.records if r.negative_ids}
        return keys | {(d["query_id"], d["positive_id"]) for d in res.diagnostics.get("dropped") or []}

    def has_after(res: Any) -> set[tuple[str, str]]:
        return {(r.query_id, r.positive_id) for r in res.records if r.negative_ids}

    before_p, after_p = had_before(primary), has_after(primary)
    before_f, after_f = had_before(fallback), has_after(fallback)
    emptied = moved = 0
    for rec in primary.records:
        key = (rec.query_id, rec.positive_id)
        if (key in before_p or key in before_f) and key not in after_p and key not in after_f:
            emptied += 1
        if key in before_p and key not in after_p and key in after_f:
            moved += 1
    by_source = {
        label: {
            k: res.diagnostics[k]
            for k in ("negatives_checked", "negatives_dropped", "pairs_emptied_by_verifier")
        }
        for label, res in sources.items()
    }
    merged.diagnostics.update(
        {
            "verifier": {**primary.diagnostics["verifier"], "applied_to": ["primary", "fallback"]},
            "negatives_checked": sum(c["negatives_checked"] for c in by_source.values()),
            "negatives_dropped": sum(c["negatives_dropped"] for c in by_source.values()),
            "pairs_emptied_by_verifier": emptied,
            "pairs_moved_to_fallback": moved,
            "verifier_by_source": by_source,
        }
    )
    return merged


class _FloorScores(dict):
    """``{document text: first-stage score}`` of one query; a document outside it scores ``floor``."""

    def __init__(self, scores: Mapping[str, float], floor: float) -> None:
        super().__init__(scores)
        self.floor = floor

    def __missing__(self, key: str) -> float:
        return self.floor


class _FloorScoresByQuery(dict):
    """``{query text: _FloorScores}``; a query without candidates gets floor 0.0 for every document."""

    def __missing__(self, key: str) -> _FloorScores:
        return _FloorScores({}, 0.0)


def zero_shot_fusion_teacher(
    train: RetrievalDataset,
    base_model: str,
    kind: Literal["bi", "cross"],
    fusion: Any,
    *,
    max_length: int | None = None,
    top_k: int = VERIFIER_TEACHER_TOP_K,
    batch_size: int = 64,
) -> tuple[Any, dict[str, list[str]]]:
    """The ``default+verify`` row's teacher: the untrained base model fused with BM25 on the *train* split.

    BM25 retrieves the top ``top_k`` documents of every judged train query (:func:`first_stage_run`); the base model
    scores documents (``kind="bi"``: cosine of the base bi-encoder, :class:`EmbeddedBiEncoderScorer`, with the
    candidates encoded up front; ``kind="cross"``: the base cross-encoder, as the benchmark's zero-shot row scores);
    :class:`FusedScorer` mixes the two with ``fusion`` (the weight the benchmark chooses for ``zero-shot``). A
    document outside a query's BM25 top ``top_k`` (a positive or a mined negative BM25 ranked lower) gets that
    query's lowest top-``top_k`` BM25 score: BM25 ranks it no higher than its last candidate, and the fused score
    then rests on the base model. The top-``top_k`` lists are returned as the verifier's ``context``, so the
    per-query normalisation of the fusion runs over the real candidate list rather than over a positive and a few
    negatives.

    Args:
        train: the train split (the one mined).
        base_model: the benchmark's base model (name or folder).
        kind: ``bi`` or ``cross``.
        fusion: the :class:`~hn_plugins.fusion.ScoreFusion` to apply.
        max_length: maximum tokens per text (bi) or pair (cross).
        top_k: BM25 candidates per train query.
        batch_size: encoding / scoring batch size.

    Returns:
        ``(teacher, context)``: an object with ``score(query, documents)`` and a ``name``, and
        ``{query_id: [doc_id, ...]}`` (BM25 top ``top_k``, best first).

    Raises:
        ValueError: ``kind`` is neither ``bi`` nor ``cross``.
    """
    if kind not in ("bi", "cross"):
        raise ValueError(f"zero_shot_fusion_teacher(): kind must be 'bi' or 'cross', got {kind!r}.")
    run = first_stage_run(train, "bm25", top_k)
    context = {q: [d for d, _ in ranked] for q, ranked in run.items()}
    by_text = first_stage_scores_by_text(train, run)
    first_stage = _FloorScoresByQuery(
        {q: _FloorScores(scores, min(scores.values(), default=0.0)) for q, scores in by_text.items()}
    )
    scorer: Any
    if kind == "bi":
        texts = _candidate_texts(train, run, top_k)
        texts += [
            train.document_text(p) for q in run for p in sorted(train.positives(q)) if p in train.corpus
        ]
        scorer = EmbeddedBiEncoderScorer(
            _load_bi_encoder(base_model, max_length),
            documents=texts,
            queries=[train.queries[q] for q in run],
            batch_size=batch_size,
        )
    else:
        from hn_plugins.reranker import CrossEncoderReranker

        scorer = CrossEncoderReranker(base_model, batch_size=batch_size, max_length=max_length)
    teacher: Any = FusedScorer(scorer, fusion, first_stage)
    teacher.name = (
        f"zero-shot {base_model} ({kind}) + BM25 top-{top_k} on {train.name}, fusion weight {fusion.weight:g}"
    )
    return teacher, context


def _positive_pairs_result(train: RetrievalDataset) -> Any:
    from hn_plugins.mining.result import MiningResult, TripletRecord

    records = [TripletRecord(q, p, [], None, [], [], "in-batch") for q, p in train.positive_pairs()]
    return MiningResult(
        records, selector="in-batch", diagnostics={"note": "no mined negative (loss in-batch)"}
    )


def _mining_summary(result: Any) -> dict[str, Any]:
    summary = result.summary()
    keep = ("selector", "pairs", "pairs_with_negative", "selection_rate", "negatives", "queries")
    out = {k: summary[k] for k in keep if k in summary}
    out["queries_without_negative"] = len(summary.get("queries_without_negative") or [])
    for key in (
        "pairs_from_primary",
        "pairs_from_fallback",
        "pairs_without_hard_negative",
        "random_negatives_added",
        "pca_components",
        "pca_variance_kept",
        "verifier",
        "negatives_checked",
        "negatives_dropped",
        "pairs_emptied_by_verifier",
        "pairs_moved_to_fallback",
        "verifier_by_source",
    ):
        if key in summary:
            out[key] = summary[key]
    return out


@dataclass
class _Miners:
    """Lazily built ensembles and fitted miners, shared by every strategy and seed."""

    train: RetrievalDataset
    models: list[str]
    variance: float
    num_negatives: int
    candidates: int
    cache_dir: Path | None
    batch_size: int
    ensembles: dict[tuple[str, ...], Any] = field(default_factory=dict)
    fitted: dict[tuple[Any, ...], Any] = field(default_factory=dict)
    results: dict[tuple[Any, ...], Any] = field(default_factory=dict)

    def ensemble(self, models: Sequence[str]) -> Any:
        from hn_plugins.embedders import EmbedderEnsemble

        key = tuple(models)
        if key not in self.ensembles:
            loaded = self._loaded_members()
            specs = [loaded.get(m, m) for m in models]
            self.ensembles[key] = EmbedderEnsemble(
                specs, cache_dir=self.cache_dir, batch_size=self.batch_size
            )
        return self.ensembles[key]

    def _loaded_members(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for names, ensemble in self.ensembles.items():
            for name, member in zip(names, ensemble.members, strict=True):
                out.setdefault(name, member.encoder)
        return out

    def miner(
        self, selector: str, models: Sequence[str], variance: float | None, seed: int, **kw: Any
    ) -> Any:
        from hn_plugins.mining.miner import HardNegativeMiner
        from hn_plugins.reduction import PCAReducer

        needs_embeddings = selector not in {"random", "bm25"}
        ensemble = self.ensemble(models) if needs_embeddings else None
        reducer = PCAReducer(variance=variance) if variance is not None and 0.0 < variance < 1.0 else None
        miner = HardNegativeMiner(
            ensemble,
            reducer,
            selector=selector,
            num_negatives=self.num_negatives,
            candidates=self.candidates,
            seed=seed,
            **kw,
        )
        return miner

    def mine(
        self, selector: str, models: Sequence[str], variance: float | None, seed: int = 0, **kw: Any
    ) -> Any:
        seeded = selector == "random"
        if selector in {"random", "bm25"}:
            models, variance = (), None
        key = (selector, tuple(models), variance, seed if seeded else None, tuple(sorted(kw.items())))
        if key not in self.results:
            miner = self.miner(selector, models, variance, seed if seeded else 0, **kw)
            start = time.perf_counter()
            self.results[key] = miner.fit(self.train).mine(self.train)
            self.fitted[key] = miner
            logger.info("mined %s (%s) in %.1fs", selector, ",".join(models), time.perf_counter() - start)
        return self.results[key]


# ---------------------------------------------------------------------------------------------- benchmark
@dataclass
class _Row:
    """How to produce one row: which negatives, which loss, which training data."""

    name: str
    kind: Literal["none", "zero-shot", "trained"]
    mine: Any = None  # callable(seed) -> MiningResult
    loss: str = "triplet"
    train_fraction: float | None = None
    selection: Literal["holdout", "cross-fit"] = "holdout"
    adapt: bool = False  # start from the base model adapted to the corpus (adapt_bi_encoder) instead


def _load_split(path: Path, split: str) -> RetrievalDataset:
    from hn_plugins.data import load_beir

    return load_beir(path, split=split, empty_documents="drop")


def _parse_models(models: str | Sequence[str]) -> list[str]:
    if isinstance(models, str):
        models = models.split(",")
    out = [m.strip() for m in models if m and m.strip()]
    if not out:
        raise ValueError("models: give at least one embedding model, e.g. 'all-MiniLM-L6-v2,static-model'.")
    return out


def _load_bi_encoder(path: str | os.PathLike[str], max_length: int | None) -> Any:
    from hn_plugins.models import load_sentence_transformer

    model = load_sentence_transformer(path)
    if max_length is not None:
        model.max_seq_length = max_length
    return model


def run_benchmark(
    data: str | os.PathLike[str] | tuple[RetrievalDataset, RetrievalDataset],
    strategies: Sequence[str] = ALL_STRATEGIES,
    seeds: int | Sequence[int] = 3,
    out_dir: str | os.PathLike[str] = "benchmark",
    *,
    kind: Literal["bi", "cross"] = "bi",
    base_model: str = "all-MiniLM-L6-v2",
    models: str | Sequence[str] = DEFAULT_ENSEMBLE,
    variance: float = 0.95,
    num_negatives: int = 1,
    candidates: int = 100,
    epochs: int = 4,
    lr: float = 2e-5,
    batch_size: int = 16,
    margin: float | None = None,
    max_length: int | None = None,
    first_stage: Literal["bm25", "dense"] = "bm25",
    top_k: int = 100,
    validation_top_k: int = 100,
    max_test_queries: int | None = None,
    ablation_variance: Sequence[float] = (),
    ablation_single_model: bool = False,
    ablation_train_size: Sequence[float] = (),
    ablation_verifier: bool = False,
    ablation_adapt: bool = False,
    keep_models: bool = False,
    n_resamples: int = 10000,
    cache_dir: str | os.PathLike[str] | None = None,
    fusion: bool = True,
    rag: str | Generator | None = None,
    rag_contexts: int = 3,
    rag_max_queries: int | None = None,
) -> dict[str, Any]:
    """Mine with each strategy, fine-tune one reranker per strategy and seed, evaluate all on the test split.

    Args:
        data: a BEIR folder with ``train`` and ``test`` qrels, or ``(train, test)`` datasets.
        strategies: rows to produce, from :data:`ALL_STRATEGIES` (``none`` and ``zero-shot`` need no training).
        seeds: number of seeds (``0..n-1``) or the seeds themselves; each seeds mining (random), the validation
            split and training.
        out_dir: where ``report.json``, ``report.md``, the PNG plots, the mined triplets and (``keep_models``) the
            models go.
        kind: ``bi`` (bi-encoder reranker, Eq. 8) or ``cross`` (cross-encoder, Eq. 7/9).
        base_model: starting model of every fine-tune and the ``zero-shot`` row.
        models: embedding ensemble of the ``paper`` and ``default`` strategies (comma-separated or a list); the
            single-model baselines use its first member.
        variance: PCA variance of ``paper`` and ``default``.
        num_negatives: mined negatives per (query, positive) pair, for every selector.
        candidates: FAISS depth of the dense selectors.
        epochs: training epochs (early stopping on validation MRR@10 of held-out *train* queries).
        lr: learning rate.
        batch_size: training batch size.
        margin: triplet margin (default: the trainer's, 0.2 for bi, 1.0 for cross).
        max_length: maximum tokens per text (bi) or pair (cross), for training and evaluation; ``None``: the
            model's own.
        first_stage: ``bm25`` or ``dense`` (the base model).
        top_k: first-stage candidates reranked per test query.
        validation_top_k: BM25 candidates reranked per validation query during training.
        max_test_queries: evaluate on a seeded sample of this many judged test queries (``None``: all).
        ablation_variance: extra rows ``paper@pca<v>`` mining with PCA variance ``v`` (1.0: no PCA).
        ablation_single_model: extra row ``paper@single-model`` (the first ensemble member alone, PCA as set).
        ablation_train_size: extra rows ``default@train<f>`` training on a seeded share ``f`` of train queries.
        ablation_verifier: extra row ``default+verify``: ``default`` whose paper and fallback negatives first pass
            a :class:`~hn_plugins.mining.verifier.FalseNegativeVerifier` (margin 0) whose teacher is the zero-shot
            base model fused with BM25 on the train split (:func:`zero_shot_fusion_teacher`, with the fusion weight
            chosen for ``zero-shot``, computed even when ``fusion=False``). Its ``mining`` summary holds the
            verifier's counts, and ``out_dir/verifier_dropped.json`` lists every dropped negative.
        ablation_adapt: extra row ``default+adapt`` (``kind="bi"`` only): the base model adapted to the train
            corpus' pseudo-queries, no labels (:func:`~hn_plugins.training.corpus_adaptation.adapt_bi_encoder` with
            the row's seed), then ``default`` fine-tuned from it if that raised the fused MRR@10 of the judged
            train queries, else from the base model; its ``training`` entries hold the adaptation's counts, its
            check and ``started_from_adapted``.
        keep_models: keep every fine-tuned model under ``out_dir/models`` (default: deleted after evaluation).
        n_resamples: permutations of the paired significance tests.
        cache_dir: embedding cache of the mining ensemble (default ``out_dir/cache``).
        fusion: every fine-tuned model also gets the weight that fuses its scores with BM25's, chosen on its
            validation queries (:mod:`hn_plugins.fusion`); ``zero-shot`` gets one chosen on all train queries.
            ``default`` (the configuration we ship) is then reported fused, and a control table reports every
            other row fused too (``<row>+fusion``) and ``default-no-fusion``. ``False``: rerankers alone.
        rag: downstream RAG quality of every row: a generator (``generator(question, contexts) -> str``) or a
            name for :func:`~hn_evaluation.generators.load_generator` (``"extractive"``, ``"smollm2"``, ...),
            loaded before any mining. Each row's top ``rag_contexts`` test documents per seed are answered from and
            scored (:mod:`hn_evaluation.benchmark_rag`); the report gets a ``rag`` section. If generation fails,
            the retrieval report is still written and ``failed["rag"]`` says why.
        rag_contexts: documents per answer.
        rag_max_queries: answer a seeded sample of this many test queries (the same for every row and seed).

    Returns:
        The report dict that was written to ``out_dir/report.json``: ``config``, ``metrics``,
        ``default_strategy``, ``strategies`` (per row: ``metrics`` {metric: {mean, std, values}}, ``per_seed``,
        ``mining``, ``training``, ``short_long``, ``speed``), ``rows`` (means ± std, as in the table),
        ``significance`` (``default`` and ``paper`` vs every other row: Δ and p of per-query MRR@10),
        ``per_query`` (MRR@10 per test query, mean over seeds), ``rag`` (with ``rag`` set: per row mean ± std
        of the RAG metrics, per-query values, ``default`` vs each row), ``failed``, ``plots``, ``timings_s``.

    Raises:
        ValueError: unknown strategies or settings.
        DatasetError: a split without judgments or a missing folder.

    Example:
        >>> report = run_benchmark("../shared/data/medline", ["none", "zero-shot", "random", "paper"], seeds=1,
        ...                        out_dir="bench/medline", epochs=1, max_test_queries=10)  # doctest: +SKIP
        >>> report["rows"]["paper"]["mrr@10"]["mean"]  # doctest: +SKIP
        0.71
    """
    started = time.perf_counter()
    strategies = list(dict.fromkeys(s.strip() for s in strategies if s and s.strip()))
    unknown = [s for s in strategies if s not in ALL_STRATEGIES]
    if unknown:
        raise ValueError(f"Unknown strategies {unknown}; choose from {', '.join(ALL_STRATEGIES)}.")
    if not strategies and not (
        ablation_variance
        or ablation_single_model
        or ablation_train_size
        or ablation_verifier
        or ablation_adapt
    ):
        raise ValueError(
            "No strategy to run; pass e.g. strategies=['none', 'zero-shot', 'paper', 'default']."
        )
    seed_list = list(range(seeds)) if isinstance(seeds, int) else [int(s) for s in seeds]
    if not seed_list:
        raise ValueError("seeds must be >= 1 (or a non-empty list of seeds).")
    if kind not in ("bi", "cross"):
        raise ValueError(f"kind must be 'bi' or 'cross', got {kind!r}.")
    if ablation_adapt and kind != "bi":
        raise ValueError(
            "ablation_adapt adapts a bi-encoder to the corpus (kind='bi'); for cross-encoders warm-start the base "
            "model with `hn bootstrap` (kind cross) and pass that folder as base_model."
        )
    for f in ablation_train_size:
        if not 0.0 < f <= 1.0:
            raise ValueError(f"ablation_train_size values must be in (0, 1], got {f}.")
    for v in ablation_variance:
        if not 0.0 < v <= 1.0:
            raise ValueError(f"ablation_variance values must be in (0, 1], got {v}.")
    if not isinstance(rag_contexts, int) or rag_contexts < 1:
        raise ValueError(f"rag_contexts must be a positive integer, got {rag_contexts!r}.")
    if rag_max_queries is not None and rag_max_queries < 1:
        raise ValueError(f"rag_max_queries must be >= 1 or None, got {rag_max_queries!r}.")
    generator = None
    if rag is not None:  # loaded first: a bad generator costs no mining or training
        from .generators import load_generator

        generator = SharedAnswers(load_generator(rag) if isinstance(rag, str) else rag)
    model_list = _parse_models(models)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    # 1. data
    if isinstance(data, tuple):
        train, test = data
        data_name = test.name.split(":")[0] or "dataset"
    else:
        path = Path(data)
        if not path.is_dir():
            raise DatasetError(f"{path} is not a BEIR folder (corpus.jsonl, queries.jsonl, qrels/).")
        train, test = _load_split(path, "train"), _load_split(path, "test")
        data_name = path.name
    if not train.judged_query_ids:
        raise DatasetError(f"The train split of {data_name} has no judgments; nothing to mine or train on.")
    test_qids = [q for q in judged_queries(test.qrels) if q in test.queries]
    if max_test_queries is not None and 0 < max_test_queries < len(test_qids):
        chosen = set(random.Random(0).sample(test_qids, max_test_queries))
        test = test.subset([q for q in test_qids if q in chosen], name=f"{test.name}[{max_test_queries}q]")
    metrics = benchmark_metrics(top_k)
    timings: dict[str, float] = {}

    # 2. first stage once
    t0 = time.perf_counter()
    fs_run = first_stage_run(test, first_stage, top_k, dense_model=base_model)
    timings["first_stage_s"] = time.perf_counter() - t0
    candidate_texts = _candidate_texts(test, fs_run, top_k)
    query_texts = [test.queries[q] for q in fs_run]
    logger.info(
        "%s: %d train queries, %d test queries, %d distinct candidate documents (%s top-%d)",
        data_name,
        len(train.judged_query_ids),
        len(fs_run),
        len(candidate_texts),
        first_stage,
        top_k,
    )

    # 3. rows
    miners = _Miners(
        train,
        model_list,
        variance,
        num_negatives,
        candidates,
        Path(cache_dir) if cache_dir is not None else out / "cache",
        batch_size=64,
    )
    single = [model_list[0]]

    def default_parts(
        seed: int, models_: Sequence[str] = model_list, variance_: float = variance
    ) -> tuple[Any, Any, Any]:
        """``default``'s mined parts: the paper's negatives, the positive-aware fallback, the seeded random ones."""
        fb = DEFAULT_STRATEGY["fallback"]
        primary = miners.mine("paper", models_, variance_)
        fallback = miners.mine(fb["selector"], models_, variance_, relative_margin=fb["relative_margin"])
        rnd = miners.mine("random", models_, None, seed) if DEFAULT_STRATEGY["random_negatives"] else None
        return primary, fallback, rnd

    def default_mine(seed: int, models_: Sequence[str] = model_list, variance_: float = variance) -> Any:
        return combine_default_negatives(
            *default_parts(seed, models_, variance_), DEFAULT_STRATEGY["random_negatives"]
        )

    zero_shot_choice: dict[str, Any] = {}

    def zero_shot_fusion_choice() -> Any:
        """The zero-shot fusion weight (all train queries), chosen once for the zero-shot row and the teacher."""
        if "fusion" not in zero_shot_choice:
            zero_shot_choice["fusion"] = _zero_shot_fusion(
                train, base_model, kind, max_length, validation_top_k
            )
        return zero_shot_choice["fusion"]

    verified: dict[str, Any] = {}

    def verified_default_mine(seed: int) -> Any:
        """``default``'s mining with the paper and fallback results verified (once; the random part per seed)."""
        primary, fallback, rnd = default_parts(seed)
        if not verified:
            from hn_plugins.mining.verifier import FalseNegativeVerifier

            teacher, context = zero_shot_fusion_teacher(
                train, base_model, kind, zero_shot_fusion_choice(), max_length=max_length
            )
            verifier = FalseNegativeVerifier(teacher, margin=0.0, context=context)
            verified["primary"] = verifier.verify(primary, train)
            verified["fallback"] = verifier.verify(fallback, train)
            audit = {k: verified[k].diagnostics["dropped"] for k in ("primary", "fallback")}
            (out / "verifier_dropped.json").write_text(
                json.dumps({"verifier": verifier.get_config_dict(), **audit}, indent=1), encoding="utf-8"
            )
        return combine_verified_default_negatives(
            verified["primary"], verified["fallback"], rnd, DEFAULT_STRATEGY["random_negatives"]
        )

    rows: list[_Row] = []
    for name in strategies:
        if name == "none":
            rows.append(_Row(name, "none"))
        elif name == "zero-shot":
            rows.append(_Row(name, "zero-shot"))
        elif name == "in-batch":
            rows.append(
                _Row(name, "trained", mine=lambda seed: _positive_pairs_result(train), loss="in-batch")
            )
        elif name == "paper":
            rows.append(_Row(name, "trained", mine=lambda seed: miners.mine("paper", model_list, variance)))
        elif name == "default":
            rows.append(
                _Row(
                    name,
                    "trained",
                    mine=default_mine,
                    loss=DEFAULT_STRATEGY["loss"],
                    selection=DEFAULT_STRATEGY["selection"],
                )
            )
        elif name == "random":
            rows.append(_Row(name, "trained", mine=lambda seed: miners.mine("random", single, None, seed)))
        elif name in _MINED:
            models_ = single if name in _SINGLE_MODEL else model_list
            rows.append(_Row(name, "trained", mine=lambda seed, n=name, m=models_: miners.mine(n, m, None)))
    for v in ablation_variance:
        label = f"paper@pca{v:g}" if v < 1.0 else "paper@nopca"
        rows.append(_Row(label, "trained", mine=lambda seed, v=v: miners.mine("paper", model_list, v)))
    if ablation_single_model:
        rows.append(
            _Row("paper@single-model", "trained", mine=lambda seed: miners.mine("paper", single, variance))
        )
    for f in ablation_train_size:
        rows.append(
            _Row(
                f"default@train{f:g}",
                "trained",
                mine=default_mine,
                loss=DEFAULT_STRATEGY["loss"],
                train_fraction=f,
                selection=DEFAULT_STRATEGY["selection"],
            )
        )
    if ablation_verifier:
        rows.append(
            _Row(
                "default+verify",
                "trained",
                mine=verified_default_mine,
                loss=DEFAULT_STRATEGY["loss"],
                selection=DEFAULT_STRATEGY["selection"],
            )
        )
    if ablation_adapt:
        rows.append(
            _Row(
                "default+adapt",
                "trained",
                mine=default_mine,
                loss=DEFAULT_STRATEGY["loss"],
                selection=DEFAULT_STRATEGY["selection"],
                adapt=True,
            )
        )

    # 4. evaluate each row for each seed
    per_seed_rows: dict[str, list[dict[str, float]]] = {}
    per_query: dict[str, list[dict[str, float]]] = {}
    details: dict[str, dict[str, Any]] = {}
    failed: dict[str, str] = {}
    for row in rows:
        details[row.name] = {"per_seed": [], "mining": None, "training": [], "short_long": [], "speed": []}
    zero_shot_cache: dict[str, Any] = {}
    rag_tops: dict[int, dict[str, dict[str, list[str]]]] = {}  # seed -> row -> query -> top document ids

    def evaluate(name: str, reranker: Any) -> RerankReport:
        return evaluate_reranking(test, fs_run, {name: reranker}, top_k=top_k, metrics=metrics)

    def scorer_for(model_path: str | os.PathLike[str]) -> Any:
        if kind == "bi":
            model = _load_bi_encoder(model_path, max_length)
            return EmbeddedBiEncoderScorer(model, candidate_texts, query_texts, batch_size=64)
        from hn_plugins.reranker import CrossEncoderReranker, load_reranker

        path = Path(str(model_path))
        if path.is_dir() and (path / "hn_reranker.json").is_file():
            return load_reranker(path, batch_size=64)
        return CrossEncoderReranker(model_path, batch_size=64, max_length=max_length)

    fs_scores = first_stage_scores_by_text(test, fs_run) if fusion else {}
    controls: list[str] = []  # rows of the fusion control table, in order

    def names_for(row: _Row) -> tuple[str, str | None]:
        """(name of the reranker-alone result, name of the fused result); ``default*`` ships fused."""
        if not fusion or row.kind == "none":
            return row.name, None
        if row.name.startswith("default"):
            return f"{row.name}-no-fusion", row.name
        return row.name, f"{row.name}+fusion"

    def record(name: str, source: str, report: RerankReport, seed: int, scorer: Any = None) -> None:
        if name not in details:
            details[name] = {"per_seed": [], "short_long": [], "speed": [], "source": source}
        info = details[name]
        name_in_report = next(iter(report.rows))
        per_seed_rows.setdefault(name, []).append(report.rows[name_in_report])
        per_query.setdefault(name, []).append(
            {q: v["mrr@10"] for q, v in report.per_query[name_in_report].items()}
        )
        info["per_seed"].append({"seed": seed, "metrics": report.rows[name_in_report]})
        info["short_long"].append(
            {g: i["rows"].get(name_in_report, {}) for g, i in report.short_long["groups"].items()}
        )
        if scorer is not None:
            info["speed"].append(_speed(report, name_in_report, scorer))
        if generator is not None:
            rag_tops.setdefault(seed, {})[name] = top_contexts(report.runs[name_in_report], rag_contexts)
        logger.info(
            "%s seed %d: %s", name, seed, {k: round(v, 4) for k, v in report.rows[name_in_report].items()}
        )

    for row in rows:
        alone_name, fused_name = names_for(row)
        for seed in seed_list:
            t_row = time.perf_counter()
            fused_report: RerankReport | None = None
            scorer: Any = None
            try:
                if row.kind == "none":
                    report = zero_shot_cache.get("none") or evaluate("none", None)
                    zero_shot_cache["none"] = report
                    details[row.name]["short_long_info"] = {
                        "threshold": report.short_long["threshold"],
                        "length_unit": report.short_long["length_unit"],
                        "n_queries": {g: i["n_queries"] for g, i in report.short_long["groups"].items()},
                    }
                elif row.kind == "zero-shot":
                    if "zero-shot" not in zero_shot_cache:
                        scorer = scorer_for(base_model)
                        zero_fused = None
                        if fusion:
                            choice = zero_shot_fusion_choice()
                            details[row.name]["fusion"] = choice.to_dict()
                            assert fused_name is not None  # names_for names it whenever fusion is on
                            zero_fused = evaluate(fused_name, FusedScorer(scorer, choice, fs_scores))
                        zero_shot_cache["zero-shot"] = (evaluate("zero-shot", scorer), scorer, zero_fused)
                    report, scorer, fused_report = zero_shot_cache["zero-shot"]
                else:
                    report, fused_report, scorer = _train_and_evaluate(
                        row,
                        seed,
                        train,
                        out,
                        details[row.name],
                        evaluate,
                        scorer_for,
                        fs_scores if fusion else None,
                        fused_name,
                        kind=kind,
                        base_model=base_model,
                        epochs=epochs,
                        lr=lr,
                        batch_size=batch_size,
                        margin=margin,
                        max_length=max_length,
                        validation_top_k=validation_top_k,
                        keep_models=keep_models,
                    )
            except (DatasetError, ValueError) as exc:
                logger.warning("%s (seed %d) failed: %s", row.name, seed, exc)
                failed[row.name] = f"seed {seed}: {exc}"
                break
            record(alone_name, row.name, report, seed, scorer)
            if fused_name is not None and fused_report is not None:
                record(fused_name, row.name, fused_report, seed, scorer)
            timings[f"{row.name}/seed{seed}_s"] = round(time.perf_counter() - t_row, 1)
            del scorer
        if fused_name is not None and fused_name in per_seed_rows:
            controls.append(alone_name if fused_name == row.name else fused_name)
        gc.collect()

    done = [r.name for r in rows if r.name in per_seed_rows and r.name not in failed]
    done += [c for c in controls if c in per_seed_rows and details[c]["source"] not in failed]
    for name in list(per_seed_rows):
        if name in failed:
            per_seed_rows.pop(name)
            per_query.pop(name, None)
    if not done:
        raise EvaluationError(f"Every strategy failed: {failed}")
    t0 = time.perf_counter()
    rag_config = _add_rag_values(
        test, details, done, rag_tops, generator, rag_contexts, rag_max_queries, failed
    )
    if generator is not None:
        timings["rag_s"] = round(time.perf_counter() - t0, 1)

    # 5. aggregate, significance, report
    strategies_out: dict[str, Any] = {}
    for name in done:
        info = details[name]
        source = details.get(info.get("source", name), info)
        strategies_out[name] = {
            "per_seed": info["per_seed"],
            "mining": source.get("mining"),
            "training": source.get("training", []),
            "short_long": {
                g: _mean_dicts([s[g] for s in info["short_long"] if s.get(g)]) for g in ("short", "long")
            },
            "speed": info["speed"],
        }
        if source.get("fusion"):
            strategies_out[name]["fusion"] = source["fusion"]
    config = {
        "dataset": data_name,
        "train": repr(train),
        "test": repr(test),
        "strategies": strategies,
        "seeds": seed_list,
        "kind": kind,
        "base_model": base_model,
        "models": model_list,
        "single_model_baselines": single,
        "variance": variance,
        "num_negatives": num_negatives,
        "candidates": candidates,
        "epochs": epochs,
        "lr": lr,
        "batch_size": batch_size,
        "margin": margin,
        "max_length": max_length,
        "first_stage": first_stage,
        "top_k": top_k,
        "validation_top_k": validation_top_k,
        "max_test_queries": max_test_queries,
        "test_queries": len(fs_run),
        "ablation_variance": list(ablation_variance),
        "ablation_single_model": ablation_single_model,
        "ablation_train_size": list(ablation_train_size),
        "ablation_verifier": ablation_verifier,
        "ablation_adapt": ablation_adapt,
        "fusion": fusion,
        "control_rows": [c for c in controls if c in done],
        # only with rag set, so that reports without it still merge with those written before it existed
        **({"rag": rag_config} if rag_config else {}),
    }
    picture = _pca_picture(out / "pca_neighbourhood.png", miners, data_name)
    timings["total_s"] = round(time.perf_counter() - started, 1)
    report_dict = _assemble_report(
        out,
        config,
        list(metrics),
        done,
        {n: per_query[n] for n in done},
        strategies_out,
        details.get("none", {}).get("short_long_info"),
        failed,
        timings,
        n_resamples,
        [picture] if picture is not None else [],
    )
    logger.info("benchmark of %s written to %s (%.0fs)", data_name, out, timings["total_s"])
    return report_dict


def _add_rag_values(
    test: RetrievalDataset,
    details: Mapping[str, Any],
    done: Sequence[str],
    tops: Mapping[int, Mapping[str, Any]],
    generator: SharedAnswers | None,
    contexts: int,
    max_queries: int | None,
    failed: dict[str, str],
) -> dict[str, Any] | None:
    """Answer from every finished row's top documents and put the scores in its ``per_seed`` entries (``"rag"``).

    Returns the report's ``config["rag"]``, or None without a generator or when generation failed (then
    ``failed["rag"]`` says why and the retrieval rows are reported as usual).
    """
    if generator is None:
        return None
    try:
        by_seed = rag_reports_by_seed(
            test,
            {seed: {n: rows[n] for n in done} for seed, rows in tops.items()},
            generator,
            contexts=contexts,
            max_queries=max_queries,
        )
    except Exception as exc:  # the retrieval results are kept; only the RAG section is missing
        logger.error("RAG evaluation failed, reporting retrieval only: %s", exc)
        failed["rag"] = f"{type(exc).__name__}: {exc}"
        return None
    for name in done:
        for entry in details[name]["per_seed"]:
            values = by_seed[entry["seed"]]
            entry["rag"] = {"rows": values["rows"][name], "per_query": values["per_query"][name]}
    logger.info(
        "RAG: %d distinct answers for %d rows x %d seeds", len(generator.answers), len(done), len(by_seed)
    )
    return {"generator": generator.name, "contexts": contexts, "max_queries": max_queries}


def _assemble_report(
    out: Path,
    config: dict[str, Any],
    metrics: list[str],
    done: Sequence[str],
    per_query: Mapping[str, Sequence[Mapping[str, float]]],
    strategies_out: dict[str, Any],
    short_long_info: Any,
    failed: Mapping[str, str],
    timings: Mapping[str, float],
    n_resamples: int,
    extra_plots: Sequence[Path] = (),
) -> dict[str, Any]:
    """Aggregate over seeds, test significance, check the quality bar, plot, write report.json and report.md."""
    n_seeds = len(config["seeds"])
    per_seed_rows = {n: [ps["metrics"] for ps in strategies_out[n]["per_seed"]] for n in done}
    aggregated = aggregate_seed_rows([{n: per_seed_rows[n][i] for n in done} for i in range(n_seeds)])
    for name in done:
        strategies_out[name]["metrics"] = aggregated[name]
    mean_per_query = {
        name: {q: float(np.mean([s[q] for s in per_query[name]])) for q in per_query[name][0]}
        for name in done
    }
    significance: dict[str, dict[str, dict[str, float]]] = {}
    for anchor in ("default", "paper"):
        if anchor not in mean_per_query:
            continue
        qids = list(mean_per_query[anchor])
        significance[anchor] = {}
        for other in done:
            if other == anchor:
                continue
            a = [mean_per_query[anchor][q] for q in qids]
            b = [mean_per_query[other][q] for q in qids]
            significance[anchor][other] = {
                "delta": float(np.mean(a) - np.mean(b)),
                "p_value": paired_permutation_test(a, b, n_resamples=n_resamples, seed=0),
            }
    controls = [c for c in config.get("control_rows", []) if c in done]
    main_rows = [n for n in done if n not in controls]
    plots = _plots(out, {n: aggregated[n] for n in main_rows}, config["dataset"]) + list(extra_plots)
    report_dict: dict[str, Any] = {
        "dataset": config["dataset"],
        "config": config,
        "metrics": metrics,
        "default_strategy": DEFAULT_STRATEGY,
        "rows": {
            n: {m: {"mean": v["mean"], "std": v["std"]} for m, v in aggregated[n].items()} for n in done
        },
        "quality_bar": quality_bar(aggregated, controls),
        "strategies": strategies_out,
        "significance": significance,
        "short_long": {
            "info": short_long_info,
            "rows": {n: strategies_out[n]["short_long"] for n in done},
        },
        "rag": aggregate_rag(config.get("rag"), strategies_out, done, n_resamples),
        "per_query": {
            "metric": "mrr@10",
            "values": mean_per_query,
            "per_seed": {n: [dict(v) for v in per_query[n]] for n in done},
        },
        "failed": dict(failed),
        "plots": [p.name for p in plots],
        "timings_s": dict(timings),
    }
    write_report_json(report_dict, out / "report.json")
    (out / "report.md").write_text(format_benchmark_markdown(report_dict), encoding="utf-8")
    return report_dict


def merge_benchmark_reports(
    reports: Sequence[str | os.PathLike[str] | Mapping[str, Any]],
    out_dir: str | os.PathLike[str],
    n_resamples: int = 10000,
) -> dict[str, Any]:
    """Merge reports of the same benchmark run on different seeds (e.g. one process or machine per seed).

    Every report must come from :func:`run_benchmark` with the same dataset and settings and disjoint seeds; the
    result is the report a single run over all those seeds writes (rows, significance, quality bar, plots), in
    ``out_dir``. The PCA picture of the first report's folder is copied over when there is one.

    Args:
        reports: ``report.json`` paths or loaded reports.
        out_dir: where the merged ``report.json``, ``report.md`` and plots go.
        n_resamples: permutations of the paired significance tests.

    Raises:
        EvaluationError: no report, different datasets or settings, or overlapping seeds.

    Example:
        >>> merged = merge_benchmark_reports(["b/seed0/report.json", "b/seed1/report.json"], "b")  # doctest: +SKIP
        >>> merged["config"]["seeds"]  # doctest: +SKIP
        [0, 1]
    """
    loaded: list[dict[str, Any]] = []
    folders: list[Path | None] = []
    for r in reports:
        if isinstance(r, Mapping):
            loaded.append(dict(r))
            folders.append(None)
        else:
            path = Path(r)
            loaded.append(json.loads(path.read_text(encoding="utf-8")))
            folders.append(path.parent)
    if not loaded:
        raise EvaluationError("merge_benchmark_reports() needs at least one report.")
    first = loaded[0]
    ignore = {"seeds", "train", "test"}
    reference = {k: v for k, v in first["config"].items() if k not in ignore}
    seeds: list[int] = []
    for r in loaded:
        if "per_seed" not in (r.get("per_query") or {}):
            raise EvaluationError(
                f"Report of {r.get('dataset')} has no per-seed per-query values; rerun it with this version."
            )
        other = {k: v for k, v in r["config"].items() if k not in ignore}
        if other != reference:
            diff = sorted(k for k in set(other) | set(reference) if other.get(k) != reference.get(k))
            raise EvaluationError(
                f"Reports differ in settings {diff}; merge only runs of the same benchmark."
            )
        overlap = set(seeds) & set(r["config"]["seeds"])
        if overlap:
            raise EvaluationError(f"Seeds {sorted(overlap)} appear in more than one report.")
        seeds += list(r["config"]["seeds"])
    done = [n for n in first["rows"] if all(n in r["rows"] for r in loaded)]
    weights = [len(r["config"]["seeds"]) for r in loaded]
    strategies_out: dict[str, Any] = {}
    per_query: dict[str, list[dict[str, float]]] = {}
    for name in done:
        parts = [r["strategies"][name] for r in loaded]
        strategies_out[name] = {
            "per_seed": [ps for p in parts for ps in p["per_seed"]],
            "mining": parts[0].get("mining"),
            "training": [t for p in parts for t in p.get("training") or []],
            "short_long": {
                g: _weighted_mean_dicts([p["short_long"].get(g) or {} for p in parts], weights)
                for g in ("short", "long")
            },
            "speed": [x for p in parts for x in p.get("speed") or []],
        }
        if parts[0].get("fusion"):
            strategies_out[name]["fusion"] = parts[0]["fusion"]
        per_query[name] = [v for r in loaded for v in r["per_query"]["per_seed"][name]]
    config = {**first["config"], "seeds": seeds}
    failed: dict[str, str] = {}
    timings: dict[str, float] = {}
    for r in loaded:
        failed.update(r.get("failed") or {})
        for k, v in (r.get("timings_s") or {}).items():
            timings[f"seeds{'-'.join(map(str, r['config']['seeds']))}/{k}"] = v
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    extra: list[Path] = []
    for folder in folders:
        picture = folder / "pca_neighbourhood.png" if folder is not None else None
        if picture is not None and picture.is_file():
            target = out / picture.name
            if picture.resolve() != target.resolve():
                shutil.copyfile(picture, target)
            extra.append(target)
            break
    info = (first.get("short_long") or {}).get("info")
    return _assemble_report(
        out,
        config,
        list(first["metrics"]),
        done,
        per_query,
        strategies_out,
        info,
        failed,
        timings,
        n_resamples,
        extra,
    )


def _weighted_mean_dicts(values: Sequence[Mapping[str, float]], weights: Sequence[int]) -> dict[str, float]:
    pairs = [(v, w) for v, w in zip(values, weights, strict=True) if v]
    if not pairs:
        return {}
    total = sum(w for _, w in pairs)
    return {k: float(sum(v[k] * w for v, w in pairs) / total) for k in pairs[0][0]}


def quality_bar(
    rows: Mapping[str, Mapping[str, Mapping[str, float]]],
    controls: Sequence[str] = (),
    metric: str = "mrr@10",
    over_start: float = 0.10,
    over_others: float = 0.03,
) -> dict[str, Any] | None:
    """How ``default`` compares with the bar of issue 3: ``metric`` at least ``over_start`` above the better of
    ``none`` and ``zero-shot``, and at least ``over_others`` above the best other strategy.

    The other strategies are every row but ``none``, ``zero-shot``, the controls and ``default``'s own ablations
    (``default@train*``, ``default+verify``). ``controls`` (the fused rows and ``default-no-fusion``) are reported
    beside: the best fused control (any control but the ``-no-fusion`` rows) says how much of ``default``'s lead
    comes from its negatives and training rather than from fusion alone.

    Example:
        >>> rows = {"none": {"mrr@10": {"mean": 0.5}}, "zero-shot": {"mrr@10": {"mean": 0.6}},
        ...         "paper": {"mrr@10": {"mean": 0.62}}, "default": {"mrr@10": {"mean": 0.7}}}
        >>> bar = quality_bar(rows)
        >>> round(bar["lift_over_start"], 3), bar["best_other"], bar["met"]
        (0.167, 'paper', True)
    """
    if "default" not in rows:
        return None
    value = {n: float(r[metric]["mean"]) for n, r in rows.items() if metric in r}
    start = max((n for n in ("none", "zero-shot") if n in value), key=lambda n: value[n], default=None)
    # other strategies: not the starting points, not default's own ablations (default@train*, default+verify)
    others = [
        n
        for n in value
        if n not in {"none", "zero-shot"} and not n.startswith("default") and n not in controls
    ]
    best_other = max(others, key=lambda n: value[n], default=None)
    fused = [c for c in controls if not c.endswith("-no-fusion") and c in value]
    best_control = max(fused, key=lambda n: value[n], default=None)

    def lift(name: str | None) -> float | None:
        return value["default"] / value[name] - 1.0 if name is not None and value[name] > 0 else None

    out: dict[str, Any] = {
        "metric": metric,
        "default": value["default"],
        "start": start,
        "lift_over_start": lift(start),
        "best_other": best_other,
        "lift_over_best_other": lift(best_other),
        "best_fused_control": best_control,
        "lift_over_best_fused_control": lift(best_control),
        "targets": {"over_start": over_start, "over_others": over_others},
    }
    out["met"] = bool(
        out["lift_over_start"] is not None
        and out["lift_over_start"] >= over_start
        and (out["lift_over_best_other"] is None or out["lift_over_best_other"] >= over_others)
    )
    return out


def _mean_dicts(values: Sequence[Mapping[str, float]]) -> dict[str, float]:
    if not values:
        return {}
    return {k: float(np.mean([v[k] for v in values])) for k in values[0]}


def _speed(report: RerankReport, name: str, scorer: Any) -> dict[str, Any]:
    speed = dict(report.speed.get(name) or {})
    encode = float(getattr(scorer, "encode_seconds", 0.0) or 0.0)
    documents = float(speed.get("documents") or 0.0)
    # the up-front encoding is part of the reranking cost: count it
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


def _train_and_evaluate(
    row: _Row,
    seed: int,
    train: RetrievalDataset,
    out: Path,
    info: dict[str, Any],
    evaluate: Any,
    scorer_for: Any,
    fs_scores: Mapping[str, Mapping[str, float]] | None,
    fused_name: str | None,
    **settings: Any,
) -> tuple[RerankReport, RerankReport | None, Any]:
    """Mine, fine-tune, evaluate the reranker alone and (with ``fs_scores``) fused with the first stage."""
    from hn_plugins.training.trainer import fine_tune_reranker

    result = row.mine(seed)
    summary = _mining_summary(result)
    if info["mining"] is None or row.name == "random" or row.name.startswith("default"):
        info.setdefault("mining_per_seed", []).append({"seed": seed, **summary})
        info["mining"] = summary
    train_data = train
    if row.train_fraction is not None and row.train_fraction < 1.0:
        qids = sorted(train.judged_query_ids)
        n = max(2, round(row.train_fraction * len(qids)))
        keep = set(random.Random(seed).sample(qids, n))
        train_data = train.subset(
            [q for q in train.judged_query_ids if q in keep], name=f"{train.name}[{n}q]"
        )
        from hn_plugins.mining.result import MiningResult

        records = [r for r in result.records if r.query_id in train_data.queries]
        result = MiningResult(records, selector=result.selector, diagnostics=result.diagnostics)
    safe = row.name.replace("@", "_").replace("/", "_")
    result.to_jsonl(out / "triplets" / f"{safe}-seed{seed}.jsonl")
    model_dir = out / "models" / f"{safe}-seed{seed}"
    base_model, adaptation = settings["base_model"], None
    if row.adapt:
        from hn_plugins.training.corpus_adaptation import adapt_bi_encoder

        base_model = adapt_bi_encoder(
            train_data,
            settings["base_model"],
            output_dir=out / "models" / f"{safe}-start-seed{seed}",
            check_top_k=settings["validation_top_k"],
            seed=seed,
            device="cpu" if not _has_cuda() else None,
        )
        adaptation = json.loads((base_model / "hn_reranker.json").read_text(encoding="utf-8"))["metrics"]
        adaptation["started_from_adapted"] = bool(adaptation["check"]["adapted_is_better"])
        if not adaptation["started_from_adapted"]:
            logger.info(
                "%s seed %d: adapting did not help the train queries; fine-tuning the base model.",
                row.name,
                seed,
            )
            shutil.rmtree(base_model, ignore_errors=True)
            base_model = settings["base_model"]
    trained = fine_tune_reranker(
        result,
        train_data,
        base_model,
        kind=settings["kind"],
        loss=row.loss,
        margin=settings["margin"],
        num_negatives=settings.get("num_negatives"),
        epochs=settings["epochs"],
        lr=settings["lr"],
        batch_size=settings["batch_size"],
        seed=seed,
        first_stage_top_k=settings["validation_top_k"],
        output_dir=model_dir,
        max_length=settings["max_length"],
        device="cpu" if not _has_cuda() else None,
        choose_fusion=fs_scores is not None,
        selection=row.selection,
        folds=DEFAULT_STRATEGY["folds"],
    )
    m = trained.metrics
    info["training"].append(
        {
            "seed": seed,
            "selected": m.get("selected"),
            "selected_step": m.get("selected_step"),
            "steps": m.get("steps"),
            "train_rows": m.get("train_rows"),
            "train_seconds": m.get("train_seconds"),
            "validation_mrr@10_start": m.get("validation_mrr@10_start"),
            "validation_mrr@10_selected": m.get("validation_mrr@10_selected"),
            "validation_curve": trained.history,
            "selection": m.get("selection"),
            "validation_queries": m.get("validation_queries"),
            "fusion": trained.fusion.to_dict() if trained.fusion is not None else None,
            **({"adaptation": adaptation} if adaptation is not None else {}),
        }
    )
    scorer = scorer_for(trained.path)
    report = evaluate(row.name, scorer)
    fused = None
    if fs_scores is not None and trained.fusion is not None and fused_name is not None:
        fused = evaluate(fused_name, FusedScorer(scorer, trained.fusion, fs_scores))
    if not settings["keep_models"]:
        shutil.rmtree(model_dir, ignore_errors=True)
        if row.adapt and adaptation is not None and adaptation["started_from_adapted"]:
            shutil.rmtree(base_model, ignore_errors=True)
    return report, fused, scorer


def _zero_shot_fusion(
    train: RetrievalDataset, base_model: str, kind: str, max_length: int | None, top_k: int
) -> Any:
    """The fusion weight of the untrained starting model, chosen on every judged *train* query (BM25 top-k)."""
    from hn_plugins.training.evaluator import RerankingMRREvaluator

    evaluator = RerankingMRREvaluator(train, top_k=top_k, name="zero-shot-fusion", write_csv=False)
    if kind == "bi":
        model: Any = _load_bi_encoder(base_model, max_length)
    else:
        from hn_plugins.reranker import CrossEncoderReranker

        model = CrossEncoderReranker(base_model, max_length=max_length).model
    choice = evaluator.choose_fusion(model)
    if choice is None:  # pragma: no cover - BM25 candidates always carry scores
        raise EvaluationError("No first-stage scores to choose a fusion weight with.")
    return choice


def _has_cuda() -> bool:
    try:
        import torch

        return bool(torch.cuda.is_available())
    except ImportError:  # pragma: no cover
        return False


def _plots(out: Path, aggregated: Mapping[str, Any], title: str) -> list[Path]:
    paths = []
    for metric in ("mrr@10", "mrr@3"):
        name = metric.replace("@", "_at_")
        paths.append(plot_metric_bars(aggregated, metric, out / f"{name}.png", title=f"{title}: {metric}"))
    return paths


def _pca_picture(path: Path, miners: _Miners, title: str) -> Path | None:
    """The paper's Figure 2: one train query, its positive and its paper negatives, in the mining space."""
    key = next((k for k in miners.fitted if k[0] == "paper" and k[1] == tuple(miners.models)), None)
    key = key or next((k for k in miners.fitted if k[0] == "paper"), None)
    if key is None:
        return None
    miner, result = miners.fitted[key], miners.results[key]
    with_neg = [r for r in result.records if r.negative_ids]
    if not with_neg:
        return None
    rec = max(with_neg, key=lambda r: (len(r.negative_ids), -(r.d_q_pos or 0.0)))
    row_of = {d: i for i, d in enumerate(miner.doc_ids_)}
    vectors = miner.doc_vectors_
    query = miner.embed_queries([miners.train.queries[rec.query_id]])[0]
    positives = [row_of[p] for p in sorted(miners.train.positives(rec.query_id)) if p in row_of]
    negatives = [row_of[n] for n in rec.negative_ids if n in row_of]
    rng = np.random.default_rng(0)
    taken = set(positives) | set(negatives)
    pool = [i for i in range(len(vectors)) if i not in taken]
    others = sorted(rng.choice(pool, size=min(300, len(pool)), replace=False).tolist()) if pool else []
    return plot_pca_neighbourhood(
        query,
        vectors[positives],
        vectors[negatives],
        vectors[others] if others else None,
        path,
        title=f"{title}: query {rec.query_id}, paper negatives (ensemble + PCA space)",
    )


def format_benchmark_markdown(report: Mapping[str, Any], digits: int = 3) -> str:
    """The benchmark report as Markdown: the table, mining diagnostics, significance, short/long, speed.

    Example:
        >>> text = format_benchmark_markdown({"dataset": "toy", "config": {}, "metrics": ["mrr@10"],
        ...                                   "rows": {"none": {"mrr@10": {"mean": 0.5, "std": 0.0}}}})
        >>> "| none | 0.500 ± 0.000 |" in text
        True
    """
    cfg = report.get("config", {})
    metrics = list(report.get("metrics") or [])
    parts = [f"# Strategy benchmark: {report.get('dataset', '')}", ""]
    if cfg:
        parts += [
            f"{cfg.get('kind')}-encoder reranker from `{cfg.get('base_model')}`, {cfg.get('epochs')} epoch(s), lr "
            f"{cfg.get('lr')}, batch {cfg.get('batch_size')}, {cfg.get('num_negatives')} mined negative(s) per pair, "
            f"seeds {cfg.get('seeds')}; test: {cfg.get('first_stage')} top-{cfg.get('top_k')} reranked, "
            f"{cfg.get('test_queries')} queries; ensemble {cfg.get('models')} + PCA {cfg.get('variance')}.",
            "",
        ]
    controls = set(cfg.get("control_rows") or [])
    main = {n: v for n, v in report["rows"].items() if n not in controls}
    parts += [
        "Mean ± std over seeds. Each strategy's row is its fine-tuned reranker alone (the paper's setting);"
        + (
            " `default` is the configuration we ship: its reranker fused with BM25 by the weight chosen on its"
            " validation queries."
            if controls
            else ""
        ),
        "",
        format_markdown_table(main, metrics, digits, "strategy"),
        "",
    ]
    if controls:
        parts += [
            "### Fusion control: every row fused with BM25 (weight chosen on validation, never on test)",
            "",
            format_markdown_table(
                {n: v for n, v in report["rows"].items() if n in controls}, metrics, digits, "row"
            ),
            "",
        ]
    bar = report.get("quality_bar")
    if bar:

        def pct(x: float | None) -> str:
            return "–" if x is None else f"{100 * x:+.1f}%"

        parts += [
            "### Quality bar (`default`, MRR@10)",
            "",
            f"- vs the better of none / zero-shot (`{bar['start']}`): {pct(bar['lift_over_start'])} "
            f"(target +{100 * bar['targets']['over_start']:.0f}%)",
            (
                f"- vs the best other strategy (`{bar['best_other']}`): {pct(bar['lift_over_best_other'])} "
                if bar["best_other"] is not None
                else "- vs the best other strategy: none in this run "
            )
            + f"(target +{100 * bar['targets']['over_others']:.0f}%)",
        ]
        if bar.get("best_fused_control"):
            parts.append(
                f"- vs the best fused control (`{bar['best_fused_control']}`): "
                f"{pct(bar['lift_over_best_fused_control'])}"
            )
        parts += [f"- met: **{'yes' if bar['met'] else 'no'}**", ""]
    strategies = {n: v for n, v in (report.get("strategies") or {}).items() if n not in controls}
    mining = {
        n: s["mining"]
        for n, s in strategies.items()
        if s.get("mining") and s["mining"].get("selector") != "in-batch"
    }
    if mining:
        parts += [
            "## Mining (train split)",
            "",
            "| strategy | pairs | with negative | selection rate | negatives | queries without negative |",
            "|---|---|---|---|---|---|",
        ]
        for n, m in mining.items():
            parts.append(
                f"| {n} | {m.get('pairs')} | {m.get('pairs_with_negative')} | {m.get('selection_rate', 0):.3f} | "
                f"{m.get('negatives')} | {m.get('queries_without_negative')} |"
            )
        if "in-batch" in strategies:
            parts.append("")
            parts.append(
                "`in-batch` mines nothing: other pairs' positives are its negatives at training time."
            )
        for n, m in mining.items():
            if isinstance(m.get("verifier"), dict):
                parts += [
                    "",
                    f"`{n}`: the verifier ({m['verifier'].get('teacher')}, margin {m['verifier'].get('margin')}) "
                    f"dropped {m.get('negatives_dropped')} of {m.get('negatives_checked')} paper + fallback "
                    f"negatives; {m.get('pairs_moved_to_fallback')} pair(s) moved to the fallback, "
                    f"{m.get('pairs_emptied_by_verifier')} lost every hard negative (see verifier_dropped.json).",
                ]
        parts.append("")
    training = {n: s["training"] for n, s in strategies.items() if s.get("training")}
    if training:
        parts += [
            "## Training (validation on train queries, never test)",
            "",
            "`holdout`: 20% of the train queries held out; `cross-fit`: every train query, held out of one fold model"
            " (the values are pooled over the folds; `final` = trained on all train queries for the chosen epochs).",
            "",
            "| strategy | seed | validation | rows | steps | seconds | val MRR@10 start | val MRR@10 kept | kept |"
            " fusion weight | val MRR@10 fused |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for n, runs in training.items():
            for t in runs:
                start, kept = t.get("validation_mrr@10_start"), t.get("validation_mrr@10_selected")
                fusion = t.get("fusion") or {}
                fused = (fusion.get("validation") or {}).get("mrr@10_fused")
                parts.append(
                    f"| {n} | {t['seed']} | {t.get('selection') or 'holdout'} ({t.get('validation_queries', '?')} q) | "
                    f"{t.get('train_rows')} | {t.get('steps')} | {t.get('train_seconds')} | "
                    f"{'–' if start is None else f'{start:.3f}'} | {'–' if kept is None else f'{kept:.3f}'} | "
                    f"{t.get('selected')} | {fusion.get('weight', '–')} | {'–' if fused is None else f'{fused:.3f}'} |"
                )
        parts.append("")
        parts += _adaptation_section(training)
    for anchor, rows in (report.get("significance") or {}).items():
        parts += [
            f"## `{anchor}` vs each row (paired permutation test, per-query MRR@10, mean over seeds)",
            "",
            "| row | Δ MRR@10 | p |",
            "|---|---|---|",
        ]
        parts += [f"| {n} | {s['delta']:+.{digits}f} | {s['p_value']:.4f} |" for n, s in rows.items()]
        parts.append("")
    parts += format_rag_section(report.get("rag"), digits)
    short_long = report.get("short_long") or {}
    if short_long.get("rows"):
        info = short_long.get("info") or {}
        parts += [
            f"## Short vs long positive documents (threshold {info.get('threshold', '?')} "
            f"{info.get('length_unit', '')}; queries {info.get('n_queries', '?')})",
            "",
        ]
        for group in ("short", "long"):
            rows = {n: v.get(group, {}) for n, v in short_long["rows"].items() if v.get(group)}
            if rows:
                parts += [f"**{group}**", "", format_markdown_table(rows, metrics, digits, "strategy"), ""]
    speeds = {n: s["speed"] for n, s in strategies.items() if s.get("speed")}
    if speeds:
        parts += ["## Reranking speed (encoding included)", "", "| strategy | documents/s |", "|---|---|"]
        for n, runs in speeds.items():
            values = [r["docs_per_second"] for r in runs if r.get("docs_per_second")]
            parts.append(f"| {n} | {np.mean(values):.1f} |" if values else f"| {n} | – |")
        parts.append("")
    if report.get("failed"):
        parts += ["## Failed", ""] + [f"- {n}: {why}" for n, why in report["failed"].items()] + [""]
    if report.get("plots"):
        parts += ["## Plots", ""] + [f"![{p}]({p})" for p in report["plots"]] + [""]
    return "\n".join(parts)


def _adaptation_section(training: Mapping[str, Any]) -> list[str]:
    """report.md lines on the corpus adaptations of ``default+adapt``: their check and which start was trained."""
    lines = []
    for name, runs in training.items():
        for t in runs:
            a = t.get("adaptation")
            if not a:
                continue
            c = a.get("check") or {}
            lines.append(
                f"| {name} | {t['seed']} | {a.get('pseudo_queries')} | {a.get('train_seconds')} | "
                f"{c.get('queries', '–')} | {c.get('untuned_mrr@10_fused', float('nan')):.3f} | "
                f"{c.get('adapted_mrr@10_fused', float('nan')):.3f} | "
                f"{'adapted' if a.get('started_from_adapted') else 'base model'} |"
            )
    if not lines:
        return []
    return [
        "## Corpus adaptation (no labels), checked on the judged train queries",
        "",
        "BM25 top-k of every judged train query reranked by the untuned and the adapted model, each fused with BM25 at"
        " its best weight; the fine-tune starts from the adapted model only if it is better there.",
        "",
        "| row | seed | pseudo-queries | seconds | train queries | untuned MRR@10 fused | adapted MRR@10 fused |"
        " fine-tuned from |",
        "|---|---|---|---|---|---|---|---|",
        *lines,
        "",
    ]
