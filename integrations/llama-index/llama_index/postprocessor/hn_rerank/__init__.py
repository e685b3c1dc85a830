"""LlamaIndex postprocessor integration of hn-plugins: rerank with a model fine-tuned on hard negatives
mined from your own index."""

from llama_index.postprocessor.hn_rerank.base import HardNegativeRerank
from llama_index.postprocessor.hn_rerank.data import dataset_from_index, dataset_from_nodes, nodes_from_index
from llama_index.postprocessor.hn_rerank.finetune import HardNegativeFinetuneEngine

__all__ = [
    "HardNegativeFinetuneEngine",
    "HardNegativeRerank",
    "dataset_from_index",
    "dataset_from_nodes",
    "nodes_from_index",
]
