"""The false-negative verifier: its drops equal a brute-force application of the rule with the real MiniLM teacher
on real Cranfield negatives; margins, alignment, empty records, diagnostics, determinism, errors; ``hn mine
--verify-with``; the benchmark's ``default+verify`` teacher and merge (the full row, which trains, is slow)."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from hn_plugins.cli import main
from hn_plugins.data import DatasetError, RetrievalDataset
from hn_plugins.embedders import EmbedderEnsemble
from hn_plugins.mining.miner import HardNegativeMiner
from hn_plugins.mining.result import MiningResult, TripletRecord
from hn_plugins.mining.verifier import FalseNegativeVerifier
from hn_plugins.reranker import BiEncoderReranker

QUERIES = 3  # Cranfield train queries used here (about 30 pairs, 4 negatives each)


@pytest.fixture(scope="module")
def small_train(cranfield_train):
    return cranfield_train.subset(cranfield_train.judged_query_ids[:QUERIES], name="cranfield:train:small")


@pytest.fixture(scope="module")
def mined(small_train, static_model):
    """Real hard negatives: the top non-positives in the static model's space (real distances)."""
    miner = HardNegativeMiner(EmbedderEnsemble([static_model]), None, selector="dense-topk", num_negatives=4)
    return miner.fit(small_train).mine(small_train)


@pytest.fixture(scope="module")
def teacher(minilm):
    return BiEncoderReranker(minilm)


@pytest.fixture(scope="module")
def reference_scores(minilm, small_train, mined):
    """{(query_id, doc_id): cosine}, straight from the model's embeddings (no reranker code)."""
    qids = list(dict.fromkeys(r.query_id for r in mined.records))
    doc_ids = list(dict.fromkeys(d for r in mined.records for d in (r.positive_id, *r.negative_ids)))
    queries = minilm.encode([small_train.queries[q] for q in qids], normalize_embeddings=True)
    docs = minilm.encode([small_train.document_text(d) for d in doc_ids], normalize_embeddings=True)
    cosine = docs @ queries.T
    return {(q, d): float(cosine[i, j]) for j, q in enumerate(qids) for i, d in enumerate(doc_ids)}


def brute_force(mined: MiningResult, scores, margin: float, tolerance: float = 1e-4):
    """The rule in plain Python: drop when score(neg) >= score(pos) - margin. Pairs within ``tolerance`` of the
    threshold are returned apart (float noise between batched and single encodings could flip them)."""
    kept, dropped, borderline = set(), set(), set()
    for rec in mined.records:
        pos = scores[(rec.query_id, rec.positive_id)]
        for neg_id in rec.negative_ids:
            key = (rec.query_id, rec.positive_id, neg_id)
            neg = scores[(rec.query_id, neg_id)]
            if abs(neg - (pos - margin)) < tolerance:
                borderline.add(key)
            (dropped if neg >= pos - margin else kept).add(key)
    return kept, dropped, borderline


def triples(result: MiningResult) -> set[tuple[str, str, str]]:
    return set(result.iter_triplets())


def dropped_triples(result: MiningResult) -> set[tuple[str, str, str]]:
    return {(d["query_id"], d["positive_id"], d["negative_id"]) for d in result.diagnostics["dropped"]}


@pytest.mark.parametrize("margin", [0.0, 0.1])
def test_drops_equal_brute_force_with_the_real_teacher(mined, small_train, teacher, reference_scores, margin):
    verified = FalseNegativeVerifier(teacher, margin=margin).verify(mined, small_train)
    kept, dropped, borderline = brute_force(mined, reference_scores, margin)
    assert len(borderline) <= 1  # otherwise the comparison below would test little
    assert triples(verified) - borderline == kept - borderline
    assert dropped_triples(verified) - borderline == dropped - borderline
    assert kept and dropped  # the reference case has both outcomes
    for entry in verified.diagnostics["dropped"]:
        q, p, n = entry["query_id"], entry["positive_id"], entry["negative_id"]
        assert entry["teacher_pos"] == pytest.approx(reference_scores[(q, p)], abs=1e-4)
        assert entry["teacher_neg"] == pytest.approx(reference_scores[(q, n)], abs=1e-4)
        assert entry["teacher_neg"] >= entry["teacher_pos"] - margin


def test_larger_margin_drops_a_superset(mined, small_train, teacher):
    """The rule drops score(neg) >= score(pos) - margin: a larger margin demands a wider gap, so it drops more."""
    drops = [
        dropped_triples(FalseNegativeVerifier(teacher, margin=m).verify(mined, small_train))
        for m in (0.0, 0.05, 0.2, 5.0)
    ]
    for smaller, larger in itertools.pairwise(drops):
        assert smaller <= larger
    assert len(drops[0]) < len(drops[-1]) == sum(len(r.negative_ids) for r in mined.records)  # cosine <= 1


def test_distances_stay_aligned_and_every_record_stays(mined, small_train, teacher):
    verified = FalseNegativeVerifier(teacher, margin=0.05).verify(mined, small_train)
    assert len(verified.records) == len(mined.records)
    assert verified.selector == mined.selector
    emptied = 0
    for before, after in zip(mined.records, verified.records, strict=True):
        assert (after.query_id, after.positive_id, after.d_q_pos) == (
            before.query_id,
            before.positive_id,
            before.d_q_pos,
        )
        assert after.selector == before.selector == "dense-topk"
        assert len(after.d_q_neg) == len(after.d_pos_neg) == len(after.negative_ids)
        index = {n: i for i, n in enumerate(before.negative_ids)}
        positions = [index[n] for n in after.negative_ids]
        assert positions == sorted(positions)  # kept negatives keep their order
        assert after.d_q_neg == [before.d_q_neg[i] for i in positions]
        assert after.d_pos_neg == [before.d_pos_neg[i] for i in positions]
        emptied += bool(before.negative_ids) and not after.negative_ids
    assert emptied == verified.diagnostics["pairs_emptied_by_verifier"] > 0


def test_diagnostics_add_up_and_show_in_the_summary(mined, small_train, teacher, tmp_path):
    verified = FalseNegativeVerifier(teacher, margin=0.05).verify(mined, small_train)
    d = verified.diagnostics
    before = sum(len(r.negative_ids) for r in mined.records)
    after = sum(len(r.negative_ids) for r in verified.records)
    assert d["negatives_checked"] == before
    assert d["negatives_dropped"] == len(d["dropped"]) == before - after
    assert d["verifier"] == {"teacher": "BiEncoderReranker(SentenceTransformer)", "margin": 0.05}
    assert d["config"] == mined.diagnostics["config"]  # the miner's diagnostics are kept
    assert dropped_triples(verified) | triples(verified) == triples(mined)
    summary = verified.summary()
    assert summary["negatives_dropped"] == d["negatives_dropped"] and summary["negatives"] == after
    text = verified.format_summary()
    assert "negatives dropped" in text and "pairs emptied by verifier" in text and "margin 0.05" in text
    saved = json.loads(verified.save_diagnostics(tmp_path / "d.json").read_text())
    assert len(saved["dropped"]) == d["negatives_dropped"]


def test_same_input_gives_the_same_output(mined, small_train, minilm):
    first = mined.records[0].query_id
    one_query = MiningResult([r for r in mined.records if r.query_id == first], mined.selector)
    a = FalseNegativeVerifier(BiEncoderReranker(minilm), margin=0.02).verify(one_query, small_train)
    b = FalseNegativeVerifier(BiEncoderReranker(minilm), margin=0.02).verify(one_query, small_train)
    assert [r.to_json() for r in a.records] == [r.to_json() for r in b.records]
    assert a.diagnostics == b.diagnostics and a.diagnostics["negatives_dropped"] > 0
    # the input is not mutated
    assert [r.to_json() for r in one_query.records] != [r.to_json() for r in a.records]
    assert "dropped" not in one_query.diagnostics


class Recording:
    """A real teacher behind a log of its calls."""

    def __init__(self, teacher):
        self.teacher, self.calls = teacher, []

    def score(self, query, documents):
        self.calls.append((query, list(documents)))
        return self.teacher.score(query, documents)


def test_one_call_per_query_context_scored_never_compared_empty_records_kept(
    mined, small_train, cranfield_train, teacher
):
    qids = list(dict.fromkeys(r.query_id for r in mined.records))
    extra_query = cranfield_train.judged_query_ids[QUERIES]
    small = cranfield_train.subset([*qids[:2], extra_query])
    records = [r for r in mined.records if r.query_id in qids[:2]]
    positive = sorted(small.positives(extra_query))[0]
    records.append(TripletRecord(extra_query, positive, [], 0.5, [], [], "dense-topk"))
    result = MiningResult(records, selector="dense-topk")
    context_ids = [d for d in list(small.corpus)[:5]]
    recorder = Recording(teacher)
    verified = FalseNegativeVerifier(recorder, margin=10.0, context={qids[0]: context_ids}).verify(
        result, small
    )
    assert [small_train.queries[q] for q in qids[:2]] == [c[0] for c in recorder.calls]  # one call per query
    first_call = recorder.calls[0][1]
    assert all(small.document_text(d) in first_call for d in context_ids)
    assert len(first_call) == len(set(first_call))  # each document once, whatever it is
    # margin 10 drops every negative (cosines differ by <= 2); context documents are never named
    assert verified.diagnostics["negatives_dropped"] == verified.diagnostics["negatives_checked"]
    assert not {d["negative_id"] for d in verified.diagnostics["dropped"]} & (
        set(context_ids) - {n for r in records for n in r.negative_ids}
    )
    assert len(verified.records) == len(records) and all(not r.negative_ids for r in verified.records)
    assert verified.records[-1] == records[-1]  # never scored, unchanged
    assert verified.diagnostics["pairs_emptied_by_verifier"] == len(records) - 1
    assert verified.summary()["selection_rate"] == 0.0


# ------------------------------------------------------------------------------------------------ errors
@pytest.fixture
def toy():
    data = RetrievalDataset(
        {"p": ("", "virtual cloud network"), "n": ("", "cloud setup"), "m": ("", "pasta")},
        {"q": "virtual cloud network"},
        {"q": {"p": 1}},
        name="toy",
    )
    result = MiningResult(
        [TripletRecord("q", "p", ["n", "m"], 0.1, [0.2, 0.3], [0.4, 0.5], "paper")], "paper"
    )
    return data, result


def overlap(query, documents):
    return [len(set(query.split()) & set(d.split())) for d in documents]


def test_a_plain_callable_is_a_teacher(toy):
    data, result = toy
    verified = FalseNegativeVerifier(overlap, margin=2.0).verify(result, data)
    assert verified.records[0].negative_ids == ["m"] and verified.records[0].d_q_neg == [0.3]
    assert verified.diagnostics["dropped"] == [
        {"query_id": "q", "positive_id": "p", "negative_id": "n", "teacher_pos": 3.0, "teacher_neg": 1.0}
    ]
    assert verified.diagnostics["verifier"]["teacher"] == "overlap"


def test_errors_name_the_problem_and_the_fix(toy):
    data, result = toy
    with pytest.raises(ValueError, match=r"score\(query, documents\)"):
        FalseNegativeVerifier(object())
    with pytest.raises(ValueError, match="margin must be a finite number >= 0"):
        FalseNegativeVerifier(overlap, margin=-0.1)
    with pytest.raises(ValueError, match="margin"):
        FalseNegativeVerifier(overlap, margin=float("nan"))
    with pytest.raises(ValueError, match=r"returned 1 score\(s\) for 3 documents"):
        FalseNegativeVerifier(lambda q, docs: [1.0]).verify(result, data)
    with pytest.raises(ValueError, match="NaN or infinite"):
        FalseNegativeVerifier(lambda q, docs: [float("nan")] * len(docs)).verify(result, data)
    with pytest.raises(ValueError, match="not numbers"):
        FalseNegativeVerifier(lambda q, docs: ["high"] * len(docs)).verify(result, data)
    unknown = MiningResult([TripletRecord("q", "p", ["zzz"], None, [None], [None], "paper")], "paper")
    with pytest.raises(DatasetError, match="'zzz', which is not in the corpus"):
        FalseNegativeVerifier(overlap).verify(unknown, data)
    assert issubclass(DatasetError, ValueError)
    with pytest.raises(DatasetError, match=r"context of query 'q'.*give ids of the same dataset"):
        FalseNegativeVerifier(overlap, context={"q": ["nope"]}).verify(result, data)
    with pytest.raises(ValueError, match=r"Cannot load the verifier teacher 'bi:no-such-model'.*bi:NAME"):
        FalseNegativeVerifier.from_model("bi:no-such-model")
    with pytest.raises(ValueError, match=r"Cannot load the verifier teacher.*does not exist"):
        FalseNegativeVerifier.from_model("./no/such/folder")
    with pytest.raises(ValueError, match="'bi:' needs a bi-encoder name"):
        FalseNegativeVerifier.from_model("bi:")


# ------------------------------------------------------------------------------------------------ CLI
@pytest.fixture
def tiny_beir(cranfield_train, tmp_path):
    """A BEIR folder of 3 Cranfield train queries over their positives and 30 other documents."""
    qids = cranfield_train.judged_query_ids[:3]
    keep = {p for q in qids for p in cranfield_train.positives(q)} | set(list(cranfield_train.corpus)[:30])
    folder = tmp_path / "tiny"
    (folder / "qrels").mkdir(parents=True)
    with (folder / "corpus.jsonl").open("w") as f:
        for d in sorted(keep):
            title, text = cranfield_train.corpus[d]
            f.write(json.dumps({"_id": d, "title": title, "text": text}) + "\n")
    with (folder / "queries.jsonl").open("w") as f:
        for q in qids:
            f.write(json.dumps({"_id": q, "text": cranfield_train.queries[q]}) + "\n")
    lines = ["query-id\tcorpus-id\tscore"]
    lines += [f"{q}\t{d}\t{s}" for q in qids for d, s in cranfield_train.qrels[q].items() if d in keep]
    (folder / "qrels" / "train.tsv").write_text("\n".join(lines) + "\n")
    return folder


def test_hn_mine_verify_with_a_bi_encoder(tiny_beir, tmp_path, capsys):
    out = tmp_path / "triplets.jsonl"
    args = ["mine", str(tiny_beir), "--models", "static-model", "--variance", "0", "--selector", "dense-topk"]
    args += ["--num-negatives", "3", "--out", str(out)]
    code = main([*args, "--verify-with", "bi:all-MiniLM-L6-v2", "--verify-margin", "0.05"])
    assert code == 0
    result = MiningResult.from_jsonl(out)
    diagnostics = json.loads(out.with_suffix(".diagnostics.json").read_text())
    assert diagnostics["negatives_checked"] == 3 * len(result.records)
    assert diagnostics["negatives_dropped"] == len(diagnostics["dropped"]) > 0
    assert diagnostics["negatives"] == sum(len(r.negative_ids) for r in result.records)
    assert diagnostics["negatives"] + diagnostics["negatives_dropped"] == diagnostics["negatives_checked"]
    assert diagnostics["verifier"] == {"teacher": "BiEncoderReranker(all-MiniLM-L6-v2)", "margin": 0.05}
    printed = capsys.readouterr().out
    assert "negatives dropped" in printed and "pairs emptied by verifier" in printed
    # without the verifier: the same triplets plus the dropped ones
    assert main([*args[:-1], str(tmp_path / "plain.jsonl")]) == 0
    plain = MiningResult.from_jsonl(tmp_path / "plain.jsonl")
    dropped = {(d["query_id"], d["positive_id"], d["negative_id"]) for d in diagnostics["dropped"]}
    assert set(plain.iter_triplets()) == set(result.iter_triplets()) | dropped


def test_hn_mine_verify_errors(tiny_beir, tmp_path, capsys):
    base = ["mine", str(tiny_beir), "--selector", "random", "--out", str(tmp_path / "x.jsonl")]
    assert main([*base, "--verify-with", "bi:no-such-model"]) == 2
    assert "Cannot load the verifier teacher 'bi:no-such-model'" in capsys.readouterr().err
    assert main([*base, "--verify-with", "bi:all-MiniLM-L6-v2", "--verify-margin", "-1"]) == 2
    assert "margin must be a finite number >= 0" in capsys.readouterr().err
    assert main([*base, "--verify-margin", "0.1"]) == 2
    assert "--verify-margin needs --verify-with" in capsys.readouterr().err
    assert not (tmp_path / "x.jsonl").exists()


# ------------------------------------------------------------------------------------------------ benchmark
def test_benchmark_teacher_and_verified_default(small_train, static_model, minilm):
    """default+verify's pieces: the zero-shot + BM25 teacher (checked by hand) and the verified merge."""
    from hn_evaluation.benchmark import (
        combine_verified_default_negatives,
        first_stage_run,
        mining_summary,
        zero_shot_fusion_teacher,
    )
    from hn_plugins.fusion import ScoreFusion
    from hn_plugins.reduction import PCAReducer

    fusion = ScoreFusion(weight=0.6, normalization="z")
    teacher, context = zero_shot_fusion_teacher(
        small_train, "all-MiniLM-L6-v2", "bi", fusion, max_length=128, top_k=30
    )
    run = first_stage_run(small_train, "bm25", 30)
    assert context == {q: [d for d, _ in ranked] for q, ranked in run.items()}
    assert "zero-shot all-MiniLM-L6-v2" in teacher.name and "weight 0.6" in teacher.name

    # by hand: cosine of the base model, BM25 score (outside the top 30: the lowest top-30 score), fused
    qid = small_train.judged_query_ids[0]
    bm25 = dict(run[qid])
    outside = next(
        d for d in small_train.corpus if d not in bm25 and d not in small_train.never_negative(qid)
    )
    ids = [*sorted(small_train.positives(qid))[:2], context[qid][0], context[qid][20], outside]
    texts = [small_train.document_text(d) for d in ids]
    q = minilm.encode([small_train.queries[qid]], normalize_embeddings=True)[0]
    cosine = minilm.encode(texts, normalize_embeddings=True) @ q
    first = [bm25.get(d, min(bm25.values())) for d in ids]
    expected = fusion(cosine, first)
    np.testing.assert_allclose(teacher.score(small_train.queries[qid], texts), expected, atol=1e-4)

    def mine(selector, **kw):
        miner = HardNegativeMiner(
            EmbedderEnsemble([static_model]), PCAReducer(variance=0.95), selector=selector, **kw
        )
        return miner.fit(small_train).mine(small_train)

    primary = mine("paper", num_negatives=2)
    fallback = mine("positive-aware", num_negatives=2, relative_margin=0.05)
    rnd = HardNegativeMiner(selector="random", num_negatives=1, seed=0).fit(small_train).mine(small_train)
    verifier = FalseNegativeVerifier(teacher, context=context)
    vp, vf = verifier.verify(primary, small_train), verifier.verify(fallback, small_train)
    merged = combine_verified_default_negatives(vp, vf, rnd, 1)
    assert merged.selector == "default+verify"
    fb = {(r.query_id, r.positive_id): r for r in vf.records}
    rn = {(r.query_id, r.positive_id): r for r in rnd.records}
    for p, m in zip(vp.records, merged.records, strict=True):
        key = (p.query_id, p.positive_id)
        hard = p.negative_ids or fb[key].negative_ids
        assert m.negative_ids[: len(hard)] == hard
        assert m.negative_ids[len(hard) :] == [n for n in rn[key].negative_ids if n not in hard][:1]
    d = merged.diagnostics
    assert d["pairs_from_primary"] + d["pairs_from_fallback"] + d["pairs_without_hard_negative"] == len(
        merged
    )
    assert d["negatives_checked"] == sum(len(r.negative_ids) for r in (*primary.records, *fallback.records))
    assert d["negatives_dropped"] == vp.diagnostics["negatives_dropped"] + vf.diagnostics["negatives_dropped"]
    moved = sum(
        1
        for a, b in zip(primary.records, vp.records, strict=True)
        if a.negative_ids and not b.negative_ids and fb[(a.query_id, a.positive_id)].negative_ids
    )
    assert d["pairs_moved_to_fallback"] == moved
    summary = mining_summary(merged)
    for key in ("verifier", "negatives_checked", "negatives_dropped", "pairs_emptied_by_verifier"):
        assert summary[key] == d[key]
    with pytest.raises(ValueError, match="was not verified"):
        combine_verified_default_negatives(primary, vf, rnd)
    with pytest.raises(ValueError, match="kind must be 'bi' or 'cross'"):
        zero_shot_fusion_teacher(small_train, "all-MiniLM-L6-v2", "onnx", fusion)  # type: ignore[arg-type]


@pytest.mark.slow
def test_benchmark_default_verify_row(shared_data, tmp_path):
    from hn_evaluation.benchmark import run_benchmark

    kwargs = dict(models="static-model", top_k=10, validation_top_k=10, max_test_queries=4, max_length=64)
    report = run_benchmark(
        shared_data / "medline", ["none"], [0], tmp_path, epochs=1, ablation_verifier=True, **kwargs
    )
    assert {"default+verify", "default+verify-no-fusion"} <= set(report["rows"])
    mining = report["strategies"]["default+verify"]["mining"]
    assert mining["selector"] == "default+verify" and mining["verifier"]["margin"] == 0.0
    assert mining["negatives_checked"] >= mining["negatives_dropped"] >= 0
    audit = json.loads((tmp_path / "verifier_dropped.json").read_text())
    assert len(audit["primary"]) + len(audit["fallback"]) == mining["negatives_dropped"]
    assert report["config"]["ablation_verifier"] is True
    assert "the verifier" in (tmp_path / "report.md").read_text()


def test_hn_benchmark_has_the_verifier_ablation_flag():
    from hn_plugins.cli import build_parser

    args = build_parser().parse_args(["benchmark", "data", "--out", "o", "--ablation-verifier"])
    assert args.ablation_verifier is True
    assert build_parser().parse_args(["benchmark", "data", "--out", "o"]).ablation_verifier is False
