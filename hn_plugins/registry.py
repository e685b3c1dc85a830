"""A folder of reranker versions with one *current* version: register, promote, roll back, never lose one.

Layout::

    registry/
      registry.json            {"current": "v0002", "history": ["v0001", "v0002"], "versions": {...metadata}}
      versions/v0001/          a model folder written by the trainer
      versions/v0002/

The LlamaIndex postprocessor, the Haystack ranker and :func:`hn_plugins.reranker.load_reranker` accept the
registry folder itself and load its current version; the two adapters check it before each query and load the
new current version after a promotion or a rollback (:func:`registry_version`).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any

from hn_plugins.rerankers.base import RerankerLoadError

logger = logging.getLogger(__name__)

__all__ = ["REGISTRY_MARKER", "ModelRegistry", "registry_moved", "registry_version"]

#: File a model registry folder holds: its index.
REGISTRY_MARKER = "registry.json"


def registry_version(path: str | os.PathLike[str]) -> str | None:
    """The current version of the registry folder at ``path``; ``None`` if ``path`` is not a registry folder or no
    version is current yet.

    The adapters call it before each query to follow promotions and rollbacks (one small JSON read).

    Raises:
        RerankerLoadError: the registry's ``registry.json`` cannot be read.

    Example:
        >>> import tempfile
        >>> root = Path(tempfile.mkdtemp())
        >>> registry_version(root) is None, registry_version(ModelRegistry(root / "r").root) is None
        (True, True)
    """
    marker = Path(path) / REGISTRY_MARKER
    if not marker.is_file():
        return None
    try:
        current = json.loads(marker.read_text(encoding="utf-8")).get("current")
    except (OSError, ValueError) as exc:
        raise RerankerLoadError(f"Cannot read {marker}: {exc}.") from exc
    return str(current) if current else None


def registry_moved(path: str | os.PathLike[str], loaded_version: str | None) -> bool:
    """Whether the registry folder at ``path``, loaded at ``loaded_version``, has another current version now
    (a promotion or a rollback since); ``False`` when nothing was loaded from a registry (``None``). Logs the
    change. What the adapters check before each query to reload.

    Example:
        >>> registry_moved("not-a-registry", None)
        False
    """
    if loaded_version is None:
        return False
    current = registry_version(path)
    if current == loaded_version:
        return False
    logger.info(
        "Registry %s: current version changed from %s to %s; reloading.", path, loaded_version, current
    )
    return True


class ModelRegistry:
    """Versions of a reranker, with a current one.

    Args:
        root: the registry folder (created if missing).

    Example:
        >>> import tempfile, pathlib
        >>> root = pathlib.Path(tempfile.mkdtemp())
        >>> model = root / "trained"; model.mkdir(); _ = (model / "hn_reranker.json").write_text('{"kind": "bi"}')
        >>> registry = ModelRegistry(root / "registry")
        >>> version = registry.register(model, metrics={"mrr@10": 0.61}, promote=True)
        >>> registry.current == version
        True
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        (self.root / "versions").mkdir(parents=True, exist_ok=True)
        if not (self.root / REGISTRY_MARKER).is_file():
            self._write({"current": None, "history": [], "versions": {}})

    def _read(self) -> dict[str, Any]:
        return json.loads((self.root / REGISTRY_MARKER).read_text(encoding="utf-8"))

    def _write(self, state: dict[str, Any]) -> None:
        tmp = self.root / f".{REGISTRY_MARKER}.tmp"
        tmp.write_text(json.dumps(state, indent=2), encoding="utf-8")
        os.replace(tmp, self.root / REGISTRY_MARKER)

    @property
    def current(self) -> str | None:
        """The current version's name, or ``None`` before the first promotion."""
        return self._read()["current"]

    @property
    def versions(self) -> dict[str, dict[str, Any]]:
        """Metadata of every version (metrics, source, time)."""
        return self._read()["versions"]

    def path(self, version: str | None = None) -> Path:
        """Folder of a version (default: the current one)."""
        version = version or self.current
        if version is None or version not in self.versions:
            raise KeyError(
                f"Registry {self.root} has no version {version!r}; versions: {sorted(self.versions)}."
            )
        return self.root / "versions" / version

    def register(
        self,
        model_dir: str | os.PathLike[str],
        metrics: dict[str, float] | None = None,
        promote: bool = False,
        **metadata: Any,
    ) -> str:
        """Copy a trained model folder in as a new version; optionally make it current."""
        source = Path(model_dir)
        if not source.is_dir():
            raise FileNotFoundError(f"register(): {source} is not a model folder.")
        state = self._read()
        version = f"v{len(state['versions']) + 1:04d}"
        tmp = self.root / "versions" / f".{version}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(source, tmp)
        os.replace(tmp, self.root / "versions" / version)
        state["versions"][version] = {
            "metrics": metrics or {},
            "source": str(source),
            "registered": time.time(),
            **metadata,
        }
        self._write(state)
        if promote:
            self.promote(version)
        return version

    def promote(self, version: str) -> None:
        """Make ``version`` current (the previous one stays, for rollback)."""
        state = self._read()
        if version not in state["versions"]:
            raise KeyError(f"promote(): unknown version {version!r}; versions: {sorted(state['versions'])}.")
        state["current"] = version
        state["history"].append(version)
        self._write(state)
        logger.info("Registry %s: current version is now %s", self.root, version)

    def rollback(self) -> str:
        """Return to the version that was current before the last promotion."""
        state = self._read()
        if len(state["history"]) < 2:
            raise RuntimeError(f"Registry {self.root} has no earlier promoted version to roll back to.")
        state["history"].pop()
        state["current"] = state["history"][-1]
        self._write(state)
        return str(state["current"])
