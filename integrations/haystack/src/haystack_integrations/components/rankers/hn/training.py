"""Translation from Haystack objects to hn-plugins' core: a ``DocumentStore`` plus QA pairs become a
``RetrievalDataset``; mining and training are the core's ``HardNegativeMiner`` and ``fine_tune_reranker``.

Nothing here mines or trains by itself: it reads documents through the public ``filter_documents`` protocol,
maps questions and ground-truth documents to ids, and calls the core.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence
from typing import Any, Literal

from haystack import Document
from haystack_integrations.components.rankers.hn.documents import QAPair, document_text

from hn_plugins.data import DatasetError, RetrievalDataset
from hn_plugins.models import DEFAULT_ENSEMBLE

logger = logging.getLogger(__name__)

__all__ = [
    "QAPair",
    "dataset_from_document_store",
    "qa_pairs_from_evaluation_data",
    "train_from_document_store",
]


def qa_pairs_from_evaluation_data(
    questions: Sequence[str], ground_truth_documents: Sequence[Sequence[Document]]
) -> list[QAPair]:
    """Flatten Haystack evaluation data (as fed to ``DocumentMRREvaluator``) into ``(question, Document)``
    pairs.

    Args:
        questions: the questions.
        ground_truth_documents: for each question, the list of its relevant documents.

    Raises:
        DatasetError: the two lists differ in length, or an entry is not a list of Documents.

    Example:
        >>> qa_pairs_from_evaluation_data(["q?"], [[Document(id="d1", content="a")]])[0][1].id
        'd1'
    """
    if isinstance(questions, str) or len(questions) != len(ground_truth_documents):
        raise DatasetError(
            f"Evaluation data: {len(questions)} questions but {len(ground_truth_documents)} ground-truth "
            "lists; give one list of relevant Documents per question."
        )
    pairs: list[QAPair] = []
    for i, (question, relevant) in enumerate(zip(questions, ground_truth_documents, strict=True)):
        if isinstance(relevant, Document) or not all(isinstance(d, Document) for d in relevant):
            raise DatasetError(
                f"Evaluation data: ground_truth_documents[{i}] must be a list of Documents, got "
                f"{type(relevant).__name__}."
            )
        if not relevant:
            logger.warning("Question %d (%r) has no ground-truth document; it is skipped.", i, question)
        pairs.extend((question, doc) for doc in relevant)
    return pairs


def _read_store(document_store: Any, filters: dict[str, Any] | None) -> list[Document]:
    if not callable(getattr(document_store, "filter_documents", None)):
        raise TypeError(
            f"{type(document_store).__name__} is not a Haystack DocumentStore: it has no "
            "filter_documents(filters=...)."
        )
    documents = document_store.filter_documents(filters=filters)
    if not documents:
        raise DatasetError(
            f"{type(document_store).__name__}.filter_documents(filters={filters!r}) returned no documents; "
            "write documents first or loosen the filters."
        )
    return list(documents)


def dataset_from_document_store(
    document_store: Any,
    qa_pairs: Iterable[QAPair] | None = None,
    *,
    questions: Sequence[str] | None = None,
    ground_truth_documents: Sequence[Sequence[Document]] | None = None,
    filters: dict[str, Any] | None = None,
    meta_fields_to_embed: Sequence[str] | None = None,
    embedding_separator: str = "\n",
    empty_documents: Literal["raise", "drop"] = "raise",
    name: str = "haystack",
) -> RetrievalDataset:
    """Build a :class:`~hn_plugins.data.RetrievalDataset` from a Haystack document store and QA pairs.

    Documents are read with the store's public ``filter_documents(filters=filters)``; each becomes a corpus
    entry keyed by its Haystack id, with the text :class:`HardNegativeRanker` scores (``meta_fields_to_embed``
    values, then the content). Questions with the same text are one query (ids ``q0``, ``q1``, ... in
    first-seen order) and may have several relevant documents.

    A relevant document is named by its id, or given as a ``Document``: then it is matched by id, and when its
    id is not in the store (a Document rebuilt with other meta gets another id) by identical content; all
    store documents with that content count as relevant.

    Args:
        document_store: any Haystack ``DocumentStore``.
        qa_pairs: ``(question, document id)`` or ``(question, Document)`` pairs.
        questions: evaluation-data questions (instead of ``qa_pairs``).
        ground_truth_documents: for each question, the list of its relevant Documents (instead of
            ``qa_pairs``).
        filters: Haystack filters restricting the documents read.
        meta_fields_to_embed: meta fields prepended to the content (as in the ranker).
        embedding_separator: separator between those meta values and the content.
        empty_documents: ``"raise"`` (default) stops on store documents without text content; ``"drop"``
            leaves them out of the corpus (a QA pair naming one then raises).
        name: the dataset's label in reports.

    Returns:
        The dataset (corpus = the store's documents, queries and judgments from the pairs).

    Raises:
        DatasetError: no documents, documents without content, a pair naming an unknown id or a Document that
            matches nothing, an empty question, or both/neither of ``qa_pairs`` and evaluation data given.
        TypeError: ``document_store`` has no ``filter_documents``.

    Example:
        >>> from haystack.document_stores.in_memory import InMemoryDocumentStore
        >>> store = InMemoryDocumentStore()
        >>> _ = store.write_documents([Document(id="d1", content="A virtual NIC."),
        ...                            Document(id="d2", content="A virtual cloud network.")])
        >>> ds = dataset_from_document_store(store, [("what is a VCN", "d2")])
        >>> ds.qrels
        {'q0': {'d2': 1}}
    """
    if qa_pairs is not None and (questions is not None or ground_truth_documents is not None):
        raise DatasetError("Give either qa_pairs or questions + ground_truth_documents, not both.")
    if qa_pairs is None:
        if questions is None or ground_truth_documents is None:
            raise DatasetError(
                "No training questions: give qa_pairs=[(question, document_id), ...] or Haystack evaluation "
                "data (questions=[...], ground_truth_documents=[[Document, ...], ...])."
            )
        qa_pairs = qa_pairs_from_evaluation_data(questions, ground_truth_documents)

    meta_fields = list(meta_fields_to_embed or [])
    store_name = type(document_store).__name__
    documents = _read_store(document_store, filters)
    corpus: dict[str, tuple[str, str]] = {}
    by_content: dict[str, list[str]] = {}
    empty: list[str] = []
    for doc in documents:
        if doc.content is None or not doc.content.strip():
            empty.append(doc.id)
            continue
        corpus[doc.id] = ("", document_text(doc, meta_fields, embedding_separator))
        by_content.setdefault(doc.content.strip(), []).append(doc.id)
    if empty:
        if empty_documents == "raise":
            raise DatasetError(
                f"{store_name}: {len(empty)} of {len(documents)} documents have no text content (first ids: "
                f"{empty[:5]}). Exclude them with filters, or pass empty_documents='drop'."
            )
        logger.warning("Dropped %d documents without text content (first ids: %s).", len(empty), empty[:5])
    if not corpus:
        raise DatasetError(f"{store_name}: none of the {len(documents)} documents has text content.")

    queries: dict[str, str] = {}
    query_ids: dict[str, str] = {}
    qrels: dict[str, dict[str, int]] = {}
    dropped = set(empty)
    for i, pair in enumerate(qa_pairs):
        try:
            question, relevant = pair
        except (TypeError, ValueError) as exc:
            raise DatasetError(
                f"QA pair {i} is {pair!r}; expected (question, document_id) or (question, Document)."
            ) from exc
        if not isinstance(question, str) or not question.strip():
            raise DatasetError(f"QA pair {i}: the question must be a non-empty string, got {question!r}.")
        doc_ids = _match(i, relevant, corpus, by_content, dropped, store_name, filters)
        text = question.strip()
        qid = query_ids.get(text)
        if qid is None:
            qid = query_ids[text] = f"q{len(query_ids)}"
            queries[qid] = text
        for doc_id in doc_ids:
            qrels.setdefault(qid, {})[doc_id] = 1
    if not qrels:
        raise DatasetError("No QA pairs given: at least one (question, relevant document) is needed.")
    dataset = RetrievalDataset(corpus=corpus, queries=queries, qrels=qrels, name=name)
    logger.info("Built %r from %s", dataset, store_name)
    return dataset


def _match(
    i: int,
    relevant: Any,
    corpus: dict[str, tuple[str, str]],
    by_content: dict[str, list[str]],
    dropped: set[str],
    store_name: str,
    filters: dict[str, Any] | None,
) -> list[str]:
    """Store ids a QA pair's relevant document refers to."""
    if isinstance(relevant, Document):
        if relevant.id in corpus:
            return [relevant.id]
        matches = by_content.get((relevant.content or "").strip(), [])
        if matches:
            return list(matches)
        raise DatasetError(
            f"QA pair {i}: ground-truth Document {relevant.id!r} (content {(relevant.content or '')[:60]!r}) "
            f"matches no document of {store_name} by id or content (filters={filters!r}). Write it to the "
            "store, or fix the ground truth."
        )
    if isinstance(relevant, str):
        if relevant in corpus:
            return [relevant]
        if relevant in dropped:
            raise DatasetError(f"QA pair {i} names document {relevant!r}, which has no text content.")
        raise DatasetError(
            f"QA pair {i} names document id {relevant!r}, which is not among the {len(corpus)} documents "
            f"{store_name}.filter_documents(filters={filters!r}) returned. Use Document.id values from the "
            "store."
        )
    raise DatasetError(
        f"QA pair {i}: the relevant document must be a document id (str) or a Document, got "
        f"{type(relevant).__name__}."
    )


def train_from_document_store(
    document_store: Any,
    qa_pairs: Iterable[QAPair] | None = None,
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
    batch_size: int = 16,
    seed: int = 0,
    cache_dir: str | os.PathLike[str] | None = None,
    max_length: int | None = None,
    meta_fields_to_embed: Sequence[str] | None = None,
    embedding_separator: str = "\n",
    miner_kwargs: dict[str, Any] | None = None,
    trainer_kwargs: dict[str, Any] | None = None,
) -> Any:
    """Read a store, mine hard negatives and fine-tune a reranker; return the trainer's ``TrainedReranker``.

    See :meth:`HardNegativeRanker.from_document_store` for the arguments (``batch_size`` here is the training
    batch size). ``miner_kwargs`` go to ``HardNegativeMiner`` (e.g. ``{"relative_margin": 0.05}`` for the
    ``positive-aware`` selector), ``trainer_kwargs`` to ``fine_tune_reranker`` (e.g. ``{"margin": 0.3}``, or
    ``{"selection": "cross-fit"}`` to choose the epochs and the fusion weight on folds of all the QA pairs; it
    trains only when the pooled gain over the starting model has p < ``selection_alpha``, 0.05 by default).
    The mined triplets and the mining diagnostics are written into the model folder as
    ``<output_dir>/mining/triplets.jsonl`` and ``diagnostics.json``, so that every negative can be audited.

    Returns:
        ``hn_plugins.training.trainer.TrainedReranker`` (``path``, ``kind``, ``history``, ``metrics``).
    """
    from pathlib import Path

    from hn_plugins.embedders import EmbedderEnsemble
    from hn_plugins.mining.miner import HardNegativeMiner
    from hn_plugins.reduction import PCAReducer
    from hn_plugins.training.trainer import fine_tune_reranker

    dataset = dataset_from_document_store(
        document_store,
        qa_pairs,
        questions=questions,
        ground_truth_documents=ground_truth_documents,
        filters=filters,
        meta_fields_to_embed=meta_fields_to_embed,
        embedding_separator=embedding_separator,
    )
    needs_embeddings = selector not in ("random", "bm25")
    ensemble = EmbedderEnsemble(list(models), cache_dir=cache_dir) if needs_embeddings else None
    reducer = PCAReducer(variance=variance) if variance is not None and needs_embeddings else None
    miner = HardNegativeMiner(
        ensemble,
        reducer=reducer,
        selector=selector,
        num_negatives=num_negatives,
        candidates=candidates,
        seed=seed,
        **(miner_kwargs or {}),
    )
    mined = miner.fit(dataset).mine(dataset)
    logger.info("Mined hard negatives from %s:\n%s", type(document_store).__name__, mined.format_summary())
    trained = fine_tune_reranker(
        mined,
        dataset,
        base_model,
        kind=kind,
        loss=loss,
        epochs=epochs,
        lr=lr,
        batch_size=batch_size,
        seed=seed,
        output_dir=output_dir,
        max_length=max_length,
        **(trainer_kwargs or {}),
    )
    mining_dir = Path(trained.path) / "mining"
    mined.to_jsonl(mining_dir / "triplets.jsonl")
    mined.save_diagnostics(mining_dir / "diagnostics.json")
    logger.info("Fine-tuned %s reranker written to %s", trained.kind, trained.path)
    return trained
