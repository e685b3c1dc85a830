"""``hn_plugins.promotion``: the check ``hn retrain`` promotes by, on real medline data and a real packaged model."""

from __future__ import annotations

import json

import pytest

from hn_plugins.bm25 import bm25_run
from hn_plugins.cli import main
from hn_plugins.data import load_beir
from hn_plugins.metrics import mrr_at_k
from hn_plugins.promotion import compare_served, served_mrr10
from hn_plugins.significance import paired_permutation_test

ZERO_SHOT = "zero-shot:all-MiniLM-L6-v2"


@pytest.fixture(scope="module")
def medline_test(shared_data):
    return load_beir(shared_data / "medline", split="test")


def _folder(minilm, path, weight: float):
    minilm.save_pretrained(str(path))
    fusion = {"weight": weight, "normalization": "z", "first_stage": "bm25"}
    (path / "hn_reranker.json").write_text(json.dumps({"kind": "bi", "fusion": fusion}), encoding="utf-8")
    return str(path)


def test_the_check_gives_the_numbers_hn_eval_reports(shared_data, medline_test, minilm, tmp_path):
    """Each model as served: a folder with a fusion weight is fused with BM25, the zero-shot baseline is not."""
    pytest.importorskip("hn_evaluation")
    candidate = _folder(minilm, tmp_path / "candidate", weight=0.3)
    result = compare_served(medline_test, candidate, ZERO_SHOT, top_k=10, max_length=64)
    for spec, row, per_query in (
        (candidate, "reranker+fusion", result.candidate_per_query),
        (ZERO_SHOT, "reranker", result.baseline_per_query),
    ):
        out = tmp_path / "eval.json"
        args = ["eval", str(shared_data / "medline"), "--model", spec, "--top-k", "10", "--max-length", "64"]
        assert main([*args, "--json", str(out)]) == 0
        reported = json.loads(out.read_text())["per_query"][row]
        assert per_query == {q: values["mrr@10"] for q, values in reported.items()}, spec
    qids = sorted(result.candidate_per_query)
    assert len(qids) == 18  # medline test queries (SOURCE.md)
    a = [result.candidate_per_query[q] for q in qids]
    b = [result.baseline_per_query[q] for q in qids]
    assert result.candidate_mrr10 == pytest.approx(sum(a) / len(a), abs=1e-12)
    assert result.baseline_mrr10 == pytest.approx(sum(b) / len(b), abs=1e-12)
    assert result.p_value == paired_permutation_test(a, b)


def test_a_folder_that_weights_bm25_alone_ranks_as_bm25(medline_test, minilm, tmp_path):
    run = bm25_run(medline_test, top_k=10)
    served = served_mrr10(
        medline_test, _folder(minilm, tmp_path / "bm25-only", weight=0.0), run, max_length=64
    )
    expected = {q: mrr_at_k([d for d, _ in ranked], medline_test.qrels[q], 10) for q, ranked in run.items()}
    assert served == expected


def test_a_model_against_itself_is_no_improvement(medline_test):
    result = compare_served(medline_test, ZERO_SHOT, ZERO_SHOT, top_k=5, max_length=64)
    assert result.candidate_per_query == result.baseline_per_query
    assert result.p_value == 1.0
