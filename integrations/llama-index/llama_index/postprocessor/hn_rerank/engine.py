"""Index + QA pairs -> mined hard negatives -> fine-tuned reranker: the engine below the postprocessor.

:class:`BaseHardNegativeFinetuneEngine` mines and trains with the core (:class:`hn_plugins.HardNegativeMiner`:
embedding ensemble + PCA + the selector's criteria; :func:`hn_plugins.fine_tune_reranker`). It imports nothing
from the postprocessor, so both :class:`~llama_index.postprocessor.hn_rerank.HardNegativeRerank` (its
``from_index``) and :class:`~llama_index.postprocessor.hn_rerank.HardNegativeFinetuneEngine` (which adds
``get_finetuned_model``) build on it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.indices.base import BaseIndex
from llama_index.core.schema import MetadataMode
from llama_index.postprocessor.hn_rerank.data import IndexSource, QAPairs, dataset_from_index

from hn_plugins.data import RetrievalDataset
from hn_plugins.models import DEFAULT_ENSEMBLE

if TYPE_CHECKING:
    from typing_extensions import Self

    from hn_plugins.mining.result import MiningResult

logger = logging.getLogger(__name__)

__all__ = ["DEFAULT_MINING_MODELS", "BaseHardNegativeFinetuneEngine"]

#: The embedding ensemble that mines negatives by default: two diverse bi-encoders that install from PyPI.
DEFAULT_MINING_MODELS: tuple[str, ...] = DEFAULT_ENSEMBLE


class BaseHardNegativeFinetuneEngine:
    """Mine hard negatives for QA pairs over an index's nodes and fine-tune a reranker on them.

    The mining and training half of :class:`~llama_index.postprocessor.hn_rerank.HardNegativeFinetuneEngine`,
    which adds ``get_finetuned_model``; ``HardNegativeRerank.from_index`` runs it directly.

    Args:
        dataset: corpus (the index's nodes), queries and judgments; build it with :meth:`from_index` or
            :func:`~llama_index.postprocessor.hn_rerank.dataset_from_index`.
        base_model: the reranker to start from: a cross-encoder (``kind="cross"``, e.g.
            ``cross-encoder/ms-marco-MiniLM-L6-v2``) or a bi-encoder (``kind="bi"``, e.g.
            ``all-MiniLM-L6-v2``).
        output_dir: where the fine-tuned reranker is written (a folder ``HardNegativeRerank`` loads).
        kind: ``"cross"`` or ``"bi"``, the kind of ``base_model``.
        mining_models: the embedding ensemble used to mine (names, local folders or objects with ``encode``).
        selector: negative selection strategy: ``"paper"`` (ensemble + PCA criteria), ``"default"`` (what the
            benchmark's ``default`` row mines: the paper's negatives, a positive-aware fallback where none
            qualifies, plus one random negative; train it with ``loss="in-batch"``), ``"positive-aware"``,
            ``"dense-topk"``, ``"bm25"``, ``"random"``.
        num_negatives: negatives per (query, positive) pair.
        candidates: candidate depth searched per query.
        pca_variance: variance kept by the PCA reducer; ``None`` mines in the concatenated space.
        loss: training loss (``"triplet"``: the paper's triplet margin loss).
        epochs: training epochs.
        lr: learning rate.
        batch_size: training batch size.
        seed: seed for mining and training.
        max_length: maximum tokens per input (``None``: the model's default).
        cache_dir: embedding cache of the mining ensemble (re-mining after an index update re-embeds only the
            nodes that changed); ``None`` disables it.
        device: torch device.
        metadata_mode: the node text used; kept so :meth:`get_finetuned_model` scores the same text.
        retriever: the first stage the reranker will serve (``index.as_retriever(...)``); when given, the
            trainer validates on its top ``validation_top_k`` nodes per held-out question (else on BM25's).
            :meth:`from_index` sets it for a ``VectorStoreIndex``.
        validation_top_k: candidates per validation question taken from ``retriever``.
        miner_kwargs: more :class:`hn_plugins.HardNegativeMiner` arguments (``sampling_strategy``,
            ``relative_margin``, ``index``, ...).
        train_kwargs: more :func:`hn_plugins.fine_tune_reranker` arguments (``margin``,
            ``validation_fraction``, ``early_stopping_patience``, ``keep_base_if_better``, ``selection="cross-fit"``
            with ``selection_alpha`` (0.05: train only on a significant pooled gain; ``None``: on any gain), ...).

    Example:
        >>> engine = BaseHardNegativeFinetuneEngine.from_index(  # doctest: +SKIP
        ...     index, "qa_pairs.json", output_dir="models/reranker", base_model="all-MiniLM-L6-v2",
        ...     kind="bi")
        >>> engine.finetune().path  # doctest: +SKIP
        PosixPath('.../models/reranker')
    """

    def __init__(
        self,
        dataset: RetrievalDataset,
        base_model: str = "cross-encoder/ms-marco-MiniLM-L6-v2",
        output_dir: str | os.PathLike[str] = "exp_finetune",
        *,
        kind: Literal["cross", "bi"] = "cross",
        mining_models: Sequence[Any] = DEFAULT_MINING_MODELS,
        selector: str = "paper",
        num_negatives: int = 1,
        candidates: int = 100,
        pca_variance: float | None = 0.95,
        loss: str = "triplet",
        epochs: int = 1,
        lr: float = 2e-5,
        batch_size: int = 16,
        seed: int = 0,
        max_length: int | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        device: str | None = None,
        metadata_mode: MetadataMode = MetadataMode.EMBED,
        retriever: BaseRetriever | None = None,
        validation_top_k: int = 20,
        miner_kwargs: Mapping[str, Any] | None = None,
        train_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        if not isinstance(dataset, RetrievalDataset):
            raise TypeError(
                f"{self.__class__.__name__} expects a RetrievalDataset, got {type(dataset).__name__}; build "
                f"one with {self.__class__.__name__}.from_index(index, qa, ...) or dataset_from_index()."
            )
        if isinstance(mining_models, (str, os.PathLike)):
            mining_models = [mining_models]
        self.dataset = dataset
        self.base_model = str(base_model)
        self.output_dir = Path(output_dir)
        self.kind = kind
        self.mining_models = list(mining_models)
        self.selector = selector
        self.num_negatives = num_negatives
        self.candidates = candidates
        self.pca_variance = pca_variance
        self.loss = loss
        self.epochs = epochs
        self.lr = lr
        self.batch_size = batch_size
        self.seed = seed
        self.max_length = max_length
        self.cache_dir = cache_dir
        self.device = device
        self.metadata_mode = metadata_mode
        self.retriever = retriever
        self.validation_top_k = validation_top_k
        self.miner_kwargs = dict(miner_kwargs or {})
        self.train_kwargs = dict(train_kwargs or {})
        self.mining_result_: MiningResult | None = None
        self.trained_: Any = None

    @classmethod
    def from_index(
        cls,
        index: IndexSource,
        qa: QAPairs,
        output_dir: str | os.PathLike[str] = "exp_finetune",
        *,
        metadata_mode: MetadataMode = MetadataMode.EMBED,
        empty_nodes: Literal["raise", "drop"] = "raise",
        **kwargs: Any,
    ) -> Self:
        """An engine over every node of ``index`` (the mining candidates) and the QA pairs ``qa``.

        Args:
            index: a ``VectorStoreIndex``, ``StorageContext``, persisted storage folder, docstore or a vector
                store.
            qa: an ``EmbeddingQAFinetuneDataset`` JSON path or dict, such an object, or
                ``(question, node_id)`` pairs.
            output_dir: where the fine-tuned reranker is written.
            metadata_mode: node text used for training (and later for reranking).
            empty_nodes: ``"raise"`` or ``"drop"`` nodes without text.
            **kwargs: the other arguments of the engine.
        """
        dataset = dataset_from_index(index, qa, metadata_mode=metadata_mode, empty_nodes=empty_nodes)
        if "retriever" not in kwargs and isinstance(index, BaseIndex):
            kwargs["retriever"] = index.as_retriever(similarity_top_k=kwargs.get("validation_top_k", 20))
        return cls(dataset, output_dir=output_dir, metadata_mode=metadata_mode, **kwargs)

    def mine(self) -> MiningResult:
        """Mine hard negatives for every (question, node) pair; kept in ``mining_result_``."""
        from hn_plugins.embedders import EmbedderEnsemble
        from hn_plugins.mining.miner import HardNegativeMiner
        from hn_plugins.reduction import PCAReducer

        ensemble = EmbedderEnsemble(self.mining_models, cache_dir=self.cache_dir, device=self.device)
        reducer = PCAReducer(variance=self.pca_variance) if self.pca_variance is not None else None
        miner = HardNegativeMiner(
            ensemble,
            reducer=reducer,
            selector=self.selector,
            num_negatives=self.num_negatives,
            candidates=self.candidates,
            seed=self.seed,
            **self.miner_kwargs,
        )
        logger.info("Mining %s negatives for %s", self.selector, self.dataset)
        self.mining_result_ = miner.fit(self.dataset).mine(self.dataset)
        summary = getattr(self.mining_result_, "summary", None)
        if callable(summary):
            counts = {k: v for k, v in summary().items() if not isinstance(v, (list, dict))}
            logger.info("Mining summary: %s", counts)
        return self.mining_result_

    def validation_candidates(self) -> dict[str, list[str]] | None:
        """The retriever's top ``validation_top_k`` node ids for every judged question (``None`` without a
        retriever); the trainer reranks these for its held-out questions."""
        if self.retriever is None:
            return None
        candidates: dict[str, list[str]] = {}
        for qid in self.dataset.judged_query_ids:
            hits = self.retriever.retrieve(self.dataset.queries[qid])
            ids = [h.node.node_id for h in hits if h.node.node_id in self.dataset.corpus]
            candidates[qid] = ids[: self.validation_top_k]
        return candidates

    def finetune(self, **train_kwargs: Any) -> Any:
        """Mine (unless :meth:`mine` already ran) and fine-tune ``base_model``.

        Args:
            **train_kwargs: more :func:`hn_plugins.fine_tune_reranker` arguments for this run.

        Returns:
            The trainer's :class:`~hn_plugins.training.trainer.TrainedReranker` (``path``, ``kind``,
            ``history``: the validation curve, ``metrics``), also kept in ``trained_``.
        """
        from hn_plugins.training.trainer import fine_tune_reranker

        triplets = self.mining_result_ if self.mining_result_ is not None else self.mine()
        extra = {**self.train_kwargs, **train_kwargs}
        if "validation_candidates" not in extra and "eval_dataset" not in extra:
            extra["validation_candidates"] = self.validation_candidates()
        logger.info(
            "Fine-tuning %s (%s) for %d epoch(s) into %s",
            self.base_model,
            self.kind,
            self.epochs,
            self.output_dir,
        )
        self.trained_ = fine_tune_reranker(
            triplets,
            self.dataset,
            self.base_model,
            kind=self.kind,
            loss=self.loss,
            epochs=self.epochs,
            lr=self.lr,
            batch_size=self.batch_size,
            seed=self.seed,
            output_dir=self.output_dir,
            max_length=self.max_length,
            device=self.device,
            **extra,
        )
        logger.info(
            "Fine-tuned reranker in %s (validation MRR@10 of the kept model: %s)",
            self.trained_.path,
            self.trained_.metrics.get("validation_mrr@10_selected"),
        )
        return self.trained_
