"""The ONNX reranker names under their first import path (``from hn_plugins.onnx_backend import export_onnx``).

They live in :mod:`hn_plugins.rerankers.onnx_cross_encoder`; this module re-exports them so that code written
against the old path keeps working.
"""

from __future__ import annotations

from hn_plugins.rerankers.onnx_cross_encoder import (
    ATTENTIONS,
    EXPORT_MARKER,
    ONNX_BACKENDS,
    ONNX_DIR,
    OnnxCrossEncoderReranker,
    export_onnx,
    resolve_export_file,
)

__all__ = [
    "ATTENTIONS",
    "EXPORT_MARKER",
    "ONNX_BACKENDS",
    "ONNX_DIR",
    "OnnxCrossEncoderReranker",
    "export_onnx",
    "resolve_export_file",
]
