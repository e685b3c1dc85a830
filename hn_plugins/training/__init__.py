"""Reranker training: losses, the fine-tuning loop, the validation evaluator, bootstrap and speed measurements.

Importing this package is light; torch and sentence-transformers load when a name below is first used.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "CrossEncoderTripletMarginLoss": "hn_plugins.training.losses",
    "CrossEncoderListwiseSoftmaxLoss": "hn_plugins.training.losses",
    "CrossEncoderListwiseDistillationLoss": "hn_plugins.training.losses",
    "BiEncoderTripletLoss": "hn_plugins.training.losses",
    "build_loss": "hn_plugins.training.losses",
    "RerankingMRREvaluator": "hn_plugins.training.evaluator",
    "bm25_candidates": "hn_plugins.training.evaluator",
    "fine_tune_reranker": "hn_plugins.training.trainer",
    "TrainedReranker": "hn_plugins.training.trainer",
    "TrainingError": "hn_plugins.training.model_folder",
    "load_base_model": "hn_plugins.training.model_folder",
    "bootstrap_cross_encoder": "hn_plugins.training.bootstrap",
    "BootstrapResult": "hn_plugins.training.bootstrap",
    "measure_loss_overhead": "hn_plugins.training.speed",
    "measure_reranking_speed": "hn_plugins.training.speed",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'hn_plugins.training' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return __all__
