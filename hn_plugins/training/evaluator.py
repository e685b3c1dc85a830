"""Validation during training: rerank first-stage candidates of held-out queries and report MRR@k.

:class:`RerankingMRREvaluator` follows sentence-transformers' evaluator protocol
(``__call__(model, output_path=None, epoch=-1, steps=-1) -> dict``, ``primary_metric``), so the same object runs
alone or inside ``CrossEncoderTrainer`` / ``SentenceTransformerTrainer`` for early stopping. It scores with a
``CrossEncoder`` (raw logits), a ``SentenceTransformer`` (cosine) or any object with ``score(query, documents)``.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hn_plugins.bm25 import BM25Index
from hn_plugins.data import DatasetError, RetrievalDataset
from hn_plugins.fusion import (
    DEFAULT_FUSION_RULE,
    FusionRule,
    Normalization,
    ScoreFusion,
    choose_fusion_weight,
)
from hn_plugins.metrics import mrr_at_k

logger = logging.getLogger(__name__)

__all__ = [
    "RerankingMRREvaluator",
    "bm25_candidates",
    "bm25_scored_candidates",
    "mrr_at_k",
    "score_documents",
]

try:  # the evaluator protocol's base class; plain object when sentence-transformers is missing
    from sentence_transformers.base.evaluation import BaseEvaluator as _BaseEvaluator
except ImportError:  # pragma: no cover - depends on the environment
    _BaseEvaluator = object  # type: ignore[assignment,misc]


def bm25_candidates(
    dataset: RetrievalDataset, query_ids: Iterable[str] | None = None, top_k: int = 100, stem: bool = True
) -> dict[str, list[str]]:
    """BM25 top-``k`` document ids per query; see :func:`bm25_scored_candidates` (which also gives the scores)."""
    return {
        q: [d for d, _ in ranked]
        for q, ranked in bm25_scored_candidates(dataset, query_ids, top_k, stem).items()
    }


def bm25_scored_candidates(
    dataset: RetrievalDataset, query_ids: Iterable[str] | None = None, top_k: int = 100, stem: bool = True
) -> dict[str, list[tuple[str, float]]]:
    """BM25 top-``k`` ``(document id, score)`` per query (:class:`hn_plugins.bm25.BM25Index`: Lucene variant,
    k1=1.5, b=0.75, English stop words, ``title + " " + text`` indexed), ranked as the test first stage ranks them
    (:func:`hn_plugins.bm25.bm25_run`): the query's excluded documents removed before the cut-off (e.g.
    Cranfield's source papers), ties by document id.

    Args:
        dataset: corpus and queries.
        query_ids: which queries (default: the judged ones).
        top_k: candidates per query.
        stem: use the Snowball English stemmer.

    Raises:
        ImportError: bm25s or PyStemmer is missing (``pip install "hn-plugins[bm25]"``).
    """
    qids = list(dataset.judged_query_ids if query_ids is None else query_ids)
    if not qids:
        return {}
    index = BM25Index.from_dataset(dataset, stemmer="english" if stem else None)
    k = min(top_k, len(dataset.corpus))
    return index.retrieve({q: dataset.queries[q] for q in qids}, top_k=k, exclude=dataset.excluded)


def _is_cross_encoder(model: Any) -> bool:
    try:
        from sentence_transformers.cross_encoder import CrossEncoder
    except ImportError:  # pragma: no cover
        return False
    return isinstance(model, CrossEncoder)


def _is_sentence_transformer(model: Any) -> bool:
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError:  # pragma: no cover
        return False
    return isinstance(model, SentenceTransformer)


def score_documents(
    model: Any, queries: Sequence[str], documents: Sequence[Sequence[str]], batch_size: int = 32
) -> list[np.ndarray]:
    """Score each query's documents with a cross-encoder (raw logits), a bi-encoder (cosine) or a ``score()`` object.

    A bi-encoder encodes every distinct document once for all queries.
    """
    if len(queries) != len(documents):
        raise ValueError(f"score_documents(): {len(queries)} queries but {len(documents)} document lists.")
    if _is_cross_encoder(model):
        import torch

        pairs = [(q, d) for q, docs in zip(queries, documents, strict=True) for d in docs]
        flat = (
            model.predict(
                pairs,
                batch_size=batch_size,
                activation_fn=torch.nn.Identity(),
                show_progress_bar=False,
                convert_to_numpy=True,
            )
            if pairs
            else np.zeros(0)
        )
        flat = np.asarray(flat, dtype=np.float32).reshape(-1)
        out, start = [], 0
        for docs in documents:
            out.append(flat[start : start + len(docs)])
            start += len(docs)
        return out
    if _is_sentence_transformer(model):
        unique = list(dict.fromkeys(d for docs in documents for d in docs))
        kw: dict[str, Any] = {
            "batch_size": batch_size,
            "convert_to_numpy": True,
            "normalize_embeddings": True,
            "show_progress_bar": False,
        }
        doc_vectors = model.encode(unique, **kw) if unique else np.zeros((0, 1), dtype=np.float32)
        query_vectors = model.encode(list(queries), **kw)
        row = {d: i for i, d in enumerate(unique)}
        return [
            np.asarray(doc_vectors[[row[d] for d in docs]] @ query_vectors[i], dtype=np.float32)
            if docs
            else np.zeros(0, dtype=np.float32)
            for i, docs in enumerate(documents)
        ]
    if hasattr(model, "score"):
        return [
            np.asarray(model.score(q, list(docs)), dtype=np.float32)
            for q, docs in zip(queries, documents, strict=True)
        ]
    raise TypeError(
        f"Cannot score with {type(model)}: pass a CrossEncoder, a SentenceTransformer or an object with "
        "score(query, documents)."
    )


class RerankingMRREvaluator(_BaseEvaluator):
    """Rerank first-stage candidates of judged queries; report MRR@3 and MRR@10 (primary: MRR@10).

    Args:
        dataset: the validation queries and their judgments (e.g. the held-out part of ``train.split()``); never
            pass the test split here.
        candidates: ``{query_id: [doc_id, ...]}`` first-stage results; computed with :func:`bm25_candidates`
            when ``None``.
        top_k: first-stage depth when ``candidates`` is ``None``.
        name: prefix of the metric names (``{name}_mrr@10``).
        batch_size: scoring batch size.
        write_csv: append one line per call to ``{name}_results.csv`` in ``output_path``.
        first_stage_scores: ``{query_id: [score, ...]}``, aligned with ``candidates``, for
            :meth:`choose_fusion`; kept from BM25 when ``candidates`` is ``None``.
        first_stage_name: what produced the candidates (stored with the fusion weight; ``bm25`` when computed here).
        record_scores: keep every call's candidate scores in :attr:`recorded` (``{"epoch", "step", "scores"}``),
            for selection across several evaluators (cross-fitting).

    Calls add their wall-clock time to :attr:`seconds`, so a training run can report how much of it validated.

    Example:
        >>> from hn_plugins.data import RetrievalDataset
        >>> ds = RetrievalDataset(corpus={"d1": ("", "wing flutter"), "d2": ("", "heat transfer")},
        ...                       queries={"q1": "flutter"}, qrels={"q1": {"d1": 1}})
        >>> class Overlap:
        ...     def score(self, query, documents):
        ...         return [float(query in d) for d in documents]
        >>> evaluator = RerankingMRREvaluator(ds, candidates={"q1": ["d2", "d1"]})
        >>> evaluator(Overlap())["validation_mrr@10"]
        1.0
    """

    def __init__(
        self,
        dataset: RetrievalDataset,
        candidates: dict[str, list[str]] | None = None,
        top_k: int = 100,
        name: str = "validation",
        batch_size: int = 32,
        write_csv: bool = True,
        first_stage_scores: Mapping[str, Sequence[float]] | None = None,
        first_stage_name: str = "given",
        record_scores: bool = False,
    ) -> None:
        super().__init__()
        self.record_scores = record_scores
        self.recorded: list[dict[str, Any]] = []
        self.seconds = 0.0
        queries = dataset.judged_query_ids
        if not queries:
            raise DatasetError(
                f"RerankingMRREvaluator: dataset {dataset.name!r} has no judged query to validate on."
            )
        if candidates is None:
            scored = bm25_scored_candidates(dataset, queries, top_k=top_k)
            candidates = {q: [d for d, _ in ranked] for q, ranked in scored.items()}
            first_stage_scores = {q: [x for _, x in ranked] for q, ranked in scored.items()}
            first_stage_name = "bm25"
        self.first_stage_name = first_stage_name
        unknown = sorted({d for q in queries for d in candidates.get(q, []) if d not in dataset.corpus})
        if unknown:
            raise DatasetError(f"RerankingMRREvaluator: candidates name unknown document ids {unknown[:5]}.")
        self.dataset = dataset
        self.query_ids = [q for q in queries if candidates.get(q)]
        self.candidates = {q: list(candidates[q]) for q in self.query_ids}
        self.top_k = max((len(c) for c in self.candidates.values()), default=0)
        self.first_stage_scores: dict[str, list[float]] | None = None
        if first_stage_scores is not None:
            bad = [q for q in self.query_ids if len(first_stage_scores.get(q, ())) != len(self.candidates[q])]
            if bad:
                raise DatasetError(
                    f"RerankingMRREvaluator: first_stage_scores of {len(bad)} quer(ies) (e.g. {bad[0]!r}) do not "
                    "match their candidates; pass one score per candidate document."
                )
            self.first_stage_scores = {q: [float(x) for x in first_stage_scores[q]] for q in self.query_ids}
        self.name = name
        self.batch_size = batch_size
        self.write_csv = write_csv
        self.greater_is_better = True
        self.primary_metric = "mrr@10"
        self.per_query: dict[str, float] = {}
        self.first_stage = {
            "mrr@3": float(
                np.mean([mrr_at_k(self.candidates[q], dataset.positives(q), 3) for q in self.query_ids])
            ),
            "mrr@10": float(
                np.mean([mrr_at_k(self.candidates[q], dataset.positives(q), 10) for q in self.query_ids])
            ),
        }

    def scores(self, model: Any) -> list[np.ndarray]:
        """The model's score of every candidate, per query (in ``query_ids`` order)."""
        return score_documents(
            model,
            [self.dataset.queries[q] for q in self.query_ids],
            [[self.dataset.document_text(d) for d in self.candidates[q]] for q in self.query_ids],
            batch_size=self.batch_size,
        )

    def choose_fusion(
        self, model: Any, normalization: Normalization = "z", rule: FusionRule = DEFAULT_FUSION_RULE
    ) -> ScoreFusion | None:
        """Choose the weight that mixes the model's scores with the first stage's on these queries.

        ``rule`` is :func:`~hn_plugins.fusion.choose_fusion_weight`'s (``one-se`` or ``best``); the returned
        fusion's ``validation`` records it. Returns ``None`` when the evaluator has no first-stage scores
        (candidates were given without them).
        """
        if self.first_stage_scores is None:
            return None
        scores = self.scores(model)
        weight, curve = choose_fusion_weight(
            [
                (s, self.first_stage_scores[q], [d in self.dataset.positives(q) for d in self.candidates[q]])
                for q, s in zip(self.query_ids, scores, strict=True)
            ],
            normalization=normalization,
            rule=rule,
        )
        logger.info(
            "%s: fusion weight %.1f (MRR@10 %.4f fused vs %.4f reranker alone, %.4f first stage).",
            self.name,
            weight,
            curve[weight],
            curve[1.0],
            curve[0.0],
        )
        return ScoreFusion(
            weight=weight,
            normalization=normalization,
            first_stage=self.first_stage_name,
            validation={
                "queries": len(self.query_ids),
                "mrr@10_fused": curve[weight],
                "mrr@10_reranker": curve[1.0],
                "mrr@10_first_stage": curve[0.0],
                "rule": rule,
            },
        )

    def rerank(self, model: Any) -> dict[str, list[str]]:
        """Candidates of every query, reordered by the model's scores (stable for ties)."""
        return self.order_by(self.scores(model))

    def order_by(self, scores: Sequence[np.ndarray]) -> dict[str, list[str]]:
        """Candidates of every query ordered by ``scores`` (one array per query, ``query_ids`` order; stable)."""
        return {
            q: [self.candidates[q][i] for i in np.argsort(-s, kind="stable")]
            for q, s in zip(self.query_ids, scores, strict=True)
        }

    def __call__(
        self,
        model: Any,
        output_path: str | None = None,
        epoch: float = -1,
        steps: int = -1,
    ) -> dict[str, float]:
        started = time.perf_counter()
        scores = self.scores(model)
        if self.record_scores:
            self.recorded.append({"epoch": float(epoch), "step": int(steps), "scores": scores})
        ranked = self.order_by(scores)
        mrr10 = {q: mrr_at_k(ranked[q], self.dataset.positives(q), 10) for q in self.query_ids}
        mrr3 = {q: mrr_at_k(ranked[q], self.dataset.positives(q), 3) for q in self.query_ids}
        self.per_query = mrr10
        metrics = {
            "mrr@3": float(np.mean(list(mrr3.values()))),
            "mrr@10": float(np.mean(list(mrr10.values()))),
        }
        logger.info(
            "%s after epoch %s step %s: MRR@10 %.4f (first stage %.4f, %d queries)",
            self.name,
            epoch,
            steps,
            metrics["mrr@10"],
            self.first_stage["mrr@10"],
            len(self.query_ids),
        )
        if output_path is not None and self.write_csv:
            os.makedirs(output_path, exist_ok=True)
            path = Path(output_path) / f"{self.name}_results.csv"
            new = not path.is_file()
            with path.open("a", newline="", encoding="utf-8") as handle:
                writer = csv.writer(handle)
                if new:
                    writer.writerow(["epoch", "steps", "mrr@3", "mrr@10"])
                writer.writerow([epoch, steps, metrics["mrr@3"], metrics["mrr@10"]])
        prefixed = (
            self.prefix_name_to_metrics(metrics, self.name)
            if hasattr(self, "prefix_name_to_metrics")
            else {f"{self.name}_{k}": v for k, v in metrics.items()}
        )
        if hasattr(self, "store_metrics_in_model_card_data") and hasattr(model, "model_card_data"):
            # sentence-transformers annotates epoch as int, but its trainer passes the fractional state.epoch
            self.store_metrics_in_model_card_data(model, prefixed, epoch, steps)  # type: ignore[arg-type]
        self.seconds += time.perf_counter() - started
        return prefixed

    def get_config_dict(self) -> dict[str, Any]:
        return {"queries": len(self.query_ids), "top_k": self.top_k}

    def save_per_query(self, path: str | os.PathLike[str]) -> Path:
        """Write the last call's per-query MRR@10 as JSON."""
        target = Path(path)
        target.write_text(json.dumps(self.per_query, indent=1), encoding="utf-8")
        return target
