"""Negative selectors behind one interface: the paper's criteria and the baselines of the benchmark.

Every selector receives a :class:`SelectionContext` (the dataset, and where it needs one, the embedding space and
its FAISS index) and returns one :class:`~hn_plugins.mining.result.TripletRecord` per (query, positive) pair.
A query's positives and excluded documents are never negatives, whatever the selector.
"""

from __future__ import annotations

import hashlib
import importlib
import logging
import warnings
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from tqdm.auto import tqdm

from hn_plugins.bm25 import BM25Index
from hn_plugins.data import RetrievalDataset
from hn_plugins.index import CandidateIndex
from hn_plugins.mining.result import TripletRecord
from hn_plugins.models import load_sentence_transformer

logger = logging.getLogger(__name__)

__all__ = [
    "BM25Selector",
    "DenseTopKSelector",
    "NegativeSelector",
    "PaperSelector",
    "PositiveAwareSelector",
    "RandomSelector",
    "SelectionContext",
    "SentenceTransformersSelector",
    "stable_seed",
]

SamplingStrategy = Literal["top", "random"]


def stable_seed(*parts: object) -> int:
    """A seed derived from values (independent of Python's hash randomisation and of processing order)."""
    digest = hashlib.blake2b("\x1f".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little")


@dataclass
class SelectionContext:
    """What a selector may use.

    Attributes:
        dataset: queries, judgments and exclusions; its corpus is the candidate pool.
        doc_ids: corpus ids in index row order.
        num_negatives: negatives wanted per (query, positive) pair.
        seed: seed of every random step.
        doc_vectors: L2-normalised document vectors in the selector's space (rows = ``doc_ids``), or ``None``.
        query_vectors: ``{query_id: L2-normalised vector}`` in the same space, or ``None``.
        index: a fitted :class:`CandidateIndex` over ``doc_vectors``, or ``None``.
        candidates: initial candidate depth per query.
        max_candidates: deepest search when too few candidates qualify (exact index only); ``None`` = corpus size.
        sampling_strategy: ``top`` takes qualifying negatives by rank, ``random`` samples among them.
        show_progress_bar: show progress.
        extras: selector-specific objects: ``sentence_transformer`` (the first ensemble member when it runs on
            PyTorch) or ``sentence_transformer_name`` (its name or path when another engine runs it), for ``st``.
    """

    dataset: RetrievalDataset
    doc_ids: list[str]
    num_negatives: int = 1
    seed: int = 0
    doc_vectors: np.ndarray | None = None
    query_vectors: dict[str, np.ndarray] | None = None
    index: CandidateIndex | None = None
    candidates: int = 100
    max_candidates: int | None = None
    sampling_strategy: SamplingStrategy = "top"
    show_progress_bar: bool = False
    extras: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.row_of = {doc_id: row for row, doc_id in enumerate(self.doc_ids)}


class NegativeSelector(ABC):
    """Chooses negatives for every (query, positive) pair of a dataset."""

    #: Registered name (``--selector`` on the command line).
    name: str = ""
    #: Whether the selector needs the embedding space (``doc_vectors``, ``query_vectors``, ``index``).
    needs_embeddings: bool = True

    def __init__(self) -> None:
        self.counters: dict[str, int] = {}

    def _count(self, key: str, value: int = 1) -> None:
        self.counters[key] = self.counters.get(key, 0) + int(value)

    @abstractmethod
    def select(self, context: SelectionContext) -> list[TripletRecord]:
        """Return one record per (query, positive) pair, pairs without negatives included."""

    def get_config_dict(self) -> dict[str, Any]:
        return {"name": self.name}

    def _pick(
        self, qualifying: list[int], context: SelectionContext, query_id: str, positive_id: str
    ) -> list[int]:
        """Take ``num_negatives`` of the qualifying candidates (in rank order) by the sampling strategy."""
        n = context.num_negatives
        if context.sampling_strategy == "top" or len(qualifying) <= n:
            return qualifying[:n]
        rng = np.random.default_rng(stable_seed(context.seed, self.name, query_id, positive_id))
        chosen = sorted(rng.choice(len(qualifying), size=n, replace=False).tolist())
        return [qualifying[i] for i in chosen]


def _require_space(
    context: SelectionContext, selector: str
) -> tuple[np.ndarray, dict[str, np.ndarray], CandidateIndex]:
    if context.doc_vectors is None or context.query_vectors is None or context.index is None:
        raise ValueError(f"Selector {selector!r} needs embeddings; use it through HardNegativeMiner.")
    return context.doc_vectors, context.query_vectors, context.index


def _iter_candidates(
    context: SelectionContext, query_ids: list[str], depth: int, batch: int = 2048
) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """Yield ``(query_id, rows, scores)`` of the top-``depth`` candidates, searching in batches of queries."""
    _, qvecs, index = _require_space(context, "dense")
    for start in range(0, len(query_ids), batch):
        chunk = query_ids[start : start + batch]
        scores, rows = index.search(np.stack([qvecs[q] for q in chunk]), depth)
        for i, qid in enumerate(chunk):
            keep = rows[i] >= 0
            yield qid, rows[i][keep], scores[i][keep]


def _exact_scores(doc_vectors: np.ndarray, rows: np.ndarray, vector: np.ndarray) -> np.ndarray:
    """Cosine similarities in float64, recomputed from the vectors (independent of FAISS's rounding)."""
    return doc_vectors[rows].astype(np.float64) @ vector.astype(np.float64)


def _rank(rows: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Order candidates by score descending, ties by row ascending (the brute-force reference's order)."""
    order = np.lexsort((rows, -scores))
    return rows[order], scores[order]


class _CriteriaSelector(NegativeSelector):
    """Shared search loop: candidates by decreasing similarity to the query, a per-pair filter, adaptive depth."""

    def _filter(
        self,
        context: SelectionContext,
        q_vec: np.ndarray,
        s_qp: float,
        p_vec: np.ndarray,
        rows: np.ndarray,
        s_qd: np.ndarray,
        query_id: str,
    ) -> tuple[np.ndarray, dict[str, int]]:
        raise NotImplementedError

    def _unbounded(self, s_qd_last: float, s_qp: float) -> bool:
        """Whether candidates deeper than the last one could still qualify."""
        return True

    def select(self, context: SelectionContext) -> list[TripletRecord]:
        docs, qvecs, index = _require_space(context, self.name)
        ds = context.dataset
        depth0 = max(int(context.candidates), context.num_negatives + 1)
        max_depth = min(int(context.max_candidates or index.ntotal), index.ntotal)
        query_ids = ds.judged_query_ids
        records: list[TripletRecord] = []
        depth_hist: dict[int, int] = {}
        bar = tqdm(
            total=len(query_ids),
            desc=f"select ({self.name})",
            unit="query",
            disable=not context.show_progress_bar,
        )
        for qid, rows, _ in _iter_candidates(context, query_ids, min(depth0, index.ntotal)):
            q_vec = qvecs[qid]
            blocked = ds.never_negative(qid)
            positives = _sorted_positives(ds, qid)
            depth = len(rows)
            pending = list(positives)
            results: dict[str, TripletRecord] = {}
            while pending:
                s_qd = _exact_scores(docs, rows, q_vec)
                rows_r, s_qd = _rank(rows, s_qd)
                ids_r = [context.doc_ids[r] for r in rows_r]
                allowed = np.fromiter((d not in blocked for d in ids_r), dtype=bool, count=len(ids_r))
                still: list[str] = []
                for pid in pending:
                    p_vec = docs[context.row_of[pid]]
                    s_qp = float(np.dot(q_vec.astype(np.float64), p_vec.astype(np.float64)))
                    ok, counts = self._filter(context, q_vec, s_qp, p_vec, rows_r, s_qd, qid)
                    ok &= allowed
                    qualifying = np.flatnonzero(ok).tolist()
                    could_deepen = (
                        len(qualifying) < context.num_negatives
                        and depth < max_depth
                        and len(s_qd) > 0
                        and self._unbounded(float(s_qd[-1]), s_qp)
                    )
                    if could_deepen and index.is_exact:
                        still.append(pid)
                        continue
                    if could_deepen:
                        self._count("depth_limited_pairs")
                    picked = self._pick(qualifying, context, qid, pid)
                    self._count("candidates_examined", len(rows_r))
                    self._count("excluded_positive", int((~allowed).sum()))
                    for key, value in counts.items():
                        self._count(key, value)
                    s_pd = (
                        docs[rows_r[picked]].astype(np.float64) @ p_vec.astype(np.float64) if picked else []
                    )
                    results[pid] = TripletRecord(
                        query_id=qid,
                        positive_id=pid,
                        negative_ids=[ids_r[i] for i in picked],
                        d_q_pos=1.0 - s_qp,
                        d_q_neg=[float(1.0 - s_qd[i]) for i in picked],
                        d_pos_neg=[float(1.0 - s) for s in s_pd],
                        selector=self.name,
                    )
                    depth_hist[depth] = depth_hist.get(depth, 0) + 1
                pending = still
                if pending:  # deepen: exact index, too few qualifying, deeper ones could qualify
                    depth = min(max_depth, depth * 4)
                    _, deeper = index.search(q_vec[None, :], depth)
                    rows = deeper[0][deeper[0] >= 0]
            records.extend(results[p] for p in positives)
            bar.update(1)
        bar.close()
        self.counters["search_depth_max"] = max(depth_hist) if depth_hist else 0
        self.counters["deepened_pairs"] = sum(n for d, n in depth_hist.items() if d > depth0)
        return records


def _sorted_positives(ds: RetrievalDataset, qid: str) -> list[str]:
    rel = ds.qrels.get(qid, {})
    return sorted((d for d, g in rel.items() if g > 0), key=lambda d: (-rel[d], d))


class PaperSelector(_CriteriaSelector):
    """Meghwani et al. (2025), Eq. 5 and Eq. 6 with cosine distance ``d = 1 - cos`` in the miner's space.

    A document D qualifies for (Q, PD) only if ``d(Q, D) < d(Q, PD)`` (Eq. 5: it looks closer to the query than
    the answer does) **and** ``d(Q, D) < d(PD, D)`` (Eq. 6: it is closer to the query than to the positive, so not
    a paraphrase of it). Qualifying documents are ranked by ``d(Q, D)``; the first is the primary hard negative.
    Pairs where nothing qualifies get no negative. With an exact index the search deepens until the answer equals
    a brute-force scan of the whole corpus.

    Example:
        >>> from hn_plugins.mining.named_selectors import get_selector
        >>> selector = get_selector("paper")
        >>> selector.name
        'paper'
    """

    name = "paper"

    def _filter(self, context, q_vec, s_qp, p_vec, rows, s_qd, query_id):
        eq5 = s_qd > s_qp  # d(Q,D) < d(Q,PD)
        s_pd = context.doc_vectors[rows].astype(np.float64) @ p_vec.astype(np.float64)
        eq6 = s_qd > s_pd  # d(Q,D) < d(PD,D)
        return eq5 & eq6, {"rejected_eq5": int((~eq5).sum()), "rejected_eq6": int((eq5 & ~eq6).sum())}

    def _unbounded(self, s_qd_last: float, s_qp: float) -> bool:
        return s_qd_last > s_qp  # deeper candidates can satisfy Eq. 5 only while still above the positive


class DenseTopKSelector(_CriteriaSelector):
    """The top-ranked non-positive documents of the miner's space (static dense negatives, as in STAR).

    Example:
        >>> from hn_plugins.mining.named_selectors import get_selector
        >>> get_selector("dense-topk").name
        'dense-topk'
    """

    name = "dense-topk"

    def _filter(self, context, q_vec, s_qp, p_vec, rows, s_qd, query_id):
        return np.ones(len(rows), dtype=bool), {}


class PositiveAwareSelector(_CriteriaSelector):
    """NV-Retriever's TopK-PercPos: keep a candidate only if its score is below the positive's score minus
    ``relative_margin`` of its magnitude (0.05 = "95% of the positive").

    As in sentence-transformers' ``mine_hard_negatives(relative_margin=...)``, the threshold of a query uses its
    lowest-scoring positive, so every positive of a query gets the same candidates.

    Args:
        relative_margin: the margin (0.05 by default).

    Example:
        >>> from hn_plugins.mining.named_selectors import get_selector
        >>> get_selector("positive-aware", relative_margin=0.05).relative_margin
        0.05
    """

    name = "positive-aware"

    def __init__(self, relative_margin: float = 0.05) -> None:
        super().__init__()
        if not 0.0 <= relative_margin < 1.0:
            raise ValueError(
                f"PositiveAwareSelector: relative_margin must be in [0, 1), got {relative_margin}."
            )
        self.relative_margin = relative_margin

    def _filter(self, context, q_vec, s_qp, p_vec, rows, s_qd, query_id):
        docs = context.doc_vectors
        pos_scores = [
            float(np.dot(q_vec.astype(np.float64), docs[context.row_of[p]].astype(np.float64)))
            for p in context.dataset.positives(query_id)
        ]
        s_min = min(pos_scores)
        threshold = s_min - abs(s_min) * self.relative_margin
        keep = s_qd <= threshold
        return keep, {"rejected_margin": int((~keep).sum())}

    def get_config_dict(self) -> dict[str, Any]:
        return {"name": self.name, "relative_margin": self.relative_margin}


class RandomSelector(NegativeSelector):
    """Uniformly random non-positive documents, seeded per (seed, query, positive).

    Example:
        >>> from hn_plugins.mining.named_selectors import get_selector
        >>> get_selector("random").needs_embeddings
        False
    """

    name = "random"
    needs_embeddings = False

    def select(self, context: SelectionContext) -> list[TripletRecord]:
        ds = context.dataset
        n_docs = len(context.doc_ids)
        records = []
        for qid, pid in ds.positive_pairs():
            blocked = ds.never_negative(qid)
            rng = np.random.default_rng(stable_seed(context.seed, self.name, qid, pid))
            want = min(context.num_negatives, n_docs - sum(d in context.row_of for d in blocked))
            picked: list[str] = []
            seen: set[int] = set()
            while len(picked) < want:
                row = int(rng.integers(n_docs))
                if row in seen:
                    continue
                seen.add(row)
                if context.doc_ids[row] not in blocked:
                    picked.append(context.doc_ids[row])
            records.append(
                TripletRecord(qid, pid, picked, None, [None] * len(picked), [None] * len(picked), self.name)
            )
        return records


class BM25Selector(NegativeSelector):
    """The top BM25 (bm25s, Lucene variant, English stop words and Snowball stemmer) non-positive documents.

    Args:
        k1: BM25 term saturation.
        b: BM25 length normalisation.

    Example:
        >>> from hn_plugins.mining.named_selectors import get_selector
        >>> get_selector("bm25").name
        'bm25'
    """

    name = "bm25"
    needs_embeddings = False

    def __init__(self, k1: float = 1.5, b: float = 0.75) -> None:
        super().__init__()
        self.k1 = k1
        self.b = b

    def select(self, context: SelectionContext) -> list[TripletRecord]:
        ds = context.dataset
        index = BM25Index(
            [ds.document_text(d) for d in context.doc_ids], context.doc_ids, k1=self.k1, b=self.b
        )
        qids = ds.judged_query_ids
        depth = min(len(context.doc_ids), max(context.candidates, context.num_negatives + 1))
        records: list[TripletRecord] = []
        found = index.search([ds.queries[q] for q in qids], depth)
        for qid, pairs in zip(qids, found, strict=True):
            blocked = ds.never_negative(qid)
            ranked = [doc_id for doc_id, _ in pairs if doc_id not in blocked]
            for pid in _sorted_positives(ds, qid):
                qualifying = list(range(len(ranked)))
                picked = [ranked[j] for j in self._pick(qualifying, context, qid, pid)]
                if len(picked) < context.num_negatives:
                    self._count("depth_limited_pairs")
                records.append(
                    TripletRecord(
                        qid, pid, picked, None, [None] * len(picked), [None] * len(picked), self.name
                    )
                )
        return records

    def get_config_dict(self) -> dict[str, Any]:
        return {"name": self.name, "k1": self.k1, "b": self.b}


class SentenceTransformersSelector(NegativeSelector):
    """Reference: sentence-transformers' ``util.mine_hard_negatives`` on one model, mapped back to ids.

    It identifies documents by text, so documents with identical text map to the first id that has it.

    Args:
        model: a SentenceTransformer (default: the miner's first ensemble member, loaded with PyTorch by its name
            when onnxruntime or numpy embeds it for the ensemble, because ``mine_hard_negatives`` needs the model).
        kwargs: passed to ``mine_hard_negatives`` (e.g. ``relative_margin=0.05``, ``range_max=100``).

    Example:
        >>> from hn_plugins.mining.named_selectors import get_selector
        >>> get_selector("st", relative_margin=0.05).kwargs
        {'relative_margin': 0.05}
    """

    name = "st"

    def __init__(self, model: Any = None, **kwargs: Any) -> None:
        super().__init__()
        self.model = model
        self.kwargs = kwargs

    def select(self, context: SelectionContext) -> list[TripletRecord]:
        from datasets import Dataset
        from sentence_transformers.util import mine_hard_negatives

        model = self.model or context.extras.get("sentence_transformer")
        if model is None and context.extras.get("sentence_transformer_name"):
            model = load_sentence_transformer(context.extras["sentence_transformer_name"])
        if model is None:
            raise ValueError(
                "The 'st' selector needs a SentenceTransformer: pass model=... or use it through "
                "HardNegativeMiner whose first ensemble member is a model name, path or SentenceTransformer."
            )
        ds = context.dataset
        corpus_texts = [ds.document_text(d) for d in context.doc_ids]
        id_of_text: dict[str, str] = {}
        for doc_id, text in zip(context.doc_ids, corpus_texts, strict=True):
            id_of_text.setdefault(text, doc_id)
        pairs = ds.positive_pairs()
        data = Dataset.from_dict(
            {"query": [ds.queries[q] for q, _ in pairs], "positive": [ds.document_text(p) for _, p in pairs]}
        )
        kwargs = {
            "range_max": min(context.candidates, len(corpus_texts) - 1),
            "num_negatives": context.num_negatives,
            "sampling_strategy": context.sampling_strategy,
            "batch_size": 64,
            "verbose": False,
            **self.kwargs,
        }
        mined = mine_hard_negatives(data, model, corpus=corpus_texts, output_format="triplet", **kwargs)
        query_of_text: dict[tuple[str, str], str] = {}
        for qid, pid in pairs:
            query_of_text.setdefault((ds.queries[qid], ds.document_text(pid)), qid)
        by_pair: dict[tuple[str, str], list[str]] = {}
        for row in mined:
            qid = query_of_text[(row["query"], row["positive"])]
            positive_id = id_of_text.get(row["positive"])
            by_pair.setdefault((qid, str(positive_id)), []).append(id_of_text[row["negative"]])
        records = []
        for qid, pid in pairs:
            negs = by_pair.get((qid, id_of_text.get(ds.document_text(pid), pid)), [])
            negs = [n for n in negs if n not in ds.never_negative(qid)]
            records.append(
                TripletRecord(qid, pid, negs, None, [None] * len(negs), [None] * len(negs), self.name)
            )
        return records

    def get_config_dict(self) -> dict[str, Any]:
        return {"name": self.name, **self.kwargs}


def __getattr__(name: str) -> Any:
    """``get_selector`` under its first import path; it lives in :mod:`hn_plugins.mining.named_selectors`."""
    if name == "get_selector":
        warnings.warn(
            "hn_plugins.mining.selectors.get_selector moved to hn_plugins.mining.named_selectors.get_selector "
            "(also importable as hn_plugins.mining.get_selector).",
            DeprecationWarning,
            stacklevel=2,
        )
        # by name: named_selectors imports this module (and default_selector), never the reverse
        return importlib.import_module("hn_plugins.mining.named_selectors").get_selector
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
