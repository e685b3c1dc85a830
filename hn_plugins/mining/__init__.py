"""Mining: the miner, its selectors, its result and the false-negative verifier.

Names load on first use (as in :mod:`hn_plugins`), so importing one submodule stays light.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "FalseNegativeVerifier": "hn_plugins.mining.verifier",
    "HardNegativeMiner": "hn_plugins.mining.miner",
    "MiningResult": "hn_plugins.mining.result",
    "TripletRecord": "hn_plugins.mining.result",
    "get_selector": "hn_plugins.mining.selectors",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'hn_plugins.mining' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted({*__all__, *globals()})
