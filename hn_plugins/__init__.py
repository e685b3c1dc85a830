"""hn-plugins: hard-negative mining with an embedding ensemble + PCA (Meghwani et al., 2025) and reranker
fine-tuning, for LlamaIndex and Haystack.

Importing this package is light: heavy dependencies (torch, sentence-transformers, faiss) load on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "RetrievalDataset": "hn_plugins.data",
    "DatasetError": "hn_plugins.data",
    "load_beir": "hn_plugins.data",
    "load_llamaindex_qa": "hn_plugins.data",
    "EmbedderEnsemble": "hn_plugins.embedders",
    "OnnxEncoder": "hn_plugins.embedders",
    "EmbeddingCache": "hn_plugins.cache",
    "PCAReducer": "hn_plugins.reduction",
    "CandidateIndex": "hn_plugins.index",
    "HardNegativeMiner": "hn_plugins.mining.miner",
    "MiningResult": "hn_plugins.mining.result",
    "TripletRecord": "hn_plugins.mining.result",
    "FalseNegativeVerifier": "hn_plugins.mining.verifier",
    "get_selector": "hn_plugins.mining.selectors",
    "load_reranker": "hn_plugins.reranker",
    "export_onnx": "hn_plugins.onnx_backend",
    "OnnxCrossEncoderReranker": "hn_plugins.onnx_backend",
    "fine_tune_reranker": "hn_plugins.training.trainer",
    "bootstrap_cross_encoder": "hn_plugins.training.bootstrap",
}

__all__ = [*sorted(_EXPORTS), "__version__"]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'hn_plugins' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return __all__
