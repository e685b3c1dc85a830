"""``HardNegativeRerank``: a LlamaIndex node postprocessor that scores nodes with a reranker fine-tuned on
hard negatives (a folder written by ``hn train`` or :func:`hn_plugins.fine_tune_reranker`, a model registry
folder, or any sentence-transformers cross-encoder).

Only translation lives here: nodes to texts, scores back to nodes. Loading and scoring are
:func:`hn_plugins.reranker.load_reranker`'s job.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any

from llama_index.core.bridge.pydantic import Field, PrivateAttr
from llama_index.core.callbacks import CallbackManager, CBEventType, EventPayload
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.events.rerank import ReRankEndEvent, ReRankStartEvent
from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.schema import MetadataMode, NodeWithScore, QueryBundle
from llama_index.postprocessor.hn_rerank.engine import BaseHardNegativeFinetuneEngine

from hn_plugins.cascade import CascadeReranker
from hn_plugins.registry_follower import RegistryFollower
from hn_plugins.rerankers.loading import load_reranker

if TYPE_CHECKING:
    from llama_index.postprocessor.hn_rerank.data import IndexSource, QAPairs

logger = logging.getLogger(__name__)
dispatcher = get_dispatcher(__name__)

__all__ = ["HardNegativeRerank"]

#: Metadata key under which ``keep_retrieval_score=True`` keeps the first-stage score (as LlamaIndex's
#: rerankers do).
RETRIEVAL_SCORE_KEY = "retrieval_score"


class HardNegativeRerank(BaseNodePostprocessor):
    """Rerank retrieved nodes with a reranker fine-tuned on hard negatives mined from your own index.

    Accepts a folder written by our trainer (a cross-encoder, or a bi-encoder used as a reranker), a model
    registry folder (its ``current`` version, followed: a promotion or a rollback takes effect at the next query),
    a plain sentence-transformers cross-encoder folder, or a cross-encoder hub name such as
    ``cross-encoder/ms-marco-MiniLM-L6-v2``. The model is loaded when the postprocessor is created (and again when
    a registry's current version changes). Nodes are scored on ``node.get_content(metadata_mode=...)``
    (``EMBED`` by default, like :class:`SentenceTransformerRerank`), so the reranker sees the same text it
    was fine-tuned on by :meth:`from_index`.

    Args:
        model: reranker folder or cross-encoder hub name.
        top_n: number of nodes to return, best first.
        device: torch device (``None``: sentence-transformers picks one).
        batch_size: scoring batch size.
        keep_retrieval_score: keep each node's first-stage score in ``node.metadata["retrieval_score"]``.
        fuse_retrieval_score: when the model folder carries a fusion weight (``hn train`` chooses one on its
            validation queries) and every node has a retrieval score, rank by
            ``weight * z(reranker) + (1 - weight) * z(retrieval)`` (z: per-query z-score) instead of the reranker
            alone; ``node.score`` is then that fused value. The weight was chosen against BM25 scores.
        metadata_mode: which metadata goes into the text the reranker scores.
        trust_remote_code: passed to transformers; off unless you turn it on.
        backend: ``torch``, or ``onnx`` / ``onnx-int8`` to score with onnxruntime: a cross-encoder folder
            exported with ``hn export-onnx``, or a bi-encoder folder (exported to the hn-plugins cache on first
            use) (int8: faster on CPU; check its quality with ``hn eval --backend onnx-int8``).
        prerank_model: a faster reranker (a bi-encoder folder from ``hn train --kind bi``, a registry folder, or
            ``zero-shot:all-MiniLM-L6-v2`` for an untuned bi-encoder) that first orders every node; ``model`` then
            re-scores only its ``prerank_top_n`` best (:class:`hn_plugins.cascade.CascadeReranker`). Nodes below
            them keep the prerank order, with scores below every re-scored node's. ``None`` (default): ``model``
            scores all.
        prerank_top_n: how many of the prerank model's best nodes ``model`` re-scores.
        callback_manager: LlamaIndex callback manager (receives a ``RERANKING`` event per call).

    Raises:
        hn_plugins.reranker.RerankerLoadError: (a ``ValueError``) the folder is missing or holds no reranker,
            e.g. a plain bi-encoder folder that was never fine-tuned as a reranker.

    Example:
        >>> from llama_index.postprocessor.hn_rerank import HardNegativeRerank  # doctest: +SKIP
        >>> rerank = HardNegativeRerank(model="models/faq-reranker", top_n=5)  # doctest: +SKIP
        >>> query_engine = index.as_query_engine(  # doctest: +SKIP
        ...     similarity_top_k=20, node_postprocessors=[rerank])
        >>> query_engine.query("How do I make a Python script executable on Unix?")  # doctest: +SKIP
    """

    model: str = Field(
        description="Reranker: a folder written by `hn train` / fine_tune_reranker (cross- or bi-encoder), "
        "a model registry folder, a cross-encoder folder, or a cross-encoder hub name."
    )
    top_n: int = Field(default=2, description="Number of nodes to return, sorted by reranker score.")
    device: str | None = Field(
        default=None, description="Torch device; None lets sentence-transformers choose."
    )
    batch_size: int = Field(default=32, description="Number of (query, node) pairs scored per batch.")
    keep_retrieval_score: bool = Field(
        default=False, description="Whether to keep the retrieval score in metadata under 'retrieval_score'."
    )
    fuse_retrieval_score: bool = Field(
        default=True,
        description="Whether to fuse the reranker's scores with the retrieval scores when the model folder "
        "carries a fusion weight chosen on validation.",
    )
    metadata_mode: MetadataMode = Field(
        default=MetadataMode.EMBED, description="Metadata included in the node text the reranker scores."
    )
    trust_remote_code: bool = Field(default=False, description="Whether to trust remote code when loading.")
    backend: str = Field(
        default="torch",
        description="'torch', or 'onnx' / 'onnx-int8' (onnxruntime) for a cross-encoder folder exported with `hn export-onnx` or a bi-encoder folder.",
    )
    prerank_model: str | None = Field(
        default=None,
        description="A faster reranker that orders every node first; `model` then re-scores its prerank_top_n best.",
    )
    prerank_top_n: int = Field(default=20, description="Nodes of the prerank model that `model` re-scores.")

    _follower: Any = PrivateAttr()

    def __init__(
        self,
        model: str | os.PathLike[str],
        top_n: int = 2,
        device: str | None = None,
        batch_size: int = 32,
        keep_retrieval_score: bool = False,
        metadata_mode: MetadataMode = MetadataMode.EMBED,
        trust_remote_code: bool = False,
        callback_manager: CallbackManager | None = None,
        fuse_retrieval_score: bool = True,
        backend: str = "torch",
        prerank_model: str | os.PathLike[str] | None = None,
        prerank_top_n: int = 20,
    ) -> None:
        if top_n < 1:
            raise ValueError(f"HardNegativeRerank: top_n must be >= 1, got {top_n}.")
        if batch_size < 1:
            raise ValueError(f"HardNegativeRerank: batch_size must be >= 1, got {batch_size}.")
        if prerank_top_n < 1:
            raise ValueError(f"HardNegativeRerank: prerank_top_n must be >= 1, got {prerank_top_n}.")
        super().__init__(  # type: ignore[call-arg]  # pydantic fields, unknown to mypy without its plugin
            model=str(model),
            top_n=top_n,
            device=device,
            batch_size=batch_size,
            keep_retrieval_score=keep_retrieval_score,
            fuse_retrieval_score=fuse_retrieval_score,
            metadata_mode=metadata_mode,
            trust_remote_code=trust_remote_code,
            backend=backend,
            prerank_model=None if prerank_model is None else str(prerank_model),
            prerank_top_n=prerank_top_n,
            callback_manager=callback_manager or CallbackManager([]),
        )
        self._load()

    def _load(self) -> None:
        """Load ``model`` now; a registry folder is followed: its new current version is loaded once after each
        promotion or rollback, while concurrent queries go on with the previous one (:class:`RegistryFollower`)."""
        self._follower = RegistryFollower(self.model, self._build)
        self._follower.get()

    def _build(self, source: str) -> Any:
        """The reranker of ``source`` (``model``, or a registry's current version folder), with the prerank model."""
        reranker = load_reranker(
            source,
            device=self.device,
            batch_size=self.batch_size,
            trust_remote_code=self.trust_remote_code,
            backend=self.backend,  # type: ignore[arg-type]
        )
        if self.prerank_model is not None:
            fast = load_reranker(
                self.prerank_model,
                device=self.device,
                batch_size=self.batch_size,
                trust_remote_code=self.trust_remote_code,
            )
            reranker = CascadeReranker(fast, reranker, top_k=self.prerank_top_n)
        logger.info("HardNegativeRerank loaded %s (%s reranker)", source, reranker.kind)
        return reranker

    @classmethod
    def class_name(cls) -> str:
        return "HardNegativeRerank"

    @property
    def kind(self) -> str:
        """``"cross"`` or ``"bi"``: the kind of reranker loaded; ``"cascade"`` with a ``prerank_model``."""
        return str(self._follower.loaded.kind)

    @classmethod
    def from_index(
        cls,
        index: IndexSource,
        qa: QAPairs,
        output_dir: str | os.PathLike[str],
        *,
        top_n: int = 2,
        device: str | None = None,
        keep_retrieval_score: bool = False,
        metadata_mode: MetadataMode = MetadataMode.EMBED,
        **finetune_kwargs: Any,
    ) -> HardNegativeRerank:
        """Mine hard negatives from an index's nodes, fine-tune a reranker on them, return it ready to use.

        A shortcut for :class:`~llama_index.postprocessor.hn_rerank.HardNegativeFinetuneEngine`:
        ``HardNegativeFinetuneEngine.from_index(...).finetune()`` then ``get_finetuned_model(top_n=...)``; both
        run the mining and training of
        :class:`~llama_index.postprocessor.hn_rerank.engine.BaseHardNegativeFinetuneEngine`.

        Args:
            index: a ``VectorStoreIndex`` (in-memory or over an external vector store such as Qdrant), a
                ``StorageContext``, a persisted storage folder, a docstore or a vector store.
            qa: QA pairs: an ``EmbeddingQAFinetuneDataset`` JSON path or dict (``{"queries", "corpus",
                "relevant_docs"}``), such an object, or a list of ``(question, node_id)`` pairs.
            output_dir: where the fine-tuned reranker is written.
            top_n: ``top_n`` of the returned postprocessor.
            device: torch device for mining, training and reranking.
            keep_retrieval_score: see the class arguments.
            metadata_mode: node text used for training and reranking (the same on both sides).
            **finetune_kwargs: passed to :class:`HardNegativeFinetuneEngine` (``base_model``, ``kind``,
                ``mining_models``, ``selector``, ``num_negatives``, ``epochs``, ``seed``, ...).

        Returns:
            A :class:`HardNegativeRerank` loading the fine-tuned model from ``output_dir``.

        Example:
            >>> rerank = HardNegativeRerank.from_index(index, "qa_pairs.json", "models/faq-reranker",
            ...                                        base_model="cross-encoder/ms-marco-MiniLM-L6-v2",
            ...                                        top_n=5)  # doctest: +SKIP
            >>> index.as_query_engine(similarity_top_k=20, node_postprocessors=[rerank])  # doctest: +SKIP
        """
        engine = BaseHardNegativeFinetuneEngine.from_index(
            index, qa, output_dir=output_dir, metadata_mode=metadata_mode, device=device, **finetune_kwargs
        )
        trained = engine.finetune()
        return cls(
            model=str(trained.path),
            top_n=top_n,
            device=device,
            keep_retrieval_score=keep_retrieval_score,
            metadata_mode=metadata_mode,
        )

    def _node_texts(self, nodes: list[NodeWithScore]) -> list[str]:
        texts = [n.node.get_content(metadata_mode=self.metadata_mode) for n in nodes]
        empty = [n.node.node_id for n, text in zip(nodes, texts, strict=True) if not (text or "").strip()]
        if empty:
            raise ValueError(
                f"{self.class_name()}: {len(empty)} of {len(nodes)} node(s) have no text to score (first "
                f"ids: {empty[:5]}). A reranker scores text: drop such nodes (e.g. image-only nodes) before "
                "this postprocessor, or give them text."
            )
        return texts

    def _postprocess_nodes(
        self,
        nodes: list[NodeWithScore],
        query_bundle: QueryBundle | None = None,
    ) -> list[NodeWithScore]:
        dispatcher.event(
            ReRankStartEvent(query=query_bundle, nodes=nodes, top_n=self.top_n, model_name=self.model)
        )
        if query_bundle is None:
            raise ValueError(
                "Missing query bundle in extra info: HardNegativeRerank needs the query to score nodes."
            )
        if len(nodes) == 0:
            dispatcher.event(ReRankEndEvent(nodes=[]))
            return []
        reranker = self._follower.get()  # one complete version answers this whole query
        texts = self._node_texts(nodes)

        with self.callback_manager.event(
            CBEventType.RERANKING,
            payload={
                EventPayload.NODES: nodes,
                EventPayload.MODEL_NAME: self.model,
                EventPayload.QUERY_STR: query_bundle.query_str,
                EventPayload.TOP_K: self.top_n,
            },
        ) as event:
            if self.fuse_retrieval_score and hasattr(reranker, "rerank_scores"):
                scores = reranker.rerank_scores(query_bundle.query_str, texts, [n.score for n in nodes])
            else:
                scores = reranker.score(query_bundle.query_str, texts)
            if len(scores) != len(nodes):
                raise RuntimeError(
                    f"{self.class_name()}: the reranker returned {len(scores)} scores for {len(nodes)} nodes."
                )
            for node, score in zip(nodes, scores, strict=True):
                if self.keep_retrieval_score:
                    node.node.metadata[RETRIEVAL_SCORE_KEY] = node.score
                    # the reranker (and a second one after it) must not read its own input score as text
                    if RETRIEVAL_SCORE_KEY not in node.node.excluded_embed_metadata_keys:
                        node.node.excluded_embed_metadata_keys.append(RETRIEVAL_SCORE_KEY)
                node.score = float(score)
            new_nodes = sorted(nodes, key=lambda n: -float(n.score or 0.0))[: self.top_n]
            event.on_end(payload={EventPayload.NODES: new_nodes})

        dispatcher.event(ReRankEndEvent(nodes=new_nodes))
        return new_nodes
