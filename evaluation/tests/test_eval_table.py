"""``hn eval``'s plain-text table keeps a space between columns whatever the metric names' length."""

from __future__ import annotations

from hn_evaluation.model_evaluation import format_rows


def test_long_metric_names_do_not_run_together():
    report = {
        "metrics": ["mrr@10", "recall@10", "recall@5000", "ndcg@10_judged_only"],
        "rows": {"bm25": dict.fromkeys(["mrr@10", "recall@10", "recall@5000", "ndcg@10_judged_only"], 0.5)},
        "speed": {},
        "rows_order": ["bm25"],
    }
    header, row = format_rows(report).splitlines()
    assert header.split() == ["row", "mrr@10", "recall@10", "recall@5000", "ndcg@10_judged_only"]
    assert row.split() == ["bm25", "0.5000", "0.5000", "0.5000", "0.5000"]
    for name in report["metrics"]:  # each value ends where its column name ends
        assert header.index(name) + len(name) == row.index("0.5000", header.index(name) - 6) + len("0.5000")
