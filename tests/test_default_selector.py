"""``selector="default"`` (what we ship) against a brute-force computation of its three parts, on real Cranfield text."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hn_plugins.cli import main
from hn_plugins.data import RetrievalDataset
from hn_plugins.embedders import EmbedderEnsemble, l2_normalize
from hn_plugins.mining.default_selector import DefaultSelector, merge_default_records
from hn_plugins.mining.miner import HardNegativeMiner
from hn_plugins.mining.named_selectors import get_selector
from hn_plugins.mining.result import MiningResult, TripletRecord
from hn_plugins.reduction import PCAReducer


@pytest.fixture(scope="module")
def cranfield_slice(cranfield_train):
    """30 judged train queries over their positives, their source papers and other documents: 300 in all."""
    qids = cranfield_train.judged_query_ids[:30]
    keep = {d for q in qids for d in cranfield_train.never_negative(q)}
    for doc_id in cranfield_train.corpus:
        if len(keep) >= 300:
            break
        keep.add(doc_id)
    part = cranfield_train.subset(qids)
    return RetrievalDataset(
        corpus={d: cranfield_train.corpus[d] for d in cranfield_train.corpus if d in keep},
        queries=part.queries,
        qrels=part.qrels,
        excluded={q: {d for d in ex if d in keep} for q, ex in part.excluded.items()},
        name="cranfield[30q]",
    )


@pytest.fixture(scope="module")
def ensemble(minilm, static_model, tmp_path_factory):
    return EmbedderEnsemble([minilm, static_model], cache_dir=tmp_path_factory.mktemp("cache"))


def _miner(ensemble, seed: int = 0, num_negatives: int = 2, **kwargs) -> HardNegativeMiner:
    return HardNegativeMiner(
        ensemble,
        PCAReducer(variance=0.95),
        selector="default",
        num_negatives=num_negatives,
        seed=seed,
        **kwargs,
    )


@pytest.fixture(scope="module")
def mined(ensemble, cranfield_slice):
    miner = _miner(ensemble).fit(cranfield_slice)
    return miner, miner.mine(cranfield_slice)


def _reference_space(miner, dataset):
    """The miner's space rebuilt from the ensemble's raw vectors and the fitted PCA: docs and queries, unit length."""
    raw_docs = miner.ensemble.encode_documents(
        miner.doc_ids_, [dataset.document_text(d) for d in miner.doc_ids_]
    )
    docs = l2_normalize((raw_docs - miner.reducer.mean_) @ miner.reducer.components_.T).astype(np.float64)
    qids = dataset.judged_query_ids
    raw_queries = miner.ensemble.encode_queries([dataset.queries[q] for q in qids])
    queries = l2_normalize((raw_queries - miner.reducer.mean_) @ miner.reducer.components_.T).astype(
        np.float64
    )
    return docs, dict(zip(qids, queries, strict=True))


def _brute_force_hard_negatives(docs, queries, dataset, doc_ids, n, margin=0.05):
    """Per pair: Eq. 5 + Eq. 6 over the whole corpus; where nothing qualifies, score <= s_min - |s_min| * margin."""
    row_of = {d: i for i, d in enumerate(doc_ids)}
    expected = {}
    for qid in dataset.judged_query_ids:
        q = queries[qid]
        s_qd = docs @ q
        blocked = np.array([d in dataset.never_negative(qid) for d in doc_ids])
        s_min = min(float(docs[row_of[p]] @ q) for p in dataset.positives(qid))
        for pid in dataset.positives(qid):
            p = docs[row_of[pid]]
            s_qp = float(p @ q)
            paper = np.flatnonzero((s_qd > s_qp) & (s_qd > docs @ p) & ~blocked)
            rows, source = paper, "paper"
            if len(rows) == 0:
                rows, source = np.flatnonzero((s_qd <= s_min - abs(s_min) * margin) & ~blocked), "fallback"
            rows = rows[np.lexsort((rows, -s_qd[rows]))][:n]
            expected[(qid, pid)] = ([doc_ids[r] for r in rows], source)
    return expected


def test_default_negatives_equal_a_brute_force_of_paper_then_fallback_plus_one_random(mined, cranfield_slice):
    miner, result = mined
    docs, queries = _reference_space(miner, cranfield_slice)
    expected = _brute_force_hard_negatives(docs, queries, cranfield_slice, miner.doc_ids_, 2)
    got = {(r.query_id, r.positive_id): r for r in result.records}
    assert set(got) == set(expected) and len(result.records) == len(cranfield_slice.positive_pairs())
    sources = [source for _, source in expected.values()]
    assert "paper" in sources and "fallback" in sources  # both parts are exercised on this slice
    for key, (hard, source) in expected.items():
        record = got[key]
        assert record.selector == "default"
        assert miner.selector.sources[key] == ("paper" if source == "paper" else "positive-aware")
        assert record.negative_ids[: len(hard)] == hard, key
        extra = record.negative_ids[len(hard) :]
        assert len(extra) == 1 and extra[0] not in hard  # one random negative, not a duplicate
        assert not set(record.negative_ids) & cranfield_slice.never_negative(key[0])
        assert record.d_q_neg[-1] is None and None not in record.d_q_neg[: len(hard)]
    diagnostics = result.diagnostics
    assert diagnostics["pairs_from_primary"] == sources.count("paper")
    assert diagnostics["pairs_from_fallback"] + diagnostics["pairs_without_hard_negative"] == sources.count(
        "fallback"
    )
    assert diagnostics["random_negatives_added"] == len(result.records)
    assert diagnostics["config"]["selector"]["fallback"]["relative_margin"] == 0.05
    assert diagnostics["paper.rejected_eq5"] > 0


def test_default_equals_its_three_selectors_run_separately_and_merged(ensemble, cranfield_slice, mined):
    _, result = mined
    parts = {}
    for name, kwargs in (("paper", {}), ("positive-aware", {"relative_margin": 0.05}), ("random", {})):
        miner = HardNegativeMiner(
            ensemble if name != "random" else None,
            PCAReducer(variance=0.95) if name != "random" else None,
            selector=name,
            num_negatives=2,
            seed=0,
            **kwargs,
        )
        parts[name] = miner.fit(cranfield_slice).mine(cranfield_slice).records
    merged, _, _ = merge_default_records(parts["paper"], parts["positive-aware"], parts["random"], 1)
    assert [r.negative_ids for r in merged] == [r.negative_ids for r in result.records]


def test_same_seed_same_triplets_other_seed_other_random_negative(ensemble, cranfield_slice, mined, tmp_path):
    _, first = mined
    again = _miner(ensemble, seed=0).fit(cranfield_slice).mine(cranfield_slice)
    other = _miner(ensemble, seed=1).fit(cranfield_slice).mine(cranfield_slice)
    paths = [r.to_jsonl(tmp_path / f"{i}.jsonl") for i, r in enumerate((first, again, other))]
    assert paths[0].read_bytes() == paths[1].read_bytes()
    hard = [r.negative_ids[:-1] for r in first.records]
    assert hard == [r.negative_ids[:-1] for r in other.records]  # hard negatives do not depend on the seed
    assert [r.negative_ids[-1] for r in first.records] != [r.negative_ids[-1] for r in other.records]


def test_options_and_bad_values():
    selector = get_selector("default", relative_margin=0.1, random_negatives=0)
    assert isinstance(selector, DefaultSelector)
    assert selector.get_config_dict()["fallback"]["relative_margin"] == 0.1
    with pytest.raises(ValueError, match="random_negatives must be >= 0"):
        get_selector("default", random_negatives=-1)
    with pytest.raises(ValueError, match="relative_margin must be in"):
        get_selector("default", relative_margin=1.5)
    with pytest.raises(ValueError, match="needs an EmbedderEnsemble"):
        HardNegativeMiner(None, selector="default")
    record = TripletRecord("q", "p", [], 0.2, [], [], "paper")
    merged, counts, sources = merge_default_records([record], [], [], 1)
    assert merged[0].negative_ids == [] and counts["pairs_without_hard_negative"] == 1 and sources == [None]


def test_without_random_negatives_only_hard_ones(ensemble, cranfield_slice, mined):
    _, with_random = mined
    miner = _miner(ensemble, random_negatives=0).fit(cranfield_slice)
    result = miner.mine(cranfield_slice)
    assert [r.negative_ids for r in result.records] == [r.negative_ids[:-1] for r in with_random.records]
    assert result.diagnostics["random_negatives_added"] == 0


def test_hn_mine_selector_default(shared_data, tmp_path, capsys):
    out = tmp_path / "triplets.jsonl"
    args = ["mine", str(shared_data / "medline"), "--models", "static-model", "--selector", "default"]
    code = main([*args, "--out", str(out), "--cache", str(tmp_path / "cache"), "--seed", "3"])
    assert code == 0
    result = MiningResult.from_jsonl(out)
    diagnostics = json.loads(out.with_suffix(".diagnostics.json").read_text())
    assert len(result.records) == 274 and {r.selector for r in result.records} == {"default"}
    assert all(len(r.negative_ids) == 2 for r in result.records)  # 1 hard (paper or fallback) + 1 random
    assert diagnostics["pairs_from_primary"] + diagnostics["pairs_from_fallback"] == 274
    assert diagnostics["config"]["seed"] == 3
    printed = capsys.readouterr().out
    assert "pairs from fallback" in printed and "random negatives added" in printed


def test_get_selector_keeps_its_first_import_path_with_a_deprecation_warning() -> None:
    import hn_plugins.mining.selectors as selectors

    with pytest.warns(DeprecationWarning, match="named_selectors"):
        old = selectors.get_selector
    assert old is get_selector
    with pytest.raises(AttributeError, match="no_such_name"):
        selectors.no_such_name  # noqa: B018
