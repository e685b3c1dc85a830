"""Mining: the miner, its selectors, its result and the false-negative verifier.

Names load on first use (as in :mod:`hn_plugins`), so importing one submodule stays light.
"""

from __future__ import annotations

from hn_plugins.lazy import lazy_exports

_EXPORTS = {
    "DefaultSelector": "hn_plugins.mining.default_selector",
    "FalseNegativeVerifier": "hn_plugins.mining.verifier",
    "HardNegativeMiner": "hn_plugins.mining.miner",
    "MiningResult": "hn_plugins.mining.result",
    "TripletRecord": "hn_plugins.mining.result",
    "get_selector": "hn_plugins.mining.named_selectors",
}

__all__, __getattr__, __dir__ = lazy_exports("hn_plugins.mining", _EXPORTS)
