"""The strategy benchmark: the default strategy's merge rule, the precomputed bi-encoder scorer, the report's
structure on real data (BM25 rows run in seconds), bad input, and (slow) determinism of a trained row."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hn_evaluation.benchmark import (
    ALL_STRATEGIES,
    DEFAULT_STRATEGY,
    EmbeddedBiEncoderScorer,
    benchmark_metrics,
    combine_default_negatives,
    format_benchmark_markdown,
    join_benchmark_rows,
    merge_benchmark_reports,
    quality_bar,
    run_benchmark,
)
from hn_evaluation.metrics import EvaluationError
from hn_evaluation.rerank import BiEncoderScorer
from hn_plugins.data import load_beir
from hn_plugins.mining.result import MiningResult, TripletRecord


def test_metric_keys():
    assert benchmark_metrics(100) == ("mrr@3", "mrr@10", "ndcg@10", "recall@10", "recall@100")
    assert benchmark_metrics(10) == ("mrr@3", "mrr@10", "ndcg@10", "recall@10")


def test_default_negatives_primary_then_fallback_then_random():
    primary = MiningResult(
        [
            TripletRecord("q1", "d1", ["d2"], 0.4, [0.3], [0.5], "paper"),
            TripletRecord("q2", "d3", [], 0.2, [], [], "paper"),
            TripletRecord("q3", "d4", [], 0.2, [], [], "paper"),
        ],
        "paper",
    )
    fallback = MiningResult(
        [
            TripletRecord("q1", "d1", ["d9"], 0.4, [0.35], [0.6], "positive-aware"),
            TripletRecord("q2", "d3", ["d7"], 0.2, [0.25], [0.4], "positive-aware"),
            TripletRecord("q3", "d4", [], 0.2, [], [], "positive-aware"),
        ],
        "positive-aware",
    )
    rnd = MiningResult(
        [
            TripletRecord("q1", "d1", ["d2", "d8"], None, [None, None], [None, None], "random"),
            TripletRecord("q2", "d3", ["d5"], None, [None], [None], "random"),
            TripletRecord("q3", "d4", ["d6"], None, [None], [None], "random"),
        ],
        "random",
    )
    merged = combine_default_negatives(primary, fallback, rnd, random_negatives=1)
    assert [r.negative_ids for r in merged.records] == [["d2", "d8"], ["d7", "d5"], ["d6"]]
    assert merged.records[0].d_q_neg == [0.3, None]  # distances stay aligned with the negatives
    assert merged.records[1].d_pos_neg == [0.4, None]
    diag = merged.summary()
    assert diag["pairs_from_primary"] == 1 and diag["pairs_from_fallback"] == 1
    assert diag["pairs_without_hard_negative"] == 1 and diag["random_negatives_added"] == 3
    assert diag["selection_rate"] == 1.0 and merged.selector == "default"
    assert DEFAULT_STRATEGY["primary"]["selector"] == "paper"
    no_random = combine_default_negatives(primary, fallback, None)
    assert [r.negative_ids for r in no_random.records] == [["d2"], ["d7"], []]


def test_embedded_scorer_equals_per_query_scorer(minilm, cranfield_small):
    qid = cranfield_small.judged_query_ids[0]
    query = cranfield_small.queries[qid]
    docs = [cranfield_small.document_text(d) for d in list(cranfield_small.corpus)[:12]]
    pre = EmbeddedBiEncoderScorer(minilm, documents=docs, queries=[query], batch_size=8)
    assert pre.encode_seconds > 0
    expected = BiEncoderScorer(minilm).score(query, docs)
    np.testing.assert_allclose(pre.score(query, docs), expected, atol=1e-5)
    np.testing.assert_allclose(pre.score(query, docs[::-1]), expected[::-1], atol=1e-5)
    assert pre.score(query, []).shape == (0,)


def test_first_stage_report_structure(eval_data_dir, tmp_path):
    out = tmp_path / "bench"
    report = run_benchmark(eval_data_dir / "medline", ["none"], 2, out, top_k=20, max_test_queries=7)
    saved = json.loads((out / "report.json").read_text())
    assert saved["rows"].keys() == {"none"}
    assert set(saved["metrics"]) == {"mrr@3", "mrr@10", "ndcg@10", "recall@10", "recall@20"}
    cell = saved["strategies"]["none"]["metrics"]["mrr@10"]
    assert set(cell) == {"mean", "std", "values"} and len(cell["values"]) == 2 and cell["std"] == 0.0
    assert len(saved["per_query"]["values"]["none"]) == 7
    assert saved["config"]["test_queries"] == 7 and saved["config"]["seeds"] == [0, 1]
    assert (
        saved["short_long"]["info"]["n_queries"]["short"] + saved["short_long"]["info"]["n_queries"]["long"]
        == 7
    )
    assert report["rows"] == saved["rows"]
    assert "| none |" in (out / "report.md").read_text()
    for png in ("mrr_at_10.png", "mrr_at_3.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"
    # the same sample of test queries every time
    again = run_benchmark(
        eval_data_dir / "medline", ["none"], 1, tmp_path / "again", top_k=20, max_test_queries=7
    )
    assert again["per_query"]["values"]["none"] == saved["per_query"]["values"]["none"]


def test_bad_input(eval_data_dir, tmp_path):
    with pytest.raises(ValueError, match="Unknown strategies"):
        run_benchmark(eval_data_dir / "medline", ["none", "magic"], 1, tmp_path)
    with pytest.raises(ValueError, match="seeds"):
        run_benchmark(eval_data_dir / "medline", ["none"], 0, tmp_path)
    train = load_beir(eval_data_dir / "medline", split="train")
    unjudged = train.subset([], name="medline:test")
    with pytest.raises(EvaluationError, match="judgments"):
        run_benchmark((train, unjudged), ["none"], 1, tmp_path)
    assert ALL_STRATEGIES[0] == "none" and ALL_STRATEGIES[-1] == "default"


def test_zero_shot_fusion_rows_and_merge(eval_data_dir, tmp_path):
    """zero-shot+fusion equals a by-hand fusion of the two runs; per-seed reports merge into the joint report."""
    from hn_plugins.data import load_beir
    from hn_plugins.fusion import ScoreFusion

    kwargs = dict(top_k=20, validation_top_k=20, max_test_queries=7, max_length=128)
    joint = run_benchmark(
        eval_data_dir / "medline", ["none", "zero-shot"], [0, 1], tmp_path / "joint", **kwargs
    )
    assert list(joint["rows"]) == ["none", "zero-shot", "zero-shot+fusion"]
    assert joint["config"]["control_rows"] == ["zero-shot+fusion"]
    fusion = ScoreFusion.from_dict(joint["strategies"]["zero-shot"]["fusion"])
    assert fusion is not None and 0.0 <= fusion.weight <= 1.0

    # by hand: fuse the none (BM25) and zero-shot rankings' scores with the chosen weight
    test = load_beir(eval_data_dir / "medline", split="test", empty_documents="drop")
    from hn_evaluation.benchmark import first_stage_run
    from hn_evaluation.metrics import mrr_at_k
    from hn_plugins.models import load_sentence_transformer

    model = load_sentence_transformer("all-MiniLM-L6-v2")
    model.max_seq_length = 128
    run = first_stage_run(test.subset(list(joint["per_query"]["values"]["none"])), "bm25", 20)
    expected = {}
    for qid, ranked in run.items():
        ids = [d for d, _ in ranked]
        q = model.encode([test.queries[qid]], normalize_embeddings=True)[0]
        d = model.encode([test.document_text(i) for i in ids], normalize_embeddings=True)
        fused = fusion(d @ q, [s for _, s in ranked])
        order = [ids[i] for i in np.argsort(-fused, kind="stable")]
        expected[qid] = mrr_at_k(order, test.qrels[qid], 10)
    got = joint["per_query"]["values"]["zero-shot+fusion"]
    assert got.keys() == expected.keys()
    for qid in got:
        assert got[qid] == pytest.approx(expected[qid], abs=1e-6)

    a = run_benchmark(eval_data_dir / "medline", ["none", "zero-shot"], [0], tmp_path / "s0", **kwargs)
    b = run_benchmark(eval_data_dir / "medline", ["none", "zero-shot"], [1], tmp_path / "s1", **kwargs)
    merged = merge_benchmark_reports([tmp_path / "s0" / "report.json", b], tmp_path / "merged")
    assert merged["config"]["seeds"] == [0, 1]
    assert merged["rows"] == joint["rows"]
    assert merged["per_query"]["values"] == joint["per_query"]["values"]
    assert (tmp_path / "merged" / "report.md").is_file() and (tmp_path / "merged" / "mrr_at_10.png").is_file()
    with pytest.raises(EvaluationError, match="more than one report"):
        merge_benchmark_reports([a, a], tmp_path / "bad")
    c = run_benchmark(eval_data_dir / "medline", ["none"], [2], tmp_path / "s2", **{**kwargs, "top_k": 10})
    with pytest.raises(EvaluationError, match="differ in settings"):
        merge_benchmark_reports([a, c], tmp_path / "bad")


def test_join_benchmark_rows_equals_one_run_of_every_strategy(eval_data_dir, tmp_path):
    """Reports of the same seeds that ran different strategies join into the report one run of all of them writes;
    reports of other seeds or settings, or whose shared row disagrees, are refused."""
    import copy

    kwargs = dict(top_k=20, validation_top_k=20, max_test_queries=7, max_length=128)
    data = eval_data_dir / "medline"
    joint = run_benchmark(data, ["none", "zero-shot"], [0], tmp_path / "joint", **kwargs)
    zero_shot = run_benchmark(data, ["zero-shot"], [0], tmp_path / "zero-shot", **kwargs)
    none = run_benchmark(data, ["none"], [0], tmp_path / "none", **kwargs)
    joined = join_benchmark_rows([zero_shot, tmp_path / "none" / "report.json"], tmp_path / "joined")
    assert list(joined["rows"]) == [
        "none",
        "zero-shot",
        "zero-shot+fusion",
    ]  # report order, not argument order
    for key in ("config", "rows", "significance", "quality_bar", "per_query"):
        assert joined[key] == joint[key], key
    assert json.loads((tmp_path / "joined" / "report.json").read_text())["rows"] == joint["rows"]
    assert (
        join_benchmark_rows([joint, none], tmp_path / "again")["rows"] == joint["rows"]
    )  # none in both: agrees

    other_seed = run_benchmark(data, ["none"], [1], tmp_path / "seed1", **kwargs)
    with pytest.raises(EvaluationError, match=r"same seeds.*merge_benchmark_reports"):
        join_benchmark_rows([zero_shot, other_seed], tmp_path / "bad")
    with pytest.raises(EvaluationError, match=r"differ in settings \['top_k'\]"):
        join_benchmark_rows(
            [zero_shot, {**none, "config": {**none["config"], "top_k": 10}}], tmp_path / "bad"
        )
    altered = copy.deepcopy(none)
    query = next(iter(altered["per_query"]["per_seed"]["none"][0]))
    altered["per_query"]["per_seed"]["none"][0][query] += 0.5
    with pytest.raises(EvaluationError, match="Row 'none' differs between report 0 and report 1"):
        join_benchmark_rows([joint, altered], tmp_path / "bad")
    with pytest.raises(EvaluationError, match="at least one report"):
        join_benchmark_rows([], tmp_path / "bad")


def test_quality_bar():
    rows = {
        "none": {"mrr@10": {"mean": 0.60}},
        "zero-shot": {"mrr@10": {"mean": 0.50}},
        "paper": {"mrr@10": {"mean": 0.64}},
        "paper+fusion": {"mrr@10": {"mean": 0.70}},
        "default-no-fusion": {"mrr@10": {"mean": 0.65}},
        "default": {"mrr@10": {"mean": 0.67}},
    }
    bar = quality_bar(rows, ["paper+fusion", "default-no-fusion"])
    assert bar["start"] == "none" and bar["lift_over_start"] == pytest.approx(0.67 / 0.60 - 1)
    assert bar["best_other"] == "paper" and bar["lift_over_best_other"] == pytest.approx(0.67 / 0.64 - 1)
    assert bar["best_fused_control"] == "paper+fusion"
    assert bar["lift_over_best_fused_control"] == pytest.approx(0.67 / 0.70 - 1)
    assert bar["met"] is True  # +11.7% over none, +4.7% over paper
    # default's own ablations are not "other strategies", and no -no-fusion row is a fused control
    ablations = {
        **rows,
        "default+verify": {"mrr@10": {"mean": 0.80}},
        "default@train0.5": {"mrr@10": {"mean": 0.75}},
        "default+verify-no-fusion": {"mrr@10": {"mean": 0.90}},
    }
    controls = ["paper+fusion", "default-no-fusion", "default+verify-no-fusion"]
    bar = quality_bar(ablations, controls)
    assert bar["best_other"] == "paper" and bar["best_fused_control"] == "paper+fusion"
    rows["default"] = {"mrr@10": {"mean": 0.65}}
    assert quality_bar(rows, ["paper+fusion"])["met"] is False
    assert quality_bar({"none": {"mrr@10": {"mean": 0.5}}}) is None


def test_quality_bar_markdown_without_other_strategies_says_so():
    rows = {
        "none": {"mrr@10": {"mean": 0.32, "std": 0.0}},
        "zero-shot": {"mrr@10": {"mean": 0.66, "std": 0.0}},
        "default": {"mrr@10": {"mean": 0.70, "std": 0.01}},
    }
    bar = quality_bar(rows)
    assert bar["best_other"] is None
    text = format_benchmark_markdown(
        {"dataset": "toy", "metrics": ["mrr@10"], "rows": rows, "quality_bar": bar}
    )
    assert "- vs the best other strategy: none in this run (target +3%)" in text and "`None`" not in text


@pytest.mark.slow
def test_trained_row_is_deterministic_for_a_seed(eval_data_dir, tmp_path):
    kwargs = dict(models="static-model", top_k=10, validation_top_k=5, max_test_queries=4, max_length=64)
    first = run_benchmark(eval_data_dir / "medline", ["random"], [3], tmp_path / "a", **kwargs)
    second = run_benchmark(eval_data_dir / "medline", ["random"], [3], tmp_path / "b", **kwargs)
    assert first["per_query"] == second["per_query"]
    assert (
        first["strategies"]["random"]["training"][0]["validation_curve"]
        == (second["strategies"]["random"]["training"][0]["validation_curve"])
    )


def test_training_table_reports_examples_per_second_validation_seconds_and_a_dash_for_older_reports():
    run = {"seed": 0, "selection": "cross-fit", "validation_queries": 809, "train_rows": 919, "steps": 58}
    report = {
        "dataset": "toy",
        "metrics": ["mrr@10"],
        "rows": {"default": {"mrr@10": {"mean": 0.7, "std": 0.0}}},
        "strategies": {
            "default": {
                "training": [
                    {
                        **run,
                        "train_seconds": 2665.1,
                        "validation_seconds": 310.4,
                        "train_examples_per_second": 2.87,
                    }
                ]
            },
            "paper": {"training": [{**run, "train_seconds": 280.1}]},  # a report from before the fields
        },
    }
    lines = format_benchmark_markdown(report).splitlines()
    header = [
        c.strip()
        for c in next(line for line in lines if line.startswith("| strategy | seed | validation")).split("|")
    ]
    speed, validating = header.index("examples/s"), header.index("of which validation")
    cells = {
        line.split("|")[1].strip(): (line.split("|")[validating].strip(), line.split("|")[speed].strip())
        for line in lines
        if line.startswith(("| default | 0 |", "| paper | 0 |"))
    }
    assert cells == {"default": ("310.4", "2.9"), "paper": ("–", "–")}
