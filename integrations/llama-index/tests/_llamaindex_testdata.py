"""Real test data for the LlamaIndex integration tests (a module name unique in the repository)."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from llama_index.core.schema import TextNode

from hn_plugins.data import RetrievalDataset

REPO_ROOT = Path(__file__).resolve().parents[3]
DATA_ROOT = Path(os.environ.get("HN_DATA_DIR", REPO_ROOT.parent / "shared" / "data"))
FAQ_DIR = DATA_ROOT / "python-docs-faq"


def node_id_for(doc_id: str) -> str:
    """A stable UUID node id for a dataset document id (Qdrant takes only UUIDs or integers as ids)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, doc_id))


def faq_nodes(dataset: RetrievalDataset, doc_ids: list[str], max_chars: int = 700) -> list[TextNode]:
    """Nodes with metadata, as a LlamaIndex ingestion would make them: the section heading is embedded, the
    source id is kept for people but excluded from what models see. Texts are cut to ``max_chars`` (a small
    RAG chunk, about 150 tokens) to keep the tests fast on 2 cores."""
    nodes = []
    for doc_id in doc_ids:
        title, text = dataset.corpus[doc_id]
        nodes.append(
            TextNode(
                id_=node_id_for(doc_id),
                text=text[:max_chars],
                metadata={"section": title, "source_id": doc_id},
                excluded_embed_metadata_keys=["source_id"],
                excluded_llm_metadata_keys=["source_id"],
            )
        )
    return nodes
