"""Haystack ranker fine-tuned on hard negatives mined with hn-plugins.

Example:
    ```python
    from haystack_integrations.components.rankers.hn import HardNegativeRanker

    ranker = HardNegativeRanker(model="models/faq-reranker", top_k=5)
    ```
"""

from __future__ import annotations

from haystack_integrations.components.rankers.hn.ranker import HardNegativeRanker
from haystack_integrations.components.rankers.hn.training import (
    QAPair,
    dataset_from_document_store,
    qa_pairs_from_evaluation_data,
    train_from_document_store,
)

__all__ = [
    "HardNegativeRanker",
    "QAPair",
    "dataset_from_document_store",
    "qa_pairs_from_evaluation_data",
    "train_from_document_store",
]
