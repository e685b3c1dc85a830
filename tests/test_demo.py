"""``hn demo``: ``--export DIR`` writes the embedded dataset as a BEIR folder (fast tests), and the demo itself runs
the shipped ``default`` recipe beside ``paper``, ``zero-shot`` and ``zero-shot+fusion`` and ends with a verdict
(``slow``: it mines and fine-tunes; about 3 minutes on 2 cores)."""

from __future__ import annotations

import json
import re

import pytest

from hn_plugins.cli import main
from hn_plugins.data import DatasetError, load_beir

pytest.importorskip("hn_evaluation")
pytest.importorskip("chatterbot_corpus")


def _same(loaded, embedded) -> None:
    assert list(loaded.corpus.items()) == list(embedded.corpus.items())
    assert list(loaded.queries.items()) == list(embedded.queries.items())
    assert loaded.qrels == embedded.qrels and list(loaded.qrels) == list(embedded.qrels)
    assert loaded.judged_query_ids == embedded.judged_query_ids


def test_export_round_trips_through_load_beir(tmp_path, capsys):
    from hn_plugins.demo_data import load_demo_dataset

    folder = tmp_path / "demo-data"
    assert main(["demo", "--export", str(folder)]) == 0
    assert str(folder) in capsys.readouterr().out
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()) == [
        "corpus.jsonl",
        "qrels/test.tsv",
        "qrels/train.tsv",
        "queries.jsonl",
    ]
    for split in ("train", "test"):
        _same(load_beir(folder, split=split), load_demo_dataset(split))
    train, test = load_beir(folder, split="train"), load_beir(folder, split="test")
    assert not set(train.judged_query_ids) & set(test.judged_query_ids)  # the splits do not share a question
    assert len(train.corpus) > 500 and len(test.judged_query_ids) > 100


def test_export_refuses_a_folder_that_is_not_empty_unless_forced(tmp_path, capsys):
    folder = tmp_path / "demo-data"
    assert main(["demo", "--export", str(folder)]) == 0
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n", encoding="utf-8")
    (folder / "notes.txt").write_text("mine", encoding="utf-8")
    capsys.readouterr()

    assert main(["demo", "--export", str(folder)]) == 2
    err = capsys.readouterr().err
    assert "is not empty" in err and "--force" in err
    with pytest.raises(DatasetError, match="holds no judgment"):  # the first export's file was not rewritten
        load_beir(folder, split="test")

    assert main(["demo", "--export", str(folder), "--force"]) == 0
    assert len(load_beir(folder, split="test").judged_query_ids) > 100
    # only the dataset's files are written
    assert (folder / "notes.txt").read_text(encoding="utf-8") == "mine"


def test_export_into_a_file_and_force_without_export_are_errors(tmp_path, capsys):
    target = tmp_path / "a-file"
    target.write_text("x", encoding="utf-8")
    assert main(["demo", "--export", str(target), "--force"]) == 2
    assert "is a file" in capsys.readouterr().err
    assert main(["demo", "--force", "--out", str(tmp_path / "out")]) == 2
    assert "--force only applies to --export" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()  # nothing ran


@pytest.mark.parametrize(
    ("option", "value"),
    [("--epochs", "0"), ("--num-negatives", "0"), ("--seed", "-1"), ("--max-length", "0")],
)
def test_demo_refuses_bad_settings_before_running(tmp_path, capsys, option, value):
    with pytest.raises(SystemExit) as stopped:  # the range check runs while parsing, before any work
        main(["demo", "--out", str(tmp_path / "out"), option, value])
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {option}: must be an integer >=" in err
    assert not (tmp_path / "out").exists()  # nothing ran


def test_every_hn_command_reads_the_exported_folder(tmp_path, capsys):
    folder = tmp_path / "demo-data"
    assert main(["demo", "--export", str(folder)]) == 0
    out = tmp_path / "triplets.jsonl"
    assert main(["mine", str(folder), "--selector", "bm25", "--out", str(out)]) == 0
    records = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    train = load_beir(folder, split="train")
    assert len(records) == len(train.positive_pairs())
    assert {r["query_id"] for r in records} == set(train.judged_query_ids)


def test_demo_comes_from_the_entry_point_of_hn_evaluation():
    from importlib.metadata import entry_points

    names = {ep.name: ep.value for ep in entry_points(group="hn_plugins.cli")}
    assert names.get("demo") == "hn_evaluation.cli.demo_cmd:register"
    from hn_plugins.cli import COMMAND_MODULES, build_parser

    assert "demo" not in COMMAND_MODULES
    parser = build_parser()
    args = parser.parse_args(["demo", "--export", "x"])
    assert args.func.__module__ == "hn_evaluation.cli.demo_cmd"


@pytest.mark.slow
def test_hn_demo_runs_default_beside_paper_and_zero_shot_and_ends_with_a_verdict(tmp_path, capsys):
    from hn_plugins import load_reranker
    from hn_plugins.demo_data import load_demo_dataset

    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    for section in (
        "# 1. data",
        "# 2. negatives mined",
        "# 3. reranking",
        "# 4. downstream RAG",
        "# 5. verdict",
    ):
        assert section in printed
    verdict = printed.rstrip("\n").splitlines()[-1]  # the last line
    assert re.match(
        r"verdict: (ship|keep) (default|none|zero-shot|zero-shot\+fusion|paper|paper\+fusion)\b", verdict
    )

    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    rows = report["rows"]
    for row in ("none", "zero-shot", "zero-shot+fusion", "paper", "default"):
        assert row in rows, row
        assert f"\n{row} " in printed  # every row is printed
    test = load_demo_dataset("test")
    assert report["config"]["test_queries"] == len(test.judged_query_ids)
    # the data the demo ran on is left as a BEIR folder, where the examples look for it
    assert f"as a BEIR folder: {out / 'data'}" in printed
    _same(load_beir(out / "data", split="test"), test)
    # the default row is what ships: the combined negatives (every pair kept), in-batch loss, cross-fitted selection
    mining = report["strategies"]["default"]["mining"]
    assert (
        mining["pairs_from_primary"] + mining["pairs_from_fallback"] + mining["pairs_without_hard_negative"]
        == mining["pairs"]
    )
    assert mining["pairs_with_negative"] == mining["pairs"]  # the random negative reaches every pair
    assert report["strategies"]["paper"]["mining"]["pairs_with_negative"] < mining["pairs"]
    training = report["strategies"]["default"]["training"][0]
    assert training["selection"] == "cross-fit" and training["selection_alpha"] == 0.05
    if (
        training["selected"] == "base"
    ):  # no significant cross-fitted gain: default is the untuned model, fused
        assert rows["default"]["mrr@10"]["mean"] == pytest.approx(rows["zero-shot+fusion"]["mrr@10"]["mean"])
    for name, values in report["significance"]["default"].items():
        assert values["delta"] == pytest.approx(
            rows["default"]["mrr@10"]["mean"] - rows[name]["mrr@10"]["mean"]
        )
        assert 0.0 < values["p_value"] <= 1.0
    # the printed comparison line of each row is the report's
    vs_zero = report["significance"]["default"]["zero-shot+fusion"]
    assert f"vs zero-shot+fusion   {vs_zero['delta']:+.4f}  p = {vs_zero['p_value']:.4f}" in printed
    # downstream: a reranker that ranks better puts more answers into the contexts than BM25 alone
    rag = report["rag"]
    assert set(rag["rows"]) == set(rows)
    assert rag["rows"]["zero-shot"]["context_recall"]["mean"] > rag["rows"]["none"]["context_recall"]["mean"]
    # the kept default model loads as a reranker and carries the fusion weight chosen by cross-fitting
    model = load_reranker(out / "models" / "default-seed0")
    assert model.fusion is not None and model.fusion.weight == pytest.approx(training["fusion"]["weight"])
