"""A byte that is not UTF-8 is reported as ``file:line`` by every reader of user files, like any malformed line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hn_plugins.cli import main
from hn_plugins.data import DatasetError, load_beir, load_llamaindex_qa
from hn_plugins.mining.result import MiningResult

LATIN1 = "Mach number at the wing tip: 2.5 \xb0C".encode("latin-1")  # 0xb0 is not UTF-8 on its own


def _beir(root: Path) -> Path:
    root.mkdir()
    corpus = [{"_id": f"d{i}", "title": "", "text": f"document {i}"} for i in range(3)]
    (root / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in corpus), encoding="utf-8")
    (root / "queries.jsonl").write_text(json.dumps({"_id": "q1", "text": "wing"}) + "\n", encoding="utf-8")
    (root / "qrels").mkdir()
    (root / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\n", encoding="utf-8")
    return root


def _append_bytes(path: Path, line: bytes) -> None:
    with path.open("ab") as handle:
        handle.write(line + b"\n")


def test_corpus_line_with_a_latin1_byte_is_reported_with_file_and_line(tmp_path):
    root = _beir(tmp_path / "ds")
    _append_bytes(root / "corpus.jsonl", b'{"_id": "d9", "text": "' + LATIN1 + b'"}')
    with pytest.raises(DatasetError, match=r"corpus\.jsonl:4: byte 0xb0 at column 57 is not UTF-8"):
        load_beir(root, split="train")


def test_queries_and_qrels_report_the_line_too(tmp_path):
    root = _beir(tmp_path / "ds")
    _append_bytes(root / "queries.jsonl", b'{"_id": "q2", "text": "' + LATIN1 + b'"}')
    with pytest.raises(DatasetError, match=r"queries\.jsonl:2: byte 0xb0 .* not UTF-8"):
        load_beir(root, split="train")
    root = _beir(tmp_path / "ds2")
    _append_bytes(root / "qrels" / "train.tsv", b"q1\td\xe9\t1")
    with pytest.raises(DatasetError, match=r"train\.tsv:3: byte 0xe9 at column 5 is not UTF-8"):
        load_beir(root, split="train")


def test_qa_json_and_triplet_files_report_the_line(tmp_path):
    qa = tmp_path / "qa.json"
    qa.write_bytes(b'{"queries": {"q": "what"},\n "corpus": {"d": "' + LATIN1 + b'"},\n "relevant_docs": {}}')
    with pytest.raises(DatasetError, match=r"qa\.json:2: byte 0xb0 .* not UTF-8"):
        load_llamaindex_qa(qa)
    triplets = tmp_path / "t.jsonl"
    triplets.write_bytes(b'{"query_id": "q", "positive_id": "d", "negative_ids": []}\n{"query_id": "\xff"}\n')
    with pytest.raises(DatasetError, match=r"t\.jsonl:2: byte 0xff at column 15 is not UTF-8"):
        MiningResult.from_jsonl(triplets)


def test_hn_mine_prints_the_file_and_line(tmp_path, capsys):
    root = _beir(tmp_path / "ds")
    _append_bytes(root / "corpus.jsonl", b'{"_id": "d9", "text": "' + LATIN1 + b'"}')
    code = main(["mine", str(root), "--out", str(tmp_path / "t.jsonl"), "--selector", "random"])
    assert code == 2
    assert f"{root / 'corpus.jsonl'}:4: byte 0xb0" in capsys.readouterr().err
