"""The names of the embedding engines and what ``auto`` means (no heavy import: the CLI reads them at start)."""

from __future__ import annotations

__all__ = ["AUTO_ENGINE", "ENGINES", "resolve_engine"]

#: Values of ``engine``.
ENGINES = ("auto", "torch", "onnx", "onnx-int8")
#: What ``auto`` runs on a CPU (chosen by ``benchmarks/bench_encoders.py``; see benchmarks/MINING.md).
AUTO_ENGINE = "onnx"


def resolve_engine(engine: str, device: str | None = None) -> str:
    """The engine ``engine`` stands for: ``auto`` becomes :data:`AUTO_ENGINE`, or ``torch`` on a GPU device.

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
        return "torch" if device not in (None, "cpu") else AUTO_ENGINE
    return engine
