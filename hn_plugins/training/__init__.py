"""Reranker training: losses, the fine-tuning loop, the validation evaluator, bootstrap and speed measurements.

Importing this package is light; torch and sentence-transformers load when a name below is first used.
"""

from __future__ import annotations

from hn_plugins.lazy import lazy_exports

_EXPORTS = {
    "CrossEncoderTripletMarginLoss": "hn_plugins.training.losses",
    "CrossEncoderListwiseSoftmaxLoss": "hn_plugins.training.losses",
    "CrossEncoderListwiseDistillationLoss": "hn_plugins.training.losses",
    "BiEncoderTripletLoss": "hn_plugins.training.losses",
    "build_loss": "hn_plugins.training.losses",
    "RerankingMRREvaluator": "hn_plugins.training.evaluator",
    "bm25_candidates": "hn_plugins.training.evaluator",
    "fine_tune_reranker": "hn_plugins.training.trainer",
    "FineTuneSettings": "hn_plugins.training.settings",
    "TrainedReranker": "hn_plugins.training.trainer",
    "TrainingError": "hn_plugins.training.model_folder",
    "load_base_model": "hn_plugins.training.model_folder",
    "EpochSchedule": "hn_plugins.training.arguments",
    "best_epoch_arguments": "hn_plugins.training.arguments",
    "bootstrap_cross_encoder": "hn_plugins.training.bootstrap",
    "BootstrapResult": "hn_plugins.training.bootstrap",
    "adapt_bi_encoder": "hn_plugins.training.corpus_adaptation",
    "measure_loss_overhead": "hn_plugins.training.speed",
    "measure_reranking_speed": "hn_plugins.training.speed",
}

__all__, __getattr__, __dir__ = lazy_exports("hn_plugins.training", _EXPORTS)
