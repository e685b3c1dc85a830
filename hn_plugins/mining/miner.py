"""``HardNegativeMiner``: ensemble embeddings -> PCA -> FAISS candidates -> a selector (fit, then mine)."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from hn_plugins.data import DatasetError, RetrievalDataset
from hn_plugins.embedders import EmbedderEnsemble, l2_normalize
from hn_plugins.encoding import is_sentence_transformer
from hn_plugins.index import CandidateIndex, IndexKind
from hn_plugins.mining.named_selectors import get_selector
from hn_plugins.mining.result import MiningResult
from hn_plugins.mining.selectors import NegativeSelector, SamplingStrategy, SelectionContext
from hn_plugins.reduction import PCAReducer

logger = logging.getLogger(__name__)

__all__ = ["HardNegativeMiner"]

CorpusLike = RetrievalDataset | Mapping[str, tuple[str, str]] | Mapping[str, str]


def _as_corpus(corpus: CorpusLike) -> tuple[list[str], list[str]]:
    if isinstance(corpus, RetrievalDataset):
        ids = corpus.doc_ids
        return ids, [corpus.document_text(d) for d in ids]
    if not corpus:
        raise DatasetError("HardNegativeMiner.fit(): the corpus is empty; give at least one document.")
    ids, texts = [], []
    for doc_id, value in corpus.items():
        text = value if isinstance(value, str) else " ".join(p for p in value if p).strip()
        if not text.strip():
            raise DatasetError(f"HardNegativeMiner.fit(): document {doc_id!r} has empty text; remove it.")
        ids.append(str(doc_id))
        texts.append(text)
    return ids, texts


class HardNegativeMiner:
    """Mine negatives for every (query, positive) pair: the paper's pipeline and the benchmark's baselines.

    Args:
        ensemble: an :class:`~hn_plugins.embedders.EmbedderEnsemble` (not needed by ``random`` and ``bm25``).
        reducer: a :class:`~hn_plugins.reduction.PCAReducer` (``None``: cosine in the concatenated space, which for a
            one-model ensemble is that model's own space, as single-model baselines need).
        selector: ``paper`` (Eq. 5 + Eq. 6), ``default`` (the paper's negatives, a positive-aware fallback where none
            qualifies, plus one random negative: what we ship), ``dense-topk``, ``positive-aware``, ``random``,
            ``bm25``, ``st``, or a :class:`~hn_plugins.mining.selectors.NegativeSelector`.
        num_negatives: negatives per (query, positive) pair.
        candidates: initial FAISS depth per query; with the exact index the paper selector searches deeper when
            needed, so its output equals a brute-force scan.
        max_candidates: cap for that deepening (``None``: the whole corpus).
        index: ``exact`` (default), ``hnsw``, ``ivf`` or ``auto``.
        sampling_strategy: ``top`` (by rank) or ``random`` (seeded sample among qualifying candidates).
        seed: seed of every random step.
        fit_pca_on_queries: also fit PCA on the training queries when ``fit`` receives a dataset (the paper fits
            on Q, PD and D).
        show_progress_bar: progress bars.
        selector_kwargs: passed to the selector (e.g. ``relative_margin=0.05``).

    Example:
        >>> from hn_plugins import EmbedderEnsemble, HardNegativeMiner, PCAReducer, load_beir
        >>> data = load_beir("../shared/data/cranfield", split="train", empty_documents="drop")  # doctest: +SKIP
        >>> miner = HardNegativeMiner(EmbedderEnsemble(["all-MiniLM-L6-v2", "static-model"]),
        ...                           PCAReducer(variance=0.95), selector="paper", num_negatives=3)  # doctest: +SKIP
        >>> result = miner.fit(data).mine(data)  # doctest: +SKIP
        >>> result.summary()["selection_rate"]  # doctest: +SKIP
        0.79
    """

    def __init__(
        self,
        ensemble: EmbedderEnsemble | None = None,
        reducer: PCAReducer | None = None,
        selector: str | NegativeSelector = "paper",
        num_negatives: int = 1,
        candidates: int = 100,
        max_candidates: int | None = None,
        index: IndexKind = "exact",
        sampling_strategy: SamplingStrategy = "top",
        seed: int = 0,
        fit_pca_on_queries: bool = True,
        show_progress_bar: bool = False,
        **selector_kwargs: Any,
    ) -> None:
        self.selector = get_selector(selector, **selector_kwargs)
        if self.selector.needs_embeddings and ensemble is None:
            raise ValueError(f"Selector {self.selector.name!r} needs an EmbedderEnsemble; pass ensemble=...")
        if num_negatives < 1:
            raise ValueError(f"num_negatives must be >= 1, got {num_negatives}.")
        if candidates < 1:
            raise ValueError(f"candidates must be >= 1, got {candidates}.")
        if sampling_strategy not in {"top", "random"}:
            raise ValueError(f"sampling_strategy must be 'top' or 'random', got {sampling_strategy!r}.")
        self.ensemble = ensemble
        self.reducer = reducer
        self.num_negatives = num_negatives
        self.candidates = candidates
        self.max_candidates = max_candidates
        self.index_kind = index
        self.sampling_strategy = sampling_strategy
        self.seed = seed
        self.fit_pca_on_queries = fit_pca_on_queries
        self.show_progress_bar = show_progress_bar
        self.timings: dict[str, float] = {}
        self.doc_ids_: list[str] | None = None

    # ------------------------------------------------------------------ fit
    def fit(self, corpus: CorpusLike) -> HardNegativeMiner:
        """Embed the corpus (cached), fit PCA and build the candidate index.

        Args:
            corpus: a :class:`RetrievalDataset` (its judged queries also enter the PCA fit) or ``{id: text}`` /
                ``{id: (title, text)}``.
        """
        self.timings = {}
        self._query_memo: dict[str, np.ndarray] = {}
        ids, texts = _as_corpus(corpus)
        if len(set(ids)) != len(ids):
            raise DatasetError("HardNegativeMiner.fit(): duplicate document ids; ids must be unique.")
        self.doc_ids_ = ids
        self._doc_texts = dict(zip(ids, texts, strict=True))
        if not self.selector.needs_embeddings:
            return self
        assert self.ensemble is not None
        start = time.perf_counter()
        self.ensemble.show_progress_bar = self.show_progress_bar
        raw = self.ensemble.encode_documents(ids, texts)
        self.timings["embed_documents_s"] = time.perf_counter() - start
        start = time.perf_counter()
        if self.reducer is not None:
            fit_rows = raw
            if self.fit_pca_on_queries and isinstance(corpus, RetrievalDataset) and corpus.judged_query_ids:
                texts = [corpus.queries[q] for q in corpus.judged_query_ids]
                queries = self.ensemble.encode_queries(texts)
                self._query_memo = dict(zip(texts, queries, strict=True))  # mine() reuses them
                fit_rows = np.concatenate([raw, queries])
            self.reducer.fit(fit_rows)
            space = self.reducer.transform(raw)
        else:
            space = raw
        self.doc_vectors_ = l2_normalize(space)
        self.timings["pca_s"] = time.perf_counter() - start
        start = time.perf_counter()
        self.index_ = CandidateIndex(self.index_kind).fit(self.doc_vectors_)
        self.timings["index_s"] = time.perf_counter() - start
        return self

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        """Queries in the selector's space (ensemble -> PCA -> L2-normalised)."""
        if self.ensemble is None:
            raise ValueError("This miner has no ensemble.")
        memo = getattr(self, "_query_memo", {})
        if texts and all(t in memo for t in texts):
            raw = np.stack([memo[t] for t in texts])  # embedded by fit() for the PCA
        else:
            raw = self.ensemble.encode_queries(texts)
        return l2_normalize(self.reducer.transform(raw) if self.reducer is not None else raw)

    # ------------------------------------------------------------------ mine
    def mine(self, dataset: RetrievalDataset) -> MiningResult:
        """Mine negatives for every (query, positive) pair of ``dataset`` among the fitted corpus.

        Raises:
            RuntimeError: before :meth:`fit`.
            DatasetError: the dataset names documents that were not fitted, or asks for more negatives than
                there are documents.
        """
        if self.doc_ids_ is None:
            raise RuntimeError("HardNegativeMiner.mine() before fit(); call miner.fit(corpus) first.")
        fitted = set(self.doc_ids_)
        missing = sorted({d for q in dataset.qrels for d in dataset.positives(q)} - fitted)
        if missing:
            raise DatasetError(
                f"mine(): {len(missing)} positive document(s) were not in the fitted corpus "
                f"(first: {missing[:5]}); fit on the corpus that holds them."
            )
        changed = [
            d for d in dataset.corpus if d in fitted and dataset.document_text(d) != self._doc_texts[d]
        ]
        if changed:
            raise DatasetError(
                f"mine(): {len(changed)} document(s) changed since fit (first: {changed[:5]}); "
                "call fit() again (unchanged documents come from the cache)."
            )
        n_free = len(self.doc_ids_) - 1
        if self.num_negatives > n_free:
            raise DatasetError(
                f"num_negatives={self.num_negatives} is larger than the {n_free} candidate documents "
                "available per query; lower num_negatives."
            )
        if self.selector.needs_embeddings and self.num_negatives > (
            self.max_candidates or len(self.doc_ids_)
        ):
            raise DatasetError(
                f"num_negatives={self.num_negatives} exceeds the candidate depth "
                f"max_candidates={self.max_candidates}; raise max_candidates or lower num_negatives."
            )
        view = (
            dataset.with_corpus({d: dataset.corpus.get(d, ("", self._doc_texts[d])) for d in self.doc_ids_})
            if set(dataset.corpus) != fitted
            else dataset
        )
        context = SelectionContext(
            dataset=view,
            doc_ids=self.doc_ids_,
            num_negatives=self.num_negatives,
            seed=self.seed,
            candidates=self.candidates,
            max_candidates=self.max_candidates,
            sampling_strategy=self.sampling_strategy,
            show_progress_bar=self.show_progress_bar,
        )
        if self.selector.needs_embeddings:
            start = time.perf_counter()
            qids = view.judged_query_ids
            vectors = self.embed_queries([view.queries[q] for q in qids])
            self.timings["embed_queries_s"] = time.perf_counter() - start
            context.doc_vectors = self.doc_vectors_
            context.query_vectors = dict(zip(qids, vectors, strict=True))
            context.index = self.index_
        if self.ensemble is not None and self.ensemble.members:
            first = self.ensemble.members[0]
            if is_sentence_transformer(first.encoder):
                context.extras["sentence_transformer"] = first.encoder
            elif isinstance(first.spec, (str, os.PathLike)):
                # a member run by onnxruntime or numpy: selectors that need PyTorch load it by this name
                context.extras["sentence_transformer_name"] = str(first.spec)
        self.selector.counters = {}
        start = time.perf_counter()
        records = self.selector.select(context)
        self.timings["select_s"] = time.perf_counter() - start
        diagnostics: dict[str, Any] = dict(self.selector.counters)
        diagnostics["config"] = self.get_config_dict()
        diagnostics["timings_s"] = dict(self.timings)
        if self.reducer is not None and hasattr(self.reducer, "n_components_"):
            diagnostics["pca_components"] = int(self.reducer.n_components_)
            diagnostics["pca_variance_kept"] = float(np.sum(self.reducer.explained_variance_ratio_))
        result = MiningResult(records, selector=self.selector.name, diagnostics=diagnostics)
        summary = result.summary()
        logger.info(
            "%s: negatives for %d of %d pairs (%.1f%%)",
            self.selector.name,
            summary["pairs_with_negative"],
            summary["pairs"],
            100 * summary["selection_rate"],
        )
        return result

    def get_config_dict(self) -> dict[str, Any]:
        """Settings that produced a result (saved in diagnostics and model cards)."""
        return {
            "selector": self.selector.get_config_dict(),
            "models": self.ensemble.names if self.ensemble is not None else [],
            "pca": None
            if self.reducer is None
            else {"variance": self.reducer.variance, "n_components": self.reducer.n_components},
            "num_negatives": self.num_negatives,
            "candidates": self.candidates,
            "index": self.index_kind,
            "sampling_strategy": self.sampling_strategy,
            "seed": self.seed,
        }
