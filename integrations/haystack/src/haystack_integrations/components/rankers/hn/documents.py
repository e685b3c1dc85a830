"""What the ranker and the training helpers share: the text scored for a ``Document`` and the QA pair type."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Union

from haystack import Document

__all__ = ["QAPair", "document_text"]

#: A training example: a question and one relevant document, named by its id or given as a ``Document``.
QAPair = tuple[str, Union[str, Document]]  # noqa: UP007 - a runtime alias, kept valid on Python 3.10 too


def document_text(document: Document, meta_fields_to_embed: Sequence[str], embedding_separator: str) -> str:
    """The text a :class:`HardNegativeRanker` scores for a document (also used to build its training data).

    The listed meta values that are present and not ``None``, then the content, joined by
    ``embedding_separator`` (the convention of Haystack's sentence-transformers components).

    Example:
        >>> document_text(Document(content="A virtual NIC.", meta={"title": "VNIC"}), ["title"], "\\n")
        'VNIC\\nA virtual NIC.'
    """
    meta = document.meta or {}
    values = [str(meta[key]) for key in meta_fields_to_embed if meta.get(key) is not None]
    return embedding_separator.join([*values, document.content or ""])
