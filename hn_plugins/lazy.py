"""Lazy package exports (PEP 562): a package's public names load from their modules on first use."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any


def lazy_exports(
    package: str, exports: Mapping[str, str], extra: Sequence[str] = ()
) -> tuple[list[str], Callable[[str], Any], Callable[[], list[str]]]:
    """``(__all__, __getattr__, __dir__)`` for ``package``, whose names in ``exports`` live in the mapped modules.

    Example:
        >>> names, getattr_, dir_ = lazy_exports("pkg", {"sqrt": "math"})
        >>> names, getattr_("sqrt")(9.0)
        (['sqrt'], 3.0)
    """
    names = [*sorted(exports), *extra]

    def module_getattr(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(module), name)

    def module_dir() -> list[str]:
        return list(names)

    return names, module_getattr, module_dir
