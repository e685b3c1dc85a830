"""The training and evaluation examples end to end on Medline: 02 mines and fine-tunes, 03 evaluates the folder.

Marked ``slow``: example 02 mines with the real ensemble and fine-tunes all-MiniLM-L6-v2 for one epoch with
cross-fitted selection (5 fold models + the final one), example 03
reranks the BM25 top-100 of every Medline test query three or four times (several minutes on 2 cores).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hn_plugins.reranker import RERANKER_MARKER

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"
QUICK = ["--epochs", "1", "--max-length", "64"]


def _run(script: str, *args: str) -> str:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
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


def _table_rows(stdout: str) -> list[str]:
    """Row names of the Markdown table (header and separator left out)."""
    cells = [line.split("|")[1].strip() for line in stdout.splitlines() if line.startswith("| ")]
    assert cells and cells[0] == "row", stdout
    return cells[1:]


@pytest.fixture(scope="module")
def trained(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    data = shared_data / "medline"
    if not (data / "qrels" / "train.tsv").is_file():
        pytest.skip("../shared/data/medline is not present")
    out = tmp_path_factory.mktemp("train")
    stdout = _run(
        "02_train_reranker.py", "--data", str(data), "--out", str(out), "--selection", "cross-fit", *QUICK
    )
    return data, out / "model", stdout


def test_train_example_writes_a_model_folder_and_prints_the_curve(trained: tuple[Path, Path, str]) -> None:
    _, model, stdout = trained
    marker = json.loads((model / RERANKER_MARKER).read_text(encoding="utf-8"))
    assert marker["kind"] == "bi"
    assert marker["hyperparameters"]["epochs"] == 1
    assert marker["hyperparameters"]["max_length"] == 64
    assert (
        marker["hyperparameters"]["selection"] == "cross-fit" and marker["metrics"]["cross_fit"]["folds"] == 5
    )
    assert "validation curve" in stdout and "pooled over 5 folds" in stdout
    assert "val MRR@10" in stdout
    assert "fusion with the first stage" in stdout
    assert (model.parent / "paper.jsonl").is_file()


def test_evaluate_example_prints_every_row(trained: tuple[Path, Path, str]) -> None:
    data, model, _ = trained
    marker = json.loads((model / RERANKER_MARKER).read_text(encoding="utf-8"))
    stdout = _run(
        "03_evaluate_reranker.py",
        "--data",
        str(data),
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
    assert "vs zero-shot (mrr@10, paired permutation test" in stdout
    fine_tuned = next(line for line in stdout.splitlines() if line.startswith("fine-tuned "))
    p_value = float(fine_tuned.rsplit("p = ", 1)[1])
    assert 0.0 < p_value <= 1.0
