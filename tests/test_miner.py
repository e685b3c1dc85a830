"""The miner against a brute-force numpy computation of the paper's two criteria, on real data."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hn_plugins.data import DatasetError, RetrievalDataset, load_beir
from hn_plugins.embedders import EmbedderEnsemble, l2_normalize
from hn_plugins.mining.miner import HardNegativeMiner
from hn_plugins.mining.result import MiningResult
from hn_plugins.reduction import PCAReducer


@pytest.fixture(scope="module")
def fitted(minilm, static_model, cranfield_train, tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    ensemble = EmbedderEnsemble([minilm, static_model], cache_dir=cache)
    miner = HardNegativeMiner(ensemble, PCAReducer(variance=0.95), selector="paper", num_negatives=3)
    miner.fit(cranfield_train)
    return miner, cache


def brute_force_paper(doc_vectors, query_vectors, dataset, doc_ids, num_negatives):
    """Eq. 5 and Eq. 6 over the whole corpus, ordered by d(Q, D) then row: the reference."""
    row_of = {d: i for i, d in enumerate(doc_ids)}
    docs = doc_vectors.astype(np.float64)
    expected = {}
    for qid in dataset.judged_query_ids:
        q = query_vectors[qid].astype(np.float64)
        d_qd = 1.0 - docs @ q
        blocked = np.array([d in dataset.never_negative(qid) for d in doc_ids])
        for pid in dataset.positives(qid):
            p = docs[row_of[pid]]
            d_qp = 1.0 - float(q @ p)
            d_pd = 1.0 - docs @ p
            ok = (d_qd < d_qp) & (d_qd < d_pd) & ~blocked
            rows = np.flatnonzero(ok)
            rows = rows[np.lexsort((rows, d_qd[rows]))][:num_negatives]
            expected[(qid, pid)] = (
                [doc_ids[r] for r in rows],
                d_qp,
                d_qd[rows].tolist(),
                d_pd[rows].tolist(),
            )
    return expected


def test_paper_selector_equals_brute_force_on_cranfield(fitted, cranfield_train):
    miner, _ = fitted
    result = miner.mine(cranfield_train)
    qids = cranfield_train.judged_query_ids
    # the space, rebuilt independently: ensemble -> PCA (kept components) -> L2
    raw_docs = miner.ensemble.encode_documents(
        miner.doc_ids_, [cranfield_train.document_text(d) for d in miner.doc_ids_]
    )
    docs = l2_normalize((raw_docs - miner.reducer.mean_) @ miner.reducer.components_.T)
    raw_queries = miner.ensemble.encode_queries([cranfield_train.queries[q] for q in qids])
    projected = l2_normalize((raw_queries - miner.reducer.mean_) @ miner.reducer.components_.T)
    queries = dict(zip(qids, projected, strict=True))
    expected = brute_force_paper(docs, queries, cranfield_train, miner.doc_ids_, 3)
    got = {(r.query_id, r.positive_id): r for r in result.records}
    assert set(got) == set(expected)
    for key, (negs, d_qp, d_qn, d_pn) in expected.items():
        rec = got[key]
        assert rec.negative_ids == negs, key
        assert rec.d_q_pos == pytest.approx(d_qp, abs=1e-5)
        np.testing.assert_allclose(rec.d_q_neg, d_qn, atol=1e-5)
        np.testing.assert_allclose(rec.d_pos_neg, d_pn, atol=1e-5)
    rate = result.summary()["selection_rate"]
    assert 0.3 < rate < 1.0  # some pairs qualify, some do not (reported, not hidden)
    # never a positive or an excluded (source) document of the same query
    for rec in result.records:
        assert not set(rec.negative_ids) & cranfield_train.never_negative(rec.query_id)


def test_shallow_search_deepens_to_the_exact_answer(fitted, cranfield_train):
    miner, _ = fitted
    shallow = HardNegativeMiner(
        miner.ensemble, PCAReducer(variance=0.95), selector="paper", num_negatives=5, candidates=8
    ).fit(cranfield_train)
    deep = HardNegativeMiner(
        miner.ensemble, PCAReducer(variance=0.95), selector="paper", num_negatives=5, candidates=2000
    ).fit(cranfield_train)
    a, b = shallow.mine(cranfield_train), deep.mine(cranfield_train)
    assert [r.negative_ids for r in a.records] == [r.negative_ids for r in b.records]
    assert a.summary()["deepened_pairs"] > 0


def test_same_seed_same_triplets_and_jsonl_round_trip(fitted, cranfield_train, tmp_path):
    miner, _ = fitted
    runs = []
    for seed in (7, 7, 8):
        m = HardNegativeMiner(
            miner.ensemble,
            PCAReducer(variance=0.95),
            selector="paper",
            num_negatives=2,
            sampling_strategy="random",
            seed=seed,
        ).fit(cranfield_train)
        runs.append(m.mine(cranfield_train))
    paths = [r.to_jsonl(tmp_path / f"run{i}.jsonl") for i, r in enumerate(runs)]
    assert paths[0].read_bytes() == paths[1].read_bytes()
    assert paths[0].read_bytes() != paths[2].read_bytes()
    loaded = MiningResult.from_jsonl(paths[0])
    assert [r.negative_ids for r in loaded.records] == [r.negative_ids for r in runs[0].records]
    first = json.loads(paths[0].read_text().splitlines()[0])
    assert set(first) == {
        "query_id",
        "positive_id",
        "negative_ids",
        "d_q_pos",
        "d_q_neg",
        "d_pos_neg",
        "selector",
    }


def test_output_formats(fitted, cranfield_train):
    miner, _ = fitted
    result = miner.mine(cranfield_train)
    triplets = result.to_rows(cranfield_train, "triplet")
    assert len(triplets) == result.summary()["negatives"]
    assert set(triplets[0]) == {"anchor", "positive", "negative"}
    tuples = result.to_rows(cranfield_train, "n-tuple")
    assert all(set(r) == {"anchor", "positive", "negative_1", "negative_2", "negative_3"} for r in tuples)
    pairs = result.to_rows(cranfield_train, "labeled-pair")
    assert sum(r["label"] for r in pairs) == result.summary()["pairs_with_negative"]


@pytest.mark.parametrize("selector", ["random", "bm25", "dense-topk", "positive-aware"])
def test_baselines_never_return_positives_and_are_deterministic(fitted, cranfield_train, selector):
    miner, _ = fitted
    outs = [
        HardNegativeMiner(miner.ensemble, None, selector=selector, num_negatives=4, seed=1)
        .fit(cranfield_train)
        .mine(cranfield_train)
        for _ in range(2)
    ]
    assert [r.negative_ids for r in outs[0].records] == [r.negative_ids for r in outs[1].records]
    for rec in outs[0].records:
        assert not set(rec.negative_ids) & cranfield_train.never_negative(rec.query_id)
        assert len(set(rec.negative_ids)) == len(rec.negative_ids)
    assert outs[0].summary()["selection_rate"] > 0.9


def test_positive_aware_matches_sentence_transformers_relative_margin(static_model, shared_data):
    """NV-Retriever TopK-PercPos (ours) equals sentence-transformers relative_margin=0.05 on one model."""
    ds = load_beir(shared_data / "python-docs-faq", split="train")
    depth = 100 + max(len(ds.positives(q)) for q in ds.judged_query_ids)  # sentence-transformers' window
    ours = (
        HardNegativeMiner(
            EmbedderEnsemble([static_model]),
            None,
            selector="positive-aware",
            num_negatives=3,
            candidates=depth,
            max_candidates=depth,
            relative_margin=0.05,
        )
        .fit(ds)
        .mine(ds)
    )
    reference = (
        HardNegativeMiner(
            EmbedderEnsemble([static_model]),
            None,
            selector="st",
            num_negatives=3,
            candidates=100,
            relative_margin=0.05,
        )
        .fit(ds)
        .mine(ds)
    )
    a = {(r.query_id, r.positive_id): r.negative_ids for r in ours.records}
    b = {(r.query_id, r.positive_id): r.negative_ids for r in reference.records}
    assert set(a) == set(b)
    assert sum(bool(v) for v in b.values()) >= 10
    same = sum(a[k] == v for k, v in b.items())
    assert same == len(b), f"{len(b) - same} of {len(b)} pairs differ"


def test_st_selector_runs_when_another_engine_embeds_the_member(shared_data, tmp_path):
    """``st`` needs sentence-transformers' model; a member named under the default engine (numpy for the static
    model) gets it loaded by name, and mines exactly what the PyTorch member mines."""
    ds = load_beir(shared_data / "python-docs-faq", split="train")

    def mine(engine: str) -> MiningResult:
        ensemble = EmbedderEnsemble(["static-model"], cache_dir=tmp_path / engine, engine=engine)
        return (
            HardNegativeMiner(ensemble, None, selector="st", num_negatives=2, candidates=50).fit(ds).mine(ds)
        )

    default_engine, torch_engine = mine("auto"), mine("torch")
    assert type(EmbedderEnsemble(["static-model"]).members[0].encoder).__name__ == "StaticEncoder"
    got = {(r.query_id, r.positive_id): r.negative_ids for r in default_engine.records}
    assert got == {(r.query_id, r.positive_id): r.negative_ids for r in torch_engine.records}
    assert sum(len(v) == 2 for v in got.values()) >= 10


def test_bad_input(fitted, cranfield_train):
    miner, _ = fitted
    with pytest.raises(ValueError, match="Unknown selector"):
        HardNegativeMiner(miner.ensemble, selector="nope")
    with pytest.raises(ValueError, match="in-batch"):
        HardNegativeMiner(miner.ensemble, selector="in-batch")
    with pytest.raises(RuntimeError, match="before fit"):
        HardNegativeMiner(miner.ensemble).mine(cranfield_train)
    too_many = HardNegativeMiner(miner.ensemble, None, selector="paper", num_negatives=10, max_candidates=5)
    too_many.fit(cranfield_train)
    with pytest.raises(DatasetError, match="exceeds the candidate depth"):
        too_many.mine(cranfield_train)
    tiny = RetrievalDataset(
        corpus={"a": ("", "x"), "b": ("", "y")}, queries={"q": "x"}, qrels={"q": {"a": 1}}
    )
    with pytest.raises(DatasetError, match="larger than"):
        HardNegativeMiner(None, selector="random", num_negatives=5).fit(tiny).mine(tiny)
