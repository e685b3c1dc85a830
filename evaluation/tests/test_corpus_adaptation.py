"""experiments/corpus_adaptation/corpus_adaptation.py: per-query MRR of a fused row by hand, and the skip rule."""

import numpy as np
import pytest


@pytest.fixture
def ca(repo_script):
    return repo_script("experiments.corpus_adaptation.corpus_adaptation")


def test_per_query_mrr_follows_the_weighted_ranking(ca):
    rows = [  # signals (bm25, minilm, static) as rows of normalised scores
        (["a", "b", "c"], np.array([[1.0, 0.0, 0.5], [0.0, 1.0, 0.2], [9.0, 9.0, 9.0]]), {"b"}),
        (["d", "e", "f"], np.array([[0.0, 1.0, 0.9], [0.0, 0.1, 1.0], [0.0, 0.0, 0.0]]), {"d"}),
    ]
    # BM25 alone: b is 3rd, d is 3rd
    assert ca._per_query_mrr(rows, {"bm25": 1.0, "minilm": 0.0, "static": 0.0}) == pytest.approx(
        [1 / 3, 1 / 3]
    )
    # MiniLM alone: b first; d last
    assert ca._per_query_mrr(rows, {"bm25": 0.0, "minilm": 1.0, "static": 0.0}) == pytest.approx([1.0, 1 / 3])
    # 0.4 BM25 + 0.6 MiniLM: query 1 scores a 0.4, b 0.6, c 0.32 -> b first; query 2: f 0.96, e 0.46, d 0 -> d 3rd
    mixed = ca._per_query_mrr(rows, {"bm25": 0.4, "minilm": 0.6, "static": 0.0})
    assert mixed == pytest.approx([1.0, 1 / 3])


def test_a_corpus_without_titles_is_skipped_before_any_model_loads(ca, eval_data_dir):
    result = ca.measure(eval_data_dir / "npl", seeds=[0])  # npl has no titles and no sentence punctuation
    assert result["pseudo_queries"] < ca.MIN_PSEUDO_QUERIES
    assert "skipped" in result
    assert "untuned" not in result
