"""Chunk-level scoring (MaxP): windows of long documents scored by a real reranker, best window kept."""

from __future__ import annotations

import numpy as np
import pytest

from hn_plugins.chunking import ChunkedReranker, split_into_windows
from hn_plugins.fusion import ScoreFusion
from hn_plugins.reranker import BiEncoderReranker


@pytest.mark.parametrize(
    "n_words,window,stride", [(1, 3, 1), (10, 3, 2), (100, 16, 16), (101, 16, 12), (7, 7, 3)]
)
def test_windows_cover_every_word_in_order(n_words, window, stride):
    words = [f"w{i}" for i in range(n_words)]
    windows = split_into_windows(" ".join(words), window, stride)
    assert all(len(w.split()) <= window for w in windows)
    assert windows[0].split()[0] == "w0" and windows[-1].split()[-1] == words[-1]
    seen = [int(t[1:]) for w in windows for t in w.split()]
    assert set(seen) == set(range(n_words))  # nothing skipped
    starts = [int(w.split()[0][1:]) for w in windows]
    assert starts == sorted(starts) and len(set(starts)) == len(starts)  # no window twice


def test_a_short_text_keeps_its_spacing():
    assert split_into_windows("line one\nline two", 10, 5) == ["line one\nline two"]


@pytest.mark.parametrize("window,stride", [(0, 1), (4, 0), (4, 5)])
def test_bad_window_settings_say_what_is_allowed(window, stride):
    with pytest.raises(ValueError, match="stride_words <= window_words"):
        split_into_windows("a b c", window, stride)
    with pytest.raises(ValueError):
        ChunkedReranker(object(), window_words=window, stride_words=stride)


def test_unknown_aggregate_is_refused():
    with pytest.raises(ValueError, match="aggregate must be one of"):
        ChunkedReranker(object(), aggregate="mean")


def _long_documents(cranfield_train):
    """Real Cranfield abstracts: a positive's text placed after unrelated abstracts, and the positive alone."""
    qid, qrels = next((q, r) for q, r in cranfield_train.qrels.items() if any(v > 0 for v in r.values()))
    positive = next(d for d, v in qrels.items() if v > 0)
    others = [d for d in list(cranfield_train.corpus)[:40] if d not in qrels][:6]
    filler = " ".join(cranfield_train.document_text(d) for d in others)
    buried = filler + " " + cranfield_train.document_text(positive)
    return cranfield_train.queries[qid], [buried, cranfield_train.document_text(positive), filler]


def test_maxp_equals_the_best_window_scored_directly(minilm, cranfield_train):
    inner = BiEncoderReranker(minilm)
    chunked = ChunkedReranker(inner, window_words=64, stride_words=48, max_windows=50)
    query, documents = _long_documents(cranfield_train)
    scores = chunked.score(query, documents)
    # reference: every window scored one by one with the same model, maximum by hand
    expected = [max(inner.score(query, [w])[0] for w in split_into_windows(d, 64, 48)) for d in documents]
    np.testing.assert_allclose(scores, expected, rtol=1e-5, atol=1e-6)
    assert len(split_into_windows(documents[0], 64, 48)) > 3
    assert chunked.windows_scored == sum(len(split_into_windows(d, 64, 48)) for d in documents)
    # the buried positive is found again: its document scores at least as high as its best window alone
    truncated = inner.score(query, documents)
    assert scores[0] > truncated[0]


def test_first_window_only_and_max_windows(minilm, cranfield_train):
    inner = BiEncoderReranker(minilm)
    query, documents = _long_documents(cranfield_train)
    first = ChunkedReranker(inner, window_words=64, stride_words=48, aggregate="first").score(
        query, documents
    )
    heads = [split_into_windows(d, 64, 48)[0] for d in documents]
    np.testing.assert_allclose(first, inner.score(query, heads), rtol=1e-5, atol=1e-6)
    capped = ChunkedReranker(inner, window_words=64, stride_words=48, max_windows=2)
    assert capped.windows(documents[0]) == split_into_windows(documents[0], 64, 48)[:2]


def test_fusion_weight_of_the_wrapped_reranker_applies(minilm, cranfield_train):
    inner = BiEncoderReranker(minilm)
    inner.fusion = ScoreFusion(weight=0.5)
    chunked = ChunkedReranker(inner, window_words=64, stride_words=48)
    query, documents = _long_documents(cranfield_train)
    first_stage = [3.0, 1.0, 2.0]
    fused = chunked.rerank_scores(query, documents, first_stage)
    np.testing.assert_allclose(fused, inner.fusion(chunked.score(query, documents), first_stage), rtol=1e-6)
    assert chunked.score(query, []).shape == (0,)
