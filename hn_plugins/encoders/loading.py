"""Choose how an ensemble member runs: onnxruntime (fp32 or int8), numpy for static models, or PyTorch.

``engine`` is one of :data:`ENGINES`:

- ``torch``: sentence-transformers on PyTorch, as the model was trained.
- ``onnx``: transformer members exported once to ONNX (fp32) and run with onnxruntime; model2vec members with numpy.
- ``onnx-int8``: the same with int8 weights.
- ``auto`` (default): :data:`AUTO_ENGINE` on the CPU, ``torch`` on a GPU (a GPU device named, or none named and
  PyTorch sees CUDA).

A member the fast path cannot run (an unsupported architecture, an export that disagrees with PyTorch, onnxruntime
not installed) falls back to PyTorch with one warning that says why. A damaged export in the cache is detected by its
SHA-256 and rebuilt once.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
from pathlib import Path
from typing import Any

from hn_plugins.encoders.engines import resolve_engine
from hn_plugins.encoders.onnx_export import EXPORT_FILES, ExportUnsupportedError, export_bi_encoder
from hn_plugins.encoders.onnx_runtime import CorruptExportError, OnnxBiEncoder
from hn_plugins.encoders.static import StaticEncoder, is_model2vec_folder
from hn_plugins.models import load_sentence_transformer, resolve_model_path

logger = logging.getLogger(__name__)

__all__ = ["load_encoder"]


def _static_folder(name: str) -> Path | None:
    resolved = Path(resolve_model_path(name))
    return resolved if is_model2vec_folder(resolved) else None


def load_encoder(
    name_or_path: str | os.PathLike[str],
    engine: str = "auto",
    *,
    device: str | None = None,
    trust_remote_code: bool = False,
    export_root: str | os.PathLike[str] | None = None,
) -> Any:
    """Load one ensemble member to run with ``engine`` (see the module docstring).

    Args:
        name_or_path: a hub name, a packaged model's name or a local folder.
        engine: one of :data:`ENGINES`.
        device: torch device of the PyTorch path (a GPU device makes ``auto`` choose ``torch``).
        trust_remote_code: passed to sentence-transformers; such models stay on PyTorch.
        export_root: where ONNX exports are cached (default ``$HN_PLUGINS_HOME/onnx``).

    Returns:
        An object with ``encode(list[str]) -> array``: :class:`OnnxBiEncoder`, :class:`StaticEncoder` (both with a
        ``fingerprint``) or a sentence-transformers model.

    Example:
        >>> encoder = load_encoder("all-MiniLM-L6-v2", engine="onnx")  # doctest: +SKIP
        >>> type(encoder).__name__  # doctest: +SKIP
        'OnnxBiEncoder'
    """
    chosen = resolve_engine(engine, device)
    name = str(name_or_path)

    def torch_model() -> Any:
        return load_sentence_transformer(name, device=device, trust_remote_code=trust_remote_code)

    if chosen == "torch":
        return torch_model()
    static = _static_folder(name)
    if static is not None:
        if importlib.util.find_spec("model2vec") is None:
            logger.warning(
                "%s: model2vec is not installed; embedding with PyTorch (pip install model2vec).", name
            )
            return torch_model()
        return StaticEncoder(static, name=name)
    if trust_remote_code:
        logger.info("%s runs its own code (trust_remote_code); embedding with PyTorch.", name)
        return torch_model()
    missing = [m for m in ("onnxruntime", "onnx", "tokenizers") if importlib.util.find_spec(m) is None]
    if missing:
        logger.warning(
            '%s: %s not installed; embedding with PyTorch (pip install "hn-plugins[onnx]" for the faster path).',
            name,
            " and ".join(missing),
        )
        return torch_model()
    precision = "int8" if chosen == "onnx-int8" else "fp32"
    try:
        return _onnx_encoder(name, precision, export_root)
    except (ExportUnsupportedError, CorruptExportError, RuntimeError, OSError) as exc:
        logger.warning("%s: the ONNX path is not used: %s Embedding with PyTorch.", name, exc)
        return torch_model()


def _onnx_encoder(name: str, precision: str, export_root: str | os.PathLike[str] | None) -> OnnxBiEncoder:
    folder = export_bi_encoder(name, root=export_root)
    try:
        encoder = OnnxBiEncoder(folder, _available(folder, precision, name))
    except CorruptExportError as exc:
        logger.warning("%s: the ONNX export in %s is damaged: %s Exporting it again.", name, folder, exc)
        shutil.rmtree(folder, ignore_errors=True)
        folder = export_bi_encoder(name, root=export_root)
        encoder = OnnxBiEncoder(folder, _available(folder, precision, name))
    encoder.name = name
    return encoder


def _available(folder: Path, precision: str, name: str) -> Any:
    """``precision``, or ``fp32`` (with a warning) when the export kept no int8 copy."""
    if precision == "int8" and not (folder / EXPORT_FILES["int8"]).is_file():
        logger.warning("%s: the int8 copy failed its check against fp32 at export; running fp32.", name)
        return "fp32"
    return precision
