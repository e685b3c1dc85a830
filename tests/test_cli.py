from __future__ import annotations

import json
import subprocess
import sys

import pytest

from hn_plugins.cli import main
from hn_plugins.mining.result import MiningResult


def test_hn_mine_writes_triplets_and_diagnostics(shared_data, tmp_path, capsys):
    out = tmp_path / "triplets.jsonl"
    code = main(
        [
            "mine",
            str(shared_data / "medline"),
            "--split",
            "train",
            "--models",
            "static-model",
            "--variance",
            "0.95",
            "--selector",
            "paper",
            "--num-negatives",
            "2",
            "--out",
            str(out),
            "--cache",
            str(tmp_path / "cache"),
            "--seed",
            "3",
        ]
    )
    assert code == 0
    result = MiningResult.from_jsonl(out)
    diagnostics = json.loads(out.with_suffix(".diagnostics.json").read_text())
    assert diagnostics["pairs"] == len(result.records) == 274  # medline train qrels (SOURCE.md)
    assert diagnostics["selection_rate"] == pytest.approx(result.summary()["selection_rate"])
    assert "rejected_eq6" in diagnostics and diagnostics["config"]["seed"] == 3
    printed = capsys.readouterr().out
    assert "pairs with >= 1 negative" in printed and "rejected eq5" in printed


def test_hn_mine_bad_input_is_a_clear_error(tmp_path, capsys):
    code = main(
        ["mine", str(tmp_path / "missing"), "--out", str(tmp_path / "x.jsonl"), "--selector", "random"]
    )
    assert code == 2
    assert "does not exist" in capsys.readouterr().err
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(Exception, match="empty"):
        MiningResult.from_jsonl(empty)


_LOG_PROBE = """
import logging, sys
from hn_plugins.cli import configure_logging
configure_logging(int(sys.argv[1]))
logging.getLogger("bm25s").setLevel(logging.DEBUG)  # what bm25s does when imported
logging.getLogger("bm25s").debug("BM25S-DEBUG")
logging.getLogger("faiss.loader").info("FAISS-INFO")
logging.getLogger("faiss.loader").warning("FAISS-WARNING")
logging.getLogger("hn_plugins.mining.miner").info("OWN-INFO")
logging.getLogger("hn_evaluation.rerank").debug("OWN-DEBUG")
"""


@pytest.mark.parametrize(
    ("verbose", "shown", "hidden"),
    [
        (0, {"OWN-INFO", "FAISS-WARNING"}, {"FAISS-INFO", "BM25S-DEBUG", "OWN-DEBUG"}),
        (1, {"OWN-INFO", "FAISS-WARNING", "FAISS-INFO"}, {"OWN-DEBUG", "BM25S-DEBUG"}),
        (2, {"OWN-INFO", "FAISS-WARNING", "FAISS-INFO", "BM25S-DEBUG", "OWN-DEBUG"}, set()),
    ],
)
def test_default_logging_shows_hn_progress_and_only_warnings_of_other_libraries(verbose, shown, hidden):
    # a fresh interpreter: configure_logging leaves logging alone where handlers exist (as under pytest)
    done = subprocess.run(
        [sys.executable, "-c", _LOG_PROBE, str(verbose)], capture_output=True, text=True, check=True
    )
    printed = {word for word in shown | hidden if word in done.stderr}
    assert printed == shown, done.stderr
