"""benchmarks/learning_curve.py on the exported demo set: one merged report per train size, then the table."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from hn_plugins.demo_data import export_demo_dataset

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "learning_curve.py"


@pytest.fixture(scope="module")
def benchmark_script():
    def load(name: str):
        spec = importlib.util.spec_from_file_location(name, SCRIPT.parent / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load


@pytest.fixture(scope="module")
def curve_run(tmp_path_factory, benchmark_script):
    module = benchmark_script("learning_curve")
    root = tmp_path_factory.mktemp("curve")
    data = export_demo_dataset(root / "demo")
    out = root / "out"
    module.main(["run", str(data), str(out), "--sizes", "8,16,all", "--seeds", "0,1", "--strategies",
                 "none"])  # fmt: skip
    return module, data, out


def test_one_merged_report_per_size_with_both_seeds(curve_run):
    _, data, out = curve_run
    for name in (f"benchmark_{data.name}@train8", f"benchmark_{data.name}@train16", f"benchmark_{data.name}"):
        report = json.loads((out / name / "report.json").read_text())
        assert report["config"]["seeds"] == [0, 1]
        assert set(report["rows"]) == {"none"}


def test_assemble_reads_every_size_in_order(curve_run, capsys):
    module, data, out = curve_run
    result = module.assemble(out, data.name, ["default", "none"])
    sizes = [p["train_size"] for p in result["points"]]
    whole = json.loads((out / f"benchmark_{data.name}" / "report.json").read_text())
    assert sizes[:2] == [8, 16] and sizes[2] == module.train_questions(whole) > 16
    for point in result["points"]:
        name = f"benchmark_{data.name}" + ("" if point["whole_split"] else f"@train{point['train_size']}")
        report = json.loads((out / name / "report.json").read_text())
        assert point["rows"]["none"] == report["rows"]["none"]["mrr@10"]
        assert "default" not in point["rows"]  # a row the run did not have is left out, not invented
    assert (out / "learning_curve.png").stat().st_size > 0
    table = (out / "learning_curve.md").read_text()
    assert table.count("\n") == 2 + len(sizes) and "(all)" in table
    assert module.main(["assemble", str(out), "--dataset", data.name]) == 0
    assert "| default | paper | zero-shot+fusion |" in capsys.readouterr().out


def test_assemble_without_reports_names_the_step(tmp_path, benchmark_script):
    module = benchmark_script("learning_curve")
    with pytest.raises(FileNotFoundError, match=r"learning_curve\.py run"):
        module.assemble(tmp_path, "scifact", ["default"])


def test_seeds_run_later_or_elsewhere_join_the_merged_report(tmp_path, benchmark_script):
    module = benchmark_script("learning_curve")
    data = export_demo_dataset(tmp_path / "demo")
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    name = f"benchmark_{data.name}@train8"
    module.main(["run", str(data), str(out), "--sizes", "8", "--seeds", "0", "--strategies", "none"])
    assert json.loads((out / name / "report.json").read_text())["config"]["seeds"] == [0]
    # a second run with another seed into the same OUT merges both
    module.main(["run", str(data), str(out), "--sizes", "8", "--seeds", "1", "--strategies", "none"])
    both = json.loads((out / name / "report.json").read_text())
    assert both["config"]["seeds"] == [0, 1]
    # a seed run on another machine: its seed folder is copied in, then `merge` re-merges
    module.main(["run", str(data), str(elsewhere), "--sizes", "8", "--seeds", "2", "--strategies", "none"])
    (out / "runs" / name / "seed2").mkdir()
    (out / "runs" / name / "seed2" / "report.json").write_bytes(
        (elsewhere / "runs" / name / "seed2" / "report.json").read_bytes()
    )
    assert module.main(["merge", str(out)]) == 0
    three = json.loads((out / name / "report.json").read_text())
    assert three["config"]["seeds"] == [0, 1, 2]
    # the merged mean is the mean of the three seeds' own values
    per_seed = [
        json.loads((out / "runs" / name / f"seed{s}" / "report.json").read_text())["rows"]["none"]["mrr@10"][
            "mean"
        ]
        for s in range(3)
    ]
    assert three["rows"]["none"]["mrr@10"]["mean"] == pytest.approx(sum(per_seed) / 3)


def test_merge_without_seed_reports_names_the_step(tmp_path, benchmark_script):
    module = benchmark_script("learning_curve")
    with pytest.raises(FileNotFoundError, match="run"):
        module.main(["merge", str(tmp_path)])
    (tmp_path / "runs" / "benchmark_x@train8").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match=r"No seed report under .*learning_curve\.py run"):
        module.main(["merge", str(tmp_path)])


@pytest.mark.slow  # trains the paper row twice
def test_one_cache_serves_every_size(tmp_path, benchmark_script):
    module = benchmark_script("learning_curve")
    data = export_demo_dataset(tmp_path / "demo")
    out, cache = tmp_path / "out", tmp_path / "cache"
    module.main(["run", str(data), str(out), "--sizes", "8,16", "--seeds", "0", "--strategies", "paper",
                 "--epochs", "1", "--max-length", "32", "--cache", str(cache)])  # fmt: skip
    shards = sorted(p.relative_to(cache) for p in cache.rglob("*.npz"))
    assert shards  # the mining ensemble's document vectors went to the shared cache ...
    assert not list((out / "runs").rglob("cache"))  # ... and no run made its own
    for size in (8, 16):
        assert json.loads((out / f"benchmark_{data.name}@train{size}" / "report.json").read_text())["rows"][
            "paper"
        ]


def test_merge_rows_in_common_joins_seeds_that_ran_different_strategies(tmp_path, benchmark_script):
    from hn_evaluation import EvaluationError

    module = benchmark_script("learning_curve")
    data = export_demo_dataset(tmp_path / "demo")
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    name = f"benchmark_{data.name}@train8"
    module.main(
        ["run", str(data), str(out), "--sizes", "8", "--seeds", "0", "--strategies", "none,zero-shot"]
    )
    module.main(["run", str(data), str(elsewhere), "--sizes", "8", "--seeds", "1", "--strategies", "none"])
    (out / "runs" / name / "seed1").mkdir()
    seed1 = json.loads((elsewhere / "runs" / name / "seed1" / "report.json").read_text())
    (out / "runs" / name / "seed1" / "report.json").write_text(json.dumps(seed1))
    with pytest.raises(EvaluationError, match=r"\['control_rows', 'strategies'\].*--rows-in-common"):
        module.main(["merge", str(out)])
    assert module.main(["merge", str(out), "--rows-in-common"]) == 0
    merged = json.loads((out / name / "report.json").read_text())
    seed0 = json.loads((out / "runs" / name / "seed0" / "report.json").read_text())
    assert merged["config"]["seeds"] == [0, 1] and merged["config"]["strategies"] == ["none"]
    assert set(merged["rows"]) == {"none"} and merged["config"]["control_rows"] == []
    both = [r["rows"]["none"]["mrr@10"]["mean"] for r in (seed0, seed1)]
    assert merged["rows"]["none"]["mrr@10"]["mean"] == pytest.approx(sum(both) / 2)
    from hn_evaluation import merge_benchmark_reports

    nothing_shared = {**seed1, "config": {**seed1["config"], "seeds": [2]}, "rows": {}}
    with pytest.raises(EvaluationError, match="no row in common"):
        merge_benchmark_reports([seed0, nothing_shared], tmp_path / "none", rows_in_common=True)


def test_assemble_reads_rows_a_size_lacks_from_an_extra_run(curve_run, tmp_path):
    module, data, out = curve_run
    extra = tmp_path / "extra"
    module.main(["run", str(data), str(extra), "--sizes", "8", "--seeds", "0", "--strategies", "zero-shot"])
    result = module.assemble(out, data.name, ["none", "zero-shot"], [extra])
    from_extra = json.loads((extra / f"benchmark_{data.name}@train8" / "report.json").read_text())
    first, *rest = result["points"]
    assert first["rows"]["zero-shot"] == from_extra["rows"]["zero-shot"]["mrr@10"]
    assert first["row_seeds"] == {"none": 2, "zero-shot": 1} and first["seeds"] == 2
    assert all("zero-shot" not in p["rows"] for p in rest)  # the extra run has size 8 only
    table = (out / "learning_curve.md").read_text().splitlines()
    assert table[2].endswith("(1 seed) | - |") and table[3].endswith("| - | - |")

    # an extra run with other settings is refused, naming them
    bad = tmp_path / "bad" / f"benchmark_{data.name}@train8"
    bad.mkdir(parents=True)
    (bad / "report.json").write_text(
        json.dumps({**from_extra, "config": {**from_extra["config"], "epochs": 9}})
    )
    with pytest.raises(ValueError, match=r"train size 8 ran with other settings \['epochs'\]"):
        module.assemble(out, data.name, ["none", "zero-shot"], [bad.parent])
