"""A per-model embedding cache keyed by (model fingerprint, document id, content hash).

Each model fingerprint has its own folder of shards. A shard is one ``.npz`` file (``ids``, ``hashes``,
``vectors``; no pickles) written to a temporary name and renamed into place, so an interrupted run leaves either
a whole shard or nothing: entries already written are never lost or corrupted. The temporary name carries the
host and process id of its writer; the next cache opened on the folder removes those whose writer is gone. A
changed document gets a new content hash and is embedded again; an unchanged one never is.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

__all__ = ["EmbeddingCache", "content_hash"]


#: A temporary shard of another host is removed only after this many seconds (its writer cannot be checked).
FOREIGN_TEMPORARY_SECONDS = 24 * 3600
_HOST = "".join(c if c.isalnum() or c == "-" else "-" for c in socket.gethostname()) or "host"


def _writer_is_gone(host: str, pid: str, age: float) -> bool:
    """Whether the process that named a temporary shard has ended (same host, POSIX), or it is a day old."""
    if host != _HOST or os.name != "posix" or not pid.isdigit():
        return age > FOREIGN_TEMPORARY_SECONDS
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return False


def content_hash(text: str) -> str:
    """A stable 32-hex-digit hash of a text (blake2b)."""
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).hexdigest()


class EmbeddingCache:
    """Embeddings of one model, stored under ``root/<fingerprint>/``.

    Args:
        root: the cache folder shared by all models.
        fingerprint: identifies the model and its settings (weights, prompt, sequence length).

    Example:
        >>> import tempfile, numpy as np
        >>> cache = EmbeddingCache(tempfile.mkdtemp(), fingerprint="demo")
        >>> cache.put(["d1"], [content_hash("text")], np.ones((1, 3), dtype=np.float32))
        >>> found, vectors = cache.get(["d1", "d2"], [content_hash("text"), content_hash("other")])
        >>> found.tolist()
        [True, False]
    """

    def __init__(self, root: str | os.PathLike[str], fingerprint: str) -> None:
        self.folder = Path(root) / fingerprint
        self.folder.mkdir(parents=True, exist_ok=True)
        self._remove_stale_temporaries()
        self._index: dict[tuple[str, str], tuple[int, int]] | None = None
        self._shards: list[np.ndarray] = []
        self.dim: int | None = None

    def _remove_stale_temporaries(self) -> None:
        """Delete temporary shards (``.shard-<id>.npz.<host>-<pid>.tmp``) whose writer was killed."""
        now = time.time()
        for tmp in self.folder.glob(".shard-*.tmp"):
            host, _, pid = tmp.name[: -len(".tmp")].rsplit(".", 1)[-1].rpartition("-")
            try:
                age = now - tmp.stat().st_mtime
            except FileNotFoundError:
                continue
            if _writer_is_gone(host, pid, age):
                logger.info("Removing %s, left by an interrupted cache write.", tmp)
                tmp.unlink(missing_ok=True)

    def _load(self) -> dict[tuple[str, str], tuple[int, int]]:
        if self._index is not None:
            return self._index
        index: dict[tuple[str, str], tuple[int, int]] = {}
        self._shards = []
        for shard_path in sorted(self.folder.glob("shard-*.npz")):
            try:
                with np.load(shard_path, allow_pickle=False) as shard:
                    ids, hashes, vectors = shard["ids"], shard["hashes"], shard["vectors"]
            except Exception as exc:  # a foreign or damaged file: skip it, never crash on it
                logger.warning("Ignoring unreadable cache shard %s (%s)", shard_path, exc)
                continue
            if self.dim is not None and vectors.shape[1] != self.dim:
                logger.warning(
                    "Ignoring cache shard %s with dimension %d != %d", shard_path, vectors.shape[1], self.dim
                )
                continue
            self.dim = int(vectors.shape[1])
            shard_no = len(self._shards)
            self._shards.append(vectors)
            for row, (doc_id, h) in enumerate(zip(ids.tolist(), hashes.tolist(), strict=True)):
                index[(doc_id, h)] = (shard_no, row)
        self._index = index
        return index

    def __len__(self) -> int:
        return len(self._load())

    def get(self, ids: Sequence[str], hashes: Sequence[str]) -> tuple[np.ndarray, np.ndarray | None]:
        """Look up vectors; returns ``(found_mask, vectors)`` with zero rows where nothing was found."""
        index = self._load()
        found = np.zeros(len(ids), dtype=bool)
        if not index or self.dim is None:
            return found, None
        out = np.zeros((len(ids), self.dim), dtype=np.float32)
        for i, key in enumerate(zip(ids, hashes, strict=True)):
            where = index.get(key)
            if where is not None:
                out[i] = self._shards[where[0]][where[1]]
                found[i] = True
        return found, out

    def put(self, ids: Sequence[str], hashes: Sequence[str], vectors: np.ndarray) -> None:
        """Write one shard atomically (temporary file, then rename)."""
        if len(ids) == 0:
            return
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[0] != len(ids):
            raise ValueError(f"put(): {len(ids)} ids but vectors of shape {vectors.shape}.")
        if self.dim is not None and vectors.shape[1] != self.dim:
            raise ValueError(f"put(): dimension {vectors.shape[1]} differs from the cache's {self.dim}.")
        name = f"shard-{uuid.uuid4().hex}.npz"
        tmp = self.folder / f".{name}.{_HOST}-{os.getpid()}.tmp"
        with tmp.open("wb") as handle:
            np.savez(
                handle,
                ids=np.asarray(list(ids), dtype=str),
                hashes=np.asarray(list(hashes), dtype=str),
                vectors=vectors,
            )
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.folder / name)
        index = self._load()
        shard_no = len(self._shards)
        self._shards.append(vectors)
        self.dim = int(vectors.shape[1])
        for row, key in enumerate(zip(ids, hashes, strict=True)):
            index[key] = (shard_no, row)

    def compact(self) -> None:
        """Merge all shards into one (keeps only the newest vector per key); atomic like :meth:`put`."""
        index = self._load()
        old = sorted(self.folder.glob("shard-*.npz"))
        if len(old) <= 1:
            return
        keys = list(index)
        vectors = np.stack([self._shards[s][r] for s, r in index.values()]) if keys else None
        self._index, self._shards = {}, []
        if vectors is not None:
            self.put([k[0] for k in keys], [k[1] for k in keys], vectors)
        for path in old:
            path.unlink(missing_ok=True)
        self._index = None
        self._load()
