"""Fast encoders for ensemble members: ONNX Runtime (fp32, int8) for transformers, numpy for static models.

:func:`load_encoder` picks the engine (``auto``, ``torch``, ``onnx``, ``onnx-int8``) and falls back to PyTorch with a
warning when the fast path cannot run a model; :func:`export_bi_encoder` writes the checked ONNX copy into the cache.
Names load on first use, so ``hn_plugins.encoders.engines`` stays cheap to import.
"""

from __future__ import annotations

from hn_plugins.lazy import lazy_exports

_EXPORTS = {
    "AUTO_ENGINE": "hn_plugins.encoders.engines",
    "ENGINES": "hn_plugins.encoders.engines",
    "cuda_available": "hn_plugins.encoders.engines",
    "resolve_engine": "hn_plugins.encoders.engines",
    "load_encoder": "hn_plugins.encoders.loading",
    "ExportUnsupportedError": "hn_plugins.encoders.onnx_export",
    "export_bi_encoder": "hn_plugins.encoders.onnx_export",
    "export_root": "hn_plugins.encoders.onnx_export",
    "CorruptExportError": "hn_plugins.encoders.onnx_runtime",
    "OnnxBiEncoder": "hn_plugins.encoders.onnx_runtime",
    "StaticEncoder": "hn_plugins.encoders.static",
}

__all__, __getattr__, __dir__ = lazy_exports("hn_plugins.encoders", _EXPORTS)
