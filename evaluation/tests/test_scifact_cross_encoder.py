"""experiments/scifact_cross_encoder/cross_encoder.py: training lists, cascades and row choice by hand; one tiny
end-to-end run on python-docs-faq (slow: it trains a cross-encoder)."""

import json

import numpy as np
import pytest

from hn_plugins.data import DatasetError, RetrievalDataset
from hn_plugins.metrics import mrr_at_k


@pytest.fixture
def ce(repo_script):
    return repo_script("experiments.scifact_cross_encoder.cross_encoder")


@pytest.fixture
def toy():
    corpus = {d: ("", f"text {d}") for d in ("a", "b", "c", "d", "e")}
    return RetrievalDataset(corpus, {"q": "query"}, {"q": {"a": 1, "e": 1}})


def test_training_lists_take_the_teachers_best_non_positives_and_lift_the_positive(ce, toy):
    cands = ce.Candidates(
        ids={"q": ["b", "a", "c", "d"]},
        bm25={"q": np.zeros(4)},
        relevant={"q": np.array([False, True, False, False])},
    )
    teacher = {"q": np.array([0.8, 0.5, 0.1, 0.3])}
    rows = ce.training_lists(toy, cands, teacher, list_size=3, positive_lift=1.0)
    # one row per positive; "e" was not retrieved, so its label is the best negative's plus the lift
    assert [r["document_1"] for r in rows] == ["text a", "text e"]
    assert all([r["document_2"], r["document_3"]] == ["text b", "text d"] for r in rows)
    assert [r["label"] for r in rows] == [[1.8, 0.8, 0.3], [1.8, 0.8, 0.3]]
    # a retrieved positive the teacher already puts far ahead keeps its own score
    rows = ce.training_lists(toy, cands, {"q": np.array([0.8, 5.0, 0.1, 0.3])}, 3, 1.0)
    assert rows[0]["label"][0] == 5.0
    # too few negatives for the list: the claim is skipped; a list of one document is refused
    assert ce.training_lists(toy, cands, teacher, list_size=5, positive_lift=1.0) == []
    with pytest.raises(ValueError, match="list_size"):
        ce.training_lists(toy, cands, teacher, list_size=1, positive_lift=1.0)


def test_cascade_reorders_only_the_fast_stages_top_k(ce):
    fast = np.array([0.9, 0.8, 0.7, 0.6, 0.5])
    slow = np.array([0.0, 1.0, 2.0, 9.0, 9.0])
    assert ce.cascade_order(fast, slow, 3).tolist() == [2, 1, 0, 3, 4]
    assert ce.cascade_order(fast, slow, 5).tolist() == [3, 4, 2, 1, 0]
    # the fused cascade at weight 1 is the plain cascade, at weight 0 the fast stage's order
    assert ce.fused_cascade_order(fast, slow, 3, 1.0).tolist() == [2, 1, 0, 3, 4]
    assert ce.fused_cascade_order(fast, slow, 3, 0.0).tolist() == [0, 1, 2, 3, 4]


def test_reciprocal_ranks_match_mrr_at_k(ce):
    cands = ce.Candidates(
        ids={"q1": ["a", "b", "c"], "q2": ["d", "e"]},
        bm25={"q1": np.zeros(3), "q2": np.zeros(2)},
        relevant={"q1": np.array([False, False, True]), "q2": np.array([True, False])},
    )
    orders = ce.by_score({"q1": np.array([0.2, 0.1, 0.5]), "q2": np.array([0.0, 1.0])})
    rr = ce.reciprocal_ranks(cands, orders, ["q1", "q2"])
    assert (
        rr.tolist() == [mrr_at_k(["c", "a", "b"], {"c"}, 10), mrr_at_k(["e", "d"], {"d"}, 10)] == [1.0, 0.5]
    )


def test_teacher_scores_fuse_z_scores(ce):
    cands = ce.Candidates(
        ids={"q": ["a", "b"]},
        bm25={"q": np.array([2.0, 1.0])},
        cosine={"q": np.array([0.1, 0.9])},
        relevant={"q": np.array([False, True])},
    )
    assert ce.teacher_scores(cands, 0.5)["q"].tolist() == [0.0, 0.0]
    assert ce.teacher_scores(cands, 0.0)["q"].tolist() == [1.0, -1.0]


def test_triplet_rows_keep_the_given_claims_and_name_a_foreign_document(ce, toy, tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text(
        json.dumps({"query_id": "q", "positive_id": "a", "negative_ids": ["b", "c"]})
        + "\n"
        + json.dumps({"query_id": "other", "positive_id": "a", "negative_ids": ["zz"]})
        + "\n",
        encoding="utf-8",
    )
    rows = ce.triplet_rows(toy, path, ["q"])
    assert rows == [
        {"query": "query", "positive": "text a", "negative": "text b"},
        {"query": "query", "positive": "text a", "negative": "text c"},
    ]
    with pytest.raises(DatasetError, match=r"t.jsonl:2 names document 'zz'"):
        ce.triplet_rows(toy, path, ["q", "other"])


def test_students_are_chosen_on_validation(ce):
    stages = {
        "distilled": {"history": [{"epoch": 0.0, "mrr@10": 0.1}, {"epoch": 1.0, "mrr@10": 0.5}]},
        "paper": {"history": [{"epoch": 0.0, "mrr@10": 0.9}, {"epoch": 1.0, "mrr@10": 0.4}]},
    }
    # the start of a second stage (epoch 0) is not what it kept
    assert ce.choose_students(stages, "best") == ["distilled"]
    assert ce.choose_students(stages, "all") == ["distilled", "paper"]
    with pytest.raises(ValueError, match="best' or 'all"):
        ce.choose_students(stages, "some")


@pytest.mark.slow
def test_a_tiny_run_writes_every_row(ce, eval_data_dir, tmp_path):
    out = tmp_path / "r.json"
    report = ce.main(
        [
            "--data",
            str(eval_data_dir / "python-docs-faq"),
            "--out",
            str(out),
            "--models-dir",
            str(tmp_path / "models"),
            "--subset-split",
            "test",
            "--max-train-queries",
            "12",
            "--max-test-queries",
            "6",
            "--list-size",
            "3",
            "--epochs",
            "1",
            "--max-length",
            "32",
            "--cascade-k",
            "5",
        ]
    )
    assert json.loads(out.read_text()) == json.loads(json.dumps(report))
    rows = report["rows"]
    for row in (
        "none",
        "zero-shot",
        "zero-shot+fusion",
        "ce-distilled",
        "ce-distilled+bm25",
        "ce-distilled+teacher",
        "cascade@5-distilled",
        "cascade@5+fusion-distilled",
    ):
        assert 0.0 <= rows[row]["mrr@10"] <= 1.0
        assert rows[row]["mrr@10_unseen"] == rows[row]["mrr@10"]  # the subset is the whole test split
    assert report["test_claims"] == 6 and report["train_claims"] + report["validation_claims"] == 12
    assert (tmp_path / "models" / "distilled" / "config.json").is_file()
