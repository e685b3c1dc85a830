"""The names of the embedding engines and what ``auto`` means (no heavy import: the CLI reads them at start)."""

from __future__ import annotations

import sys
from pathlib import Path

__all__ = ["AUTO_ENGINE", "ENGINES", "cuda_available", "resolve_engine"]

#: Values of ``engine``.
ENGINES = ("auto", "torch", "onnx", "onnx-int8")
#: What ``auto`` runs on a CPU (chosen by ``benchmarks/bench_encoders.py``; see benchmarks/MINING.md).
AUTO_ENGINE = "onnx"


def cuda_available() -> bool:
    """Whether PyTorch sees a CUDA GPU; PyTorch is imported only where an NVIDIA device exists or it is loaded.

    Example:
        >>> isinstance(cuda_available(), bool)
        True
    """
    if "torch" not in sys.modules and not Path("/dev/nvidia0").exists():
        return False
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def resolve_engine(engine: str, device: str | None = None) -> str:
    """The engine ``engine`` stands for: ``auto`` becomes ``torch`` on a GPU (``device`` names one, or none is
    named and PyTorch sees CUDA), else :data:`AUTO_ENGINE`.

    Raises:
        ValueError: an unknown engine (the message lists the choices).

    Example:
        >>> resolve_engine("auto", device="cuda")
        'torch'
        >>> resolve_engine("onnx-int8")
        'onnx-int8'
    """
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(ENGINES)}; got {engine!r}.")
    if engine == "auto":
        on_gpu = cuda_available() if device is None else device != "cpu"
        return "torch" if on_gpu else AUTO_ENGINE
    return engine
