"""hn-plugins: hard-negative mining with an embedding ensemble + PCA (Meghwani et al., 2025) and reranker
fine-tuning, for LlamaIndex and Haystack.

Importing this package is light: heavy dependencies (torch, sentence-transformers, faiss) load on first use.
"""

from __future__ import annotations

from hn_plugins.lazy import lazy_exports

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
    "get_selector": "hn_plugins.mining.named_selectors",
    "DefaultSelector": "hn_plugins.mining.default_selector",
    "ModelRegistry": "hn_plugins.registry",
    "RetrainingJob": "hn_plugins.retrain",
    "load_reranker": "hn_plugins.rerankers.loading",
    "CascadeReranker": "hn_plugins.cascade",
    "export_onnx": "hn_plugins.rerankers.onnx_cross_encoder",
    "OnnxCrossEncoderReranker": "hn_plugins.rerankers.onnx_cross_encoder",
    "fine_tune_reranker": "hn_plugins.training.trainer",
    "FineTuneSettings": "hn_plugins.training.settings",
    "bootstrap_cross_encoder": "hn_plugins.training.bootstrap",
    "adapt_bi_encoder": "hn_plugins.training.corpus_adaptation",
}

__all__, __getattr__, __dir__ = lazy_exports("hn_plugins", _EXPORTS, extra=("__version__",))
