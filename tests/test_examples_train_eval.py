"""The mining, training and evaluation examples end to end on the demo set a user has after ``hn demo --export``:
01 mines with every selector (its default ``--data`` writes the demo set first), 02 runs the shipped recipe, 03
evaluates the folder 02 wrote.

02 and 03 are marked ``slow``: 02 mines with the real ensemble and fine-tunes all-MiniLM-L6-v2 for one epoch with
cross-fitted selection (5 fold models + the final one), 03 reranks the BM25 top-100 of every test query three or
four times and answers each from the top 3 documents.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hn_plugins.data import load_beir
from hn_plugins.reranker import RERANKER_MARKER

pytest.importorskip("chatterbot_corpus")

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"
QUICK = ["--epochs", "1", "--max-length", "64"]


def _run(script: str, *args: str, cwd: Path = REPO) -> str:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / script), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    assert proc.returncode == 0, f"{script} failed ({proc.returncode}):\n{proc.stderr[-4000:]}"
    return proc.stdout


def _table_rows(stdout: str) -> list[str]:
    """Row names of the Markdown table (header and separator left out)."""
    cells = [line.split("|")[1].strip() for line in stdout.splitlines() if line.startswith("| ")]
    assert cells and cells[0] == "row", stdout
    return cells[1:]


@pytest.fixture(scope="module")
def demo_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo set as ``hn demo --export`` writes it."""
    from hn_plugins.demo_data import export_demo_dataset

    return export_demo_dataset(tmp_path_factory.mktemp("data") / "hn-demo-data")


@pytest.mark.slow
def test_mining_example_writes_the_demo_set_by_default_and_compares_every_selector(tmp_path: Path) -> None:
    stdout = _run("01_mine_hard_negatives.py", cwd=tmp_path)
    train = load_beir(tmp_path / "hn-demo" / "data", split="train")  # written by the example on first use
    rows = {line.split()[0]: line for line in stdout.splitlines()[1:7]}
    assert list(rows) == ["paper", "default", "dense-topk", "positive-aware", "bm25", "random"]
    pairs = len(train.positive_pairs())
    for name in rows:
        records = (tmp_path / "runs" / "mining" / f"{name}.jsonl").read_text(encoding="utf-8").splitlines()
        assert len(records) == pairs, name
        assert f"/{pairs}" in rows[name]
    # the paper drops pairs where nothing qualifies; default's random negative reaches every pair
    assert f"{pairs:>5}/{pairs:<5}" in rows["default"] and f"{pairs:>5}/{pairs:<5}" not in rows["paper"]
    assert "paper diagnostics" in stdout


@pytest.fixture(scope="module")
def trained(demo_data: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("train")
    stdout = _run("02_train_reranker.py", "--data", str(demo_data), "--out", str(out), *QUICK)
    return out / "model", stdout


@pytest.mark.slow
def test_train_example_runs_the_shipped_recipe(trained: tuple[Path, str]) -> None:
    model, stdout = trained
    marker = json.loads((model / RERANKER_MARKER).read_text(encoding="utf-8"))
    assert marker["kind"] == "bi" and marker["loss"] == "in-batch"
    assert marker["negatives"]["selector"] == "default"
    assert marker["hyperparameters"]["epochs"] == 1
    assert marker["hyperparameters"]["max_length"] == 64
    assert (
        marker["hyperparameters"]["selection"] == "cross-fit" and marker["metrics"]["cross_fit"]["folds"] == 5
    )
    assert marker["hyperparameters"]["selection_alpha"] == marker["metrics"]["cross_fit"]["alpha"] == 0.05
    assert marker["hyperparameters"]["fusion_rule"] == marker["fusion"]["validation"]["rule"] == "one-se"
    assert "recipe default: default negatives, in-batch loss" in stdout
    assert "validation curve" in stdout and "pooled over 5 folds" in stdout
    assert "val MRR@10" in stdout
    assert "fusion with the first stage" in stdout
    assert (model.parent / "default.jsonl").is_file()


@pytest.mark.slow
def test_evaluate_example_prints_every_row(demo_data: Path, trained: tuple[Path, str]) -> None:
    model, _ = trained
    marker = json.loads((model / RERANKER_MARKER).read_text(encoding="utf-8"))
    stdout = _run(
        "03_evaluate_reranker.py",
        "--data",
        str(demo_data),
        "--model",
        str(model),
        "--max-length",
        "64",
        "--rag",
        "extractive",
    )
    expected = ["none", "zero-shot", "fine-tuned"]
    if marker.get("fusion"):
        expected.append("fine-tuned+fusion")
    stdout, rag = stdout.split(
        "\nRAG: top 3 documents -> extractive:all-MiniLM-L6-v2, reference: positive-document\n"
    )
    assert _table_rows(stdout) == expected
    assert _table_rows(rag) == expected
    assert "| row | context_recall | context_precision | answer_f1 | answer_rouge_l |" in rag
    assert "fine-tuned           answer_f1 delta" in rag
    assert "| row | mrr@3 | mrr@10 | ndcg@10 | recall@10 | recall@100 |" in stdout
    test = load_beir(demo_data, split="test")
    assert f"BM25 top-100 reranked, {len(test.judged_query_ids)} queries" in stdout
    assert "vs zero-shot (mrr@10, paired permutation test" in stdout
    fine_tuned = next(line for line in stdout.splitlines() if line.startswith("fine-tuned "))
    p_value = float(fine_tuned.rsplit("p = ", 1)[1])
    assert 0.0 < p_value <= 1.0
