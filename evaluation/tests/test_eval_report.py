"""Reports: seed aggregation, JSON and Markdown files."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from hn_evaluation.metrics import EvaluationError
from hn_evaluation.report import (
    aggregate_seed_rows,
    aggregate_seeds,
    format_markdown_table,
    write_report_json,
    write_report_markdown,
)
from hn_evaluation.rerank import evaluate_reranking


def test_aggregate_seeds_mean_and_sample_std():
    agg = aggregate_seeds([{"mrr@10": 0.5, "ndcg@10": 0.3}, {"mrr@10": 0.7, "ndcg@10": 0.3}])
    assert agg["mrr@10"]["mean"] == pytest.approx(0.6)
    assert agg["mrr@10"]["std"] == pytest.approx(math.sqrt(0.02))  # ddof=1: ((0.1² + 0.1²) / 1) ** 0.5
    assert agg["mrr@10"]["values"] == [0.5, 0.7]
    assert agg["ndcg@10"]["std"] == 0.0
    assert aggregate_seeds([{"mrr@10": 0.4}])["mrr@10"] == {"mean": 0.4, "std": 0.0, "values": [0.4]}
    three = aggregate_seeds([{"m": v} for v in (0.1, 0.2, 0.6)])["m"]
    assert three["std"] == pytest.approx(float(np.std([0.1, 0.2, 0.6], ddof=1)))


def test_aggregate_seed_rows_and_its_errors():
    agg = aggregate_seed_rows(
        [
            {"bm25": {"mrr@10": 0.5}, "paper": {"mrr@10": 0.6}},
            {"bm25": {"mrr@10": 0.5}, "paper": {"mrr@10": 0.8}},
        ]
    )
    assert agg["paper"]["mrr@10"]["mean"] == pytest.approx(0.7)
    with pytest.raises(EvaluationError, match="same metrics"):
        aggregate_seeds([{"mrr@10": 0.5}, {"ndcg@10": 0.5}])
    with pytest.raises(EvaluationError, match="same rows"):
        aggregate_seed_rows([{"bm25": {"m": 1.0}}, {"paper": {"m": 1.0}}])
    with pytest.raises(EvaluationError, match="no seeds"):
        aggregate_seeds([])


def test_json_report_round_trip_with_numpy_values(tmp_path):
    report = {
        "rows": {"none": {"mrr@10": np.float32(0.25), "n": np.int64(3)}},
        "ids": {"b", "a"},
        "vec": np.arange(3),
    }
    path = write_report_json(report, tmp_path / "sub" / "report.json")
    data = json.loads(path.read_text())
    assert data == {"rows": {"none": {"mrr@10": 0.25, "n": 3}}, "ids": ["a", "b"], "vec": [0, 1, 2]}
    assert not list(path.parent.glob(".*.tmp"))  # atomic write leaves no temporary file
    with pytest.raises(EvaluationError, match="finite"):
        write_report_json({"x": float("nan")}, tmp_path / "bad.json")
    with pytest.raises(EvaluationError, match="object"):
        write_report_json({"x": object()}, tmp_path / "bad.json")


def test_markdown_table_with_seed_aggregates(tmp_path):
    agg = aggregate_seed_rows(
        [{"bm25": {"mrr@3": 0.5, "mrr@10": 0.55}}, {"bm25": {"mrr@3": 0.52, "mrr@10": 0.57}}]
    )
    text = write_report_markdown(agg, tmp_path / "seeds.md", title="Cranfield", metrics=["mrr@10", "mrr@3"])
    assert (tmp_path / "seeds.md").read_text() == text
    lines = text.splitlines()
    assert lines[0] == "# Cranfield"
    assert "| row | mrr@10 | mrr@3 |" in lines
    assert "| bm25 | 0.560 ± 0.014 | 0.510 ± 0.014 |" in lines
    assert format_markdown_table({"a": {"m": 1 / 3}}, digits=2).splitlines()[-1] == "| a | 0.33 |"
    with pytest.raises(EvaluationError, match="no rows"):
        format_markdown_table({})


def test_markdown_of_a_rerank_report(tmp_path, cranfield_test, cranfield_bm25_run):
    overlap = lambda q, docs: [float(len(set(q.lower().split()) & set(d.lower().split()))) for d in docs]  # noqa: E731
    report = evaluate_reranking(
        cranfield_test, cranfield_bm25_run, {"none": None, "overlap": overlap}, top_k=20
    )
    data = report.to_dict()
    data["significance"] = report.compare()
    text = write_report_markdown(data, tmp_path / "rerank.md")
    assert text.startswith("# Evaluation: cranfield:test")
    assert "| row | mrr@3 | mrr@10 | ndcg@10 | recall@10 | recall@100 |" in text
    assert f"| none | {report.rows['none']['mrr@3']:.3f} |" in text
    assert "## Short vs long positive documents" in text and "**short** (" in text and "**long** (" in text
    assert "| overlap | 2700 |" in text  # 135 queries x 20 candidates
    assert "## Significance (paired permutation test)" in text
    json_path = write_report_json(report, tmp_path / "rerank.json")
    assert json.loads(json_path.read_text())["rows"] == json.loads(json.dumps(report.rows))
