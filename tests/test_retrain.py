"""``RetrainingJob`` / ``hn retrain``: fingerprints, refusals, and (slow) the whole loop on real medline data."""

from __future__ import annotations

import json
import shutil

import pytest

from hn_plugins.cli import main
from hn_plugins.data import DatasetError, RetrievalDataset, load_beir
from hn_plugins.registry import ModelRegistry
from hn_plugins.retrain import RetrainingError, RetrainingJob, data_fingerprint, registry_lock


@pytest.fixture(scope="module")
def medline(shared_data):
    return load_beir(shared_data / "medline", split="train"), load_beir(shared_data / "medline", split="test")


def _edited(dataset: RetrievalDataset, doc_ids: list[str], suffix: str) -> RetrievalDataset:
    corpus = dict(dataset.corpus)
    for doc_id in doc_ids:
        title, text = corpus[doc_id]
        corpus[doc_id] = (title, f"{text} {suffix}")
    return dataset.with_corpus(corpus)


def test_fingerprint_follows_documents_questions_judgments_and_settings(medline, tmp_path):
    train, test = medline
    base = data_fingerprint(train, test)
    assert data_fingerprint(train, test) == base
    assert data_fingerprint(_edited(train, [train.doc_ids[0]], "revised"), test) != base
    fewer = train.subset(train.judged_query_ids[1:])
    assert data_fingerprint(fewer, test) != base
    job, other_seed = (RetrainingJob(tmp_path / "registry", seed=seed) for seed in (0, 1))
    assert job.fingerprint(train, test) == job.fingerprint(train, test)
    assert job.fingerprint(train, test) != other_seed.fingerprint(train, test)
    # the engine that embeds for mining shapes the negatives (int8 may pick others), so it is a setting too
    torch_job, int8_job = (RetrainingJob(tmp_path / "registry", engine=e) for e in ("torch", "onnx-int8"))
    assert torch_job.settings()["engine"] == "torch" and int8_job.settings()["engine"] == "onnx-int8"
    assert torch_job.fingerprint(train, test) != int8_job.fingerprint(train, test)
    # so is the rule that chooses the fusion weight
    best_job = RetrainingJob(tmp_path / "registry", fusion_rule="best")
    assert job.settings()["fusion_rule"] == "one-se" and best_job.settings()["fusion_rule"] == "best"
    assert best_job.fingerprint(train, test) != job.fingerprint(train, test)
    with pytest.raises(ValueError, match="Unknown fusion rule 'argmax'"):
        RetrainingJob(tmp_path / "registry", fusion_rule="argmax")  # type: ignore[arg-type]
    # hn retrain's defaults are the job's, and --fusion-rule reaches it
    from hn_plugins.cli import build_parser
    from hn_plugins.cli.retrain_cmd import job_from_args

    cli = ["retrain", "d", "--registry", str(tmp_path / "registry")]
    assert job_from_args(build_parser().parse_args(cli)).settings() == job.settings()
    assert (
        job_from_args(build_parser().parse_args([*cli, "--fusion-rule", "best"])).settings()
        == best_job.settings()
    )


def test_refusals_come_before_any_work(medline, tmp_path):
    train, test = medline
    job = RetrainingJob(tmp_path / "registry", mining_models=["static-model"])
    unjudged = RetrievalDataset(test.corpus, test.queries, {}, name="medline:unjudged")
    with pytest.raises(DatasetError, match="no judged query; the promotion check needs judged queries"):
        job.run(train, unjudged)
    with pytest.raises(ValueError, match="evaluation queries are also training queries"):
        job.run(train, train)
    assert ModelRegistry(tmp_path / "registry").versions == {}
    assert not (tmp_path / "registry" / "embedding-cache").exists()  # nothing was embedded
    (tmp_path / "file").write_text("x")
    with pytest.raises(FileNotFoundError, match="is a file"):
        RetrainingJob(tmp_path / "file")
    with pytest.raises(ValueError, match="max_p_value must be in"):
        RetrainingJob(tmp_path / "registry", max_p_value=0.0)
    with pytest.raises(ValueError, match="start_from"):
        RetrainingJob(tmp_path / "registry", start_from="latest")  # type: ignore[arg-type]


def test_unchanged_data_and_settings_compute_nothing(medline, tmp_path):
    train, test = medline
    registry = ModelRegistry(tmp_path / "registry")
    job = RetrainingJob(registry, mining_models=["static-model"])
    model = tmp_path / "model"
    model.mkdir()
    (model / "hn_reranker.json").write_text('{"kind": "bi"}')
    registry.register(model, promote=True, retrain={"fingerprint": job.fingerprint(train, test)})
    result = job.run(train, test)
    assert result.status == "unchanged" and result.version is None and result.current == "v0001"
    assert list(registry.versions) == ["v0001"]
    assert not (tmp_path / "registry" / "embedding-cache").exists()
    assert "Nothing changed" in result.format_summary()


def test_cli_refuses_training_and_evaluating_on_one_split(shared_data, tmp_path, capsys):
    code = main(
        ["retrain", str(shared_data / "medline"), "--registry", str(tmp_path / "r"), "--eval-split", "train"]
    )
    assert code == 2
    assert "must use queries the candidate did not train on" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


@pytest.mark.slow
def test_retrain_loop_embeds_only_changes_and_promotes_only_gains(shared_data, tmp_path, capsys):
    """Three runs on real medline: first candidate, an edited corpus, then nothing new."""
    data = tmp_path / "medline"
    shutil.copytree(shared_data / "medline", data)
    registry_dir = tmp_path / "registry"
    common = ["--registry", str(registry_dir), "--models", "static-model", "--selection", "holdout"]
    common += ["--epochs", "1", "--max-length", "64", "--top-k", "20", "--batch-size", "16"]

    assert main(["retrain", str(data), *common, "--json", str(tmp_path / "r1.json")]) == 0
    first = json.loads((tmp_path / "r1.json").read_text())
    registry = ModelRegistry(registry_dir)
    assert first["version"] == "v0001" and first["baseline"] == "zero-shot:all-MiniLM-L6-v2"
    assert first["documents"]["static-model"] == {"embedded": 1033, "cached": 0}
    promoted = first["candidate_mrr10"] > first["baseline_mrr10"]
    assert first["status"] == ("promoted" if promoted else "kept")
    assert registry.current == ("v0001" if promoted else None)
    # the registered copy is the model that was evaluated: hn eval on it gives the same MRR@10
    eval_json = tmp_path / "eval.json"
    version_dir = str(registry.path("v0001"))
    assert (
        main(
            [
                "eval",
                str(data),
                "--model",
                version_dir,
                "--top-k",
                "20",
                "--max-length",
                "64",
                "--json",
                str(eval_json),
            ]
        )
        == 0
    )
    evaluated = json.loads(eval_json.read_text())["rows"]
    served = evaluated.get("reranker+fusion", evaluated["reranker"])["mrr@10"]
    assert served == pytest.approx(first["candidate_mrr10"], abs=1e-9)

    # five documents change: only they are embedded again; the candidate must beat v0001 by 0.5 to be promoted
    lines = (data / "corpus.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    for record in records[:5]:
        record["text"] += " (revised)"
    (data / "corpus.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    before = registry.current
    assert (
        main(["retrain", str(data), *common, "--min-improvement", "0.5", "--json", str(tmp_path / "r2.json")])
        == 0
    )
    second = json.loads((tmp_path / "r2.json").read_text())
    assert second["documents"]["static-model"] == {"embedded": 5, "cached": 1028}
    assert second["version"] == "v0002" and second["status"] == "kept" and registry.current == before
    assert (registry_dir / "versions" / "v0001" / "hn_reranker.json").is_file()  # nothing lost
    meta = registry.versions["v0002"]["retrain"]
    assert meta["promoted"] is False and meta["min_improvement"] == 0.5
    assert not any(p.name.startswith(".retrain") for p in registry_dir.iterdir())  # no scratch folder left

    # same data, same settings: nothing is computed
    assert main(["retrain", str(data), *common, "--min-improvement", "0.5"]) == 0
    assert "Nothing changed" in capsys.readouterr().out
    assert list(registry.versions) == ["v0001", "v0002"]


def test_cli_missing_data_is_a_clear_error_and_creates_no_registry(tmp_path, capsys):
    code = main(["retrain", str(tmp_path / "no-such-folder"), "--registry", str(tmp_path / "r")])
    assert code == 2
    assert "does not exist" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_cli_qa_json_needs_held_out_pairs(tmp_path, capsys):
    qa = tmp_path / "qa.json"
    qa.write_text(
        json.dumps({"queries": {"q": "what"}, "corpus": {"d": "text"}, "relevant_docs": {"q": ["d"]}})
    )
    assert main(["retrain", str(qa), "--registry", str(tmp_path / "r")]) == 2
    assert "has no splits; give the held-out QA pairs" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


@pytest.mark.slow
def test_retrain_from_llamaindex_qa_json_with_held_out_pairs(shared_data, tmp_path):
    """QA pairs as LlamaIndex writes them: one file to train on, another (same corpus) for the promotion check."""
    for split in ("train", "test"):
        data = load_beir(shared_data / "medline", split=split)
        qa = {
            "queries": {q: data.queries[q] for q in data.judged_query_ids},
            "corpus": {d: data.document_text(d) for d in data.doc_ids},
            "relevant_docs": {q: sorted(data.positives(q)) for q in data.judged_query_ids},
        }
        (tmp_path / f"{split}.json").write_text(json.dumps(qa))
    args = ["retrain", str(tmp_path / "train.json"), "--eval-data", str(tmp_path / "test.json")]
    args += ["--registry", str(tmp_path / "registry"), "--models", "static-model", "--selection", "holdout"]
    args += ["--epochs", "1", "--max-length", "64", "--top-k", "20", "--json", str(tmp_path / "r.json")]
    assert main(args) == 0
    result = json.loads((tmp_path / "r.json").read_text())
    assert result["version"] == "v0001" and result["documents"]["static-model"]["embedded"] == 1033
    meta = ModelRegistry(tmp_path / "registry").versions["v0001"]["retrain"]
    assert meta["train"]["queries"] == 12 and meta["evaluation"]["queries"] == 18  # medline SOURCE.md


def test_a_second_retraining_on_the_same_registry_is_refused(medline, tmp_path):
    train, test = medline
    job = RetrainingJob(tmp_path / "registry", mining_models=["static-model"])
    held = registry_lock(tmp_path / "registry")  # as another process running hn retrain would hold it
    with held, pytest.raises(RetrainingError, match="Another retraining is running"):
        job.run(train, test)
    assert ModelRegistry(tmp_path / "registry").versions == {}
    assert not (tmp_path / "registry" / "embedding-cache").exists()
    with registry_lock(tmp_path / "registry"):  # released after each holder: it can be taken again
        pass
