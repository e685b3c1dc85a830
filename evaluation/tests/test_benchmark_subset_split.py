"""hn benchmark --subset-split: the same rows re-read on a part of the test queries, checked before any work."""

from __future__ import annotations

import json

import pytest

from hn_evaluation.cli.benchmark_cmd import subset_queries
from hn_plugins.cli import main as hn
from hn_plugins.data import DatasetError, load_beir
from hn_plugins.demo_data import export_demo_dataset


@pytest.fixture(scope="module")
def demo_folder(tmp_path_factory):
    folder = export_demo_dataset(tmp_path_factory.mktemp("demo") / "data")
    test_rows = (folder / "qrels" / "test.tsv").read_text(encoding="utf-8").splitlines()
    header, rows = test_rows[0], test_rows[1:]
    (folder / "qrels" / "test-unseen.tsv").write_text(
        "\n".join([header, *rows[::2]]) + "\n", encoding="utf-8"
    )
    return folder


def test_subset_report_equals_the_rows_on_its_queries(demo_folder, tmp_path):
    out = tmp_path / "bench"
    rc = hn(["benchmark", str(demo_folder), "--strategies", "none", "--seeds", "1", "--out", str(out),
             "--subset-split", "test-unseen"])  # fmt: skip
    assert rc == 0
    full = json.loads((out / "report.json").read_text())
    subset = json.loads((out / "unseen" / "report.json").read_text())
    unseen = load_beir(demo_folder, split="test-unseen")
    assert subset["split"] == "test-unseen" and subset["queries"] == len(unseen.qrels)
    per_query = full["per_query"]["values"]["none"]
    expected = sum(per_query[q] for q in unseen.qrels) / len(unseen.qrels)
    assert subset["rows"]["none"]["mrr@10"]["mean"] == pytest.approx(expected)


def test_a_bad_subset_split_stops_before_any_work(demo_folder, tmp_path, capsys):
    out = tmp_path / "bench"
    rc = hn(["benchmark", str(demo_folder), "--strategies", "none", "--seeds", "1", "--out", str(out),
             "--subset-split", "test-nothing"])  # fmt: skip
    assert rc != 0 and "test-nothing.tsv" in capsys.readouterr().err
    (demo_folder / "qrels" / "test-other.tsv").write_text(
        (demo_folder / "qrels" / "train.tsv").read_text(encoding="utf-8"), encoding="utf-8"
    )
    rc = hn(["benchmark", str(demo_folder), "--strategies", "none", "--seeds", "1", "--out", str(out),
             "--subset-split", "test-other"])  # fmt: skip
    assert rc != 0 and "must be part of the test split" in capsys.readouterr().err
    with pytest.raises(DatasetError, match="must be part of the test split"):
        subset_queries(demo_folder, "test", ["test-other"])
    assert not out.exists()
