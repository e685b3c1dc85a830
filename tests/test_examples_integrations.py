"""The LlamaIndex (04) and Haystack (05) examples end to end on the demo set a user has after ``hn demo --export``:
each builds the framework's own index or store, fine-tunes with the shipped recipe through the integration's one
call, and measures retrieval with and without the reranker.

Marked ``slow``: each mines with the real ensemble and fine-tunes all-MiniLM-L6-v2 (5 cross-fit folds + the final
model) on a share of the train questions.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
pytest.importorskip("chatterbot_corpus")

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"
#: A share of the demo set, so that each example trains in about a minute on 2 cores.
SMALL = ["--max-train", "120", "--max-test", "60"]


def _run(script: str, *args: str) -> str:
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "HAYSTACK_TELEMETRY_ENABLED": "False",
    }
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / script), *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    assert proc.returncode == 0, f"{script} failed ({proc.returncode}):\n{proc.stderr[-4000:]}"
    return proc.stdout


@pytest.fixture(scope="module")
def demo_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo set as ``hn demo --export`` writes it."""
    from hn_plugins.demo_data import export_demo_dataset

    return export_demo_dataset(tmp_path_factory.mktemp("data") / "hn-demo-data")


def _marker(folder: Path) -> dict:
    return json.loads((folder / "hn_reranker.json").read_text(encoding="utf-8"))


def test_llamaindex_example_runs_on_the_demo_set(demo_data: Path, tmp_path: Path) -> None:
    pytest.importorskip("llama_index.postprocessor.hn_rerank")
    pytest.importorskip("llama_index.embeddings.huggingface")
    stdout = _run("04_llamaindex_rerank.py", "--data", str(demo_data), "--out", str(tmp_path), *SMALL)
    assert "hn-demo-data: 60 test questions" in stdout
    assert "default negatives x1, in-batch loss, cross-fit selection" in stdout
    lines = stdout.splitlines()
    assert any(line.startswith("retrieval only ") for line in lines)
    assert any(line.startswith("retrieval + HardNegativeRerank ") for line in lines)
    results = json.loads((tmp_path / "results.json").read_text(encoding="utf-8"))
    assert set(results) == {"without", "with"}
    for values in results.values():
        assert 0.0 <= values["mrr@10"] <= 1.0
    marker = _marker(tmp_path / "reranker")
    assert marker["loss"] == "in-batch" and marker["negatives"]["selector"] == "default"
    assert marker["hyperparameters"]["selection"] == "cross-fit"


def test_haystack_example_runs_on_the_demo_set(demo_data: Path, tmp_path: Path) -> None:
    pytest.importorskip("haystack_integrations.components.rankers.hn")
    stdout = _run("05_haystack_rerank.py", "--data", str(demo_data), "--out", str(tmp_path), *SMALL)
    assert "hn-demo-data: 60 test questions" in stdout
    assert "default negatives x1, in-batch loss, cross-fit selection" in stdout
    lines = stdout.splitlines()
    for label in ("BM25 top-20 alone", "BM25 -> all-MiniLM-L6-v2 (not tuned)", "BM25 -> HardNegativeRanker"):
        assert any(line.startswith(label) for line in lines), label
    results = json.loads((tmp_path / "results.json").read_text(encoding="utf-8"))
    assert set(results) == {"bm25", "start", "tuned"}
    assert (tmp_path / "pipeline.yml").is_file()
    marker = _marker(tmp_path / "reranker")
    assert marker["loss"] == "in-batch" and marker["negatives"]["selector"] == "default"
    assert marker["hyperparameters"]["selection"] == "cross-fit"
