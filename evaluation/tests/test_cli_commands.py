"""hn-evaluation's ``hn`` sub-commands reach ``hn`` through the entry-point group ``hn_plugins.cli`` of the installed
distribution, and listing them stays light (no numpy, no evaluation code imported)."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import entry_points

import pytest

from hn_plugins.cli import build_parser


def test_the_installed_distribution_declares_eval_and_benchmark():
    declared = {ep.name: ep.value for ep in entry_points(group="hn_plugins.cli")}
    assert declared["eval"] == "hn_evaluation.cli.eval_cmd:register"
    assert declared["benchmark"] == "hn_evaluation.cli.benchmark_cmd:register"


def test_hn_help_lists_eval_and_benchmark(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--help"])
    out = capsys.readouterr().out
    assert "\n    eval " in out and "evaluate a reranker: first stage alone, then reranked" in out
    assert "\n    benchmark " in out and "mine with each negative strategy" in out
    assert "needs hn-evaluation" not in out
    from hn_evaluation.cli import benchmark_cmd, eval_cmd

    assert build_parser().parse_args(["eval", "d", "--model", "m"]).func is eval_cmd.run
    assert build_parser().parse_args(["benchmark", "d", "--out", "o"]).func is benchmark_cmd.run


def test_listing_the_commands_imports_no_evaluation_code():
    probe = (
        "import sys; from hn_plugins.cli import build_parser; build_parser(); "
        "print(sorted(m for m in sys.modules if m == 'numpy' or m.startswith('hn_evaluation.benchmark')))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]", done.stdout
