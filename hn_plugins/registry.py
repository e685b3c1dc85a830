"""A folder of reranker versions with one *current* version: register, promote, roll back, never lose one.

Layout::

    registry/
      registry.json            {"current": "v0002", "history": ["v0001", "v0002"], "versions": {...metadata}}
      versions/v0001/          a model folder written by the trainer, plus hn_registry_entry.json
      versions/v0002/

The LlamaIndex postprocessor, the Haystack ranker and :func:`hn_plugins.reranker.load_reranker` accept the
registry folder itself and load its current version; the two adapters check it before each query and load the
new current version after a promotion or a rollback (:func:`registry_version`, through
:class:`~hn_plugins.registry_follower.RegistryFollower`).

Only versions listed in ``registry.json`` are ever loaded, and only from their own folder under ``versions/``
(:func:`resolve_version`): a ``current`` value that names anything else (``../../models/x``, an absolute path, a
symbolic link leading out of the registry) is refused with a message naming the file and the value.

Writes are crash-safe: the index is replaced atomically (temporary file, then rename) under a lock file, and a
new version's folder is copied to a temporary name, completed with its own index entry
(``hn_registry_entry.json``), then renamed into place before the index names it. A process killed at any point
leaves the previous index intact; the next :class:`ModelRegistry` on the folder removes the temporary leftovers
and completes a registration whose folder was already in place. A missing or unreadable index is never
overwritten: opening such a registry is refused with the command that rebuilds it (``hn registry repair``,
:meth:`ModelRegistry.repair`).
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

__all__ = [
    "ENTRY_FILE",
    "REGISTRY_MARKER",
    "ModelRegistry",
    "RegistryError",
    "read_index",
    "registry_moved",
    "registry_version",
    "resolve_current_version",
    "resolve_version",
]

#: File a model registry folder holds: its index.
REGISTRY_MARKER = "registry.json"
#: Subfolder that holds one folder per version.
VERSIONS_DIR = "versions"
#: File inside each version folder: the version's name, its index entry and whether it was promoted on
#: registration (what :meth:`ModelRegistry.repair` rebuilds the index from).
ENTRY_FILE = "hn_registry_entry.json"
#: Lock file writers hold while they change the registry.
LOCK_FILE = ".registry.lock"
_NUMBERED = re.compile(r"v(\d{4,})")
_FOLDER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


class RegistryError(ValueError):
    """A registry's index is missing, unreadable, or names a version it cannot serve; the message names the file,
    the value, and the command that repairs it."""


def _repair_hint(root: Path, sentence: bool = False) -> str:
    return (
        f"{'R' if sentence else 'r'}ebuild the index from the version folders with `hn registry repair {root}` (add `--current VERSION` "
        "to choose the version to serve)"
    )


def read_index(root: str | os.PathLike[str]) -> dict[str, Any]:
    """The registry index ``root/registry.json``, checked: ``current`` (a name or ``null``), ``history`` (names) and
    ``versions`` (name -> metadata).

    Raises:
        RegistryError: the file is missing, is not JSON (e.g. truncated), or lacks those fields; the message names
            the file and the command that rebuilds it.

    Example:
        >>> import tempfile
        >>> root = ModelRegistry(Path(tempfile.mkdtemp()) / "r").root
        >>> read_index(root)
        {'current': None, 'history': [], 'versions': {}}
    """
    root = Path(root)
    marker = root / REGISTRY_MARKER
    try:
        text = marker.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RegistryError(f"{marker} is missing; {_repair_hint(root)}.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RegistryError(f"Cannot read {marker} ({exc}); {_repair_hint(root)}.") from exc
    try:
        state = json.loads(text)
    except ValueError as exc:
        raise RegistryError(
            f"{marker} is not valid JSON ({exc}; {len(text)} characters: truncated?); {_repair_hint(root)}."
        ) from exc
    problem = None
    if not isinstance(state, dict):
        problem = f"holds a {type(state).__name__}, not an object"
    elif not isinstance(state.get("versions", {}), dict):
        problem = f"'versions' is {state.get('versions')!r}, not an object"
    elif not isinstance(state.get("history", []), list) or not all(
        isinstance(v, str) for v in state.get("history", [])
    ):
        problem = f"'history' is {state.get('history')!r}, not a list of version names"
    elif state.get("current") is not None and not isinstance(state.get("current"), str):
        problem = f"'current' is {state.get('current')!r}, not a version name"
    if problem is not None:
        raise RegistryError(f"{marker} {problem}; {_repair_hint(root)}.")
    return {
        "current": state.get("current"),
        "history": list(state.get("history", [])),
        "versions": dict(state.get("versions", {})),
    }


def _version_folder(root: Path, version: str, what: str) -> Path:
    """``root/versions/<version>``, refused unless it is a folder of that name inside ``root/versions``."""
    marker = root / REGISTRY_MARKER
    versions = root / VERSIONS_DIR
    if not _FOLDER_NAME.fullmatch(version):
        raise RegistryError(
            f"{marker}: {what} {version!r} is not a folder name inside {versions}; a registry serves only its own "
            f"versions, so it is refused. {_repair_hint(root, sentence=True)}."
        )
    folder = versions / version
    base = versions.resolve()
    if folder.resolve().parent != base:
        raise RegistryError(
            f"{marker}: {what} {version!r} leads to {folder.resolve()}, outside {base} (a symbolic link?); a "
            "registry serves only folders inside it, so it is refused. Replace the link with the model folder."
        )
    if not folder.is_dir():
        raise RegistryError(f"{marker}: {what} {version!r} has no folder {folder}; {_repair_hint(root)}.")
    return folder


def resolve_version(root: str | os.PathLike[str], version: str) -> Path:
    """The folder of ``version`` of the registry at ``root``, only if the index lists it and its folder lies inside
    ``root/versions``.

    Raises:
        RegistryError: the index is unreadable, does not list ``version``, or its folder is missing or outside the
            registry.
    """
    root = Path(root)
    index = read_index(root)
    if not isinstance(version, str) or version not in index["versions"]:
        raise RegistryError(
            f"{root / REGISTRY_MARKER} lists no version {version!r} (versions: {sorted(index['versions'])})."
        )
    return _version_folder(root, version, "version")


def resolve_current_version(root: str | os.PathLike[str]) -> Path:
    """The folder of the registry's current version, checked as :func:`resolve_version` checks any version.

    Raises:
        RegistryError: no version is current yet, or ``current`` names something that is not one of the
            registry's version folders (``../../models/x``, an absolute path, a name not under ``versions``).

    Example:
        >>> import tempfile
        >>> root = Path(tempfile.mkdtemp())
        >>> model = root / "trained"; model.mkdir(); _ = (model / "hn_reranker.json").write_text('{"kind": "bi"}')
        >>> registry = ModelRegistry(root / "registry")
        >>> version = registry.register(model, promote=True)
        >>> resolve_current_version(registry.root) == registry.root / "versions" / version
        True
    """
    root = Path(root)
    index = read_index(root)
    current = index["current"]
    if current is None:
        raise RegistryError(f"Model registry {root} has no current version; promote one first.")
    if current not in index["versions"]:
        raise RegistryError(
            f"{root / REGISTRY_MARKER}: 'current' is {current!r}, which is not listed under 'versions' "
            f"({sorted(index['versions'])}); a registry serves only its own versions, so it is refused. Promote a "
            f"listed version with `hn registry promote {root} VERSION`."
        )
    return _version_folder(root, current, "'current'")


def registry_version(path: str | os.PathLike[str]) -> str | None:
    """The current version of the registry folder at ``path``; ``None`` if ``path`` is not a registry folder or no
    version is current yet.

    The adapters call it before each query to follow promotions and rollbacks (one small JSON read).

    Raises:
        RegistryError: the registry's ``registry.json`` cannot be read.

    Example:
        >>> import tempfile
        >>> root = Path(tempfile.mkdtemp())
        >>> registry_version(root) is None, registry_version(ModelRegistry(root / "r").root) is None
        (True, True)
    """
    folder = Path(path)
    if not (folder / REGISTRY_MARKER).is_file():
        return None
    current = read_index(folder)["current"]
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


def _write_json_atomically(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2, default=str)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


@contextmanager
def _write_lock(root: Path) -> Iterator[None]:
    """Hold ``root/.registry.lock`` exclusively (POSIX ``flock``; blocks while another writer holds it)."""
    root.mkdir(parents=True, exist_ok=True)
    with open(root / LOCK_FILE, "a", encoding="utf-8") as handle:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows: no lock
            yield
            return
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class ModelRegistry:
    """Versions of a reranker, with a current one.

    Args:
        root: the registry folder (created if missing).

    Raises:
        RegistryError: ``root/registry.json`` is unreadable, or missing while ``root/versions`` holds versions; the
            message gives the command that rebuilds it (:meth:`repair`). Nothing is changed.

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
        self._thread_lock = threading.RLock()
        self._depth = 0
        if not (self.root / REGISTRY_MARKER).is_file():
            self._refuse_lost_index()
        with self._locked():
            if not (self.root / REGISTRY_MARKER).is_file():
                self._refuse_lost_index()
                (self.root / VERSIONS_DIR).mkdir(parents=True, exist_ok=True)
                self._write({"current": None, "history": [], "versions": {}})
            self._recover()

    # ------------------------------------------------------------------ locking and recovery
    @contextmanager
    def _locked(self) -> Iterator[None]:
        """Hold the registry's write lock (:data:`LOCK_FILE`); re-entrant within this object."""
        with self._thread_lock:
            if self._depth:
                self._depth += 1
                try:
                    yield
                finally:
                    self._depth -= 1
                return
            with _write_lock(self.root):
                self._depth = 1
                try:
                    yield
                finally:
                    self._depth = 0

    def _folders_on_disk(self) -> list[str]:
        versions = self.root / VERSIONS_DIR
        if not versions.is_dir():
            return []
        return sorted(p.name for p in versions.iterdir() if p.is_dir() and not p.name.startswith("."))

    def _refuse_lost_index(self) -> None:
        if self.root.exists() and not self.root.is_dir():
            raise FileNotFoundError(f"The registry {self.root} is a file; give a folder.")
        found = self._folders_on_disk()
        if found:
            raise RegistryError(
                f"{self.root / REGISTRY_MARKER} is missing, but {self.root / VERSIONS_DIR} holds {len(found)} "
                f"version folder(s) ({', '.join(found[:5])}{', ...' if len(found) > 5 else ''}); the index is not "
                f"re-created empty over them. {_repair_hint(self.root, sentence=True)}. Nothing was changed."
            )

    def _recover(self) -> None:
        """Remove what a killed writer left behind and complete a registration whose folder is already in place.

        Called with the lock held, so every temporary name belongs to a writer that is gone.
        """
        (self.root / f".{REGISTRY_MARKER}.tmp").unlink(missing_ok=True)
        versions = self.root / VERSIONS_DIR
        versions.mkdir(exist_ok=True)
        for leftover in versions.glob(".*.tmp"):
            logger.info("Registry %s: removing %s, left by an interrupted registration.", self.root, leftover)
            shutil.rmtree(leftover, ignore_errors=True)
        state = read_index(self.root)
        changed = False
        for name in self._folders_on_disk():
            if name in state["versions"]:
                continue
            record = self._entry_record(versions / name)
            if record is None or record.get("version") != name:
                logger.warning(
                    "Registry %s: folder %s is not in %s and has no %s; it is left as is (`hn registry repair` "
                    "adds it).",
                    self.root,
                    versions / name,
                    REGISTRY_MARKER,
                    ENTRY_FILE,
                )
                continue
            state["versions"][name] = record.get("entry", {})
            if record.get("promote"):
                state["current"] = name
                state["history"].append(name)
            changed = True
            logger.warning(
                "Registry %s: completed the interrupted registration of %s%s.",
                self.root,
                name,
                " (promoted, as that run decided)" if record.get("promote") else "",
            )
        if changed:
            self._write(state)

    @staticmethod
    def _entry_record(folder: Path) -> dict[str, Any] | None:
        try:
            record = json.loads((folder / ENTRY_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return record if isinstance(record, dict) else None

    def _read(self) -> dict[str, Any]:
        return read_index(self.root)

    def _write(self, state: dict[str, Any]) -> None:
        _write_json_atomically(self.root / REGISTRY_MARKER, state)

    def _next_name(self, state: dict[str, Any]) -> str:
        """``vNNNN`` above every version in the index and every folder on disk: names never collide."""
        numbers = [
            int(match.group(1))
            for name in [*state["versions"], *self._folders_on_disk()]
            if (match := _NUMBERED.fullmatch(name))
        ]
        return f"v{max(numbers, default=0) + 1:04d}"

    # ------------------------------------------------------------------ reading
    @property
    def current(self) -> str | None:
        """The current version's name, or ``None`` before the first promotion."""
        current = self._read()["current"]
        return str(current) if current is not None else None

    @property
    def versions(self) -> dict[str, dict[str, Any]]:
        """Metadata of every version (metrics, source, time)."""
        return self._read()["versions"]

    def path(self, version: str | None = None) -> Path:
        """Folder of a version (default: the current one), checked by :func:`resolve_version`.

        Raises:
            KeyError: no such version (or, by default, no current version yet).
            RegistryError: the version's folder is missing or lies outside the registry.
        """
        state = self._read()
        version = version or state["current"]
        if version is None or version not in state["versions"]:
            raise KeyError(
                f"Registry {self.root} has no version {version!r}; versions: {sorted(state['versions'])}."
            )
        return _version_folder(self.root, version, "version")

    # ------------------------------------------------------------------ writing
    def register(
        self,
        model_dir: str | os.PathLike[str],
        metrics: dict[str, float] | None = None,
        promote: bool = False,
        **metadata: Any,
    ) -> str:
        """Copy a trained model folder in as a new version; optionally make it current.

        The copy goes to a temporary folder, gets its :data:`ENTRY_FILE`, and is renamed into place; then one
        atomic index write registers it (and promotes it). A process killed in between loses nothing: the next
        :class:`ModelRegistry` on the folder completes the registration.
        """
        source = Path(model_dir)
        if not source.is_dir():
            raise FileNotFoundError(f"register(): {source} is not a model folder.")
        with self._locked():
            self._recover()
            state = self._read()
            version = self._next_name(state)
            entry = {"metrics": metrics or {}, "source": str(source), "registered": time.time(), **metadata}
            tmp = self.root / VERSIONS_DIR / f".{version}.tmp"
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.copytree(source, tmp)
            _write_json_atomically(tmp / ENTRY_FILE, {"version": version, "entry": entry, "promote": promote})
            os.replace(tmp, self.root / VERSIONS_DIR / version)
            state["versions"][version] = entry
            if promote:
                state["current"] = version
                state["history"].append(version)
            self._write(state)
        if promote:
            logger.info("Registry %s: current version is now %s", self.root, version)
        return version

    def promote(self, version: str) -> None:
        """Make ``version`` current (the previous one stays, for rollback)."""
        with self._locked():
            self._recover()
            state = self._read()
            if version not in state["versions"]:
                raise KeyError(
                    f"promote(): unknown version {version!r}; versions: {sorted(state['versions'])}."
                )
            _version_folder(self.root, version, "version")
            state["current"] = version
            state["history"].append(version)
            self._write(state)
        logger.info("Registry %s: current version is now %s", self.root, version)

    def rollback(self) -> str:
        """Return to the version that was current before the last promotion."""
        with self._locked():
            self._recover()
            state = self._read()
            if len(state["history"]) < 2:
                raise RuntimeError(f"Registry {self.root} has no earlier promoted version to roll back to.")
            state["history"].pop()
            previous = state["history"][-1]
            if previous not in state["versions"]:
                raise RegistryError(
                    f"{self.root / REGISTRY_MARKER}: the version before the last promotion, {previous!r}, is not "
                    f"listed under 'versions'; promote a listed one with `hn registry promote {self.root} VERSION`."
                )
            _version_folder(self.root, previous, "version")
            state["current"] = previous
            self._write(state)
        logger.info("Registry %s: rolled back; current version is now %s", self.root, previous)
        return str(previous)

    @classmethod
    def repair(cls, root: str | os.PathLike[str], current: str | None = None) -> ModelRegistry:
        """Rebuild a missing or unreadable index from the folders under ``root/versions``.

        Each folder's :data:`ENTRY_FILE` gives back its metadata (folders without one get ``{"recovered": true}``).
        An unreadable ``registry.json`` is kept as ``registry.json.damaged-<time>``, never overwritten; no version
        folder is changed. A readable index is kept as it is (only leftovers of interrupted writes are cleared).

        Args:
            root: the registry folder.
            current: the version to serve after the repair (default: none, unless the index was readable).

        Raises:
            RegistryError: ``current`` is not one of the version folders.
        """
        root = Path(root)
        marker = root / REGISTRY_MARKER
        with _write_lock(root):
            try:
                read_index(root)
            except RegistryError:
                if marker.exists():
                    kept = marker.with_name(f"{REGISTRY_MARKER}.damaged-{time.strftime('%Y%m%dT%H%M%S')}")
                    os.replace(marker, kept)
                    logger.warning("Registry %s: kept the unreadable index as %s", root, kept)
                state: dict[str, Any] = {"current": None, "history": [], "versions": {}}
                versions = root / VERSIONS_DIR
                folders = (
                    sorted(p for p in versions.iterdir() if p.is_dir() and not p.name.startswith("."))
                    if versions.is_dir()
                    else []
                )
                for folder in folders:
                    if not _FOLDER_NAME.fullmatch(folder.name):
                        continue
                    record = cls._entry_record(folder)
                    if record is not None and record.get("version") == folder.name:
                        state["versions"][folder.name] = record.get("entry", {})
                    else:
                        state["versions"][folder.name] = {
                            "recovered": True,
                            "registered": folder.stat().st_mtime,
                        }
                versions.mkdir(exist_ok=True)
                _write_json_atomically(marker, state)
                logger.warning(
                    "Registry %s: rebuilt %s with %d versions (%s).",
                    root,
                    REGISTRY_MARKER,
                    len(state["versions"]),
                    ", ".join(state["versions"]) or "none",
                )
        registry = cls(root)  # clears what interrupted writes left
        if current is not None:
            if current not in registry.versions:
                raise RegistryError(
                    f"repair(): {current!r} is not a version of {root} (versions: {sorted(registry.versions)})."
                )
            registry.promote(current)
        return registry
