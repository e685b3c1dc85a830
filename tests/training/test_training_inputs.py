"""Bad inputs, row building, validation metrics and folder handling of the trainer (fast: no training)."""

from __future__ import annotations

import json
import logging

import pytest

from hn_plugins.data import DatasetError, RetrievalDataset
from hn_plugins.mining.result import MiningResult, TripletRecord
from hn_plugins.training.bootstrap import make_pseudo_queries
from hn_plugins.training.evaluator import RerankingMRREvaluator, bm25_candidates, mrr_at_k
from hn_plugins.training.model_folder import TrainingError, describe_base_model, install_folder
from hn_plugins.training.rows import clean_records
from hn_plugins.training.settings import FineTuneSettings
from hn_plugins.training.trainer import build_training_rows, fine_tune_reranker


def _record(q: str, p: str, negs: list[str]) -> TripletRecord:
    return TripletRecord(q, p, negs, None, [None] * len(negs), [None] * len(negs), "test")


@pytest.fixture(scope="module")
def small_records(cranfield_train):
    """Real (query, positive, BM25 negative) records of five Cranfield train queries."""
    qids = cranfield_train.judged_query_ids[:5]
    cands = bm25_candidates(cranfield_train, qids, top_k=10)
    records = []
    for q in qids:
        negs = [d for d in cands[q] if d not in cranfield_train.never_negative(q)][:2]
        records.extend(_record(q, p, negs) for p in sorted(cranfield_train.positives(q))[:2])
    return records


@pytest.mark.parametrize("split", ["train", "test"])
def test_bm25_candidates_reproduce_the_shared_sanity_number(shared_data, split):
    """Validation candidates are the test first stage's: Cranfield's source papers removed, as `hn benchmark` does."""
    from hn_plugins.bm25 import bm25_run
    from hn_plugins.data import load_beir

    data = load_beir(shared_data / "cranfield", split=split, empty_documents="drop")
    assert data.excluded  # each query's source paper
    evaluator = RerankingMRREvaluator(data, candidates=bm25_candidates(data, top_k=100))
    sanity = json.loads((shared_data / "bm25_sanity.json").read_text())["results"]["cranfield"]
    removed = sanity["stemmed, source docs removed from ranking"][split]
    assert evaluator.first_stage["mrr@10"] == pytest.approx(removed["mrr@10"], abs=1e-6)
    assert evaluator.first_stage["mrr@10"] > sanity["stemmed"][split]["mrr@10"] + 0.05
    run = bm25_run(data, top_k=100)
    assert all(evaluator.candidates[q] == [d for d, _ in run[q]] for q in evaluator.query_ids)
    assert not any(set(evaluator.candidates[q]) & set(data.excluded.get(q, ())) for q in evaluator.query_ids)


def test_mrr_at_k_hand_cases():
    assert mrr_at_k(["a", "b", "c"], {"c"}, 10) == pytest.approx(1 / 3)
    assert mrr_at_k(["a", "b", "c"], {"c"}, 2) == 0.0
    assert mrr_at_k(["a", "b"], {"b": 2, "a": 0}, 10) == 0.5
    assert mrr_at_k([], {"a"}, 10) == 0.0


def test_evaluator_reranks_with_a_score_object(cranfield_train):
    qids = cranfield_train.judged_query_ids[:3]
    subset = cranfield_train.subset(qids)
    candidates = {q: [*sorted(subset.positives(q))[:1], "1", "2"][::-1] for q in qids}

    class Oracle:
        def score(self, query, documents):
            positives = {subset.document_text(d) for q in qids for d in subset.positives(q)}
            return [1.0 if d in positives else 0.0 for d in documents]

    evaluator = RerankingMRREvaluator(subset, candidates=candidates, name="val")
    metrics = evaluator(Oracle())
    assert metrics == {"val_mrr@3": 1.0, "val_mrr@10": 1.0}
    assert evaluator.primary_metric == "val_mrr@10"
    assert evaluator.first_stage["mrr@10"] == pytest.approx(1 / 3)


def test_evaluator_adds_the_time_of_each_call_to_seconds(cranfield_train):
    """A training run subtracts nothing itself: it reads how long its validations took from ``seconds``."""
    import time

    qids = cranfield_train.judged_query_ids[:2]
    subset = cranfield_train.subset(qids)

    class Slow:
        def score(self, query, documents):
            time.sleep(0.05)
            return [0.0] * len(documents)

    evaluator = RerankingMRREvaluator(subset, candidates={q: ["1", "2"] for q in qids}, name="val")
    assert evaluator.seconds == 0.0
    evaluator(Slow())
    first = evaluator.seconds
    assert first >= 0.05  # one score() per query, each sleeping 0.05 s
    evaluator(Slow())
    assert evaluator.seconds >= first + 0.05


def test_missing_and_empty_triplet_files(tmp_path, cranfield_train):
    with pytest.raises(DatasetError, match="does not exist"):
        fine_tune_reranker(
            tmp_path / "none.jsonl", cranfield_train, "all-MiniLM-L6-v2", kind="bi", output_dir=tmp_path / "m"
        )
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n", encoding="utf-8")
    with pytest.raises(DatasetError, match="is empty"):
        fine_tune_reranker(empty, cranfield_train, "all-MiniLM-L6-v2", kind="bi", output_dir=tmp_path / "m")
    with pytest.raises(DatasetError, match="holds no record"):
        fine_tune_reranker(
            MiningResult([], "x"), cranfield_train, "all-MiniLM-L6-v2", output_dir=tmp_path / "m"
        )


def test_unknown_ids_in_triplets(tmp_path, cranfield_train):
    q = cranfield_train.judged_query_ids[0]
    p = sorted(cranfield_train.positives(q))[0]
    path = MiningResult([_record(q, p, ["no-such-doc"])], "x").to_jsonl(tmp_path / "t.jsonl")
    with pytest.raises(DatasetError, match="document 'no-such-doc'"):
        fine_tune_reranker(path, cranfield_train, "all-MiniLM-L6-v2", kind="bi", output_dir=tmp_path / "m")
    path = MiningResult([_record("q-unknown", p, ["1"])], "x").to_jsonl(tmp_path / "u.jsonl")
    with pytest.raises(DatasetError, match="query 'q-unknown'"):
        fine_tune_reranker(path, cranfield_train, "all-MiniLM-L6-v2", kind="bi", output_dir=tmp_path / "m")


def test_bad_settings_are_refused_before_loading(tmp_path, small_records, cranfield_train):
    result = MiningResult(small_records, "bm25")
    with pytest.raises(TrainingError, match="for cross-encoders"):
        fine_tune_reranker(
            result, cranfield_train, "all-MiniLM-L6-v2", kind="bi", loss="bce", output_dir=tmp_path
        )
    with pytest.raises(TrainingError, match="Unknown loss"):
        fine_tune_reranker(result, cranfield_train, "all-MiniLM-L6-v2", loss="hinge", output_dir=tmp_path)
    with pytest.raises(TrainingError, match="kind must be"):
        fine_tune_reranker(result, cranfield_train, "all-MiniLM-L6-v2", kind="poly", output_dir=tmp_path)  # type: ignore[arg-type]
    with pytest.raises(TrainingError, match="selection must be"):
        fine_tune_reranker(
            result, cranfield_train, "all-MiniLM-L6-v2", selection="kfold", output_dir=tmp_path
        )  # type: ignore[arg-type]
    with pytest.raises(TrainingError, match=r"selection_alpha must be in \(0, 1\]"):
        fine_tune_reranker(
            result,
            cranfield_train,
            "all-MiniLM-L6-v2",
            selection="cross-fit",
            selection_alpha=0.0,
            output_dir=tmp_path,
        )
    with pytest.raises(
        TrainingError, match=r"fusion_rule: Unknown fusion rule 'argmax'; choose 'one-se' .* or 'best'"
    ):
        fine_tune_reranker(
            result, cranfield_train, "all-MiniLM-L6-v2", fusion_rule="argmax", output_dir=tmp_path
        )
    with pytest.raises(TrainingError, match="drop eval_dataset"):
        fine_tune_reranker(
            result,
            cranfield_train,
            "all-MiniLM-L6-v2",
            selection="cross-fit",
            eval_dataset=cranfield_train,
            output_dir=tmp_path,
        )
    assert not any(tmp_path.iterdir())  # nothing written


def test_settings_object_and_keywords_are_one_set_of_settings(tmp_path, small_records, cranfield_train):
    result = MiningResult(small_records, "bm25")
    with pytest.raises(TypeError, match=r"'epoch'.*FineTuneSettings: output_dir, kind"):
        fine_tune_reranker(result, cranfield_train, "all-MiniLM-L6-v2", epoch=2, output_dir=tmp_path)
    with pytest.raises(TypeError, match="settings must be a FineTuneSettings, got dict"):
        fine_tune_reranker(result, cranfield_train, "all-MiniLM-L6-v2", {"kind": "bi"})  # type: ignore[arg-type]
    settings = FineTuneSettings(kind="bi", loss="triplet", output_dir=tmp_path)
    # a keyword is applied over the settings object, and checked like one
    with pytest.raises(TrainingError, match="for cross-encoders"):
        fine_tune_reranker(result, cranfield_train, "all-MiniLM-L6-v2", settings, loss="bce")
    assert settings.with_overrides(epochs=3) == FineTuneSettings(kind="bi", epochs=3, output_dir=tmp_path)
    assert settings.with_overrides() is settings
    assert FineTuneSettings.field_names()[0] == "output_dir" and "folds" in FineTuneSettings.field_names()
    assert not any(tmp_path.iterdir())  # nothing written


def test_base_model_checks(tmp_path, minilm):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        describe_base_model(tmp_path / "missing-model")
    with pytest.raises(FileNotFoundError, match="HF_HUB_OFFLINE=1"):
        describe_base_model("some-org/some-reranker")
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "readme.txt").write_text("not a model")
    with pytest.raises(TrainingError, match="not a model folder"):
        describe_base_model(tmp_path / "notes")
    info = describe_base_model("all-MiniLM-L6-v2")
    assert info["is_sentence_transformer"] and not info["has_reranker_head"]


def test_cross_encoder_folder_is_refused_as_bi_base_and_bi_folder_accepted_as_cross_base(tmp_path, caplog):
    from sentence_transformers.cross_encoder import CrossEncoder

    from hn_plugins.models import resolve_model_path
    from hn_plugins.training.model_folder import load_base_model

    model, info = load_base_model("all-MiniLM-L6-v2", "cross", max_length=32)
    assert isinstance(model, CrossEncoder) and info["head"] == "untrained"
    assert "head starts untrained" in caplog.text
    model.save_pretrained(str(tmp_path / "ce"))
    with pytest.raises(TrainingError, match="holds a cross-encoder"):
        load_base_model(tmp_path / "ce", "bi")
    reloaded, info = load_base_model(tmp_path / "ce", "cross")
    assert info["head"] == "pretrained" and reloaded.num_labels == 1
    assert resolve_model_path("all-MiniLM-L6-v2") == info["path"] or info["path"] == str(tmp_path / "ce")


def test_load_base_model_trains_a_half_precision_checkpoint_in_float32(tmp_path, caplog):
    """A checkpoint stored in float16 loads in float16; optimizer steps on it diverge, so training casts it."""
    import torch

    from hn_plugins.training.model_folder import load_base_model

    model, info = load_base_model("all-MiniLM-L6-v2", "bi", max_length=32)
    assert info["loaded_dtype"] == "float32" and "training it in float32" not in caplog.text
    model.half().save(str(tmp_path / "bi16"))
    cross, _ = load_base_model("all-MiniLM-L6-v2", "cross", max_length=32)
    cross.model.half()
    cross.save_pretrained(str(tmp_path / "ce16"))
    for folder, kind in ((tmp_path / "bi16", "bi"), (tmp_path / "ce16", "cross")):
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="hn_plugins.training.model_folder"):
            loaded, info = load_base_model(folder, kind)
        assert info["loaded_dtype"] == "float16"
        assert {p.dtype for p in loaded.parameters()} == {torch.float32}
        assert f"{folder} loads in float16; training it in float32." in caplog.text


def test_keep_bottom_layers_keeps_the_first_layers_and_survives_a_reload(tmp_path, cranfield_train):
    import torch
    from sentence_transformers.cross_encoder import CrossEncoder

    from hn_plugins.training.model_folder import keep_bottom_layers, load_base_model

    full, _ = load_base_model("all-MiniLM-L6-v2", "cross", max_length=64)
    cut, _ = load_base_model("all-MiniLM-L6-v2", "cross", max_length=64)
    for bad in (0, 7):
        with pytest.raises(TrainingError, match="between 1 and the model's 6 layers"):
            keep_bottom_layers(cut, bad)
    assert keep_bottom_layers(cut, 3) == 6
    assert cut.model.config.num_hidden_layers == 3 and len(cut.model.bert.encoder.layer) == 3
    qid = cranfield_train.judged_query_ids[0]
    doc = cranfield_train.document_text(sorted(cranfield_train.positives(qid))[0])
    batch = full.tokenizer(
        [cranfield_train.queries[qid]], [doc], truncation=True, max_length=64, return_tensors="pt"
    )
    with torch.inference_mode():
        third = full.model.bert(**batch, output_hidden_states=True).hidden_states[3]
        top = cut.model.bert(**batch).last_hidden_state
    assert torch.allclose(third, top, atol=1e-5)  # the cut model is the full one's first three layers
    cut.save_pretrained(str(tmp_path / "ce3"))
    reloaded = CrossEncoder(str(tmp_path / "ce3"))
    assert reloaded.model.config.num_hidden_layers == 3 and len(reloaded.model.bert.encoder.layer) == 3


def test_bootstrap_refuses_a_bad_depth_before_the_teacher_runs(tmp_path, cranfield_train):
    from hn_plugins.training.bootstrap import bootstrap_cross_encoder

    class Teacher:  # would fail the test if the teacher were asked to encode anything
        def encode(self, texts, **kwargs):
            raise AssertionError("the teacher ran before the depth was checked")

    with pytest.raises(TrainingError, match="between 1 and the model's 6 layers"):
        bootstrap_cross_encoder(cranfield_train, Teacher(), output_dir=tmp_path / "boot", num_layers=9)
    assert not (tmp_path / "boot").exists()


def test_never_negative_documents_are_dropped_with_a_count(cranfield_train, caplog):
    q = next(q for q in cranfield_train.judged_query_ids if len(cranfield_train.positives(q)) >= 2)
    p1, p2 = sorted(cranfield_train.positives(q))[:2]
    other = next(d for d in cranfield_train.doc_ids if d not in cranfield_train.never_negative(q))
    result = MiningResult([_record(q, p1, [p2, other, other])], "external")
    records, stats = clean_records(result, cranfield_train, None)
    assert records[0].negative_ids == [other]
    assert stats["negatives_dropped_never_negative"] == 1 and stats["duplicate_negatives"] == 1
    assert "Dropped 1 negative(s)" in caplog.text


def test_build_training_rows_formats(cranfield_train, small_records):
    recs = [*small_records[:3], _record(small_records[0].query_id, small_records[0].positive_id, [])]
    rows, stats = build_training_rows(recs, cranfield_train, "triplet")
    assert len(rows) == sum(len(r.negative_ids) for r in recs) and set(rows[0]) == {
        "anchor",
        "positive",
        "negative",
    }
    assert stats["records_without_negative"] == 1
    uneven = [_record(recs[0].query_id, recs[0].positive_id, recs[0].negative_ids[:1]), recs[1]]
    rows, _ = build_training_rows(uneven, cranfield_train, "n-tuple")
    assert list(rows[0]) == ["anchor", "positive", "negative_1", "negative_2"]
    assert rows[0]["negative_1"] == rows[0]["negative_2"]  # a record with fewer negatives repeats its own
    rows, _ = build_training_rows(recs[:1], cranfield_train, "labeled-pair")
    assert [r["label"] for r in rows] == [1.0, 0.0, 0.0]
    rows, _ = build_training_rows(recs, cranfield_train, "pair-or-n-tuple")
    assert set(rows[0]) == {"anchor", "positive"}  # one record has no negative: in-batch negatives only
    assert rows[0]["anchor"] == cranfield_train.queries[recs[0].query_id]
    assert rows[0]["positive"] == cranfield_train.document_text(recs[0].positive_id)


def test_install_folder_replaces_only_complete_folders(tmp_path):
    target = tmp_path / "model"
    target.mkdir()
    (target / "weights").write_text("old")
    new = tmp_path / ".model.new"
    new.mkdir()
    (new / "weights").write_text("new")
    install_folder(new, target)
    assert (target / "weights").read_text() == "new" and not new.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_pseudo_queries_never_contain_their_answer(cranfield_train):
    pseudo = make_pseudo_queries(cranfield_train.corpus)
    assert len(pseudo) > 0.9 * len(cranfield_train.corpus)
    for p in pseudo:
        assert not p.passage.lower().startswith(p.query.lower())
        assert len(p.passage.split()) >= 10
    tiny = RetrievalDataset(
        corpus={"d": ("", "Only one sentence here without more.")}, queries={"q": "x"}, qrels={"q": {"d": 1}}
    )
    assert make_pseudo_queries(tiny.corpus) == []


def test_cli_registers_train_and_bootstrap():
    from hn_plugins.cli import build_parser

    parser = build_parser()
    args = parser.parse_args(
        [
            "train",
            "t.jsonl",
            "--data",
            "d",
            "--base-model",
            "m",
            "--kind",
            "bi",
            "--out",
            "o",
            "--loss",
            "in-batch",
            "--epochs",
            "2",
            "--selection",
            "cross-fit",
            "--folds",
            "3",
        ]
    )
    assert args.kind == "bi" and args.loss == "in-batch" and args.epochs == 2 and callable(args.func)
    assert args.selection == "cross-fit" and args.folds == 3 and args.selection_alpha == 0.05
    base = ["train", "t", "--data", "d", "--base-model", "m", "--out", "o", "--selection-alpha"]
    assert parser.parse_args([*base, "0.2"]).selection_alpha == 0.2
    assert parser.parse_args([*base, "0"]).selection_alpha == 0.0  # no test: train on any pooled gain
    assert args.fusion_rule == "one-se"
    assert parser.parse_args([*base, "0.2", "--fusion-rule", "best"]).fusion_rule == "best"
    assert (
        parser.parse_args(["train", "t", "--data", "d", "--base-model", "m", "--out", "o"]).selection
        == "holdout"
    )
    args = parser.parse_args(["bootstrap", "d", "--teacher-models", "a,b", "--out", "o", "--pairs", "100"])
    assert args.teacher_models == "a,b" and args.pairs == 100 and callable(args.func)


def test_cli_bootstrap_reports_a_bad_depth_cleanly(tmp_path, shared_data, capsys):
    from hn_plugins.cli import main

    args = ["bootstrap", str(shared_data / "cranfield"), "--drop-empty", "--out", str(tmp_path / "m")]
    assert main([*args, "--num-layers", "7"]) == 2
    assert "between 1 and the model's 6 layers, got 7" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()


def test_corpus_adaptation_refuses_a_corpus_without_pseudo_queries(tmp_path, shared_data):
    from hn_plugins.data import load_beir
    from hn_plugins.training.corpus_adaptation import adapt_bi_encoder

    npl = load_beir(shared_data / "npl", split="train")  # no titles, no sentence punctuation
    with pytest.raises(DatasetError, match=r"Only 0 of 11429 documents give a pseudo-query.*titles"):
        adapt_bi_encoder(npl, output_dir=tmp_path / "m")
    with pytest.raises(TrainingError, match="batch_size >= 2"):
        adapt_bi_encoder(npl, output_dir=tmp_path / "m", batch_size=1)
    with pytest.raises(TrainingError, match="check_top_k must be >= 1 or None"):
        adapt_bi_encoder(npl, output_dir=tmp_path / "m", check_top_k=0)
    assert not (tmp_path / "m").exists()


def test_cli_bootstrap_bi_refuses_cross_only_options(tmp_path, shared_data, capsys):
    from hn_plugins.cli import build_parser, main

    args = build_parser().parse_args(["bootstrap", "d", "--kind", "bi", "--out", "o"])
    assert (
        args.kind == "bi" and args.epochs is None and args.teacher_models is None and args.negatives is None
    )
    assert (
        build_parser()
        .parse_args(["bootstrap", "d", "--kind", "bi", "--out", "o", "--negatives", "mined"])
        .negatives
        == "mined"
    )
    data = str(shared_data / "cranfield")
    out = str(tmp_path / "m")
    assert main(["bootstrap", data, "--kind", "bi", "--out", out, "--pairs", "10", "--num-layers", "2"]) == 2
    assert "--pairs, --num-layers only apply to --kind cross" in capsys.readouterr().err
    assert main(["bootstrap", data, "--out", out, "--min-pseudo-queries", "5"]) == 2
    assert "--min-pseudo-queries only applies to --kind bi" in capsys.readouterr().err
    assert main(["bootstrap", data, "--out", out, "--min-pseudo-queries", "5", "--check-top-k", "20"]) == 2
    assert "--min-pseudo-queries, --check-top-k only apply to --kind bi" in capsys.readouterr().err
    assert main(["bootstrap", data, "--out", out, "--negatives", "mined"]) == 2
    assert "--negatives only applies to --kind bi" in capsys.readouterr().err
    assert main(["bootstrap", data, "--kind", "bi", "--out", out, "--cache", str(tmp_path / "c")]) == 2
    assert "in-batch adaptation embeds nothing to cache: drop --cache" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["bootstrap", data, "--kind", "bi", "--out", out, "--check-top-k", "-1"])
    assert "argument --check-top-k: must be an integer >= 0; got -1" in capsys.readouterr().err
    assert main(["bootstrap", str(shared_data / "npl"), "--kind", "bi", "--out", out]) == 2
    assert "give a pseudo-query" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()


def test_cli_train_reports_bad_input_cleanly(tmp_path, shared_data, capsys):
    from hn_plugins.cli import main

    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    code = main(
        [
            "train",
            str(empty),
            "--data",
            str(shared_data / "cranfield"),
            "--drop-empty",
            "--base-model",
            "all-MiniLM-L6-v2",
            "--kind",
            "bi",
            "--out",
            str(tmp_path / "m"),
        ]
    )
    assert code == 2
    assert "is empty" in capsys.readouterr().err


def test_the_card_records_the_fusion_rule_only_when_a_weight_is_chosen():
    from hn_plugins.training.model_card import hyperparameters
    from hn_plugins.training.settings import FineTuneSettings

    assert hyperparameters(FineTuneSettings(kind="bi"), False)["fusion_rule"] == "one-se"
    assert hyperparameters(FineTuneSettings(kind="bi", fusion_rule="best"), False)["fusion_rule"] == "best"
    assert hyperparameters(FineTuneSettings(kind="bi", choose_fusion=False), False)["fusion_rule"] is None


@pytest.mark.parametrize(
    ("rows", "steps", "steps_per_epoch", "batch_size", "expected"),
    [
        (10, 0, 3, 4, 0),  # no step, nothing seen
        (10, 3, 3, 4, 10),  # one full epoch: every row once, the short last batch counted as its 2 rows
        (10, 6, 3, 4, 20),  # two full epochs
        (10, 4, 3, 4, 14),  # one epoch, then one batch of the next
        (8, 2, 2, 4, 8),  # batches that divide the rows exactly
    ],
)
def test_examples_seen_counts_each_row_once_per_epoch(rows, steps, steps_per_epoch, batch_size, expected):
    from hn_plugins.training.fit import examples_seen

    assert examples_seen(rows, steps, steps_per_epoch, batch_size) == expected
