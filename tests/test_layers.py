"""The import contracts of pyproject.toml (``[tool.importlinter]``): they hold, and each one catches a violation."""

from __future__ import annotations

import copy
import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
# this checkout's packages, ahead of any other installed copy
SOURCES = [
    REPO,
    REPO / "evaluation",
    REPO / "integrations" / "llama-index",
    REPO / "integrations" / "haystack" / "src",
]

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("importlinter") is None,
    reason='import-linter is not installed (it is in the dev extra: pip install -e ".[dev]")',
)


def _lint_imports_command() -> list[str]:
    script = Path(sys.executable).parent / "lint-imports"
    if script.is_file():
        return [str(script)]
    found = shutil.which("lint-imports")
    if found is None:
        pytest.skip("import-linter is importable but its lint-imports script is not on PATH")
    return [found]


def test_lint_imports_passes_on_this_checkout():
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(str(p) for p in SOURCES))
    result = subprocess.run(
        [*_lint_imports_command(), "--no-cache", "--config", str(REPO / "pyproject.toml")],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, f"lint-imports found a broken contract:\n{result.stdout}\n{result.stderr}"
    assert "0 broken" in result.stdout


# ------------------------------------------------------------------ each contract can fail
def _contracts() -> dict[str, tuple[type, dict[str, Any], dict[str, Any]]]:
    from importlinter.api import read_configuration
    from importlinter.contracts.acyclic_siblings import AcyclicSiblingsContract
    from importlinter.contracts.forbidden import ForbiddenContract
    from importlinter.contracts.layers import LayersContract
    from importlinter.contracts.private_modules import PrivateModulesContract

    types = {
        "forbidden": ForbiddenContract,
        "layers": LayersContract,
        "acyclic_siblings": AcyclicSiblingsContract,
        "private_modules": PrivateModulesContract,
    }
    config = read_configuration(str(REPO / "pyproject.toml"))
    return {
        options["id"]: (types[options["type"]], config["session_options"], options)
        for options in config["contracts_options"]
    }


@pytest.fixture(scope="module")
def graph():
    import grimp

    import hn_plugins

    if not Path(hn_plugins.__file__).resolve().is_relative_to(REPO):
        pytest.skip(f"hn_plugins is imported from {hn_plugins.__file__}, not from this checkout {REPO}")
    roots = _contracts()["library-layers"][1]["root_packages"]
    return grimp.build_graph(*roots, cache_dir=None)


def _kept(graph: Any, contract_id: str, extra_import: tuple[str, str] | None = None) -> bool:
    contract_type, session_options, options = _contracts()[contract_id]
    contract = contract_type(name=contract_id, session_options=session_options, contract_options=options)
    changed = copy.deepcopy(graph)  # checking removes the ignored imports from the graph it is given
    if extra_import is not None:
        changed.add_import(importer=extra_import[0], imported=extra_import[1])
    return bool(contract.check(changed, verbose=False).kept)


def test_every_contract_is_checked_here():
    assert set(_contracts()) == {
        "library-below-harness",
        "library-layers",
        "no-cycles",
        "integrations-public-api",
        "private-modules",
    }


@pytest.mark.parametrize(
    ("contract_id", "importer", "imported"),
    [
        ("library-below-harness", "hn_plugins.bm25", "hn_evaluation.rerank"),
        ("library-layers", "hn_plugins.data", "hn_plugins.metrics"),  # same bottom layer, independent
        ("library-layers", "hn_plugins.metrics", "hn_plugins.training.evaluator"),
        ("library-layers", "hn_plugins.retrain", "hn_plugins.cli"),
        ("library-layers", "hn_plugins.mining.miner", "hn_plugins.training.trainer"),
        ("library-layers", "hn_plugins.fusion", "hn_plugins.bm25"),
        ("no-cycles", "hn_plugins.metrics", "hn_plugins.fusion"),  # fusion imports metrics
        ("no-cycles", "hn_evaluation.metrics", "hn_evaluation.rerank"),
        ("integrations-public-api", "llama_index.postprocessor.hn_rerank.base", "hn_plugins.cli"),
        ("integrations-public-api", "haystack_integrations.components.rankers.hn.ranker", "hn_evaluation"),
        ("private-modules", "llama_index.postprocessor.hn_rerank.base", "hn_plugins._private_helper"),
    ],
)
def test_a_contract_breaks_on_a_forbidden_import(graph, contract_id, importer, imported):
    assert _kept(graph, contract_id), f"{contract_id} is broken before adding anything"
    assert not _kept(graph, contract_id, (importer, imported)), (
        f"{contract_id} did not catch {importer} -> {imported}"
    )


@pytest.mark.parametrize("above", ["hn_plugins.cli", "hn_evaluation"])
def test_retraining_decides_promotions_without_the_cli_or_the_harness(graph, above):
    assert graph.direct_import_exists(importer="hn_plugins.retrain", imported="hn_plugins.promotion")
    for module in ("hn_plugins.retrain", "hn_plugins.promotion"):
        assert not graph.chain_exists(importer=module, imported=above, as_packages=True), (
            f"{module} -> {above}"
        )
