"""run_benchmark's mining and data ablations (PCA variance, one model vs the ensemble, training-set size) on real
medline data: each ablation row trains on the negatives that an independently wired miner gives (slow: 4 rows train)."""

import pytest

from hn_evaluation.benchmark import DEFAULT_STRATEGY, load_split, run_benchmark
from hn_plugins.embedders import EmbedderEnsemble
from hn_plugins.mining.miner import HardNegativeMiner
from hn_plugins.mining.result import MiningResult
from hn_plugins.reduction import PCAReducer

MODELS = ["static-model", "all-MiniLM-L6-v2"]


def _negatives(result: MiningResult) -> dict[tuple[str, str], list[str]]:
    return {(r.query_id, r.positive_id): list(r.negative_ids) for r in result.records}


@pytest.mark.slow
def test_ablation_rows_train_on_the_variant_negatives(eval_data_dir, tmp_path, monkeypatch):
    monkeypatch.setitem(
        DEFAULT_STRATEGY, "folds", 2
    )  # default@train* cross-fits: 2 folds keep the test short
    report = run_benchmark(
        eval_data_dir / "medline",
        ["none"],
        [0],
        tmp_path,
        models=",".join(MODELS),
        epochs=1,
        top_k=10,
        validation_top_k=5,
        max_test_queries=4,
        max_length=64,
        ablation_variance=[0.7, 1.0],
        ablation_single_model=True,
        ablation_train_size=[0.5],
    )
    rows = {"paper@pca0.7", "paper@nopca", "paper@single-model", "default@train0.5"}
    assert rows <= set(report["rows"]), report.get("failed")
    train = load_split(eval_data_dir / "medline", "train")
    mined = {
        name: MiningResult.from_jsonl(tmp_path / "triplets" / f"{name.replace('@', '_')}-seed0.jsonl")
        for name in rows
    }

    # each variant = the miner wired by hand with that ensemble and reducer (paper selector, 100 candidates)
    def reference(models: list[str], reducer: PCAReducer | None) -> MiningResult:
        miner = HardNegativeMiner(EmbedderEnsemble(models), reducer, selector="paper", candidates=100)
        return miner.fit(train).mine(train)

    assert _negatives(mined["paper@pca0.7"]) == _negatives(reference(MODELS, PCAReducer(variance=0.7)))
    assert _negatives(mined["paper@nopca"]) == _negatives(reference(MODELS, None))
    assert _negatives(mined["paper@single-model"]) == _negatives(
        reference(MODELS[:1], PCAReducer(variance=0.95))
    )
    strategies = report["strategies"]
    pca = strategies["paper@pca0.7"]["mining"]
    assert pca["pca_variance_kept"] >= 0.7 and pca["pca_components"] >= 1
    assert "pca_components" not in strategies["paper@nopca"]["mining"]

    # half the train queries: the triplets and the training rows hold that many queries, all from the train split
    judged = sorted(train.judged_query_ids)
    kept = {r.query_id for r in mined["default@train0.5"].records}
    assert kept <= set(judged) and len(kept) == max(2, round(0.5 * len(judged)))
    assert strategies["default@train0.5"]["training"][0]["selection"] == "cross-fit"


def test_adapt_ablation_is_for_bi_encoders_and_has_a_cli_flag(eval_data_dir, tmp_path):
    from hn_plugins.cli import build_parser

    with pytest.raises(ValueError, match=r"kind='bi'.*hn bootstrap"):
        run_benchmark(eval_data_dir / "medline", ["none"], [0], tmp_path, kind="cross", ablation_adapt=True)
    assert not (tmp_path / "report.json").exists()
    assert (
        build_parser().parse_args(["benchmark", "d", "--out", "o", "--ablation-adapt"]).ablation_adapt is True
    )
    assert build_parser().parse_args(["benchmark", "d", "--out", "o"]).ablation_adapt is False


@pytest.mark.slow
def test_default_adapt_row_fine_tunes_the_corpus_adapted_model(eval_data_dir, tmp_path, monkeypatch):
    import json

    from hn_plugins.training.bootstrap import make_pseudo_queries

    monkeypatch.setitem(DEFAULT_STRATEGY, "folds", 2)
    report = run_benchmark(
        eval_data_dir / "medline",
        ["none"],
        [0],
        tmp_path,
        models="static-model",
        epochs=1,
        top_k=10,
        validation_top_k=5,
        max_test_queries=4,
        max_length=64,
        ablation_adapt=True,
        keep_models=True,
    )
    assert {"default+adapt", "default+adapt-no-fusion"} <= set(report["rows"]), report.get("failed")
    assert report["config"]["ablation_adapt"] is True
    training = report["strategies"]["default+adapt"]["training"][0]
    train = load_split(eval_data_dir / "medline", "train")
    assert training["adaptation"]["pseudo_queries"] == len(make_pseudo_queries(train.corpus))
    md = (tmp_path / "report.md").read_text()
    assert "## Corpus adaptation (no labels)" in md
    assert f"| default+adapt | 0 | {training['adaptation']['pseudo_queries']} |" in md
    check = training["adaptation"]["check"]  # the adapted vs the untuned model on the judged train queries
    assert check["queries"] == len(train.judged_query_ids) and check["top_k"] == 5
    assert training["adaptation"]["started_from_adapted"] is check["adapted_is_better"]
    start = tmp_path / "models" / "default+adapt-start-seed0"
    final = json.loads((tmp_path / "models" / "default+adapt-seed0" / "hn_reranker.json").read_text())
    if check["adapted_is_better"]:  # the hard-negative fine-tune started from the adapted model
        assert json.loads((start / "hn_reranker.json").read_text())["kind"] == "bi"
        assert final["base_model"] == str(start)
    else:  # as hn bootstrap advises: the untuned base model, the adapted folder removed
        assert not start.exists()
        assert final["base_model"] != str(start) and "all-MiniLM-L6-v2" in final["base_model"]
