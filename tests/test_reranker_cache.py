"""BiEncoderReranker's document-vector cache: same scores as without it, bounded size, fewer encodings."""

from __future__ import annotations

import numpy as np
import pytest

from hn_plugins.reranker import BiEncoderReranker


class _Counting:
    """Wraps the real model and counts the texts it encodes."""

    def __init__(self, model):
        self.model, self.encoded = model, 0

    def encode(self, texts, **kw):
        self.encoded += len(texts)
        return self.model.encode(texts, **kw)


def test_cached_scores_equal_uncached_and_skip_encoding(minilm, cranfield_train):
    docs = [cranfield_train.document_text(d) for d in cranfield_train.doc_ids[:12]]
    query = cranfield_train.queries[cranfield_train.judged_query_ids[0]]
    plain = BiEncoderReranker(_Counting(minilm), cache_size=0)
    cached = BiEncoderReranker(_Counting(minilm), cache_size=100)
    expected = plain.score(query, docs)
    np.testing.assert_allclose(cached.score(query, docs), expected, atol=1e-6)
    assert cached.model.encoded == 1 + len(docs)
    # second query over the same documents (shuffled, with a duplicate): only the query is encoded
    again = cached.score(query, docs[::-1] + docs[:1])
    np.testing.assert_allclose(again, np.concatenate([expected[::-1], expected[:1]]), atol=1e-6)
    assert cached.model.encoded == 2 + len(docs)
    assert plain.score(query, docs).shape == (12,) and plain.model.encoded == 2 + 2 * len(docs)


def test_cache_is_bounded_and_precompute_counts(minilm):
    reranker = BiEncoderReranker(_Counting(minilm), cache_size=3)
    assert reranker.precompute(["a wing", "a flap", "a rudder", "a wing"]) == 3
    assert reranker.precompute(["a flap"]) == 0
    reranker.score("control surfaces", ["an aileron", "a spoiler"])  # evicts the two least recently used
    assert len(reranker._doc_cache) == 3 and "an aileron" in reranker._doc_cache
    assert BiEncoderReranker(_Counting(minilm), cache_size=0).precompute(["x"]) == 0
    with pytest.raises(ValueError, match="cache_size"):
        BiEncoderReranker(minilm, cache_size=-1)
