"""A Haystack ranker that scores documents with a reranker fine-tuned on mined hard negatives."""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from haystack import Document, component, default_from_dict, default_to_dict
from haystack.utils import ComponentDevice
from haystack_integrations.components.rankers.hn.documents import QAPair, document_text
from haystack_integrations.components.rankers.hn.training import train_from_document_store

from hn_plugins.cascade import CascadeReranker
from hn_plugins.models import DEFAULT_ENSEMBLE
from hn_plugins.registry_follower import RegistryFollower
from hn_plugins.rerankers.base import Reranker, RerankerLoadError
from hn_plugins.rerankers.loading import RERANKER_BACKENDS, load_reranker

logger = logging.getLogger(__name__)

__all__ = ["HardNegativeRanker"]

#: Held while a ranker warms up, so concurrent first calls load the model once.
_WARM_UP_LOCK = threading.Lock()


def _check_top_k(top_k: Any, where: str) -> None:
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k <= 0:
        raise ValueError(f"HardNegativeRanker: {where} top_k must be a positive integer, got {top_k!r}.")


@component
class HardNegativeRanker:
    """Ranks documents by relevance to a query with a reranker fine-tuned on hard negatives.

    ``model`` is a folder written by hn-plugins' trainer (``hn train`` or
    :meth:`HardNegativeRanker.from_document_store`; a cross-encoder or a bi-encoder reranker, told apart by
    the ``hn_reranker.json`` the trainer writes), a model registry folder (its current version, followed: a
    promotion or a rollback takes effect at the next query), a plain sentence-transformers cross-encoder folder,
    or a cross-encoder hub name such as ``cross-encoder/ms-marco-MiniLM-L6-v2``. The model loads in :meth:`warm_up` (``run`` calls it when
    needed).

    Scores are what the reranker gives, as Python floats, higher is more relevant: the cosine similarity for a
    bi-encoder reranker, the cross-encoder's activated output for a cross-encoder. Documents are deduplicated
    by id (the copy with the highest incoming score is kept), sorted by decreasing score, filtered by
    ``score_threshold`` and cut to ``top_k``. Input documents are never modified: each output is a copy
    carrying the new score.

    Args:
        model: local model folder or cross-encoder hub name (see above). Relative folders resolve against the
            working directory at warm-up; pass an absolute path in pipelines you save.
        top_k: the most documents to return (> 0).
        device: the device to load the model on (``None``: Haystack picks the best available at warm-up). A
            string such as ``"cpu"`` or ``"cuda:0"`` is accepted and converted.
        batch_size: scoring batch size.
        score_threshold: when set, only documents scoring at least this much are returned.
        meta_fields_to_embed: meta fields whose values are prepended to the content before scoring.
        embedding_separator: separator between those meta values and the content.
        trust_remote_code: allow custom model code from the model folder or hub; off unless you turn it on.
        fuse_retrieval_score: when the model folder carries a fusion weight (``hn train`` chooses one on its
            validation queries) and every incoming document has a ``score`` from the retriever, rank by
            ``weight * z(reranker) + (1 - weight) * z(retriever)`` (z: per-query z-score) instead of the reranker
            alone; the output ``score`` is then that fused value. The weight was chosen against BM25 scores.
        backend: ``torch``, or ``onnx`` / ``onnx-int8`` to score with onnxruntime: a cross-encoder folder
            exported with ``hn export-onnx``, or a bi-encoder folder (exported to the hn-plugins cache on first
            use) (int8: faster on CPU; ``device`` is then unused).
        prerank_model: a faster reranker (a bi-encoder folder from ``hn train --kind bi``, a registry folder, or
            ``zero-shot:all-MiniLM-L6-v2`` for an untuned bi-encoder) that first orders every document; ``model``
            then re-scores only its ``prerank_top_k`` best (:class:`hn_plugins.cascade.CascadeReranker`).
            Documents below them keep the prerank order, with scores below every re-scored document's. ``None``
            (default): ``model`` scores all.
        prerank_top_k: how many of the prerank model's best documents ``model`` re-scores.

    Raises:
        ValueError: ``top_k``, ``batch_size`` or ``prerank_top_k`` is not a positive integer, or ``backend`` is
            unknown.

    Example:
        ```python
        from haystack import Document
        from haystack_integrations.components.rankers.hn import HardNegativeRanker

        ranker = HardNegativeRanker(model="models/faq-reranker", top_k=3)
        docs = [Document(content="Use a virtual environment."), Document(content="Paris is in France.")]
        result = ranker.run(query="How do I isolate project dependencies?", documents=docs)
        print(result["documents"][0].content, result["documents"][0].score)
        ```
    """

    def __init__(
        self,
        *,
        model: str | os.PathLike[str],
        top_k: int = 10,
        device: ComponentDevice | str | None = None,
        batch_size: int = 32,
        score_threshold: float | None = None,
        meta_fields_to_embed: list[str] | None = None,
        embedding_separator: str = "\n",
        trust_remote_code: bool = False,
        fuse_retrieval_score: bool = True,
        backend: Literal["torch", "onnx", "onnx-int8"] = "torch",
        prerank_model: str | os.PathLike[str] | None = None,
        prerank_top_k: int = 20,
    ) -> None:
        """Store the settings; nothing is loaded until :meth:`warm_up`."""
        if not str(model).strip():
            raise ValueError(
                "HardNegativeRanker: model is empty; pass a model folder or a cross-encoder name."
            )
        _check_top_k(top_k, "init")
        if isinstance(prerank_top_k, bool) or not isinstance(prerank_top_k, int) or prerank_top_k <= 0:
            raise ValueError(
                f"HardNegativeRanker: prerank_top_k must be a positive integer, got {prerank_top_k!r}."
            )
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
            raise ValueError(
                f"HardNegativeRanker: batch_size must be a positive integer, got {batch_size!r}."
            )
        if backend not in RERANKER_BACKENDS:
            raise ValueError(
                f"HardNegativeRanker: backend must be one of {RERANKER_BACKENDS}, got {backend!r}."
            )
        if isinstance(device, str):
            device = ComponentDevice.from_str(device)
        self.model = str(model)
        self.backend = backend
        self.top_k = top_k
        self.device = device
        self.batch_size = batch_size
        self.score_threshold = None if score_threshold is None else float(score_threshold)
        self.meta_fields_to_embed = list(meta_fields_to_embed or [])
        self.embedding_separator = embedding_separator
        self.trust_remote_code = trust_remote_code
        self.fuse_retrieval_score = bool(fuse_retrieval_score)
        self.prerank_model = None if prerank_model is None else str(prerank_model)
        self.prerank_top_k = prerank_top_k
        self._follower: RegistryFollower[Reranker] | None = None

    # ------------------------------------------------------------------ lifecycle
    def warm_up(self) -> None:
        """Load the model once; later calls do nothing.

        Raises:
            RerankerLoadError: the model folder is missing, or holds something that is not a reranker (for
                example a plain bi-encoder that was never fine-tuned as a reranker). A ``ValueError``.
        """
        if self._follower is not None:
            return
        resolved = ComponentDevice.resolve_device(self.device)
        if resolved.has_multiple_devices:
            raise ValueError(
                "HardNegativeRanker runs on one device; pass a single ComponentDevice, not a device map."
            )
        device = resolved.to_torch_str()
        with _WARM_UP_LOCK:
            if self._follower is not None:
                return
            # a registry folder is followed: its new current version is loaded once after each promotion or
            # rollback, while concurrent runs go on with the previous one
            follower: RegistryFollower[Reranker] = RegistryFollower(
                self.model, lambda source: self._build(source, device)
            )
            follower.get()
            self._follower = follower

    def _build(self, source: str, device: str) -> Reranker:
        """The reranker of ``source`` (``model``, or a registry's current version folder), with the prerank model."""
        reranker = self._load("model", source, device, self.backend)
        if self.prerank_model is not None:
            fast = self._load("prerank_model", self.prerank_model, device, "torch")
            reranker = CascadeReranker(fast, reranker, top_k=self.prerank_top_k)
        logger.info(
            "HardNegativeRanker loaded %s reranker from %s on %s",
            getattr(reranker, "kind", "?"),
            source,
            device,
        )
        return reranker

    def _load(self, setting: str, model: str, device: str, backend: str) -> Any:
        """``load_reranker(model)``; a failure names the setting it came from."""
        try:
            return load_reranker(
                model,
                device=device,
                batch_size=self.batch_size,
                trust_remote_code=self.trust_remote_code,
                backend=backend,  # type: ignore[arg-type]
            )
        except RerankerLoadError as exc:
            raise RerankerLoadError(f"HardNegativeRanker could not load {setting} {model!r}: {exc}") from exc

    @property
    def _reranker(self) -> Reranker | None:
        """The reranker being served (``None`` before :meth:`warm_up`)."""
        return self._follower.loaded if self._follower is not None else None

    @property
    def kind(self) -> Literal["cross", "bi", "cascade"] | None:
        """``"cross"`` or ``"bi"`` once warmed up (``"cascade"`` with a ``prerank_model``), else ``None``."""
        return getattr(self._reranker, "kind", None) if self._reranker is not None else None

    # ------------------------------------------------------------------ serialisation
    def to_dict(self) -> dict[str, Any]:
        """Serialise the component's settings (never the model weights).

        Returns:
            ``{"type": ..., "init_parameters": {...}}`` with JSON-serialisable values only.
        """
        return default_to_dict(
            self,
            model=self.model,
            top_k=self.top_k,
            device=self.device.to_dict() if self.device is not None else None,
            batch_size=self.batch_size,
            score_threshold=self.score_threshold,
            meta_fields_to_embed=self.meta_fields_to_embed,
            embedding_separator=self.embedding_separator,
            trust_remote_code=self.trust_remote_code,
            fuse_retrieval_score=self.fuse_retrieval_score,
            backend=self.backend,
            prerank_model=self.prerank_model,
            prerank_top_k=self.prerank_top_k,
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HardNegativeRanker:
        """Rebuild a component from :meth:`to_dict`'s output (a serialised device is restored too).

        ``data`` is not modified.
        """
        init_parameters = dict(data.get("init_parameters", {}))
        if isinstance(init_parameters.get("device"), dict):
            init_parameters["device"] = ComponentDevice.from_dict(init_parameters["device"])
        return default_from_dict(cls, {**data, "init_parameters": init_parameters})

    # ------------------------------------------------------------------ ranking
    @component.output_types(documents=list[Document])
    def run(
        self,
        *,
        query: str,
        documents: list[Document],
        top_k: int | None = None,
        score_threshold: float | None = None,
    ) -> dict[str, list[Document]]:
        """Rank ``documents`` by relevance to ``query``.

        Args:
            query: the query text.
            documents: the documents to rank (for example a retriever's output). They are not modified.
            top_k: overrides the component's ``top_k`` for this call.
            score_threshold: overrides the component's ``score_threshold`` for this call.

        Returns:
            ``{"documents": [...]}``: copies of the documents with ``score`` set, best first, at most
            ``top_k``.

        Raises:
            ValueError: ``top_k`` is not a positive integer; a document has no text content; the query is not
                a string.
            RerankerLoadError: the model cannot be loaded (see :meth:`warm_up`).
        """
        if top_k is not None:
            _check_top_k(top_k, "run()")
        if not isinstance(query, str):
            raise ValueError(f"HardNegativeRanker: query must be a string, got {type(query).__name__}.")
        if not documents:
            return {"documents": []}
        missing = [doc.id for doc in documents if doc.content is None or not doc.content.strip()]
        if missing:
            raise ValueError(
                f"HardNegativeRanker: {len(missing)} of {len(documents)} documents have no text content "
                f"(ids: {missing[:5]}). The ranker scores text only: drop such documents before ranking "
                "(for example with a DocumentCleaner or a filter), or give them content."
            )
        self.warm_up()
        assert self._follower is not None
        reranker = self._follower.get()  # one complete version answers this whole call

        unique = _deduplicate(documents)
        texts = [document_text(doc, self.meta_fields_to_embed, self.embedding_separator) for doc in unique]
        if self.fuse_retrieval_score and hasattr(reranker, "rerank_scores"):
            scores = reranker.rerank_scores(query, texts, [doc.score for doc in unique])
        else:
            scores = reranker.score(query, texts)
        order = sorted(range(len(unique)), key=lambda i: -float(scores[i]))
        ranked = [dataclasses.replace(unique[i], score=float(scores[i])) for i in order]

        threshold = self.score_threshold if score_threshold is None else float(score_threshold)
        if threshold is not None:
            ranked = [doc for doc in ranked if doc.score is not None and doc.score >= threshold]
        return {"documents": ranked[: self.top_k if top_k is None else top_k]}

    # ------------------------------------------------------------------ training
    @classmethod
    def from_document_store(
        cls,
        document_store: Any,
        qa_pairs: Sequence[QAPair] | None = None,
        *,
        output_dir: str | os.PathLike[str],
        questions: Sequence[str] | None = None,
        ground_truth_documents: Sequence[Sequence[Document]] | None = None,
        filters: dict[str, Any] | None = None,
        base_model: str = "cross-encoder/ms-marco-MiniLM-L6-v2",
        kind: Literal["cross", "bi"] = "cross",
        models: Sequence[str] = DEFAULT_ENSEMBLE,
        variance: float | None = 0.95,
        selector: str = "paper",
        num_negatives: int = 1,
        candidates: int = 100,
        loss: str = "triplet",
        epochs: int = 1,
        lr: float = 2e-5,
        train_batch_size: int = 16,
        seed: int = 0,
        cache_dir: str | os.PathLike[str] | None = None,
        max_length: int | None = None,
        miner_kwargs: dict[str, Any] | None = None,
        trainer_kwargs: dict[str, Any] | None = None,
        top_k: int = 10,
        device: ComponentDevice | str | None = None,
        batch_size: int = 32,
        score_threshold: float | None = None,
        meta_fields_to_embed: list[str] | None = None,
        embedding_separator: str = "\n",
    ) -> HardNegativeRanker:
        """Mine hard negatives from a document store, fine-tune a reranker on them, and return a ranker using
        it.

        One call for :func:`~haystack_integrations.components.rankers.hn.training.train_from_document_store`:
        documents are read through ``document_store.filter_documents(filters=...)``, QA pairs are given
        either as ``(question, document id or Document)`` pairs or as Haystack evaluation data (``questions``
        plus ``ground_truth_documents``, as for ``DocumentMRREvaluator``). Mining uses hn-plugins'
        ``HardNegativeMiner`` (an embedding ensemble of ``models``, PCA keeping ``variance``, the
        ``selector``), training uses ``fine_tune_reranker``; the model is written to ``output_dir``.

        The documents are embedded for training exactly as the returned ranker will score them
        (``meta_fields_to_embed`` and ``embedding_separator`` apply to both).

        Args:
            document_store: any Haystack ``DocumentStore`` (only ``filter_documents`` is used).
            qa_pairs: ``(question, document id)`` or ``(question, Document)`` pairs.
            output_dir: where the fine-tuned model is written (the returned ranker's ``model``).
            questions: evaluation-data questions (instead of ``qa_pairs``).
            ground_truth_documents: for each question, its relevant Documents (instead of ``qa_pairs``).
            filters: Haystack filters restricting the documents read from the store.
            base_model: the model fine-tuning starts from (a pretrained cross-encoder for ``kind="cross"``, a
                bi-encoder for ``kind="bi"``).
            kind: ``"cross"`` (cross-encoder) or ``"bi"`` (bi-encoder reranker).
            models: the embedding ensemble used for mining.
            variance: share of variance PCA keeps; ``None`` mines on the raw concatenated embeddings.
            selector: negative selector (``paper``, ``default``, ``random``, ``bm25``, ``dense-topk``,
                ``positive-aware``); ``default`` is what the benchmark's ``default`` row mines (the paper's
                negatives, a positive-aware fallback where none qualifies, one random negative; train it with
                ``loss="in-batch"``).
            num_negatives: negatives per (question, positive) pair.
            candidates: nearest neighbours examined per query when mining.
            loss: training loss (``triplet`` is the paper's margin loss).
            epochs: training epochs.
            lr: learning rate.
            train_batch_size: training batch size.
            seed: seed for mining and training.
            cache_dir: embedding cache folder for the mining ensemble (``None``: no cache).
            max_length: maximum tokens per training text or (query, document) pair.
            miner_kwargs: more ``HardNegativeMiner`` settings (e.g. ``{"relative_margin": 0.05}``).
            trainer_kwargs: more ``fine_tune_reranker`` settings (e.g. ``{"margin": 0.3}``).
            top_k: the returned ranker's ``top_k``.
            device: the returned ranker's ``device``.
            batch_size: the returned ranker's scoring ``batch_size``.
            score_threshold: the returned ranker's ``score_threshold``.
            meta_fields_to_embed: meta fields prepended to the content, for training and ranking.
            embedding_separator: separator between those meta values and the content.

        Returns:
            A :class:`HardNegativeRanker` on the fine-tuned model (not yet warmed up; serialisable).

        Raises:
            DatasetError: unknown document ids, documents without content, empty questions (a ``ValueError``).

        Example:
            ```python
            ranker = HardNegativeRanker.from_document_store(
                store, [("How do I install pip?", "doc-17"), ...], output_dir="models/faq-reranker",
                base_model="cross-encoder/ms-marco-MiniLM-L6-v2", kind="cross", top_k=5,
            )
            pipeline.add_component("ranker", ranker)
            ```
        """
        trained = train_from_document_store(
            document_store,
            qa_pairs,
            output_dir=output_dir,
            questions=questions,
            ground_truth_documents=ground_truth_documents,
            filters=filters,
            base_model=base_model,
            kind=kind,
            models=models,
            variance=variance,
            selector=selector,
            num_negatives=num_negatives,
            candidates=candidates,
            loss=loss,
            epochs=epochs,
            lr=lr,
            batch_size=train_batch_size,
            seed=seed,
            cache_dir=cache_dir,
            max_length=max_length,
            miner_kwargs=miner_kwargs,
            trainer_kwargs=trainer_kwargs,
            meta_fields_to_embed=meta_fields_to_embed,
            embedding_separator=embedding_separator,
        )
        return cls(
            model=str(Path(trained.path).resolve()),
            top_k=top_k,
            device=device,
            batch_size=batch_size,
            score_threshold=score_threshold,
            meta_fields_to_embed=meta_fields_to_embed,
            embedding_separator=embedding_separator,
        )


def _deduplicate(documents: Sequence[Document]) -> list[Document]:
    """One document per id, in first-seen order; among duplicates the one with the highest score is kept."""
    best: dict[str, Document] = {}
    for doc in documents:
        kept = best.get(doc.id)
        if kept is None or (doc.score is not None and (kept.score is None or doc.score > kept.score)):
            best[doc.id] = doc
    return list(best.values())
