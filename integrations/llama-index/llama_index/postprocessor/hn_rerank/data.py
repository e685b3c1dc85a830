"""Turn LlamaIndex objects into an :class:`hn_plugins.RetrievalDataset`: nodes become the corpus (keyed by
node id),
QA pairs become queries and relevance judgments.

Nodes come from a ``VectorStoreIndex`` (its docstore, or its vector store when the store keeps the text, as
Qdrant, Chroma and most external stores do by default), a ``StorageContext`` or persisted storage folder, a
docstore, a vector store that implements ``get_nodes``, or a plain list of nodes. QA pairs come from the JSON
that
``EmbeddingQAFinetuneDataset.save_json`` writes (``{"queries", "corpus", "relevant_docs"}``), that object
itself,
or a list of ``(question, node_id)`` pairs.
"""

from __future__ import annotations

import inspect
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from llama_index.core import StorageContext
from llama_index.core.indices.base import BaseIndex
from llama_index.core.schema import BaseNode, MetadataMode, NodeWithScore
from llama_index.core.storage.docstore.types import BaseDocumentStore
from llama_index.core.vector_stores.types import BasePydanticVectorStore

from hn_plugins.data import DatasetError, RetrievalDataset, load_llamaindex_qa

logger = logging.getLogger(__name__)

__all__ = [
    "IndexSource",
    "QAPairs",
    "dataset_from_index",
    "dataset_from_nodes",
    "nodes_from_index",
]

#: Where nodes can come from.
IndexSource = BaseIndex | StorageContext | BaseDocumentStore | BasePydanticVectorStore | str | os.PathLike
#: QA pairs: JSON path, parsed dict, an EmbeddingQAFinetuneDataset-like object, or (question, node_id(s))
#: pairs.
QAPairs = str | os.PathLike | Mapping[str, Any] | Sequence[tuple[str, str | Sequence[str]]] | Any


# ---------------------------------------------------------------------- nodes
def _vector_store_size(store: Any) -> int | None:
    """Number of points in a store that can count them (Qdrant); ``None`` when unknown."""
    client, collection = getattr(store, "client", None), getattr(store, "collection_name", None)
    if client is None or collection is None or not hasattr(client, "count"):
        return None
    try:
        return int(client.count(collection_name=collection, exact=True).count)
    except Exception:  # a store that cannot count is not an error
        return None


def _nodes_from_vector_store(store: BasePydanticVectorStore) -> list[BaseNode]:
    label = type(store).__name__
    if not getattr(store, "stores_text", False):
        raise DatasetError(
            f"{label} keeps only vectors, not node text, so its nodes cannot be read back from it. Pass the "
            "index or its StorageContext (its docstore holds the nodes), or the nodes themselves to "
            "dataset_from_nodes()."
        )
    try:
        nodes = list(store.get_nodes())
    except NotImplementedError as exc:
        raise DatasetError(
            f"{label} cannot list its nodes (get_nodes is not implemented by its LlamaIndex integration). "
            "Build the index with VectorStoreIndex(..., store_nodes_override=True) so its docstore keeps "
            "the nodes, or pass the nodes you indexed to dataset_from_nodes()."
        ) from exc
    size = _vector_store_size(store)
    if size is not None and len(nodes) < size:
        # Qdrant's get_nodes() stops at 9,999 points unless it is given a limit
        if "limit" in inspect.signature(store.get_nodes).parameters:
            nodes = list(store.get_nodes(limit=size))  # type: ignore[call-arg]
        if len(nodes) < size:
            raise DatasetError(
                f"{label} holds {size} points but get_nodes() returned {len(nodes)}; mining needs every "
                "node. Pass the nodes to dataset_from_nodes() instead."
            )
    return nodes


def _nodes_from_storage_context(storage: StorageContext, label: str) -> list[BaseNode]:
    docstore = storage.docstore
    node_ids: list[str] = []
    for struct in storage.index_store.index_structs():
        ids = getattr(struct, "nodes_dict", None)
        node_ids.extend(ids.values() if ids else getattr(struct, "nodes", None) or [])
    if node_ids:
        return docstore.get_nodes(list(dict.fromkeys(node_ids)))
    if docstore.docs:
        return list(docstore.docs.values())
    stores = [store for store in storage.vector_stores.values() if getattr(store, "stores_text", False)]
    try:
        if not stores:
            raise DatasetError("no vector store of this storage context keeps node text")
        return _nodes_from_vector_store(stores[0])
    except DatasetError as exc:
        raise DatasetError(
            f"{label} holds no nodes in its docstore: the index keeps them in an external vector store "
            "(store_nodes_override=False). Pass the index (or its vector store) instead, e.g. "
            "VectorStoreIndex.from_vector_store(vector_store), or rebuild with store_nodes_override=True."
        ) from exc


def nodes_from_index(index: IndexSource) -> list[BaseNode]:
    """Every node of an index, a storage context or folder, a docstore, or a vector store.

    Args:
        index: a ``VectorStoreIndex`` (or any ``BaseIndex``), a ``StorageContext``, a persisted storage folder
            (``storage_context.persist(persist_dir)``), a docstore, or a vector store that implements
            ``get_nodes`` and keeps text (Qdrant, Chroma, ...).

    Returns:
        The nodes, in the store's order, each once.

    Raises:
        DatasetError: the source holds no nodes, or they cannot be enumerated (the message says what to pass).

    Example:
        >>> nodes = nodes_from_index(index)  # doctest: +SKIP
    """
    if isinstance(index, (str, os.PathLike)):
        folder = Path(index)
        if not folder.is_dir():
            raise DatasetError(
                f"Storage folder {folder} does not exist; pass the persist_dir of storage_context.persist()."
            )
        nodes = _nodes_from_storage_context(
            StorageContext.from_defaults(persist_dir=str(folder)), f"Storage folder {folder}"
        )
    elif isinstance(index, StorageContext):
        nodes = _nodes_from_storage_context(index, "This StorageContext")
    elif isinstance(index, BaseIndex):
        struct = index.index_struct
        ids = getattr(struct, "nodes_dict", None)
        ids = list(ids.values()) if ids else list(getattr(struct, "nodes", None) or [])
        if ids:
            nodes = index.docstore.get_nodes(ids)
        elif index.docstore.docs:
            nodes = list(index.docstore.docs.values())
        elif getattr(index, "vector_store", None) is not None:
            nodes = _nodes_from_vector_store(index.vector_store)  # type: ignore[attr-defined]
        else:
            nodes = []
    elif isinstance(index, BaseDocumentStore):
        nodes = list(index.docs.values())
    elif isinstance(index, BasePydanticVectorStore):
        nodes = _nodes_from_vector_store(index)
    else:
        raise TypeError(
            "nodes_from_index() expects a LlamaIndex index, StorageContext, storage folder, docstore or "
            f"vector store, got {type(index).__name__}. For a list of nodes use dataset_from_nodes()."
        )
    if not nodes:
        raise DatasetError(f"{type(index).__name__} holds no nodes; index some documents first.")
    return _unique(nodes)


def _unique(nodes: Iterable[BaseNode]) -> list[BaseNode]:
    seen: dict[str, BaseNode] = {}
    for node in nodes:
        seen.setdefault(node.node_id, node)
    return list(seen.values())


# ---------------------------------------------------------------------- QA pairs
def _qa_from_pairs(pairs: Sequence[Any]) -> tuple[dict[str, str], dict[str, dict[str, int]]]:
    queries: dict[str, str] = {}
    by_text: dict[str, str] = {}
    qrels: dict[str, dict[str, int]] = {}
    for i, pair in enumerate(pairs):
        if isinstance(pair, (str, bytes)) or not isinstance(pair, Sequence) or len(pair) != 2:
            raise DatasetError(
                f"QA pair #{i} is {pair!r}; expected (question, node_id) or (question, [node_id, ...])."
            )
        question, targets = pair
        if not isinstance(question, str) or not question.strip():
            raise DatasetError(f"QA pair #{i}: the question must be a non-empty string, got {question!r}.")
        ids = (
            [targets] if isinstance(targets, str) else list(targets) if isinstance(targets, Sequence) else []
        )
        if not ids or not all(isinstance(t, str) and t for t in ids):
            raise DatasetError(f"QA pair #{i}: expected node id string(s), got {targets!r}.")
        qid = by_text.setdefault(question.strip(), f"q{len(by_text)}")  # the same question twice: one query
        queries[qid] = question.strip()
        qrels.setdefault(qid, {}).update({t: 1 for t in ids})
    return queries, qrels


def _read_qa(qa: QAPairs) -> tuple[dict[str, str], dict[str, dict[str, int]], set[str]]:
    """Queries, judgments and the QA file's own corpus ids (empty for pairs)."""
    if all(hasattr(qa, key) for key in ("queries", "corpus", "relevant_docs")) and not isinstance(
        qa, Mapping
    ):
        obj: Any = qa
        qa = {"queries": obj.queries, "corpus": obj.corpus, "relevant_docs": obj.relevant_docs}
    if isinstance(qa, (str, os.PathLike, Mapping)):
        parsed = load_llamaindex_qa(
            qa
        )  # checks keys, JSON syntax and that judgments name the file's own corpus
        return dict(parsed.queries), {q: dict(r) for q, r in parsed.qrels.items()}, set(parsed.corpus)
    if isinstance(qa, Sequence):
        if not qa:
            raise DatasetError("No QA pairs given; pass at least one (question, node_id) pair.")
        queries, qrels = _qa_from_pairs(qa)
        return queries, qrels, set()
    raise TypeError(
        "QA pairs must be an EmbeddingQAFinetuneDataset JSON path or dict, such an object, or a list of "
        f"(question, node_id) pairs; got {type(qa).__name__}."
    )


# ---------------------------------------------------------------------- datasets
def dataset_from_nodes(
    nodes: Iterable[BaseNode | NodeWithScore],
    qa: QAPairs,
    *,
    metadata_mode: MetadataMode = MetadataMode.EMBED,
    empty_nodes: Literal["raise", "drop"] = "raise",
    name: str = "llamaindex",
) -> RetrievalDataset:
    """Build a :class:`~hn_plugins.RetrievalDataset` whose corpus is ``nodes`` (by node id) and whose queries
    and
    judgments are ``qa``.

    Args:
        nodes: the nodes of your index (``BaseNode`` or ``NodeWithScore``); all of them are mining candidates.
        qa: an ``EmbeddingQAFinetuneDataset`` JSON path or dict (``{"queries", "corpus", "relevant_docs"}``),
            such an object, or a list of ``(question, node_id)`` / ``(question, [node_id, ...])`` pairs.
        metadata_mode: which metadata goes into a node's text (``EMBED``, as ``HardNegativeRerank`` scores
            it).
        empty_nodes: ``"raise"`` stops on nodes without text; ``"drop"`` removes them (and judgments naming
            them)
            with a warning.
        name: a label for reports.

    Returns:
        The dataset: ``corpus[node_id] = ("", node text)``.

    Raises:
        DatasetError: nodes without text, QA pairs naming node ids that are not among ``nodes``, malformed QA
            input, two different nodes with one id.

    Example:
        >>> from llama_index.core.schema import TextNode
        >>> nodes = [TextNode(id_="n1", text="A virtual cloud network."), TextNode(id_="n2", text="A virtual
        NIC.")]
        >>> ds = dataset_from_nodes(nodes, [("what is a VCN", "n1")])
        >>> ds.positive_pairs()
        [('q0', 'n1')]
    """
    corpus: dict[str, tuple[str, str]] = {}
    empty: list[str] = []
    for item in nodes:
        node = item.node if isinstance(item, NodeWithScore) else item
        if not isinstance(node, BaseNode):
            raise TypeError(f"dataset_from_nodes() expects LlamaIndex nodes, got {type(node).__name__}.")
        text = (node.get_content(metadata_mode=metadata_mode) or "").strip()
        if not text:
            empty.append(node.node_id)
            continue
        previous = corpus.get(node.node_id)
        if previous is not None and previous[1] != text:
            raise DatasetError(
                f"Two different nodes share the id {node.node_id!r}; node ids must be unique within an index."
            )
        corpus[node.node_id] = ("", text)
    queries, qrels, qa_corpus_ids = _read_qa(qa)
    if empty:
        if empty_nodes == "raise":
            raise DatasetError(
                f"{len(empty)} node(s) have no text (first ids: {empty[:5]}); a reranker trains on text. "
                "Remove them (e.g. image-only nodes) or pass empty_nodes='drop' to skip them and the QA "
                "pairs that name them."
            )
        if empty_nodes != "drop":
            raise DatasetError(f"empty_nodes must be 'raise' or 'drop', got {empty_nodes!r}.")
        logger.warning("%s: dropping %d node(s) without text: %s", name, len(empty), empty[:10])
        dropped = set(empty)
        qrels = {q: {d: g for d, g in rel.items() if d not in dropped} for q, rel in qrels.items()}
        qrels = {q: rel for q, rel in qrels.items() if rel}
        queries = {q: t for q, t in queries.items() if q in qrels}
    unknown = sorted({d for rel in qrels.values() for d in rel if d not in corpus})
    if unknown:
        affected = sum(1 for rel in qrels.values() if any(d not in corpus for d in rel))
        hint = (
            " The QA file's own corpus has them, so it was generated from other nodes (a different chunking "
            "or an older index): regenerate the QA pairs from this index's nodes, or index those nodes."
            if unknown[0] in qa_corpus_ids
            else " Take node ids from the index (node.node_id), not from the source documents."
        )
        raise DatasetError(
            f"{affected} QA pair(s) name {len(unknown)} node id(s) that are not in the index (first: "
            f"{unknown[:5]}, index has {len(corpus)} nodes).{hint}"
        )
    if not qrels:
        raise DatasetError("The QA pairs hold no (question, node) judgment; give at least one.")
    return RetrievalDataset(corpus=corpus, queries=queries, qrels=qrels, name=name)


def dataset_from_index(
    index: IndexSource,
    qa: QAPairs,
    *,
    metadata_mode: MetadataMode = MetadataMode.EMBED,
    empty_nodes: Literal["raise", "drop"] = "raise",
    name: str | None = None,
) -> RetrievalDataset:
    """Build a :class:`~hn_plugins.RetrievalDataset` from every node of an index and QA pairs
    over those nodes.

    Args:
        index: a ``VectorStoreIndex`` (in-memory, or over Qdrant/Chroma/... whose nodes are read back from the
            vector store), a ``StorageContext``, a persisted storage folder, a docstore or a vector store.
        qa: see :func:`dataset_from_nodes`.
        metadata_mode: see :func:`dataset_from_nodes`.
        empty_nodes: see :func:`dataset_from_nodes`.
        name: a label for reports (default: the index id or the folder name).

    Example:
        >>> dataset = dataset_from_index(index, "qa_pairs.json")  # doctest: +SKIP
        >>> dataset = dataset_from_index("./storage", [("How do I ...?", node_id)])  # doctest: +SKIP
    """
    if name is None:
        name = (
            Path(index).name
            if isinstance(index, (str, os.PathLike))
            else str(getattr(index, "index_id", None) or type(index).__name__)
        )
    return dataset_from_nodes(
        nodes_from_index(index), qa, metadata_mode=metadata_mode, empty_nodes=empty_nodes, name=name
    )
