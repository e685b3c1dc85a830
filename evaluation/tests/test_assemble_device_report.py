"""tools/assemble_device_report.py: rows of a report plus rows logged by an earlier run, one quality bar."""

import json
import statistics
from pathlib import Path

import pytest


@pytest.fixture
def script(repo_script):
    return repo_script("tools.assemble_device_report")


def _metrics(mrr10: float) -> dict[str, float]:
    return {"mrr@3": mrr10 - 0.01, "mrr@10": mrr10}


def _report(folder: Path, rows: dict[str, list[float]]) -> None:
    """A merged report as run_benchmark writes it, reduced to what the script reads."""
    folder.mkdir(parents=True)
    report = {
        "dataset": "toy",
        "config": {"seeds": [0, 1], "control_rows": []},
        "metrics": ["mrr@3", "mrr@10"],
        "rows": {
            name: {
                m: {"mean": sum(_metrics(v)[m] for v in values) / 2, "std": 0.0} for m in ("mrr@3", "mrr@10")
            }
            for name, values in rows.items()
        },
        "strategies": {
            name: {"per_seed": [{"seed": i, "metrics": _metrics(v)} for i, v in enumerate(values)]}
            for name, values in rows.items()
        },
    }
    (folder / "report.json").write_text(json.dumps(report), encoding="utf-8")


def _log(
    folder: Path, name: str, lines: dict[str, float], seed: int, logger: str = "hn_evaluation.benchmark"
) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    text = "".join(
        f"2026-11-26 04:40:10,454 {logger} {row} seed {seed}: {_metrics(v)!r}\n" for row, v in lines.items()
    )
    # a line of another seed inside the log is not this process's result
    text += f"2026-11-26 04:40:11,000 hn_evaluation.benchmark paper seed {seed + 7}: {_metrics(0.99)!r}\n"
    (folder / name).write_text(text, encoding="utf-8")


def test_rows_from_logs_join_the_report_and_the_bar_counts_them(tmp_path, script):
    _report(tmp_path / "new", {"none": [0.5, 0.5], "zero-shot": [0.6, 0.6], "default": [0.7, 0.72]})
    _log(tmp_path / "logs", "run1_toy-seed0.log", {"none": 0.5, "paper": 0.68, "paper+fusion": 0.69}, 0)
    _log(tmp_path / "logs", "run2_toy-seed1.log", {"none": 0.5, "paper": 0.72, "paper+fusion": 0.71}, 1)
    out = script.assemble(tmp_path / "new", tmp_path / "logs", "toy", tmp_path / "out")
    assert out["rows"]["paper"]["mrr@10"]["mean"] == pytest.approx(0.70)
    assert out["rows"]["paper"]["mrr@10"]["std"] == pytest.approx(
        statistics.stdev([0.68, 0.72])
    )  # as aggregate_seeds
    assert out["rows_from_logs"]["rows"]["paper"]["seeds"] == [0, 1]
    bar = out["quality_bar"]
    assert bar["best_other"] == "paper"  # paper+fusion is a control, not another strategy
    assert bar["best_fused_control"] == "paper+fusion"
    assert bar["lift_over_best_other"] == pytest.approx(0.71 / 0.70 - 1)
    # +18% over zero-shot passes, +1.4% over the logged paper row does not
    assert bar["lift_over_start"] == pytest.approx(0.71 / 0.6 - 1)
    assert bar["met"] is False
    saved = json.loads((tmp_path / "out" / "report.json").read_text(encoding="utf-8"))
    assert set(saved["rows"]) == {"none", "zero-shot", "default", "paper", "paper+fusion"}
    assert "paper+fusion" in (tmp_path / "out" / "report.md").read_text(encoding="utf-8")


def test_a_row_that_differs_between_the_runs_stops_the_assembly(tmp_path, script):
    _report(tmp_path / "new", {"none": [0.5, 0.5], "default": [0.7, 0.7]})
    _log(tmp_path / "logs", "run1_toy-seed0.log", {"none": 0.4, "paper": 0.62}, 0)
    with pytest.raises(SystemExit, match="none seed 0 mrr"):
        script.assemble(tmp_path / "new", tmp_path / "logs", "toy", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_rows_from_several_log_folders_are_joined_and_must_agree(tmp_path, script):
    _report(tmp_path / "new", {"none": [0.5, 0.5], "default": [0.7, 0.7]})
    # run 1 logged random on both seeds and st on seed 1 only; run 2 logged st on both seeds
    _log(tmp_path / "run1", "run1_toy-seed0.log", {"none": 0.5, "random": 0.60}, 0)
    _log(tmp_path / "run1", "run1_toy-seed1.log", {"none": 0.5, "random": 0.62, "st": 0.66}, 1)
    _log(tmp_path / "run2", "run2_toy-seed0.log", {"none": 0.5, "st": 0.64}, 0)
    _log(tmp_path / "run2", "run2_toy-seed1.log", {"none": 0.5, "st": 0.66}, 1)
    out = script.assemble(tmp_path / "new", [tmp_path / "run1", tmp_path / "run2"], "toy", tmp_path / "out")
    assert out["rows"]["random"]["mrr@10"]["mean"] == pytest.approx(0.61)
    assert out["rows"]["st"]["mrr@10"]["mean"] == pytest.approx(0.65)
    assert out["rows_from_logs"]["rows"]["st"]["seeds"] == [0, 1]
    assert len(out["rows_from_logs"]["logs"]) == 4
    # the same row and seed with another value in a second run stops the assembly
    _log(tmp_path / "run3", "run3_toy-seed1.log", {"none": 0.5, "st": 0.61}, 1)
    with pytest.raises(SystemExit, match="st seed 1"):
        script.assemble(tmp_path / "new", [tmp_path / "run1", tmp_path / "run3"], "toy", tmp_path / "out2")
    assert not (tmp_path / "out2").exists()


def test_rows_logged_by_the_benchmark_package_are_read_too(tmp_path, repo_script):
    """Logs of ``hn_evaluation.benchmark`` as a module, and of its ``.results`` module once it is a package."""
    logs = repo_script("tools.summarize_device_logs")
    _log(tmp_path, "run1_toy-seed0.log", {"paper": 0.68}, 0)
    _log(tmp_path, "run2_toy-seed1.log", {"paper": 0.72}, 1, logger="hn_evaluation.benchmark.results")
    _log(tmp_path, "run2_toy-seed2.log", {"paper": 0.5}, 2, logger="hn_evaluation.benchmark.runner")
    rows = logs.logged_rows(tmp_path)
    assert {seed: m["mrr@10"] for seed, m in rows["toy"]["paper"].items()} == {0: 0.68, 1: 0.72}
