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

from hn_plugins.rerankers.folders import REGISTRY_MARKER, registry_moved, registry_version

logger = logging.getLogger(__name__)

__all__ = ["ModelRegistry", "registry_moved", "registry_version"]


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
