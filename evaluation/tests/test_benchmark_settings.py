"""BenchmarkSettings (one object for every run setting, checked when made), the old keyword arguments of
run_benchmark, the nested train subsets of ``train_size`` and the test split of ``split`` (``hn benchmark
--train-size N --split NAME``), on real medline data; nothing here trains."""

from __future__ import annotations

import random
import shutil

import pytest

from hn_evaluation.benchmark import (
    BenchmarkSettings,
    TrainSplits,
    load_split,
    run_benchmark,
    zero_shot_fusion,
)
from hn_plugins.cli import build_parser, main
from hn_plugins.data import DatasetError


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("top_k", 0, "top_k must be an integer >= 1, got 0"),
        ("epochs", 0, "epochs must be an integer >= 1, got 0"),
        ("variance", 1.5, r"variance must be in \(0, 1\] \(1.0: no PCA\), got 1.5"),
        ("kind", "onnx", "kind must be 'bi' or 'cross', got 'onnx'"),
        ("first_stage", "splade", "first_stage must be 'bm25' or 'dense', got 'splade'"),
        ("lr", 0.0, "lr must be > 0, got 0.0"),
        ("train_size", 0, "train_size must be an integer >= 1 or None, got 0"),
        ("max_test_queries", 0, "max_test_queries must be an integer >= 1 or None, got 0"),
        ("ablation_train_size", [1.5], r"ablation_train_size values must be in \(0, 1\], got 1.5"),
        ("rag_contexts", 0, "rag_contexts must be a positive integer, got 0"),
        ("split", "../test", "split must name a qrels file of the BEIR folder"),
        ("models", " , ", "models: give at least one embedding model"),
        ("fusion_rule", "argmax", "Unknown fusion rule 'argmax'; choose 'one-se'"),
    ],
)
def test_a_bad_setting_names_itself_its_value_and_what_is_allowed(field, value, message):
    with pytest.raises(ValueError, match=message):
        BenchmarkSettings(**{field: value})


def test_settings_normalise_the_ensemble_and_the_ablations():
    settings = BenchmarkSettings(models="static-model, all-MiniLM-L6-v2", ablation_variance=[0.7, 1])
    assert settings.models == ("static-model", "all-MiniLM-L6-v2")
    assert settings.ablation_variance == (0.7, 1.0) and settings.has_ablations
    assert not BenchmarkSettings().has_ablations


def test_old_keyword_arguments_build_the_same_settings(eval_data_dir, tmp_path):
    data = eval_data_dir / "medline"
    old = run_benchmark(data, ["none"], [0], tmp_path / "old", top_k=20, max_test_queries=5)
    new = run_benchmark(
        data, ["none"], [0], tmp_path / "new", settings=BenchmarkSettings(top_k=20, max_test_queries=5)
    )
    assert old["config"] == new["config"] and old["per_query"] == new["per_query"]
    both = run_benchmark(
        data,
        ["none"],
        [0],
        tmp_path / "both",
        settings=BenchmarkSettings(top_k=50),
        top_k=20,
        max_test_queries=5,
    )
    assert both["config"] == old["config"]  # a keyword argument replaces that field of settings
    with pytest.raises(TypeError, match=r"Unknown benchmark settings \['topk'\]"):
        run_benchmark(data, ["none"], [0], tmp_path / "typo", topk=20)
    assert not (tmp_path / "typo").exists()


def test_train_subsets_are_seeded_and_nested(eval_data_dir):
    train = load_split(eval_data_dir / "cranfield", "train")
    judged = sorted(train.judged_query_ids)
    for seed in (0, 1, 2):
        order = list(judged)
        random.Random(seed).shuffle(order)  # the rule: one seeded permutation of the sorted ids, its first N
        previous: set[str] = set()
        for size in (10, 25, 50, len(judged)):
            subset = set(TrainSplits(train, size).for_seed(seed).judged_query_ids)
            assert subset == set(order[:size]) and previous <= subset
            previous = subset
    assert TrainSplits(train, 10).for_seed(0).queries != TrainSplits(train, 10).for_seed(1).queries
    assert TrainSplits(train, None).for_seed(3) is train


def test_train_size_errors_name_the_split_size_and_the_minimum(eval_data_dir, tmp_path):
    data = eval_data_dir / "medline"
    n = len(load_split(data, "train").judged_query_ids)
    with pytest.raises(ValueError, match=rf"larger than the train split .* which has {n} judged questions"):
        run_benchmark(data, ["none", "zero-shot"], [0], tmp_path / "a", train_size=n + 1)
    with pytest.raises(ValueError, match=r"5 cross-fitting folds .* pass train_size >= 5"):
        run_benchmark(data, ["none", "default"], [0], tmp_path / "b", train_size=4)
    with pytest.raises(ValueError, match=r"validation hold-out .* pass train_size >= 2"):
        run_benchmark(data, ["paper"], [0], tmp_path / "c", train_size=1)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists() and not (tmp_path / "c").exists()


def test_zero_shot_fusion_weight_is_chosen_on_each_seeds_train_subset(eval_data_dir, tmp_path):
    """With train_size, zero-shot+fusion of seed s fuses by the weight chosen on seed s's train questions (by the
    settings' fusion rule)."""
    import numpy as np

    from hn_evaluation.benchmark import first_stage_run
    from hn_evaluation.metrics import mrr_at_k
    from hn_plugins.models import load_sentence_transformer

    data = eval_data_dir / "medline"
    kwargs = dict(top_k=20, validation_top_k=20, max_test_queries=5, max_length=64)
    report = run_benchmark(
        data, ["none", "zero-shot"], [0, 1], tmp_path, train_size=6, fusion_rule="best", **kwargs
    )
    assert report["config"]["train_size"] == 6 and report["config"]["fusion_rule"] == "best"
    splits = TrainSplits(load_split(data, "train"), 6)
    choices = [
        zero_shot_fusion(splits.for_seed(s), "all-MiniLM-L6-v2", "bi", 64, 20, rule="best") for s in (0, 1)
    ]
    assert report["strategies"]["zero-shot+fusion"]["fusion"] == choices[0].to_dict()
    assert choices[0].validation["rule"] == "best"

    # by hand: the zero-shot cosine of BM25's top 20, fused with BM25's scores by each seed's own weight
    test = load_split(data, "test").subset(list(report["per_query"]["values"]["none"]))
    model = load_sentence_transformer("all-MiniLM-L6-v2")
    model.max_seq_length = 64
    per_seed = report["per_query"]["per_seed"]["zero-shot+fusion"]
    for seed, choice in enumerate(choices):
        for qid, ranked in first_stage_run(test, "bm25", 20).items():
            ids = [d for d, _ in ranked]
            q = model.encode([test.queries[qid]], normalize_embeddings=True)[0]
            d = model.encode([test.document_text(i) for i in ids], normalize_embeddings=True)
            fused = choice(d @ q, [s for _, s in ranked])
            order = [ids[i] for i in np.argsort(-fused, kind="stable")]
            assert per_seed[seed][qid] == pytest.approx(mrr_at_k(order, test.qrels[qid], 10), abs=1e-6)


def test_the_test_split_is_chosen_by_name_and_a_missing_one_lists_those_that_exist(eval_data_dir, tmp_path):
    source = eval_data_dir / "medline"
    folder = tmp_path / "medline"
    (folder / "qrels").mkdir(parents=True)
    for name in ("corpus.jsonl", "queries.jsonl"):
        (folder / name).symlink_to(source / name)
    shutil.copy(source / "qrels" / "train.tsv", folder / "qrels" / "train.tsv")
    lines = (source / "qrels" / "test.tsv").read_text(encoding="utf-8").splitlines()
    kept = [
        line for line in lines[1:] if line.split("\t")[0] in sorted({x.split("\t")[0] for x in lines[1:]})[:4]
    ]
    (folder / "qrels" / "test-unseen.tsv").write_text("\n".join([lines[0], *kept]) + "\n", encoding="utf-8")
    report = run_benchmark(folder, ["none"], [0], tmp_path / "out", split="test-unseen", top_k=20)
    assert report["config"]["split"] == "test-unseen" and "medline:test-unseen" in report["config"]["test"]
    assert set(report["per_query"]["values"]["none"]) == {line.split("\t")[0] for line in kept}
    with pytest.raises(DatasetError, match=r"No split 'dev' .* the splits there are test-unseen, train"):
        run_benchmark(folder, ["none"], [0], tmp_path / "dev", split="dev")
    assert not (tmp_path / "dev").exists()


def test_hn_benchmark_train_size_and_split_options(eval_data_dir, tmp_path, capsys):
    from hn_evaluation.cli.benchmark_cmd import settings_from_args

    args = build_parser().parse_args(
        ["benchmark", "d", "--out", "o", "--train-size", "50", "--split", "test-unseen"]
    )
    settings = settings_from_args(args)
    assert settings.train_size == 50 and settings.split == "test-unseen"
    assert settings.fusion_rule == "one-se"
    best = build_parser().parse_args(["benchmark", "d", "--out", "o", "--fusion-rule", "best"])
    assert settings_from_args(best).fusion_rule == "best"
    default = settings_from_args(build_parser().parse_args(["benchmark", "d", "--out", "o"]))
    assert default == BenchmarkSettings(models=default.models)  # the CLI's defaults are the library's
    data = str(eval_data_dir / "medline")
    assert (
        main(["benchmark", data, "--out", str(tmp_path / "a"), "--strategies", "none", "--split", "dev"]) == 2
    )
    assert "No split 'dev'" in capsys.readouterr().err and not (tmp_path / "a").exists()
    assert (
        main(["benchmark", data, "--out", str(tmp_path / "b"), "--strategies", "none", "--train-size", "99"])
        == 2
    )
    assert "which has 12 judged questions" in capsys.readouterr().err and not (tmp_path / "b").exists()


@pytest.mark.slow
def test_a_trained_row_mines_and_trains_on_each_seeds_train_subset(eval_data_dir, tmp_path):
    """Each seed mines and trains on its own train subset; seeds run apart merge with their mining summaries."""
    from hn_evaluation.benchmark import merge_benchmark_reports
    from hn_plugins.mining.result import MiningResult

    data = eval_data_dir / "medline"
    kwargs = dict(
        models="static-model", epochs=1, top_k=10, validation_top_k=5, max_test_queries=4, max_length=64
    )
    for seed in (0, 1):
        run_benchmark(
            data, ["random"], [seed], tmp_path / f"s{seed}", train_size=6, fusion_rule="best", **kwargs
        )
    report = merge_benchmark_reports(
        [tmp_path / f"s{seed}" / "report.json" for seed in (0, 1)], tmp_path / "m"
    )
    splits = TrainSplits(load_split(data, "train"), 6)
    for seed in (0, 1):
        subset = splits.for_seed(seed)
        mined = MiningResult.from_jsonl(tmp_path / f"s{seed}" / "triplets" / f"random-seed{seed}.jsonl")
        assert {r.query_id for r in mined.records} == set(subset.judged_query_ids)
        assert len(mined.records) == len(subset.positive_pairs())
        mining = report["strategies"]["random"]["mining_per_seed"][seed]
        assert mining["seed"] == seed and mining["pairs"] == len(subset.positive_pairs())
    assert report["config"]["train_size"] == 6 and len(report["strategies"]["random"]["training"]) == 2
    # the settings' fusion rule chose each trained model's weight
    rules = [t["fusion"]["validation"]["rule"] for t in report["strategies"]["random"]["training"]]
    assert rules == ["best", "best"] and report["config"]["fusion_rule"] == "best"
