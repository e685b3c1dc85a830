"""Real (tiny) fine-tunes and a bootstrap on Cranfield: folders, determinism, interruption safety.

Marked ``slow``: each test trains all-MiniLM-L6-v2 for a few steps (about a minute on 2 idle cores).
"""

from __future__ import annotations

import hashlib
import json

import pytest

from hn_plugins.mining.result import MiningResult, TripletRecord
from hn_plugins.reranker import RERANKER_MARKER, load_reranker
from hn_plugins.training.evaluator import bm25_candidates
from hn_plugins.training.fit import checkpoint_step, examples_seen
from hn_plugins.training.trainer import fine_tune_reranker

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tiny(cranfield_train):
    """8 training queries (2 positives, 1 BM25 negative each), 3 validation queries with BM25 top-10."""
    qids = cranfield_train.judged_query_ids
    train, val = cranfield_train.subset(qids[:8]), cranfield_train.subset(qids[8:11])
    cands = bm25_candidates(train, train.judged_query_ids, top_k=30)
    records = []
    for q in train.judged_query_ids:
        neg = next(d for d in cands[q] if d not in train.never_negative(q))
        records.extend(
            TripletRecord(q, p, [neg], None, [None], [None], "bm25") for p in sorted(train.positives(q))[:2]
        )
    return {
        "train": train,
        "val": val,
        "result": MiningResult(records, "bm25"),
        "val_candidates": bm25_candidates(val, val.judged_query_ids, top_k=10),
    }


def _train(tiny, out, kind, **kw):
    settings = dict(
        kind=kind,
        epochs=1,
        batch_size=8,
        max_length=64,
        eval_dataset=tiny["val"],
        validation_candidates=tiny["val_candidates"],
        output_dir=out,
        keep_base_if_better=False,
        seed=3,
    )
    settings.update(kw)
    base = settings.pop("base_model", "all-MiniLM-L6-v2")
    return fine_tune_reranker(tiny["result"], tiny["train"], base, **settings)


def _digest(folder):
    return hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()


def test_bi_fine_tune_writes_a_loadable_folder_and_is_deterministic(tmp_path, tiny):
    from sentence_transformers import SentenceTransformer

    first = _train(tiny, tmp_path / "bi-a", "bi")
    second = _train(tiny, tmp_path / "bi-b", "bi")
    assert _digest(first.path) == _digest(second.path)  # same seed, same weights
    steps = -(-first.metrics["train_rows"] // 8)
    assert [h["step"] for h in first.history] == [0, steps] and first.history == second.history
    assert first.metrics["train_examples"] == first.metrics["train_rows"]  # 1 epoch: every row once
    assert first.metrics["train_examples_before_resume"] == 0
    assert first.metrics["train_examples_per_second"] == pytest.approx(
        first.metrics["train_examples"] / first.metrics["train_seconds"], rel=0.05
    )  # train_seconds is rounded to 0.1 s
    assert (
        0 < first.metrics["validation_seconds"] < first.metrics["train_seconds"]
    )  # validated after the epoch
    marker = json.loads((first.path / RERANKER_MARKER).read_text())
    assert (
        marker["kind"] == "bi" and marker["loss"] == "triplet" and marker["negatives"]["selector"] == "bm25"
    )
    assert marker["hyperparameters"]["margin"] == 0.2 and marker["validation_curve"] == first.history
    assert json.loads((first.path / "validation_curve.json").read_text()) == first.history
    assert "Validation curve" in (first.path / "README.md").read_text()
    plain = SentenceTransformer(str(first.path))
    reranker = load_reranker(first.path)
    assert reranker.kind == "bi"
    docs = [
        tiny["train"].document_text(d) for d in tiny["val_candidates"][tiny["val"].judged_query_ids[0]][:3]
    ]
    scores = reranker.score("boundary layer", docs)
    assert scores.shape == (3,)
    expected = (
        plain.encode(docs, normalize_embeddings=True)
        @ plain.encode(["boundary layer"], normalize_embeddings=True)[0]
    )
    assert scores == pytest.approx(expected, abs=1e-5)


def test_cross_fine_tune_from_a_bi_encoder_folder_loads_everywhere(tmp_path, tiny):
    from sentence_transformers.cross_encoder import CrossEncoder

    result = _train(tiny, tmp_path / "ce", "cross", loss="listwise")
    assert result.kind == "cross" and result.metrics["train_rows"] == len(tiny["result"].records)
    marker = json.loads((result.path / RERANKER_MARKER).read_text())
    assert marker["kind"] == "cross" and marker["base_model_head"] == "untrained"
    assert (result.path / "model.safetensors").is_file() and not list(result.path.glob("*.bin"))
    plain = CrossEncoder(str(result.path))
    reranker = load_reranker(result.path)
    assert reranker.kind == "cross"
    pairs = [("wing flutter", "flutter of wings"), ("wing flutter", "heat transfer")]
    assert reranker.score("wing flutter", [p[1] for p in pairs]) == pytest.approx(
        plain.predict(pairs), abs=1e-5
    )


def test_interrupted_run_keeps_the_previous_folder_and_resumes(tmp_path, tiny):
    from transformers import TrainerCallback

    out = tmp_path / "model"
    _train(tiny, out, "bi", epochs=1)
    before = (_digest(out), (out / RERANKER_MARKER).read_text())

    class Interrupt(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 2:
                raise KeyboardInterrupt("simulated interruption")

    with pytest.raises(KeyboardInterrupt):
        _train(tiny, out, "bi", epochs=2, eval_steps=1, callbacks=[Interrupt()], seed=5)
    assert (_digest(out), (out / RERANKER_MARKER).read_text()) == before  # the previous model is intact
    scratch = tmp_path / ".model.training"
    assert (scratch / "checkpoint-1").is_dir()
    start_step = checkpoint_step(scratch)
    assert start_step == max(int(c.name.split("-")[1]) for c in scratch.glob("checkpoint-*"))
    resumed = _train(
        tiny, out, "bi", epochs=2, eval_steps=1, resume=True, seed=5, early_stopping_patience=None
    )
    assert [h["step"] for h in resumed.history] == list(range(resumed.metrics["steps"] + 1))
    rows, steps_per_epoch = resumed.metrics["train_rows"], -(-resumed.metrics["train_rows"] // 8)
    assert resumed.metrics["steps"] == 2 * steps_per_epoch
    # the examples before the checkpoint were trained by the interrupted process, not in this run's time
    before_resume = examples_seen(rows, start_step, steps_per_epoch, 8)
    assert 0 < before_resume < resumed.metrics["train_examples"] == 2 * rows
    assert resumed.metrics["train_examples_before_resume"] == before_resume
    assert resumed.metrics["train_examples_per_second"] == pytest.approx(
        (2 * rows - before_resume) / resumed.metrics["train_seconds"], rel=0.05
    )
    assert _digest(out) != before[0] and not scratch.exists()


def _bootstrap(cranfield_train, minilm, static_model, out, documents, **settings):
    """A small real bootstrap on the first ``documents`` Cranfield documents (3 neighbours, 2 random, 20 held out)."""
    from hn_plugins.embedders import EmbedderEnsemble
    from hn_plugins.training.bootstrap import bootstrap_cross_encoder

    corpus = {d: cranfield_train.corpus[d] for d in cranfield_train.doc_ids[:documents]}
    return bootstrap_cross_encoder(
        corpus,
        EmbedderEnsemble([minilm, static_model]),
        output_dir=out,
        neighbours=3,
        random_documents=2,
        held_out_queries=20,
        eval_top_k=10,
        batch_size=8,
        seed=0,
        **settings,
    )


def test_bootstrap_improves_on_its_start_and_reports_the_teacher(
    tmp_path, cranfield_train, minilm, static_model
):
    result = _bootstrap(
        cranfield_train, minilm, static_model, tmp_path / "boot", 160, num_pairs=360, epochs=2, max_length=96
    )
    marker = json.loads((result.path / RERANKER_MARKER).read_text())
    assert marker["kind"] == "cross" and marker["bootstrap"]["num_pairs"] == 360
    assert load_reranker(result.path).kind == "cross"
    start = result.history[0]["mrr@10"]  # the untrained head ranks the candidates by chance
    assert result.student_mrr10 > start
    assert 0.0 < result.teacher_mrr10 <= 1.0
    assert result.metrics["teacher_mrr@10"] == result.teacher_mrr10
    assert result.reached_teacher == (result.student_mrr10 >= result.teacher_mrr10)


def test_bootstrap_of_a_shallower_student_saves_that_depth(tmp_path, cranfield_train, minilm, static_model):
    from sentence_transformers.cross_encoder import CrossEncoder

    result = _bootstrap(
        cranfield_train,
        minilm,
        static_model,
        tmp_path / "boot2",
        120,
        num_pairs=120,
        epochs=1,
        max_length=64,
        num_layers=2,
    )
    marker = json.loads((result.path / RERANKER_MARKER).read_text())
    assert marker["bootstrap"]["num_layers"] == 2
    assert "cut to its first 2 layers" in (result.path / "README.md").read_text()
    reloaded = CrossEncoder(str(result.path))
    assert reloaded.model.config.num_hidden_layers == 2 and len(reloaded.model.bert.encoder.layer) == 2
    scores = load_reranker(result.path).score("wing flutter", ["flutter of wings", "heat transfer"])
    assert scores.shape == (2,)


def test_cross_fit_selection_trains_folds_then_the_chosen_epochs(tmp_path, tiny, minilm):
    """selection="cross-fit": one model per fold, pooled held-out curve, final model trained for the chosen epochs."""
    from sentence_transformers import SentenceTransformer

    from hn_plugins.reranker import folder_fusion

    settings = dict(eval_dataset=None, validation_candidates=None, selection="cross-fit", folds=2, epochs=2)
    first = _train(tiny, tmp_path / "cf-a", "bi", **settings)
    second = _train(tiny, tmp_path / "cf-b", "bi", **settings)
    assert _digest(first.path) == _digest(second.path)  # deterministic for the seed
    cf = first.metrics["cross_fit"]
    assert cf["folds"] == 2 and [c["epochs"] for c in cf["curve"]] == [0, 1, 2]
    assert first.metrics["validation_queries"] == len(tiny["train"].judged_query_ids)  # every query validates
    fused = [c["mrr@10_fused"] for c in cf["curve"]]
    assert cf["best_epochs"] == fused.index(max(fused))  # the best pooled epoch count, earliest on ties
    significant = cf["best_epochs"] > 0 and cf["curve"][cf["best_epochs"]]["p_vs_start"] < cf["alpha"] == 0.05
    assert cf["epochs"] == (
        cf["best_epochs"] if significant else 0
    )  # the default rule: train only if significant
    assert (
        first.fusion is not None and folder_fusion(first.path).weight == cf["curve"][cf["epochs"]]["weight"]
    )
    kept = SentenceTransformer(str(first.path))
    text = ["pressure distribution on a slender body"]
    start, final = (
        minilm.encode(text, normalize_embeddings=True)[0],
        kept.encode(text, normalize_embeddings=True)[0],
    )
    same_as_base = float(start @ final) > 0.999999
    assert same_as_base == (cf["epochs"] == 0)  # 0 epochs keeps the starting model, otherwise it trained
    steps_per_epoch = -(-first.metrics["train_rows"] // 8)
    assert first.metrics["steps"] == cf["epochs"] * steps_per_epoch  # the final run trained on all rows
    # 2 folds x 2 epochs on the other fold's rows (each row in one fold's training part), then the final run
    assert first.metrics["train_examples"] == first.metrics["train_rows"] * (2 + cf["epochs"])
    assert (
        0 < first.metrics["validation_seconds"] < first.metrics["train_seconds"]
    )  # the fold models validated
    assert not list(tmp_path.glob(".cf-a.training*"))  # fold scratch folders are removed


def test_corpus_adaptation_writes_a_bi_reranker_and_repeats_for_a_seed(tmp_path, cranfield_train, minilm):
    """hn bootstrap --kind bi: the titles of 96 Cranfield documents, in-batch negatives, one epoch; twice with one seed."""
    from sentence_transformers import SentenceTransformer

    from hn_plugins.training.bootstrap import make_pseudo_queries
    from hn_plugins.training.corpus_adaptation import adapt_bi_encoder

    corpus = {d: cranfield_train.corpus[d] for d in cranfield_train.doc_ids[:96]}
    settings = dict(batch_size=16, max_length=64, min_pseudo_queries=50, seed=0)
    first = adapt_bi_encoder(corpus, "all-MiniLM-L6-v2", output_dir=tmp_path / "a", **settings)
    second = adapt_bi_encoder(corpus, "all-MiniLM-L6-v2", output_dir=tmp_path / "b", **settings)
    assert _digest(first) == _digest(second)  # same pairs and seed, same weights
    marker = json.loads((first / RERANKER_MARKER).read_text())
    pairs = len(make_pseudo_queries(corpus))  # 95: one of the 96 documents gives none
    assert marker["kind"] == "bi" and marker["metrics"]["pseudo_queries"] == pairs
    assert "check" not in marker["metrics"]  # a bare corpus has no judged query to check on
    assert marker["metrics"]["steps"] == -(-pairs // 16) and marker["adaptation"]["batch_size"] == 16
    assert "hn bootstrap --kind bi" in (first / "README.md").read_text()
    texts = ["pressure distribution on a swept wing", corpus[cranfield_train.doc_ids[0]][1]]
    adapted = SentenceTransformer(str(first)).encode(texts, normalize_embeddings=True)
    untuned = minilm.encode(texts, normalize_embeddings=True)
    assert abs(adapted - untuned).max() > 1e-3  # it trained
    reranker = load_reranker(first)
    assert reranker.kind == "bi"
    assert reranker.score(texts[0], texts[1:]) == pytest.approx([adapted[0] @ adapted[1]], abs=1e-5)


def test_corpus_adaptation_with_mined_negatives_trains_on_them(
    tmp_path, cranfield_train, minilm, static_model
):
    """negatives="mined": one hard negative per pseudo-query joins the batch; the marker says which selectors gave them."""
    from hn_plugins.embedders import EmbedderEnsemble
    from hn_plugins.training.bootstrap import make_pseudo_queries
    from hn_plugins.training.corpus_adaptation import adapt_bi_encoder
    from hn_plugins.training.pseudo_negatives import mine_pseudo_query_negatives

    corpus = {d: cranfield_train.corpus[d] for d in cranfield_train.doc_ids[:96]}
    settings = dict(batch_size=16, max_length=64, min_pseudo_queries=50, seed=0)
    models = [minilm, static_model]
    mined = adapt_bi_encoder(
        corpus,
        "all-MiniLM-L6-v2",
        output_dir=tmp_path / "m",
        negatives="mined",
        mining_models=models,
        **settings,
    )
    plain = adapt_bi_encoder(corpus, "all-MiniLM-L6-v2", output_dir=tmp_path / "p", **settings)
    marker = json.loads((mined / RERANKER_MARKER).read_text())
    pairs = make_pseudo_queries(corpus)
    expected = mine_pseudo_query_negatives(corpus, pairs, models=models).counts()
    assert marker["metrics"]["mined_negatives"] == expected
    assert sum(expected.values()) == len(pairs) == marker["metrics"]["pseudo_queries"]
    assert marker["hyperparameters"]["negatives"] == "mined" and "mined hard negative" in marker["loss"]
    assert json.loads((plain / RERANKER_MARKER).read_text())["hyperparameters"]["negatives"] == "in-batch"
    assert "hard negative mined by" in (mined / "README.md").read_text()
    assert not list(tmp_path.glob(".m.*"))  # the temporary embedding cache went with the work folder
    assert marker["hyperparameters"]["mining_models"] == EmbedderEnsemble(models).names
    # the same pseudo-queries, steps and seed: only the extra negatives make the two models differ
    assert marker["metrics"]["steps"] == -(-len(pairs) // 16)
    assert _digest(mined) != _digest(plain)


def test_corpus_adaptation_checks_both_models_on_the_judged_queries(tmp_path, cranfield_train, capsys):
    """With judged queries the marker holds both models' MRR@10, equal to what hn eval measures independently."""
    from hn_evaluation.model_evaluation import evaluate_model
    from hn_plugins.cli import main
    from hn_plugins.data import RetrievalDataset
    from hn_plugins.training.corpus_adaptation import adapt_bi_encoder

    qids = cranfield_train.judged_query_ids[:12]
    keep = set(cranfield_train.doc_ids[:120]) | {d for q in qids for d in cranfield_train.positives(q)}
    data = RetrievalDataset(
        corpus={d: cranfield_train.corpus[d] for d in cranfield_train.doc_ids if d in keep},
        queries={q: cranfield_train.queries[q] for q in qids},
        qrels={q: dict(cranfield_train.qrels[q]) for q in qids},
        name="cranfield-slice",
    )
    folder = adapt_bi_encoder(
        data, "all-MiniLM-L6-v2", output_dir=tmp_path / "a", batch_size=16, max_length=64, check_top_k=20
    )
    check = json.loads((folder / RERANKER_MARKER).read_text())["metrics"]["check"]
    assert check["queries"] == 12 and check["top_k"] == 20 and check["first_stage"] == "bm25"
    for name, spec in (("untuned", "zero-shot:all-MiniLM-L6-v2"), ("adapted", f"zero-shot:{folder}")):
        rows = evaluate_model(data, spec, top_k=20, max_length=64)["rows"]
        assert check[f"{name}_mrr@10"] == pytest.approx(rows["reranker"]["mrr@10"], abs=1e-9)
        assert check["first_stage_mrr@10"] == pytest.approx(rows["bm25"]["mrr@10"], abs=1e-9)
        # the fused weight is chosen on these queries from a grid holding 0 (BM25) and 1 (the model alone)
        assert (
            check[f"{name}_mrr@10_fused"] >= max(check[f"{name}_mrr@10"], check["first_stage_mrr@10"]) - 1e-12
        )
    assert check["adapted_is_better"] == (check["adapted_mrr@10_fused"] > check["untuned_mrr@10_fused"])

    # hn bootstrap --kind bi on the same slice as a BEIR folder: the same check, printed with its advice
    beir = tmp_path / "beir"
    (beir / "qrels").mkdir(parents=True)
    (beir / "corpus.jsonl").write_text(
        "".join(json.dumps({"_id": d, "title": t, "text": x}) + "\n" for d, (t, x) in data.corpus.items())
    )
    (beir / "queries.jsonl").write_text(
        "".join(json.dumps({"_id": q, "text": t}) + "\n" for q, t in data.queries.items())
    )
    (beir / "qrels" / "train.tsv").write_text(
        "query-id\tcorpus-id\tscore\n"
        + "".join(f"{q}\t{d}\t{g}\n" for q, j in data.qrels.items() for d, g in j.items())
    )
    out, report = tmp_path / "cli", tmp_path / "cli.json"
    argv = ["bootstrap", str(beir), "--kind", "bi", "--out", str(out), "--json", str(report)]
    argv += ["--batch-size", "16", "--max-length", "64", "--check-top-k", "20"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "train_runtime" not in printed  # no raw trainer log dict on stdout
    cli_check = json.loads(report.read_text())["metrics"]["check"]
    assert cli_check == check  # same data, seed and settings: the same weights and the same check
    assert f"{'adapted':<22}{check['adapted_mrr@10']:8.4f}{check['adapted_mrr@10_fused']:17.4f}" in printed
    advice = f"--base-model {out}" if check["adapted_is_better"] else "--base-model all-MiniLM-L6-v2"
    assert advice in printed
