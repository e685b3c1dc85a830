"""``hn demo`` end to end on the embedded default (chatterbot-corpus, packaged models): mining, fine-tuning, the
before/after table and the downstream RAG table. Marked ``slow`` (about 2-3 minutes on 2 cores)."""

from __future__ import annotations

import json

import pytest

from hn_plugins.cli import main

pytestmark = pytest.mark.slow
pytest.importorskip("hn_evaluation")
pytest.importorskip("chatterbot_corpus")


def test_hn_demo_prints_both_tables_and_writes_the_answers(tmp_path, capsys):
    from hn_plugins.demo_data import load_demo_dataset

    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "# 3. reranker before / after fine-tuning" in printed
    assert "# 4. downstream RAG" in printed
    report = json.loads((out / "evaluation.json").read_text(encoding="utf-8"))
    rag = report["rag"]
    assert list(rag["rows"]) == list(report["rows"])  # none, zero-shot, fine-tuned (, fine-tuned+fusion)
    test = load_demo_dataset("test")
    assert len(rag["answers"]["none"]) == len(test.judged_query_ids)
    for row, answers in rag["answers"].items():
        for qid, answer in answers.items():
            positives = test.positives(qid)
            hits = len(positives & set(answer["context_ids"])) / len(positives)
            assert rag["per_query"][row][qid]["context_recall"] == pytest.approx(hits), (row, qid)
            texts = " ".join(" ".join(test.document_text(d).split()) for d in answer["context_ids"])
            assert answer["response"] in texts  # one extracted sentence of the row's own contexts
    # a reranker that ranks better puts more answers into the contexts than BM25 alone
    assert rag["rows"]["zero-shot"]["context_recall"] > rag["rows"]["none"]["context_recall"]
