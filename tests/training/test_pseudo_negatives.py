"""Hard negatives for pseudo-queries (``adapt_bi_encoder(negatives="mined")``): real models, real Cranfield text."""

from __future__ import annotations

import numpy as np
import pytest

from hn_plugins.data import RetrievalDataset, join_title_text
from hn_plugins.embedders import EmbedderEnsemble
from hn_plugins.mining.miner import HardNegativeMiner
from hn_plugins.reduction import PCAReducer
from hn_plugins.training.bootstrap import make_pseudo_queries
from hn_plugins.training.model_folder import TrainingError
from hn_plugins.training.pseudo_negatives import mine_pseudo_query_negatives


@pytest.fixture(scope="module")
def slice_(cranfield_train):
    corpus = dict(list(cranfield_train.corpus.items())[:150])
    return corpus, make_pseudo_queries(corpus)


@pytest.fixture(scope="module")
def mined(slice_, minilm, static_model):
    corpus, pairs = slice_
    return mine_pseudo_query_negatives(corpus, pairs, models=[minilm, static_model])


def _reference_space(corpus, pairs, minilm, static_model):
    """An independently fitted miner over the same pseudo-query dataset: its reduced vectors, unit length."""
    dataset = RetrievalDataset(
        corpus=corpus,
        queries={f"q{i}": p.query for i, p in enumerate(pairs)},
        qrels={f"q{i}": {p.doc_id: 1} for i, p in enumerate(pairs)},
    )
    miner = HardNegativeMiner(EmbedderEnsemble([minilm, static_model]), PCAReducer(variance=0.95))
    miner.fit(dataset)
    docs = miner.doc_vectors_.astype(np.float64)
    queries = miner.embed_queries([p.query for p in pairs]).astype(np.float64)
    row_of = {d: i for i, d in enumerate(miner.doc_ids_)}
    return docs, queries, row_of


def test_every_negative_obeys_its_selector_by_brute_force(slice_, mined, minilm, static_model):
    corpus, pairs = slice_
    docs, queries, row_of = _reference_space(corpus, pairs, minilm, static_model)
    sims = queries @ docs.T  # cosine similarities (unit vectors)
    counts = mined.counts()
    assert sum(counts.values()) == len(pairs) == len(mined.doc_ids) == len(mined.texts)
    assert counts.get("paper", 0) > 0 and counts.get("positive-aware", 0) > 0
    for i, (pair, neg, selector) in enumerate(zip(pairs, mined.doc_ids, mined.selectors, strict=True)):
        pos, d = row_of[pair.doc_id], row_of[neg]
        assert neg != pair.doc_id
        d_q_pos, d_q_neg, d_pos_neg = 1 - sims[i, pos], 1 - sims[i, d], 1 - docs[pos] @ docs[d]
        # every document that meets both of the paper's criteria
        qualifies = (1 - sims[i] < d_q_pos) & (1 - sims[i] < 1 - docs @ docs[pos])
        qualifies[pos] = False
        if selector == "paper":
            assert d_q_neg < d_q_pos and d_q_neg < d_pos_neg
            # the primary negative is the qualifying document nearest the query
            assert sims[i, d] == pytest.approx(sims[i][qualifies].max(), abs=1e-5)
        else:
            assert selector == "positive-aware"
            assert not qualifies.any(), "the fallback is used only where the paper's selector finds nothing"
            assert sims[i, d] <= sims[i, pos] - abs(sims[i, pos]) * 0.05 + 1e-5


def test_negatives_are_shown_as_passages_without_their_title(slice_, mined):
    corpus, pairs = slice_
    passage_of = {p.doc_id: p.passage for p in pairs}
    for neg, text in zip(mined.doc_ids, mined.texts, strict=True):
        assert text == passage_of.get(neg, join_title_text(*corpus[neg]))
        title = corpus[neg][0].strip().rstrip(" .").lower()
        if neg in passage_of and title:
            assert not text.lower().startswith(title)


def test_same_inputs_give_the_same_negatives(slice_, mined, minilm, static_model, tmp_path):
    corpus, pairs = slice_
    again = mine_pseudo_query_negatives(corpus, pairs, models=[minilm, static_model], cache_dir=tmp_path)
    assert again.doc_ids == mined.doc_ids and again.selectors == mined.selectors


def test_bad_input_is_refused(slice_, minilm):
    corpus, pairs = slice_
    with pytest.raises(ValueError, match="at least one pseudo-query"):
        mine_pseudo_query_negatives(corpus, [], models=[minilm])
    partial = {d: text for d, text in corpus.items() if d != pairs[0].doc_id}
    with pytest.raises(ValueError, match="missing from the corpus"):
        mine_pseudo_query_negatives(partial, pairs, models=[minilm])


def test_adapt_refuses_an_unknown_negative_kind(tmp_path, cranfield_train):
    from hn_plugins.training.corpus_adaptation import adapt_bi_encoder

    with pytest.raises(TrainingError, match="negatives must be one of"):
        adapt_bi_encoder(cranfield_train, output_dir=tmp_path / "m", negatives="hard")
    assert not (tmp_path / "m").exists()
