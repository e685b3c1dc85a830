"""Negative selectors by name: what ``hn mine --selector NAME`` and ``HardNegativeMiner(selector=NAME)`` resolve.

It sits above :mod:`hn_plugins.mining.selectors` and :mod:`hn_plugins.mining.default_selector` (which is built
from the former's selectors), so neither of them imports the other back.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hn_plugins.mining.default_selector import DefaultSelector
from hn_plugins.mining.selectors import (
    BM25Selector,
    DenseTopKSelector,
    NegativeSelector,
    PaperSelector,
    PositiveAwareSelector,
    RandomSelector,
    SentenceTransformersSelector,
)

__all__ = ["SELECTORS", "get_selector"]

#: Selector classes by the names ``get_selector`` accepts.
SELECTORS: dict[str, Callable[..., NegativeSelector]] = {
    "default": DefaultSelector,
    "paper": PaperSelector,
    "dense-topk": DenseTopKSelector,
    "positive-aware": PositiveAwareSelector,
    "random": RandomSelector,
    "bm25": BM25Selector,
    "st": SentenceTransformersSelector,
}


def get_selector(selector: str | NegativeSelector, **kwargs: Any) -> NegativeSelector:
    """A selector by name or as given.

    Names: ``paper``, ``random``, ``bm25``, ``dense-topk``, ``positive-aware``, ``st``, and ``default`` (the paper's
    negatives, the positive-aware fallback and one random negative:
    :class:`~hn_plugins.mining.default_selector.DefaultSelector`).

    ``in-batch`` is not a mining selector: it is the training loss ``in-batch`` (other pairs' positives).
    """
    if isinstance(selector, NegativeSelector):
        return selector
    if selector == "in-batch":
        raise ValueError(
            "'in-batch' negatives are chosen at training time: train with loss='in-batch' "
            "(hn train --loss in-batch) on positive pairs instead of mining."
        )
    factory = SELECTORS.get(selector)
    if factory is None:
        raise ValueError(f"Unknown selector {selector!r}; choose one of {sorted(SELECTORS)}.")
    return factory(**kwargs)
