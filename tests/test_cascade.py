"""Cascade reranking: a real MiniLM bi-encoder orders every candidate, a real MiniLM cross-encoder its top-k."""

from __future__ import annotations

import numpy as np
import pytest

from hn_plugins.cascade import CascadeReranker
from hn_plugins.fusion import ScoreFusion
from hn_plugins.models import resolve_model_path
from hn_plugins.reranker import BiEncoderReranker, CrossEncoderReranker


@pytest.fixture(scope="module")
def cross():
    """A MiniLM cross-encoder (one-logit head, seeded: its order differs from the bi-encoder's)."""
    import torch
    from sentence_transformers import CrossEncoder

    torch.manual_seed(0)
    return CrossEncoderReranker(
        CrossEncoder(resolve_model_path("all-MiniLM-L6-v2"), num_labels=1, max_length=128), batch_size=8
    )


@pytest.fixture(scope="module")
def candidates(cranfield_train) -> tuple[str, list[str]]:
    qid = cranfield_train.judged_query_ids[0]
    return cranfield_train.queries[qid], [
        cranfield_train.document_text(d) for d in list(cranfield_train.corpus)[:30]
    ]


def _order(scores) -> list[int]:
    return [int(i) for i in np.argsort(-np.asarray(scores), kind="stable")]


def test_slow_stage_orders_the_fast_stages_top_k_and_the_rest_keep_the_fast_order(minilm, cross, candidates):
    query, docs = candidates
    fast = BiEncoderReranker(minilm)
    cascade = CascadeReranker(fast, cross, top_k=8)
    scores = cascade.score(query, docs)
    # reference, by hand: the bi-encoder's order, its first 8 re-ordered by the cross-encoder scored on its own
    fast_order = _order(fast.score(query, docs))
    head = fast_order[:8]
    slow = cross.score(query, [docs[i] for i in head])
    expected = [head[j] for j in _order(slow)] + fast_order[8:]
    assert _order(scores) == expected
    np.testing.assert_allclose(scores[head], slow, rtol=1e-5)
    assert expected[:8] != head  # the two models disagree here, so the test tells the stages apart
    assert scores.dtype == np.float32 and np.isfinite(scores).all()


def test_the_slow_stage_scores_only_top_k_documents(minilm, cross, candidates):
    query, docs = candidates
    before = cross.documents_scored
    cascade = CascadeReranker(BiEncoderReranker(minilm), cross, top_k=5)
    cascade.score(query, docs)
    assert cross.documents_scored - before == 5
    assert cascade.documents_scored == len(docs)


def test_top_k_above_the_candidates_is_the_slow_stage_alone(minilm, cross, candidates):
    query, docs = candidates
    cascade = CascadeReranker(BiEncoderReranker(minilm), cross, top_k=1000)
    assert _order(cascade.score(query, docs)) == _order(cross.score(query, docs))


def test_each_stage_fuses_with_the_first_stage_scores_by_its_own_weight(minilm, cross, candidates):
    query, docs = candidates
    fast = BiEncoderReranker(minilm)
    fast.fusion = ScoreFusion(weight=0.5)
    cross.fusion = ScoreFusion(weight=0.7)
    try:
        first_stage = [float(len(d.split())) for d in docs]  # any real-valued first-stage signal
        scores = CascadeReranker(fast, cross, top_k=10).rerank_scores(query, docs, first_stage)
        fast_order = _order(fast.rerank_scores(query, docs, first_stage))
        head = fast_order[:10]
        slow = cross.rerank_scores(query, [docs[i] for i in head], [first_stage[i] for i in head])
        assert _order(scores) == [head[j] for j in _order(slow)] + fast_order[10:]
        # without first-stage scores neither stage fuses
        plain = CascadeReranker(fast, cross, top_k=10).rerank_scores(query, docs)
        assert _order(plain) != _order(scores)
    finally:
        cross.fusion = None


def test_bad_settings_are_named(minilm, cross):
    with pytest.raises(ValueError, match="top_k must be >= 1"):
        CascadeReranker(BiEncoderReranker(minilm), cross, top_k=0)
    with pytest.raises(TypeError, match="fast reranker must have score"):
        CascadeReranker("all-MiniLM-L6-v2", cross)
    assert CascadeReranker(BiEncoderReranker(minilm), cross).score("q", []).shape == (0,)
