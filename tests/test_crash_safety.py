"""Fault injection: a child process is killed with SIGKILL at seeded points of a write (the embedding cache, the
model registry) or at every step of a model-folder swap; the next run must complete with the same result and
leave no temporary file behind.

A kill point is the N-th executed line of the named source files (the library's own module and the standard
library or numpy code it writes through), counted by a trace function in the child, so each point is reproducible.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from hn_plugins.cache import EmbeddingCache, content_hash
from hn_plugins.registry import ENTRY_FILE, ModelRegistry

REPO = Path(__file__).resolve().parents[1]
KILLS = 20
SEED = 25

# The child: counts executed lines in the files named by HN_KILL_IN and SIGKILLs itself at line HN_KILL_AT
# (0: never; it then prints the number of lines it counted), while it runs the job.
_PRELUDE = textwrap.dedent(
    """
    import json, os, signal, sys
    KILL_AT = int(os.environ["HN_KILL_AT"])
    SUFFIXES = tuple(os.environ["HN_KILL_IN"].split(","))
    COUNT = 0

    def _local(frame, event, arg):
        global COUNT
        if event == "line":
            COUNT += 1
            if COUNT == KILL_AT:
                os.kill(os.getpid(), signal.SIGKILL)
        return _local

    def _global(frame, event, arg):
        return _local if frame.f_code.co_filename.endswith(SUFFIXES) else None

    def traced(function, *args):
        sys.settrace(_global)
        try:
            return function(*args)
        finally:
            sys.settrace(None)
    """
)

_CACHE_JOB = textwrap.dedent(
    """
    import numpy as np
    from hn_plugins.cache import EmbeddingCache
    from hn_plugins.embedders import EmbedderEnsemble

    class Lookup:
        '''Returns the real static-model vectors computed once by the test (no torch import in the child).'''
        name, fingerprint = "static-model", "static-model-reference"

        def __init__(self, texts, vectors):
            self.by_text = dict(zip(texts, vectors))

        def encode(self, texts, **kwargs):
            return np.stack([self.by_text[t] for t in texts])

    data = np.load(sys.argv[1])
    ids, texts, vectors = data["ids"].tolist(), data["texts"].tolist(), data["vectors"]
    ensemble = EmbedderEnsemble([Lookup(texts, vectors)], cache_dir=sys.argv[2])

    def job():
        out = ensemble.encode_documents(ids, texts, chunk_size=40)
        EmbeddingCache(sys.argv[2], ensemble.members[0].fingerprint).compact()
        return out

    out = traced(job)
    np.save(sys.argv[3], out)
    print(json.dumps({"lines": COUNT, **ensemble.document_counts["static-model"]}))
    """
)

_REGISTRY_JOB = textwrap.dedent(
    """
    from hn_plugins.registry import ModelRegistry

    def job():
        registry = ModelRegistry(sys.argv[1])
        for name in ("a", "b", "c"):  # like hn retrain: skip a candidate already registered (same fingerprint)
            if any(m.get("retrain", {}).get("fingerprint") == name for m in registry.versions.values()):
                continue
            registry.register(
                os.path.join(sys.argv[2], name), metrics={"mrr@10": 0.5}, promote=name != "b",
                retrain={"fingerprint": name},
            )

    traced(job)
    print(json.dumps({"lines": COUNT}))
    """
)

_SWAP_JOB = textwrap.dedent(
    """
    from pathlib import Path
    from hn_plugins.training import model_folder

    if sys.argv[3] == "no-exchange":  # the path taken where the system cannot swap two folders atomically
        model_folder.exchange_paths = lambda first, second: False
    traced(model_folder.install_folder, Path(sys.argv[1]), Path(sys.argv[2]))
    print(json.dumps({"lines": COUNT}))
    """
)


def _run(job: str, kill_at: int, kill_in: list[str], *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HN_KILL_AT": str(kill_at), "HN_KILL_IN": ",".join(kill_in), "HF_HUB_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, "-c", _PRELUDE + job, *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _completed(proc: subprocess.CompletedProcess[str]) -> dict:
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _kill_points(total: int, count: int = KILLS) -> list[int]:
    return sorted(random.Random(SEED).sample(range(1, total + 1), min(count, total)))


def _temporary_files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if ".tmp" in p.name or ".old-" in p.name)


@pytest.fixture(scope="module")
def reference_vectors(static_model, cranfield_train, tmp_path_factory) -> Path:
    """300 Cranfield documents and their real static-model vectors."""
    ids = cranfield_train.doc_ids[:300]
    texts = [cranfield_train.document_text(d) for d in ids]
    vectors = static_model.encode(texts, normalize_embeddings=True, convert_to_numpy=True).astype(np.float32)
    path = tmp_path_factory.mktemp("reference") / "reference.npz"
    np.savez(path, ids=np.asarray(ids), texts=np.asarray(texts), vectors=vectors)
    return path


CACHE_CODE = ["hn_plugins/cache.py", "numpy/lib/_npyio_impl.py", "numpy/lib/format.py", "zipfile.py"]


def _cached(cache_dir: Path, reference_vectors: Path) -> np.ndarray:
    """Every reference document's vector as the cache at ``cache_dir`` holds it (all must be there)."""
    data = np.load(reference_vectors)
    (fingerprint,) = [p.name for p in cache_dir.iterdir()]
    found, vectors = EmbeddingCache(cache_dir, fingerprint).get(
        data["ids"].tolist(), [content_hash(t) for t in data["texts"].tolist()]
    )
    assert found.all() and vectors is not None
    return vectors


def test_embedding_cache_survives_kill_9_at_seeded_points_of_its_writes(reference_vectors, tmp_path):
    n_docs = len(np.load(reference_vectors)["ids"])
    clean_out = tmp_path / "clean.npy"
    args = (str(reference_vectors), str(tmp_path / "clean"), str(clean_out))
    clean = _completed(_run(_CACHE_JOB, 0, CACHE_CODE, *args))
    assert clean["embedded"] == n_docs and clean["lines"] > 1000
    expected, expected_cache = np.load(clean_out), _cached(tmp_path / "clean", reference_vectors)
    for point in _kill_points(clean["lines"]):
        cache_dir, out = tmp_path / f"cache-{point}", tmp_path / f"out-{point}.npy"
        args = (str(reference_vectors), str(cache_dir), str(out))
        killed = _run(_CACHE_JOB, point, CACHE_CODE, *args)
        assert killed.returncode == -signal.SIGKILL, (point, killed.stderr[-2000:])
        again = _completed(_run(_CACHE_JOB, 0, CACHE_CODE, *args))
        assert again["embedded"] + again["cached"] == n_docs
        np.testing.assert_array_equal(np.load(out), expected)  # identical to an uninterrupted run
        assert _temporary_files(cache_dir) == [], point
        np.testing.assert_array_equal(_cached(cache_dir, reference_vectors), expected_cache)


REGISTRY_CODE = ["hn_plugins/registry.py", "shutil.py"]


@pytest.fixture(scope="module")
def candidates(tmp_path_factory) -> Path:
    """Three model-like folders (the registry copies bytes; what they hold does not matter to it)."""
    root = tmp_path_factory.mktemp("candidates")
    rng = np.random.default_rng(0)
    for name in ("a", "b", "c"):
        (root / name / "onnx").mkdir(parents=True)
        (root / name / "hn_reranker.json").write_text(json.dumps({"kind": "bi", "name": name}))
        (root / name / "model.safetensors").write_bytes(rng.bytes(300_000))
        (root / name / "onnx" / "model.onnx").write_bytes(rng.bytes(50_000))
    return root


def _registry_state(root: Path, candidates: Path) -> dict:
    registry = ModelRegistry(root)
    state = {"current": registry.current, "versions": {}}
    for version, meta in registry.versions.items():
        folder = registry.path(version)
        name = meta["retrain"]["fingerprint"]
        files = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
        assert files == sorted(
            [
                ENTRY_FILE,
                *(
                    str(p.relative_to(candidates / name))
                    for p in (candidates / name).rglob("*")
                    if p.is_file()
                ),
            ]
        )
        assert (folder / "model.safetensors").read_bytes() == (
            candidates / name / "model.safetensors"
        ).read_bytes()
        state["versions"][version] = name
    on_disk = sorted(p.name for p in (root / "versions").iterdir())
    assert on_disk == sorted(state["versions"]), "a version folder the index does not list"
    return state


def test_registry_survives_kill_9_at_seeded_points_of_its_writes(candidates, tmp_path):
    clean = _completed(_run(_REGISTRY_JOB, 0, REGISTRY_CODE, str(tmp_path / "r0"), str(candidates)))
    expected = _registry_state(tmp_path / "r0", candidates)
    assert expected == {"current": "v0003", "versions": {"v0001": "a", "v0002": "b", "v0003": "c"}}
    for point in _kill_points(clean["lines"]):
        root = tmp_path / f"r-{point}"
        killed = _run(_REGISTRY_JOB, point, REGISTRY_CODE, str(root), str(candidates))
        assert killed.returncode == -signal.SIGKILL, (point, killed.stderr[-2000:])
        _completed(_run(_REGISTRY_JOB, 0, REGISTRY_CODE, str(root), str(candidates)))
        assert _registry_state(root, candidates) == expected, point
        assert _temporary_files(root) == [], point


def _model(folder: Path, label: str) -> Path:
    folder.mkdir(parents=True)
    for i in range(3):
        (folder / f"part-{i}.bin").write_text(label * 1000)
    (folder / "hn_reranker.json").write_text(json.dumps({"kind": "bi", "label": label}))
    return folder


def _label(folder: Path) -> str | None:
    """The model a folder holds completely ('old' or 'new'), else None."""
    if not folder.is_dir():
        return None
    names = sorted(p.name for p in folder.iterdir())
    if names != ["hn_reranker.json", "part-0.bin", "part-1.bin", "part-2.bin"]:
        return None
    label = json.loads((folder / "hn_reranker.json").read_text())["label"]
    whole = all((folder / f"part-{i}.bin").read_text() == label * 1000 for i in range(3))
    return label if whole else None


SWAP_CODE = ["hn_plugins/training/model_folder.py"]


def _next_install_completes(work: Path, mode: str) -> None:
    """The next training's install into the same folder completes and leaves only the model folder."""
    shutil.rmtree(work / ".model.new", ignore_errors=True)  # what save_staged does before saving
    new = _model(work / ".model.new", "next")
    _completed(_run(_SWAP_JOB, 0, SWAP_CODE, str(new), str(work / "model"), mode))
    assert _label(work / "model") == "next" and sorted(p.name for p in work.iterdir()) == ["model"]


def _swap_steps(tmp_path: Path, mode: str) -> int:
    """Lines install_folder executes in an uninterrupted swap (checked to install the new model)."""
    work = tmp_path / "clean"
    out, new = _model(work / "model", "old"), _model(work / ".model.new", "new")
    total = _completed(_run(_SWAP_JOB, 0, SWAP_CODE, str(new), str(out), mode))["lines"]
    assert _label(out) == "new" and sorted(p.name for p in work.iterdir()) == ["model"]
    return int(total)


@pytest.mark.skipif(
    not sys.platform.startswith(("linux", "darwin")), reason="atomic swap needs Linux or macOS"
)
def test_model_folder_swap_leaves_a_complete_model_at_every_step(tmp_path):
    """Killed after any line of install_folder, the output folder holds the old or the new model, never nothing."""
    total = _swap_steps(tmp_path, "exchange")
    assert total > 5
    for point in range(1, total + 1):
        work = tmp_path / f"step-{point}"
        out, new = _model(work / "model", "old"), _model(work / ".model.new", "new")
        proc = _run(_SWAP_JOB, point, SWAP_CODE, str(new), str(out), "exchange")
        assert proc.returncode == -signal.SIGKILL, (point, proc.stderr[-2000:])
        assert _label(out) in ("old", "new"), f"killed at line {point}: {out} holds no complete model"
        _next_install_completes(work, "exchange")


def test_model_folder_swap_without_an_atomic_exchange_is_restored_by_the_next_install(tmp_path):
    """Where two folders cannot be swapped atomically, a kill between the two renames leaves the old model aside;
    the next install puts it back first, then installs, and no leftover remains."""
    total = _swap_steps(tmp_path, "no-exchange")
    for point in range(1, total + 1):
        work = tmp_path / f"step-{point}"
        out, new = _model(work / "model", "old"), _model(work / ".model.new", "new")
        proc = _run(_SWAP_JOB, point, SWAP_CODE, str(new), str(out), "no-exchange")
        assert proc.returncode == -signal.SIGKILL, (point, proc.stderr[-2000:])
        labels = [_label(p) for p in work.iterdir()]
        assert "old" in labels or _label(out) == "new", f"killed at line {point}: the previous model is lost"
        _next_install_completes(work, "no-exchange")
