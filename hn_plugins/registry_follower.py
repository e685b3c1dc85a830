"""Serve the current version of a model registry and follow its promotions and rollbacks without a restart.

The LlamaIndex postprocessor and the Haystack ranker hold their reranker in a :class:`RegistryFollower`: before each
query it reads the registry's current version (:func:`hn_plugins.registry.registry_version`) and, after a change,
loads the new version once while concurrent queries go on with the previous one.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from hn_plugins.registry import RegistryError, registry_version, resolve_version

logger = logging.getLogger(__name__)

__all__ = ["RegistryFollower"]

T = TypeVar("T")


class RegistryFollower(Generic[T]):
    """What a server holds for a model: the object loaded from it, reloaded once after each promotion or rollback
    when the model is a registry folder. Safe to share between threads.

    :meth:`get` reads the registry's current version (one small JSON read) and returns the loaded object. After a
    change, the first thread to notice loads the new current version from its own folder while the other threads
    go on answering with the previous one; the new object replaces it only once it is completely loaded, so every
    answer comes from one complete version and each change costs one load. If the new version fails to load, or
    the index cannot be read, the loaded version keeps serving and the error is logged (once per version).

    Args:
        model: a registry folder, or any model folder or name (then loaded once and never checked again).
        load: builds the served object from a model folder or name; for a registry it is given the current
            version's folder (:func:`~hn_plugins.registry.resolve_version`).

    Example:
        >>> import tempfile
        >>> from pathlib import Path
        >>> from hn_plugins.registry import ModelRegistry
        >>> root = Path(tempfile.mkdtemp())
        >>> model = root / "trained"; model.mkdir(); _ = (model / "hn_reranker.json").write_text('{"kind": "bi"}')
        >>> registry = ModelRegistry(root / "registry")
        >>> first = registry.register(model, promote=True)
        >>> follower = RegistryFollower(registry.root, lambda folder: Path(folder).name)
        >>> follower.get(), follower.get(), follower.loads
        ('v0001', 'v0001', 1)
        >>> second = registry.register(model, promote=True)
        >>> follower.get(), follower.version, follower.loads
        ('v0002', 'v0002', 2)
    """

    def __init__(self, model: str | os.PathLike[str], load: Callable[[str], T]) -> None:
        self.model = str(model)
        self._load = load
        self._lock = threading.Lock()
        self._state: tuple[T, str | None] | None = None
        self._loads = 0
        self._failed: str | None = None

    def __getstate__(self) -> dict[str, Any]:  # copy.deepcopy / pickle: a lock is not copied
        state = dict(self.__dict__)
        del state["_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    @property
    def loads(self) -> int:
        """How many times an object was loaded (1 + the changes of the current version followed)."""
        return self._loads

    @property
    def version(self) -> str | None:
        """The registry version being served (``None`` for a model that is not a registry, or before loading)."""
        return None if self._state is None else self._state[1]

    @property
    def loaded(self) -> T | None:
        """The object being served, without checking the registry (``None`` before the first :meth:`get`)."""
        return None if self._state is None else self._state[0]

    def _reload(self) -> None:
        version = registry_version(self.model)
        source = str(resolve_version(self.model, version)) if version is not None else self.model
        loaded = self._load(source)
        self._state = (loaded, version)  # one assignment: readers see the old pair or the new one
        self._loads += 1

    def get(self) -> T:
        """The object to answer the next query with (loading it first on the first call).

        Raises:
            Exception: whatever ``load`` raises on the first load (nothing is served yet), or
                :class:`RegistryError` when the registry cannot be read then.
        """
        state = self._state
        if state is None:
            with self._lock:
                if self._state is None:
                    self._reload()
                assert self._state is not None
                return self._state[0]
        loaded, version = state
        if version is None:
            return loaded
        try:
            current = registry_version(self.model)
        except RegistryError as exc:
            self._log_failure(f"index:{exc}", "cannot read the registry", exc, version)
            return loaded
        if current == version or current == self._failed or not self._lock.acquire(blocking=False):
            return loaded
        try:
            if self._state is not None and registry_version(self.model) != self._state[1]:
                self._reload()
                self._failed = None
        except Exception as exc:  # a broken new version: keep serving the complete one already loaded
            self._log_failure(str(current), f"cannot load version {current}", exc, version)
        finally:
            self._lock.release()
        return self._state[0] if self._state is not None else loaded

    def _log_failure(self, key: str, what: str, exc: Exception, serving: str) -> None:
        if self._failed != key:
            self._failed = key
            logger.error("Registry %s: %s (%s); still serving %s.", self.model, what, exc, serving)
