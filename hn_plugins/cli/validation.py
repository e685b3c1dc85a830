"""Argument types for the ``hn`` commands: numbers checked against their allowed range while the command line is
parsed, before any data or model loads.

Each factory returns a callable for ``argparse``'s ``type=``. A value outside the range stops the command with
``hn <command>: error: argument --name: ...``, a message that states the allowed range and the value given.

Example:
    >>> import argparse
    >>> parser = argparse.ArgumentParser(prog="hn mine")
    >>> _ = parser.add_argument("--variance", type=pca_variance, default=0.95)
    >>> _ = parser.add_argument("--batch-size", type=positive_int, default=64)
    >>> parser.parse_args(["--variance", "0.9", "--batch-size", "8"])
    Namespace(variance=0.9, batch_size=8)
    >>> pca_variance("1.5")
    Traceback (most recent call last):
    ...
    argparse.ArgumentTypeError: must be in (0, 1), or 0 or 1 to turn PCA off; got 1.5
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Sequence

__all__ = [
    "add_fusion_rule",
    "add_selection_alpha",
    "bounded_float",
    "bounded_int",
    "finite_float",
    "fraction_open",
    "non_negative_float",
    "non_negative_int",
    "pca_variance",
    "positive_float",
    "positive_int",
    "probability",
    "selection_alpha",
]


def _interval(low: float | None, high: float | None, low_open: bool, high_open: bool) -> str:
    if low is not None and high is not None:
        return f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    if low is not None:
        return f"{'>' if low_open else '>='} {low:g}"
    if high is not None:
        return f"{'<' if high_open else '<='} {high:g}"
    return "a finite number"


def bounded_int(
    low: int | None = None, high: int | None = None, *, also: Sequence[int] = (), meaning: str = ""
) -> Callable[[str], int]:
    """An ``argparse`` type: an integer in ``[low, high]`` (either end may be open-ended with ``None``).

    Args:
        low: smallest allowed value (``None``: no lower bound).
        high: largest allowed value (``None``: no upper bound).
        also: further allowed values outside the range (e.g. ``-1`` for "never").
        meaning: what the ``also`` values mean, appended to the message (e.g. ``"-1 never stops"``).

    Example:
        >>> bounded_int(1, 5)("3")
        3
        >>> bounded_int(1, also=(-1,), meaning="-1 never stops")("0")
        Traceback (most recent call last):
        ...
        argparse.ArgumentTypeError: must be an integer >= 1 (or -1: -1 never stops); got 0
    """
    allowed = "an integer " + (
        f"in [{low}, {high}]" if low is not None and high is not None else _interval(low, high, False, False)
    )
    if also:
        allowed += f" (or {', '.join(str(a) for a in also)}{': ' + meaning if meaning else ''})"

    def check(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {allowed}; got {text!r}") from None
        if value in also:
            return value
        if (low is not None and value < low) or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"must be {allowed}; got {value}")
        return value

    check.__name__ = "integer"
    return check


def bounded_float(
    low: float | None = None,
    high: float | None = None,
    *,
    low_open: bool = False,
    high_open: bool = False,
    also: Sequence[float] = (),
    meaning: str = "",
) -> Callable[[str], float]:
    """An ``argparse`` type: a finite number between ``low`` and ``high`` (NaN and infinities are refused).

    Args:
        low: lower bound (``None``: none).
        high: upper bound (``None``: none).
        low_open: exclude ``low`` itself.
        high_open: exclude ``high`` itself.
        also: further allowed values outside the range (e.g. ``0`` and ``1`` meaning "off").
        meaning: what the ``also`` values mean, appended to the message.

    Example:
        >>> bounded_float(0, 1, low_open=True)("1")
        1.0
        >>> bounded_float(0, 1, low_open=True)("nan")
        Traceback (most recent call last):
        ...
        argparse.ArgumentTypeError: must be in (0, 1]; got nan
    """
    allowed = _interval(low, high, low_open, high_open)
    if low is not None and high is not None:
        allowed = "in " + allowed
    if also:
        allowed += f", or {' or '.join(f'{a:g}' for a in also)}{' ' + meaning if meaning else ''}"

    def check(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a number {allowed}; got {text!r}") from None
        if value in also:
            return value
        outside = (
            not math.isfinite(value)
            or (low is not None and (value <= low if low_open else value < low))
            or (high is not None and (value >= high if high_open else value > high))
        )
        if outside:
            raise argparse.ArgumentTypeError(f"must be {allowed}; got {text.strip()}")
        return value

    check.__name__ = "number"
    return check


def fraction_open(low: float = 0.0, high: float = 1.0) -> Callable[[str], float]:
    """A number strictly between ``low`` and ``high`` (default: a share in ``(0, 1)``).

    Example:
        >>> fraction_open()("0.2")
        0.2
    """
    return bounded_float(low, high, low_open=True, high_open=True)


#: An integer >= 1 (batch sizes, epochs, top-k, ...).
positive_int = bounded_int(1)
#: An integer >= 0 (seeds).
non_negative_int = bounded_int(0)
#: A finite number > 0 (learning rates).
positive_float = bounded_float(0.0, low_open=True)
#: A finite number >= 0 (margins).
non_negative_float = bounded_float(0.0)
#: Any finite number (margins that may be negative, improvements).
finite_float = bounded_float()
#: A p-value threshold in ``(0, 1]``.
probability = bounded_float(0.0, 1.0, low_open=True)
#: ``--selection-alpha``: cross-fitting's significance level, in ``(0, 1]``; 0 turns the test off.
selection_alpha = bounded_float(0.0, 1.0, low_open=True, also=(0.0,), meaning="(0: no test)")
#: ``--variance``: the share of variance PCA keeps, in ``(0, 1)``; 0 or 1 turns PCA off.
pca_variance = bounded_float(
    0.0, 1.0, low_open=True, high_open=True, also=(0.0, 1.0), meaning="to turn PCA off"
)


def add_selection_alpha(parser: argparse.ArgumentParser) -> None:
    """Add ``--selection-alpha`` (cross-fitting's significance level; ``hn train`` and ``hn retrain``)."""
    parser.add_argument(
        "--selection-alpha",
        type=selection_alpha,
        default=0.05,
        help="with --selection cross-fit, train only when the chosen epochs beat the starting model on the pooled "
        "held-out queries with a paired permutation p below this (default: 0.05; 0: on any gain)",
    )


def add_fusion_rule(parser: argparse.ArgumentParser) -> None:
    """Add ``--fusion-rule`` (how the weight fusing a reranker with BM25 is chosen; ``hn train``, ``hn retrain``,
    ``hn benchmark``)."""
    from hn_plugins.fusion_rules import DEFAULT_FUSION_RULE, FUSION_RULES

    parser.add_argument(
        "--fusion-rule",
        choices=list(FUSION_RULES),
        default=DEFAULT_FUSION_RULE,
        help="how the weight that fuses the reranker's scores with BM25's is chosen on validation queries: "
        "one-se, the most balanced weight within one standard error of the best (default), or best, the best "
        "weight (on a few dozen queries often a lucky one)",
    )
