"""The library's import structure: no import cycle between modules (function-local imports included) and no
import of another module's private (underscore) name, in hn_plugins, hn_evaluation and the two integrations."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: First-party packages: import name -> source folder.
PACKAGES = {
    "hn_plugins": ROOT / "hn_plugins",
    "hn_evaluation": ROOT / "evaluation" / "hn_evaluation",
    "haystack_integrations.components.rankers.hn": ROOT
    / "integrations/haystack/src/haystack_integrations/components/rankers/hn",
    "llama_index.postprocessor.hn_rerank": ROOT
    / "integrations/llama-index/llama_index/postprocessor/hn_rerank",
}


def _modules() -> dict[str, Path]:
    modules: dict[str, Path] = {}
    for package, folder in PACKAGES.items():
        if not folder.is_dir():  # pragma: no cover - every folder is in the repository
            continue
        for path in folder.rglob("*.py"):
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join([package, *parts])] = path
    return modules


MODULES = _modules()


def _owner(name: str) -> str | None:
    """The first-party module ``name`` refers to (itself, or the module that holds the attribute it names)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imports(module: str) -> list[tuple[int, str, str | None]]:
    """``(line, imported module, imported name or None)`` for every import statement in ``module``, wherever it
    is (module level, function body, ``TYPE_CHECKING`` block)."""
    path = MODULES[module]
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    found: list[tuple[int, str, str | None]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name, None) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            source = ".".join([*base, *([node.module] if node.module else [])])
            found += [(node.lineno, source, alias.name) for alias in node.names]
    return found


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for module in MODULES:
        for _, source, name in _imports(module):
            target = _owner(f"{source}.{name}" if name else source)
            if target is not None and target != module:
                graph[module].add(target)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    cycles.append(sorted(component))
    return cycles


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def test_the_scan_sees_the_library() -> None:
    assert "hn_plugins.rerankers.loading" in MODULES
    assert "llama_index.postprocessor.hn_rerank.base" in MODULES
    assert "hn_plugins.rerankers.onnx_cross_encoder" in _graph()["hn_plugins.rerankers.loading"]


def test_cycles_are_found_when_there_is_one() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_between_modules() -> None:
    cycles = _cycles(_graph())
    assert not cycles, (
        "Modules that import each other (a function-local import counts): "
        + "; ".join(" <-> ".join(c) for c in cycles)
        + ". Move what they share into a lower module both import."
    )


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_private_name_of_another_module_is_imported(module: str) -> None:
    bad = []
    for line, source, name in _imports(module):
        if _owner(source) is None:  # a third-party import
            continue
        if any(_private(part) for part in source.split(".")) or (name is not None and _private(name)):
            bad.append(f"line {line}: {source}{'.' + name if name else ''}")
    assert not bad, f"{module} imports private names of other modules ({bad}); make them public or move them."


def test_moved_names_keep_their_first_import_paths() -> None:
    import hn_plugins.onnx_backend as old_onnx
    import hn_plugins.reranker as old_reranker
    import hn_plugins.training.trainer as trainer
    from hn_plugins import embedders, encoding, rerankers
    from hn_plugins.training import fit, model_card, rows, settings

    names = [
        "RERANKER_BACKENDS",
        "RERANKER_MARKER",
        "REGISTRY_MARKER",
        "ZERO_SHOT_PREFIX",
        "BiEncoderReranker",
        "CrossEncoderReranker",
        "Reranker",
        "RerankerLoadError",
        "detect_reranker_kind",
        "folder_fusion",
        "fuse_with_first_stage",
        "load_reranker",
        "registry_moved",
        "registry_version",
        "zero_shot_model_name",
    ]
    assert [n for n in names if getattr(old_reranker, n) is not getattr(rerankers, n)] == []
    onnx_names = ["EXPORT_MARKER", "ONNX_BACKENDS", "OnnxCrossEncoderReranker", "export_onnx"]
    assert [n for n in onnx_names if getattr(old_onnx, n) is not getattr(rerankers, n)] == []
    assert embedders.encode_texts is encoding.encode_texts
    assert trainer.build_training_rows is rows.build_training_rows
    assert trainer.seed_everything is fit.seed_everything
    assert trainer.format_curve is model_card.format_curve
    assert trainer.FineTuneSettings is settings.FineTuneSettings
