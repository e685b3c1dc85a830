"""A model registry serves only its own versions, never loses one, and says which file is wrong and how to repair it."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest

from hn_plugins.cli import main
from hn_plugins.registry import (
    ENTRY_FILE,
    ModelRegistry,
    RegistryError,
    read_index,
    resolve_current_version,
)
from hn_plugins.reranker import RERANKER_MARKER, RerankerLoadError, load_reranker
from hn_plugins.retrain import RetrainingJob, RetrainingResult


@pytest.fixture(scope="module")
def static_folder(static_model, tmp_path_factory) -> Path:
    """The real static model saved as a bi-encoder reranker folder (7 MB: cheap to copy into registries)."""
    folder = tmp_path_factory.mktemp("static") / "reranker"
    static_model.save(str(folder))
    (folder / RERANKER_MARKER).write_text(json.dumps({"kind": "bi"}), encoding="utf-8")
    return folder


@pytest.fixture
def registry(static_folder, tmp_path) -> ModelRegistry:
    """A registry at tmp/a/b/registry with v0001 current, and another reranker folder at tmp/outside."""
    registry = ModelRegistry(tmp_path / "a" / "b" / "registry")
    registry.register(static_folder, metrics={"mrr@10": 0.5}, promote=True)
    shutil.copytree(static_folder, tmp_path / "outside")
    return registry


def _set_index(registry: ModelRegistry, **fields) -> Path:
    marker = registry.root / "registry.json"
    state = json.loads(marker.read_text())
    state.update(fields)
    marker.write_text(json.dumps(state))
    return marker


@pytest.mark.parametrize(
    "current",
    ["../../../../outside", "ABSOLUTE", "v0009", "v0001/../../../../../outside", ".", ".."],
)
def test_a_current_version_not_listed_in_the_registry_is_refused(registry, tmp_path, current):
    if current == "ABSOLUTE":
        current = str(tmp_path / "outside")
    (registry.root / "versions" / "v0009").mkdir()  # a folder on disk that the index does not list
    marker = _set_index(registry, current=current)
    with pytest.raises(RerankerLoadError) as refused:
        load_reranker(registry.root)
    assert str(marker) in str(refused.value) and repr(current) in str(refused.value)
    assert "not listed under 'versions'" in str(refused.value)


@pytest.mark.parametrize("current", ["../../../../outside", "ABSOLUTE"])
def test_a_listed_version_whose_name_leads_out_of_the_registry_is_refused(registry, tmp_path, current):
    if current == "ABSOLUTE":
        current = str(tmp_path / "outside")
    state = read_index(registry.root)
    marker = _set_index(registry, current=current, versions={**state["versions"], current: {}})
    with pytest.raises(RerankerLoadError) as refused:
        load_reranker(registry.root)
    assert str(marker) in str(refused.value) and repr(current) in str(refused.value)
    assert "is not a folder name inside" in str(refused.value)
    with pytest.raises(RegistryError, match="is not a folder name inside"):
        registry.path(current)


def test_a_version_folder_that_links_out_of_the_registry_is_refused(registry, tmp_path):
    (registry.root / "versions" / "v0002").symlink_to(tmp_path / "outside", target_is_directory=True)
    _set_index(registry, current="v0002", versions={**registry.versions, "v0002": {}})
    with pytest.raises(RerankerLoadError, match=r"'current' 'v0002' leads to .*outside.*a symbolic link"):
        load_reranker(registry.root)


def test_hn_eval_refuses_a_registry_pointing_outside_itself(registry, tmp_path, shared_data, capsys):
    marker = _set_index(registry, current="../../../../outside")
    code = main(["eval", str(shared_data / "medline"), "--model", str(registry.root), "--top-k", "5"])
    assert code == 2
    err = capsys.readouterr().err
    assert str(marker) in err and "'../../../../outside'" in err


def test_the_listed_current_version_still_loads_and_scores(registry, static_folder):
    assert resolve_current_version(registry.root) == registry.root / "versions" / "v0001"
    docs = ["A wing in supersonic flow.", "Heat transfer in a boundary layer."]
    np.testing.assert_allclose(
        load_reranker(registry.root).score("supersonic wing", docs),
        load_reranker(static_folder).score("supersonic wing", docs),
        atol=1e-6,
    )


def test_a_missing_index_is_refused_with_the_repair_command_and_nothing_changes(registry):
    (registry.root / "registry.json").unlink()
    before = sorted(p.name for p in registry.root.rglob("*"))
    with pytest.raises(RegistryError) as refused:
        ModelRegistry(registry.root)
    message = str(refused.value)
    assert str(registry.root / "registry.json") in message and "is missing" in message
    assert (
        f"hn registry repair {registry.root}" in message
        and "--current VERSION" in message
        and "v0001" in message
    )
    assert (
        sorted(p.name for p in registry.root.rglob("*")) == before
    )  # no empty index written over the versions


def _retrain_medline(registry, shared_data) -> list[str]:
    """``hn retrain`` on medline into ``registry`` with the static model (the cheapest real run)."""
    return [
        "retrain",
        str(shared_data / "medline"),
        "--registry",
        str(registry.root),
        "--models",
        "static-model",
    ]


def test_hn_retrain_on_a_registry_without_its_index_stops_before_any_work(registry, shared_data, capsys):
    (registry.root / "registry.json").unlink()
    code = main(_retrain_medline(registry, shared_data))
    assert code == 2
    err = capsys.readouterr().err
    assert "registry.json is missing" in err and "hn registry repair" in err
    assert not (registry.root / "embedding-cache").exists()  # nothing was mined
    assert sorted(p.name for p in (registry.root / "versions").iterdir()) == ["v0001"]


def test_hn_retrain_names_a_truncated_index(registry, shared_data, capsys):
    marker = registry.root / "registry.json"
    marker.write_text(marker.read_text()[:40])
    code = main(_retrain_medline(registry, shared_data))
    assert code == 2
    err = capsys.readouterr().err
    assert f"{marker} is not valid JSON" in err and "truncated?" in err and "hn registry repair" in err
    assert not (registry.root / "embedding-cache").exists()


def test_new_version_names_skip_folders_already_on_disk(registry, static_folder, caplog):
    stray = registry.root / "versions" / "v0002"  # e.g. copied in by hand, or left by an older hn-plugins
    shutil.copytree(static_folder, stray)
    (stray / "marker.txt").write_text("keep me")
    with caplog.at_level(logging.WARNING, logger="hn_plugins.registry"):
        version = registry.register(static_folder, metrics={"mrr@10": 0.7}, promote=True)
    assert version == "v0003" and registry.current == "v0003"
    assert (stray / "marker.txt").read_text() == "keep me"
    assert "v0002" not in registry.versions and "is left as is" in caplog.text
    assert not [p for p in (registry.root / "versions").iterdir() if p.name.endswith(".tmp")]


def test_repair_rebuilds_a_lost_index_from_the_version_folders(registry, static_folder):
    registry.register(static_folder, metrics={"mrr@10": 0.6}, retrain={"fingerprint": "abc"})
    (registry.root / "registry.json").unlink()
    repaired = ModelRegistry.repair(registry.root)
    assert list(repaired.versions) == ["v0001", "v0002"] and repaired.current is None
    assert repaired.versions["v0002"]["metrics"] == {"mrr@10": 0.6}
    assert repaired.versions["v0002"]["retrain"] == {"fingerprint": "abc"}  # from its hn_registry_entry.json
    repaired = ModelRegistry.repair(registry.root, current="v0002")
    assert repaired.current == "v0002" and load_reranker(registry.root).kind == "bi"


def test_hn_registry_repair_keeps_a_damaged_index_beside_the_rebuilt_one(registry, capsys):
    marker = registry.root / "registry.json"
    marker.write_text('{"current": "v00')
    assert main(["registry", "repair", str(registry.root), "--current", "v0001"]) == 0
    out = capsys.readouterr().out
    assert "v0001" in out and "*" in out
    damaged = list(registry.root.glob("registry.json.damaged-*"))
    assert len(damaged) == 1 and damaged[0].read_text() == '{"current": "v00'
    assert ModelRegistry(registry.root).current == "v0001"


def test_hn_registry_promote_and_rollback(registry, static_folder, capsys):
    registry.register(static_folder)
    assert main(["registry", "promote", str(registry.root), "v0002"]) == 0
    assert registry.current == "v0002"
    assert main(["registry", "rollback", str(registry.root)]) == 0
    assert registry.current == "v0001"
    assert main(["registry", "rollback", str(registry.root)]) == 2
    assert "no earlier promoted version" in capsys.readouterr().err
    assert main(["registry", "list", str(registry.root.parent / "nothing")]) == 2
    assert "is not a model registry" in capsys.readouterr().err
    assert not (registry.root.parent / "nothing").exists()


def test_each_version_folder_carries_its_own_index_entry(registry):
    record = json.loads((registry.path("v0001") / ENTRY_FILE).read_text())
    assert record["version"] == "v0001" and record["promote"] is True
    assert record["entry"] == registry.versions["v0001"]


def test_the_summary_before_any_promotion_says_no_version_is_current():
    result = RetrainingResult(
        "kept", "v0001", None, baseline="zero-shot:x", candidate_mrr10=0.1, baseline_mrr10=0.2, p_value=0.5
    )
    summary = result.format_summary()
    assert "None" not in summary and "registered v0001, not promoted; no version is current yet" in summary


def test_retraining_job_reads_the_registry_it_is_given(registry):
    assert RetrainingJob(registry.root).registry.current == "v0001"


@pytest.fixture(scope="module")
def exported_cross(tmp_path_factory) -> Path:
    """A MiniLM cross-encoder folder with an fp32 ONNX export (its head is untrained: only loading is tested)."""
    pytest.importorskip("onnxruntime")
    from sentence_transformers import CrossEncoder

    from hn_plugins.models import resolve_model_path
    from hn_plugins.onnx_backend import export_onnx

    folder = tmp_path_factory.mktemp("cross") / "model"
    CrossEncoder(resolve_model_path("all-MiniLM-L6-v2"), num_labels=1, max_length=64).save_pretrained(
        str(folder)
    )
    export_onnx(folder, int8=False)
    return folder


@pytest.mark.parametrize("entry", ["../../outside/model.onnx", "ABSOLUTE", "onnx/../config.json"])
def test_an_onnx_export_listing_a_file_outside_its_folder_is_refused(exported_cross, tmp_path, entry):
    folder = tmp_path / "model"
    shutil.copytree(exported_cross, folder)
    (tmp_path / "outside").mkdir()
    shutil.copy(folder / "onnx" / "model.onnx", tmp_path / "outside" / "model.onnx")  # a loadable model
    if entry == "ABSOLUTE":
        entry = str(tmp_path / "outside" / "model.onnx")
    marker = folder / "onnx" / "export.json"
    info = json.loads(marker.read_text())
    info["files"]["fp32"] = entry
    marker.write_text(json.dumps(info))
    with pytest.raises(RerankerLoadError) as refused:
        load_reranker(folder, backend="onnx")
    assert str(marker) in str(refused.value) and repr(entry) in str(refused.value)
    assert "outside" in str(refused.value) and f"hn export-onnx {folder}" in str(refused.value)
    info["files"]["fp32"] = "onnx/model.onnx"
    marker.write_text(json.dumps(info))
    assert load_reranker(folder, backend="onnx").score("q", ["a", "b"]).shape == (2,)


def test_a_follower_keeps_serving_the_loaded_version_when_a_new_one_fails_to_load(
    registry, static_folder, caplog
):
    from hn_plugins.registry_follower import RegistryFollower

    follower = RegistryFollower(registry.root, load_reranker)
    served = follower.get()
    assert (
        follower.version == "v0001" and follower.loads == 1 and follower.get() is served
    )  # no reload per call
    broken = registry.root.parent / "broken"
    broken.mkdir()
    (broken / RERANKER_MARKER).write_text(json.dumps({"kind": "bi"}))  # no weights: it cannot load
    registry.register(broken, promote=True)
    with caplog.at_level(logging.ERROR, logger="hn_plugins.registry_follower"):
        assert follower.get() is served and follower.get() is served
    assert caplog.text.count("cannot load version v0002") == 1 and "still serving v0001" in caplog.text
    registry.register(static_folder, promote=True)
    assert follower.get() is not served and follower.version == "v0003" and follower.loads == 2
    (registry.root / "registry.json").write_text("{")
    with caplog.at_level(logging.ERROR, logger="hn_plugins.registry_follower"):
        assert follower.get() is follower.loaded  # an unreadable index: the loaded version goes on
    assert "cannot read the registry" in caplog.text
