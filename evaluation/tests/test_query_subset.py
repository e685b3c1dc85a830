"""subset_report: a committed 3-seed report restricted to all its queries gives back its own rows and p-values;
restricted to fewer, the hand-computed means."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hn_evaluation.metrics import EvaluationError
from hn_evaluation.query_subset import subset_report, write_subset_report

REPORT = Path(__file__).resolve().parents[2] / "benchmarks" / "results" / "benchmark_cacm" / "report.json"


@pytest.fixture(scope="module")
def report():
    return json.loads(REPORT.read_text(encoding="utf-8"))


def test_all_queries_give_back_the_full_report(report):
    queries = list(report["per_query"]["values"]["default"])
    subset = subset_report(report, queries, "test", n_resamples=10000)
    assert subset["queries"] == len(queries)
    assert subset["config"] == report["config"] and subset["config"]["seeds"] == [0, 1, 2]
    for row, values in report["rows"].items():
        assert subset["rows"][row]["mrr@10"]["mean"] == pytest.approx(values["mrr@10"]["mean"], abs=1e-12)
        assert subset["rows"][row]["mrr@10"]["std"] == pytest.approx(values["mrr@10"]["std"], abs=1e-12)
    for anchor, others in report["significance"].items():
        for other, values in others.items():
            assert subset["significance"][anchor][other]["delta"] == pytest.approx(values["delta"], abs=1e-12)
            assert subset["significance"][anchor][other]["p_value"] == pytest.approx(
                values["p_value"], abs=1e-12
            )


def test_a_subset_is_the_mean_over_its_queries_per_seed(report, tmp_path):
    per_seed = report["per_query"]["per_seed"]
    queries = sorted(per_seed["default"][0])[::3]
    subset = write_subset_report(REPORT, queries, "every-third", tmp_path)
    by_seed = [np.mean([seed[q] for q in queries]) for seed in per_seed["default"]]
    assert subset["rows"]["default"]["mrr@10"]["mean"] == pytest.approx(np.mean(by_seed))
    assert subset["rows"]["default"]["mrr@10"]["std"] == pytest.approx(np.std(by_seed, ddof=1))
    assert json.loads((tmp_path / "report.json").read_text())["split"] == "every-third"
    assert set(subset["per_query"]["per_seed"]["none"][0]) == set(queries)


def test_unknown_queries_and_old_reports_are_refused(report):
    with pytest.raises(EvaluationError, match="not test queries"):
        subset_report(report, ["no-such-query"], "x")
    with pytest.raises(EvaluationError, match="per_query"):
        subset_report({"rows": {}}, ["q"], "x")
    with pytest.raises(EvaluationError, match="No queries"):
        subset_report(report, [], "x")
