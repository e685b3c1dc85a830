from __future__ import annotations

import json

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
