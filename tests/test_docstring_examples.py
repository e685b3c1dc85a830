"""The docstring examples of the core and of hn-evaluation run as doctests (``+SKIP`` marks the ones that need
data or models a user supplies), so a documented example that stops working fails the suite."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import hn_plugins

PACKAGES = ["hn_plugins", "hn_evaluation"]


def _modules() -> list[str]:
    names: list[str] = []
    for package_name in PACKAGES:
        try:
            package = importlib.import_module(package_name)
        except ImportError:  # hn-evaluation not installed
            continue
        names.append(package_name)
        names += [m.name for m in pkgutil.walk_packages(package.__path__, prefix=f"{package_name}.")]
    return sorted(names)


@pytest.mark.parametrize("module_name", _modules())
def test_docstring_examples_run(module_name: str) -> None:
    module = importlib.import_module(module_name)
    result = doctest.testmod(
        module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False
    )
    assert result.failed == 0, (
        f"{result.failed} of {result.attempted} docstring examples failed in {module_name}"
    )


def test_the_examples_are_found() -> None:
    assert "hn_plugins.mining.miner" in _modules()
    attempted = doctest.testmod(importlib.import_module("hn_plugins.data"), verbose=False).attempted
    assert attempted > 0
    assert hn_plugins.__name__ == "hn_plugins"
