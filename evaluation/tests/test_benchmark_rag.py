"""Downstream RAG rows of the strategy benchmark (``run_benchmark(..., rag=...)``, ``hn benchmark --rag``), checked
against :func:`hn_evaluation.rag.evaluate_rag` run by hand on rankings computed here (real medline data, real
MiniLM, the real extractive generator; no training, so it runs in seconds)."""

from __future__ import annotations

import numpy as np
import pytest

from hn_evaluation.benchmark import first_stage_run, merge_benchmark_reports, run_benchmark
from hn_evaluation.benchmark_rag import SharedAnswers, aggregate_rag
from hn_evaluation.generators import ExtractiveGenerator
from hn_evaluation.metrics import EvaluationError
from hn_evaluation.rag import evaluate_rag
from hn_plugins.data import load_beir

KWARGS = dict(top_k=20, validation_top_k=20, max_test_queries=6, max_length=128, rag_contexts=2)


@pytest.fixture(scope="module")
def extractive():
    return ExtractiveGenerator()


def test_rag_rows_match_evaluate_rag_on_each_rows_own_ranking(eval_data_dir, tmp_path, extractive):
    report = run_benchmark(
        eval_data_dir / "medline", ["none", "zero-shot"], [0, 1], tmp_path / "joint", rag=extractive, **KWARGS
    )
    rag = report["rag"]
    assert report["config"]["rag"] == {"generator": extractive.name, "contexts": 2, "max_queries": None}
    assert list(rag["rows"]) == ["none", "zero-shot", "zero-shot+fusion"] and rag["queries"] == 6
    assert "rag_s" in report["timings_s"] and "rag" not in report["failed"]

    # by hand: BM25's top 20, re-ordered by MiniLM's cosine for zero-shot; each row's top 2 -> the same generator
    from hn_plugins.models import load_sentence_transformer

    test = load_beir(eval_data_dir / "medline", split="test", empty_documents="drop")
    test = test.subset(list(report["per_query"]["values"]["none"]))
    bm25 = first_stage_run(test, "bm25", 20)
    model = load_sentence_transformer("all-MiniLM-L6-v2")
    model.max_seq_length = 128
    zero_shot = {}
    for qid, ranked in bm25.items():
        ids = [d for d, _ in ranked]
        q = model.encode([test.queries[qid]], normalize_embeddings=True)[0]
        d = model.encode([test.document_text(i) for i in ids], normalize_embeddings=True)
        zero_shot[qid] = [(ids[i], float(s)) for i, s in enumerate(d @ q)]
    expected = evaluate_rag(test, {"none": bm25, "zero-shot": zero_shot}, extractive, contexts=2)
    for row in ("none", "zero-shot"):
        for metric, value in expected.rows[row].items():
            assert rag["rows"][row][metric]["mean"] == pytest.approx(value, abs=1e-6), (row, metric)
            assert rag["rows"][row][metric]["std"] == pytest.approx(
                0.0, abs=1e-9
            )  # no seed changes these rows
        for qid, values in expected.per_query[row].items():
            assert rag["per_query"][row][qid] == pytest.approx(values, abs=1e-6)
    assert f"## Downstream RAG: top 2 documents of each row -> `{extractive.name}`, 6 test queries" in (
        tmp_path / "joint" / "report.md"
    ).read_text(encoding="utf-8")

    # per-seed reports merge into the joint one, RAG section included; a report without RAG does not merge
    a = run_benchmark(
        eval_data_dir / "medline", ["none", "zero-shot"], [0], tmp_path / "s0", rag=extractive, **KWARGS
    )
    b = run_benchmark(
        eval_data_dir / "medline", ["none", "zero-shot"], [1], tmp_path / "s1", rag=extractive, **KWARGS
    )
    merged = merge_benchmark_reports([a, b], tmp_path / "merged")
    assert merged["rag"]["rows"] == rag["rows"] and merged["rag"]["per_query"] == rag["per_query"]
    plain = run_benchmark(
        eval_data_dir / "medline",
        ["none", "zero-shot"],
        [2],
        tmp_path / "s2",
        **{k: v for k, v in KWARGS.items() if k != "rag_contexts"},
    )
    assert plain["rag"] is None and "rag" not in plain["config"]
    with pytest.raises(EvaluationError, match="differ in settings"):
        merge_benchmark_reports([a, plain], tmp_path / "bad")


def test_answers_are_shared_between_rows_and_seeds(eval_data_dir, tmp_path):
    calls: list[tuple[str, tuple[str, ...]]] = []

    def first_context(question, contexts):
        calls.append((question, tuple(contexts)))
        return contexts[0]

    report = run_benchmark(
        eval_data_dir / "medline", ["none"], [0, 1, 2], tmp_path, rag=first_context, **KWARGS
    )
    assert len(calls) == len(set(calls)) == 6  # one row, three seeds, six queries: each pair answered once
    assert report["rag"]["rows"]["none"]["context_recall"]["std"] == 0.0


def test_a_failing_generator_keeps_the_retrieval_report(eval_data_dir, tmp_path):
    def broken(question, contexts):
        raise RuntimeError("the LLM server is down")

    report = run_benchmark(eval_data_dir / "medline", ["none"], [0], tmp_path, rag=broken, **KWARGS)
    assert report["failed"]["rag"] == "RuntimeError: the LLM server is down"
    assert report["rag"] is None and report["rows"]["none"]["mrr@10"]["mean"] > 0
    assert (tmp_path / "report.json").is_file()


def test_bad_rag_settings_fail_before_any_work(eval_data_dir, tmp_path):
    with pytest.raises(ValueError, match="rag_contexts must be a positive integer"):
        run_benchmark(
            eval_data_dir / "medline", ["none"], [0], tmp_path / "a", rag="extractive", rag_contexts=0
        )
    with pytest.raises(ValueError, match="rag_max_queries must be >= 1"):
        run_benchmark(
            eval_data_dir / "medline", ["none"], [0], tmp_path / "b", rag="extractive", rag_max_queries=0
        )
    with pytest.raises(ValueError, match="Empty generator spec"):
        run_benchmark(eval_data_dir / "medline", ["none"], [0], tmp_path / "c", rag=" ")
    assert not (tmp_path / "a").exists() and not (tmp_path / "c").exists()


def test_aggregate_rag_by_hand():
    def seed(s, recall_q1, recall_q2):
        per_query = {
            "q1": {"context_recall": recall_q1, "answer_f1": 0.5},
            "q2": {"context_recall": recall_q2, "answer_f1": 0.0},
        }
        rows = {
            m: float(np.mean([v[m] for v in per_query.values()])) for m in ("context_recall", "answer_f1")
        }
        return {"seed": s, "rag": {"rows": rows, "per_query": per_query}}

    strategies = {
        "none": {"per_seed": [seed(0, 0.0, 1.0), seed(1, 0.0, 1.0)]},
        "default": {"per_seed": [seed(0, 1.0, 1.0), seed(1, 0.0, 1.0)]},
    }
    rag = aggregate_rag({"generator": "g", "contexts": 1}, strategies, ["none", "default"], n_resamples=100)
    # sample standard deviation (ddof=1), as the retrieval rows: values 1.0 and 0.5
    assert rag["rows"]["default"]["context_recall"] == {"mean": 0.75, "std": pytest.approx(0.5**0.5 / 2)}
    assert rag["rows"]["none"]["context_recall"] == {"mean": 0.5, "std": 0.0}
    assert rag["per_query"]["default"]["q1"]["context_recall"] == 0.5
    assert rag["significance_default"]["none"]["context_recall"]["delta"] == pytest.approx(0.25)
    assert aggregate_rag(None, strategies, ["none"]) is None
    del strategies["none"]["per_seed"][1]["rag"]
    with pytest.raises(EvaluationError, match=r"Row 'none' has no RAG values for seeds \[1\]"):
        aggregate_rag({"generator": "g", "contexts": 1}, strategies, ["none", "default"])


def test_shared_answers_keeps_the_generators_name(extractive):
    shared = SharedAnswers(extractive)
    assert shared.name == extractive.name == "extractive:all-MiniLM-L6-v2"
    first = shared("What is a list?", ["Lists are arrays. They grow.", "Tuples are fixed."])
    assert shared("What is a list?", ["Lists are arrays. They grow.", "Tuples are fixed."]) is first
    assert len(shared.answers) == 1
