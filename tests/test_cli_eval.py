"""``hn eval`` and ``hn benchmark`` end to end on real data and real packaged models (no mocks)."""

from __future__ import annotations

import json

import pytest

from hn_plugins.cli import main

pytest.importorskip("hn_evaluation")

METRICS = ["mrr@3", "mrr@10", "ndcg@10", "recall@10"]


def test_hn_eval_zero_shot_matches_ranx(shared_data, tmp_path, capsys):
    ranx = pytest.importorskip("ranx")
    out = tmp_path / "eval.json"
    code = main(
        [
            "eval",
            str(shared_data / "medline"),
            "--split",
            "test",
            "--model",
            "zero-shot:all-MiniLM-L6-v2",
            "--first-stage",
            "bm25",
            "--top-k",
            "10",
            "--max-length",
            "64",
            "--json",
            str(out),
        ]
    )
    assert code == 0
    report = json.loads(out.read_text())
    assert list(report["rows"]) == ["bm25", "reranker"]
    for row in report["rows"].values():
        assert set(METRICS) <= set(row)
    assert len(report["per_query"]["reranker"]) == 18  # medline test queries (SOURCE.md)
    assert set(report["short_long"]["groups"]) == {"short", "long"}
    assert report["speed"]["reranker"]["docs_per_second"] > 0
    assert report["speed"]["bm25"]["docs_per_second"] is None
    # independent recomputation with ranx from the per-query runs in the JSON
    from hn_plugins.data import load_beir

    test = load_beir(shared_data / "medline", split="test", empty_documents="drop")
    for row, run in report["runs"].items():
        qrels = ranx.Qrels({q: dict(test.qrels[q]) for q in run})
        ranx_run = ranx.Run({q: {d: s for d, s in ranked} for q, ranked in run.items()})
        expected = ranx.evaluate(qrels, ranx_run, METRICS)
        for metric in METRICS:
            assert report["rows"][row][metric] == pytest.approx(expected[metric], abs=1e-9), (row, metric)
    printed = capsys.readouterr().out
    assert "mrr@10" in printed and "reranker" in printed


def test_hn_eval_adds_the_fused_row_of_a_trained_folder(shared_data, minilm, tmp_path):
    """A folder whose fusion weight is 0: its fused row ranks as BM25 does; the reranker row is unchanged."""
    folder = tmp_path / "model"
    minilm.save_pretrained(str(folder))
    (folder / "hn_reranker.json").write_text(
        json.dumps({"kind": "bi", "fusion": {"weight": 0.0, "normalization": "z"}}), encoding="utf-8"
    )
    out = tmp_path / "eval.json"
    args = ["eval", str(shared_data / "medline"), "--model", str(folder), "--top-k", "10", "--json", str(out)]
    assert main([*args, "--max-length", "64"]) == 0
    report = json.loads(out.read_text())
    assert list(report["rows"]) == ["bm25", "reranker", "reranker+fusion"]
    assert report["fusion"]["weight"] == 0.0
    for qid, ranked in report["runs"]["reranker+fusion"].items():
        assert [d for d, _ in ranked] == [d for d, _ in report["runs"]["bm25"][qid]], qid
    assert report["rows"]["reranker+fusion"] == report["rows"]["bm25"]


def test_hn_eval_refuses_a_split_without_judgments(tmp_path, capsys):
    data = tmp_path / "beir"
    (data / "qrels").mkdir(parents=True)
    (data / "corpus.jsonl").write_text(
        '{"_id": "d1", "title": "", "text": "a cloud network"}\n{"_id": "d2", "title": "", "text": "pasta"}\n'
    )
    (data / "queries.jsonl").write_text('{"_id": "q1", "text": "network"}\n')
    (data / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t0\n")
    code = main(["eval", str(data), "--split", "test", "--model", "zero-shot:all-MiniLM-L6-v2"])
    assert code == 2
    assert "judgment" in capsys.readouterr().err.lower()
    code = main(["eval", str(data), "--split", "dev", "--model", "zero-shot:all-MiniLM-L6-v2"])
    assert code == 2


def test_hn_eval_missing_model_is_a_clear_error(shared_data, tmp_path, capsys):
    code = main(["eval", str(shared_data / "medline"), "--model", str(tmp_path / "nope"), "--top-k", "5"])
    assert code == 2
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.slow
def test_hn_benchmark_smoke(shared_data, tmp_path, capsys):
    out = tmp_path / "bench"
    code = main(
        [
            "benchmark",
            str(shared_data / "medline"),
            "--strategies",
            "none,zero-shot,random,paper",
            "--seeds",
            "1",
            "--epochs",
            "1",
            "--max-test-queries",
            "10",
            "--out",
            str(out),
            "--models",
            "static-model",
            "--top-k",
            "20",
            "--validation-top-k",
            "10",
            "--max-length",
            "64",
        ]
    )
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    rows = ["none", "zero-shot", "random", "paper"]
    controls = {f"{r}+fusion" for r in rows[1:]}  # the fusion control table: every reranker row fused
    assert list(report["rows"])[:4] == rows and set(list(report["rows"])[4:]) == controls
    assert set(report["config"]["control_rows"]) == controls
    for row in report["rows"].values():
        for metric in ("mrr@3", "mrr@10", "ndcg@10", "recall@10", "recall@20"):
            assert set(row[metric]) == {"mean", "std"}
    strategies = report["strategies"]
    assert len(strategies["paper"]["per_seed"]) == 1
    assert 0.0 <= strategies["paper"]["mining"]["selection_rate"] <= 1.0
    assert strategies["random"]["mining"]["selection_rate"] == 1.0
    assert strategies["paper"]["training"][0]["train_rows"] > 0
    assert set(report["significance"]["paper"]) == ({"none", "zero-shot", "random"} | controls)
    assert len(report["per_query"]["values"]["none"]) == 10
    md = (out / "report.md").read_text()
    assert "| paper |" in md and "selection rate" in md
    for png in ("mrr_at_10.png", "mrr_at_3.png", "pca_neighbourhood.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    leftover = [p.name for p in (out / "models").glob("*") if not p.name.startswith(".")]
    assert leftover == []  # models are deleted after evaluation unless --keep-models
    assert "| strategy |" in capsys.readouterr().out


def test_hn_eval_window_words_scores_the_best_window(shared_data, tmp_path):
    """--window-words: each candidate's score is its best window's, checked against the model on each window."""
    out = tmp_path / "eval.json"
    args = ["eval", str(shared_data / "medline"), "--model", "zero-shot:all-MiniLM-L6-v2", "--top-k", "3"]
    assert main([*args, "--max-length", "64", "--window-words", "40", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["windows"] == {"window_words": 40, "stride_words": 30, "aggregate": "max"}
    from hn_plugins.chunking import split_into_windows
    from hn_plugins.data import load_beir
    from hn_plugins.models import load_sentence_transformer

    test = load_beir(shared_data / "medline", split="test", empty_documents="drop")
    model = load_sentence_transformer("all-MiniLM-L6-v2")
    model.max_seq_length = 64
    qid, ranked = next(iter(report["runs"]["reranker"].items()))
    query = model.encode(test.queries[qid], normalize_embeddings=True)
    for doc_id, score in ranked:
        windows = split_into_windows(test.document_text(doc_id), 40, 30)
        assert len(windows) > 1  # medline abstracts are longer than 40 words
        best = float((model.encode(windows, normalize_embeddings=True) @ query).max())
        assert score == pytest.approx(best, abs=1e-5)


def test_hn_eval_stride_without_window_is_refused_before_loading(tmp_path, capsys):
    code = main(["eval", str(tmp_path / "missing"), "--model", "zero-shot:x", "--stride-words", "10"])
    assert code != 0
    assert "--stride-words needs --window-words" in capsys.readouterr().err


@pytest.mark.parametrize("flag", ["--model", "--prerank-model"])
def test_hn_eval_refuses_an_empty_zero_shot_name_before_loading(tmp_path, capsys, flag):
    args = ["eval", str(tmp_path / "missing"), "--model", "zero-shot:all-MiniLM-L6-v2", flag, "zero-shot: "]
    code = main(args)
    assert code != 0
    err = capsys.readouterr().err
    assert "zero-shot: takes a sentence-transformers model name" in err
    assert "does not exist" not in err  # refused before the data folder was read


def test_hn_eval_prerank_model_evaluates_the_cascade(shared_data, tmp_path):
    """zero-shot MiniLM orders BM25's top-10, a cross-encoder folder re-orders its best 3 (fusion weight 0: by
    BM25); checked query by query against the rows of each stage alone."""
    import torch
    from sentence_transformers import CrossEncoder

    from hn_plugins.models import resolve_model_path

    torch.manual_seed(0)
    folder = tmp_path / "cross"
    CrossEncoder(resolve_model_path("all-MiniLM-L6-v2"), num_labels=1, max_length=64).save_pretrained(
        str(folder)
    )
    (folder / "hn_reranker.json").write_text(
        json.dumps({"kind": "cross", "fusion": {"weight": 0.0, "normalization": "z"}}), encoding="utf-8"
    )
    out = tmp_path / "eval.json"
    fast = "zero-shot:all-MiniLM-L6-v2"
    args = [
        "eval",
        str(shared_data / "medline"),
        "--model",
        str(folder),
        "--top-k",
        "10",
        "--max-length",
        "64",
    ]
    assert main([*args, "--prerank-model", fast, "--prerank-top-k", "3", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    alone = f"{folder} alone"
    assert list(report["rows"]) == ["bm25", "reranker", "reranker+fusion", f"{fast} alone", alone]
    assert report["prerank"] == {"model": fast, "top_k": 3, "fusion": None}
    runs = report["runs"]
    differs = 0
    for qid, ranked in runs["reranker"].items():
        fast_order = [d for d, _ in runs[f"{fast} alone"][qid]]
        head = set(fast_order[:3])
        by_cross = [d for d, _ in runs[alone][qid] if d in head]
        by_bm25 = [d for d, _ in runs["bm25"][qid] if d in head]
        assert [d for d, _ in ranked] == by_cross + fast_order[3:], qid
        assert [d for d, _ in runs["reranker+fusion"][qid]] == by_bm25 + fast_order[3:], qid
        differs += by_cross != by_bm25
    assert differs  # the two head orders differ somewhere, so the rows tell the fusion apart
    with pytest.raises(SystemExit):
        main([*args, "--prerank-model", fast, "--prerank-top-k", "0"])


def test_hn_eval_rag_answers_from_each_rows_contexts(shared_data, tmp_path, capsys):
    """``--rag extractive``: every row's top contexts answered by the extractive generator, scored by id and
    against each query's positive; the JSON's contexts are the rows' own rankings."""
    out = tmp_path / "eval.json"
    args = [
        "eval",
        str(shared_data / "python-docs-faq"),
        "--model",
        "zero-shot:all-MiniLM-L6-v2",
        "--top-k",
        "10",
    ]
    rag = ["--rag", "extractive", "--rag-contexts", "2", "--rag-max-queries", "6"]
    assert main([*args, "--max-length", "64", *rag, "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    rag_report = report["rag"]
    assert rag_report["generator"] == "extractive:all-MiniLM-L6-v2"
    assert rag_report["reference"] == "positive-document"
    assert list(rag_report["rows"]) == ["bm25", "reranker"]
    from hn_plugins.data import load_beir

    test = load_beir(shared_data / "python-docs-faq", split="test")
    for row, answers in rag_report["answers"].items():
        assert len(answers) == 6
        for qid, answer in answers.items():
            assert answer["context_ids"] == [d for d, _ in report["runs"][row][qid][:2]]
            hits = len(set(answer["context_ids"]) & test.positives(qid)) / len(test.positives(qid))
            assert rag_report["per_query"][row][qid]["context_recall"] == pytest.approx(hits)
    assert set(rag_report["significance"]) == {"reranker"}
    printed = capsys.readouterr().out
    assert "RAG: top 2 contexts -> extractive:all-MiniLM-L6-v2, 6 queries" in printed
    assert "answer_f1" in printed


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--rag-contexts", "0"], "--rag-contexts: must be an integer >= 1"),
        (["--rag-max-queries", "0"], "--rag-max-queries"),
    ],
)
def test_hn_eval_refuses_bad_rag_settings_before_loading(tmp_path, capsys, flags, message):
    with pytest.raises(SystemExit):
        main(["eval", str(tmp_path / "missing"), "--model", "zero-shot:x", "--rag", "extractive", *flags])
    err = capsys.readouterr().err
    assert message in err
    assert "does not exist" not in err


def test_hn_benchmark_rag_rows(shared_data, tmp_path, capsys):
    """hn benchmark --rag: every row's top contexts answered and scored; a bad setting fails before any work."""
    out = tmp_path / "bench"
    args = ["benchmark", str(shared_data / "medline"), "--strategies", "none,zero-shot", "--seeds", "1"]
    args += ["--max-test-queries", "5", "--top-k", "10", "--validation-top-k", "10", "--max-length", "64"]
    code = main([*args, "--out", str(out), "--rag", "extractive", "--rag-contexts", "2"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "RAG: top 2 contexts -> extractive:all-MiniLM-L6-v2, 5 queries" in printed
    report = json.loads((out / "report.json").read_text())
    assert set(report["rag"]["rows"]) == {"none", "zero-shot", "zero-shot+fusion"}
    for row in report["rag"]["rows"].values():
        assert 0.0 <= row["context_recall"]["mean"] <= 1.0 and 0.0 <= row["answer_f1"]["mean"] <= 1.0
    with pytest.raises(SystemExit) as stopped:  # the range check runs while parsing, before any work
        main([*args, "--out", str(tmp_path / "bad"), "--rag", "extractive", "--rag-contexts", "0"])
    assert stopped.value.code == 2
    assert "--rag-contexts: must be an integer >= 1" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()
