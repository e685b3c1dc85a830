"""Serving under load while the registry changes: 8 threads query one LlamaIndex ``HardNegativeRerank`` and one
Haystack ``HardNegativeRanker`` on a registry folder while another process promotes a new version and then rolls
it back. No query may fail, every answer must equal one complete version's own scores, and each adapter must load
once per change of the current version (not once per query).

Set ``HN_SERVING_REPORT=path.json`` to write the throughput and latency measured (docs/failure-behaviour.md).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("llama_index.core")
pytest.importorskip("haystack")

from haystack import Document
from haystack_integrations.components.rankers.hn import HardNegativeRanker
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode
from llama_index.postprocessor.hn_rerank import HardNegativeRerank

from hn_plugins.registry import ModelRegistry
from hn_plugins.reranker import RERANKER_MARKER, load_reranker

logger = logging.getLogger(__name__)
pytestmark = pytest.mark.integration

THREADS = 8
MIN_QUERIES = 200  # per thread
MAX_QUERIES = 5000  # per thread: the bound if a change were never observed
SETTLED_QUERIES = 4  # per thread, begun after the rollback was loaded: all must be answered by v0001
TOLERANCE = 1e-4  # the same version's scores, computed in another batch
ADAPTER_LOGGERS = (
    "llama_index.postprocessor.hn_rerank.base",
    "haystack_integrations.components.rankers.hn.ranker",
)
#: What `hn registry rollback REGISTRY` runs, from another process.
ROLLBACK = "import sys; from hn_plugins.registry import ModelRegistry; ModelRegistry(sys.argv[1]).rollback()"


def _reranker_folder(model, folder: Path, **marker: str) -> Path:
    model.save(str(folder))
    (folder / RERANKER_MARKER).write_text(json.dumps({"kind": "bi", **marker}), encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def static_folders(static_model, tmp_path_factory) -> tuple[Path, Path]:
    """Two bi-encoder rerankers that score differently at little cost: the static model, and the static model with
    a query prompt."""
    root = tmp_path_factory.mktemp("rerankers")
    return (
        _reranker_folder(static_model, root / "static"),
        _reranker_folder(static_model, root / "static-prompt", query_prompt="query: "),
    )


@pytest.fixture(scope="module")
def minilm_folder(minilm, tmp_path_factory) -> Path:
    """all-MiniLM-L6-v2 saved as a bi-encoder reranker folder."""
    return _reranker_folder(minilm, tmp_path_factory.mktemp("rerankers") / "minilm")


@pytest.fixture(scope="module")
def workload(cranfield_train) -> list[tuple[str, list[tuple[str, str]]]]:
    """24 Cranfield queries, each with 10 candidate documents (its judged ones first)."""
    others = list(cranfield_train.corpus)[:40]
    work = []
    for qid in cranfield_train.judged_query_ids[:24]:
        docs = list(dict.fromkeys([*sorted(cranfield_train.positives(qid)), *others]))[:10]
        work.append((cranfield_train.queries[qid], [(d, cranfield_train.document_text(d)) for d in docs]))
    return work


class _LoadCounter(logging.Handler):
    """Counts the adapters' "loaded" log records: one per model load."""

    def __init__(self) -> None:
        super().__init__(level=logging.INFO)
        self.counts = {"llamaindex": 0, "haystack": 0}

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message.startswith("HardNegativeRerank loaded"):
            self.counts["llamaindex"] += 1
        elif message.startswith("HardNegativeRanker loaded"):
            self.counts["haystack"] += 1


def _hn_command() -> list[str]:
    script = Path(sys.executable).with_name("hn")
    return [str(script)] if script.is_file() else [shutil.which("hn") or "hn"]


def _serve_while(
    registry: ModelRegistry,
    workload: list[tuple[str, list[tuple[str, str]]]],
    promote: Callable[[], None],
    rollback: Callable[[], None],
) -> dict:
    """Run the 8 query threads; once they all serve, ``promote`` (another process), wait until both adapters have
    loaded the new version, ``rollback``, wait until both have loaded v0001 again, stop, and check every answer."""
    loads = _LoadCounter()
    for name in ADAPTER_LOGGERS:
        logging.getLogger(name).addHandler(loads)
        logging.getLogger(name).setLevel(logging.INFO)
    llama = HardNegativeRerank(model=registry.root, top_n=10, device="cpu", fuse_retrieval_score=False)
    haystack = HardNegativeRanker(model=registry.root, top_k=10, fuse_retrieval_score=False)
    haystack.warm_up()

    answers: list[tuple[str, int, dict[str, float], float, float]] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    stop = threading.Event()
    served = threading.Semaphore(0)

    def ask(adapter: str, index: int) -> dict[str, float]:
        query, docs = workload[index]
        if adapter == "llamaindex":
            nodes = [NodeWithScore(node=TextNode(id_=d, text=t), score=None) for d, t in docs]
            out = llama.postprocess_nodes(nodes, query_bundle=QueryBundle(query))
            return {n.node.node_id: float(n.score) for n in out}
        documents = [Document(id=d, content=t) for d, t in docs]
        return {d.id: float(d.score) for d in haystack.run(query=query, documents=documents)["documents"]}

    def worker(thread: int) -> None:
        after_stop = 0  # queries begun once the change is settled: each thread sends a few
        try:
            for i in range(MAX_QUERIES):
                if stop.is_set():
                    if i >= MIN_QUERIES and after_stop >= SETTLED_QUERIES:
                        return
                    after_stop += 1
                adapter = ("llamaindex", "haystack")[(thread + i) % 2]
                index = (thread * 7 + i) % len(workload)
                start = time.perf_counter()
                scores = ask(adapter, index)
                end = time.perf_counter()
                with lock:
                    answers.append((adapter, index, scores, start, end))
                served.release()
        except BaseException as exc:
            errors.append(exc)

    def wait_for_loads(count: int) -> None:
        deadline = time.monotonic() + 1200
        while not errors and not all(n >= count for n in loads.counts.values()):
            assert time.monotonic() < deadline, f"the adapters did not follow the registry: {loads.counts}"
            time.sleep(0.02)
        time.sleep(1.0)  # the loaded version replaces the previous one right after its load is logged

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(THREADS)]
    began = time.perf_counter()
    try:
        for t in threads:
            t.start()
        for _ in range(THREADS * 10):  # every thread is serving
            served.acquire(timeout=120)
        change_began = time.perf_counter()
        promote()
        wait_for_loads(2)
        rollback()
        wait_for_loads(3)
        change_ended = time.perf_counter()
        stop.set()
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=600)
        for name in ADAPTER_LOGGERS:
            logging.getLogger(name).removeHandler(loads)
    ended = time.perf_counter()

    assert errors == [], errors[:3]
    expected: dict[str, list[dict[str, float]]] = {}
    for version in registry.versions:  # each version's own scores, from its folder
        reranker = load_reranker(registry.path(version))
        expected[version] = [
            {d: float(x) for (d, _), x in zip(docs, reranker.score(q, [t for _, t in docs]), strict=True)}
            for q, docs in workload
        ]
    by_version: dict[str, dict[str, int]] = {}
    for adapter, index, scores, _, _ in answers:
        matching = [
            version
            for version, per_query in expected.items()
            if scores.keys() == per_query[index].keys()
            and all(abs(scores[d] - per_query[index][d]) <= TOLERANCE for d in scores)
        ]
        assert len(matching) == 1, f"{adapter} answer to query {index} matches versions {matching}"
        counts = by_version.setdefault(adapter, {})
        counts[matching[0]] = counts.get(matching[0], 0) + 1
    for adapter, count in loads.counts.items():
        assert by_version[adapter].get("v0002", 0) > 0, f"{adapter} never served the promoted version"
        assert count == 3, f"{adapter} loaded {count} times for 2 changes of the current version"
        settled = [a for a in answers if a[0] == adapter and a[3] > change_ended]
        assert len(settled) >= THREADS * SETTLED_QUERIES // 2
        assert all(a[2] == pytest.approx(expected["v0001"][a[1]], abs=TOLERANCE) for a in settled)

    latencies = np.array([end - start for _, _, _, start, end in answers])
    during = [a for a in answers if change_began <= a[3] <= change_ended]
    window = np.array([end - start for _, _, _, start, end in during])
    report = {
        "threads": THREADS,
        "queries": len(answers),
        "documents_per_query": len(workload[0][1]),
        "answers_by_version": by_version,
        "loads": dict(loads.counts),
        "queries_per_second": round(len(answers) / (ended - began), 1),
        "p50_ms": round(1000 * float(np.percentile(latencies, 50)), 1),
        "p95_ms": round(1000 * float(np.percentile(latencies, 95)), 1),
        "max_ms": round(1000 * float(latencies.max()), 1),
        "during_change": {
            "seconds": round(change_ended - change_began, 1),
            "queries": len(during),
            "queries_per_second": round(len(during) / (change_ended - change_began), 1),
            "p95_ms": round(1000 * float(np.percentile(window, 95)), 1) if len(window) else None,
        },
    }
    logger.info("serving under promotion: %s", report)
    if os.environ.get("HN_SERVING_REPORT"):
        Path(os.environ["HN_SERVING_REPORT"]).write_text(json.dumps(report, indent=2), encoding="utf-8")
    return report


def _run_ok(command: list[str], **kwargs) -> None:
    proc = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=1800,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        **kwargs,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_adapters_keep_serving_while_a_version_is_promoted_and_rolled_back(
    static_folders, workload, tmp_path
):
    """Another process registers and promotes v0002 (the registry call `hn retrain` makes), then another rolls
    back to v0001 (what `hn registry rollback` runs)."""
    first, second = static_folders
    registry = ModelRegistry(tmp_path / "registry")
    registry.register(first, promote=True)
    register = "import sys; from hn_plugins.registry import ModelRegistry as R; R(sys.argv[1]).register(sys.argv[2], promote=True)"
    report = _serve_while(
        registry,
        workload,
        promote=lambda: _run_ok([sys.executable, "-c", register, str(registry.root), str(second)]),
        rollback=lambda: _run_ok([sys.executable, "-c", ROLLBACK, str(registry.root)]),
    )
    assert report["queries"] >= THREADS * MIN_QUERIES


@pytest.mark.slow
def test_adapters_keep_serving_while_hn_retrain_promotes_and_rollback_follows(
    minilm_folder, workload, shared_data, tmp_path
):
    """all-MiniLM-L6-v2 serves while `hn retrain` mines, trains, evaluates and promotes a candidate
    (--min-improvement=-1 accepts it); then another process rolls back to v0001."""
    registry = ModelRegistry(tmp_path / "registry")
    registry.register(minilm_folder, promote=True)
    retrain = [*_hn_command(), "retrain", str(shared_data / "medline"), "--registry", str(registry.root)]
    retrain += ["--models", "static-model", "--selection", "holdout", "--epochs", "1", "--max-length", "64"]
    retrain += ["--top-k", "20", "--batch-size", "16", "--min-improvement=-1"]
    report = _serve_while(
        registry,
        workload,
        promote=lambda: _run_ok(retrain),
        rollback=lambda: _run_ok([sys.executable, "-c", ROLLBACK, str(registry.root)]),
    )
    assert report["queries"] >= THREADS * MIN_QUERIES
