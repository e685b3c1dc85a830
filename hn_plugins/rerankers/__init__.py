"""Rerankers: the shared base (:class:`~hn_plugins.rerankers.base.FusionMixin`), the cross-encoder, bi-encoder and
ONNX cross-encoder rerankers, the folder readers and :func:`~hn_plugins.rerankers.loading.load_reranker`.

Names load on first use (as in :mod:`hn_plugins`), so importing one submodule stays light.
"""

from __future__ import annotations

from hn_plugins.lazy import lazy_exports

_EXPORTS = {
    "RERANKER_MARKER": "hn_plugins.rerankers.base",
    "FusionMixin": "hn_plugins.rerankers.base",
    "Reranker": "hn_plugins.rerankers.base",
    "RerankerLoadError": "hn_plugins.rerankers.base",
    "fuse_with_first_stage": "hn_plugins.rerankers.base",
    "BiEncoderReranker": "hn_plugins.rerankers.bi_encoder",
    "CrossEncoderReranker": "hn_plugins.rerankers.cross_encoder",
    "transformer_of": "hn_plugins.rerankers.cross_encoder",
    "REGISTRY_MARKER": "hn_plugins.rerankers.folders",
    "detect_reranker_kind": "hn_plugins.rerankers.folders",
    "folder_fusion": "hn_plugins.rerankers.folders",
    "registry_moved": "hn_plugins.rerankers.folders",
    "registry_version": "hn_plugins.rerankers.folders",
    "RERANKER_BACKENDS": "hn_plugins.rerankers.loading",
    "ZERO_SHOT_PREFIX": "hn_plugins.rerankers.loading",
    "load_reranker": "hn_plugins.rerankers.loading",
    "zero_shot_model_name": "hn_plugins.rerankers.loading",
    "EXPORT_MARKER": "hn_plugins.rerankers.onnx_cross_encoder",
    "ONNX_BACKENDS": "hn_plugins.rerankers.onnx_cross_encoder",
    "OnnxCrossEncoderReranker": "hn_plugins.rerankers.onnx_cross_encoder",
    "export_onnx": "hn_plugins.rerankers.onnx_cross_encoder",
}

__all__, __getattr__, __dir__ = lazy_exports("hn_plugins.rerankers", _EXPORTS)
