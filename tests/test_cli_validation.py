"""Every numeric option of every ``hn`` command is checked while the command line is parsed: a value outside its
range stops the command with the allowed range in the message, before any data or model loads."""

from __future__ import annotations

import argparse

import pytest

from hn_plugins.cli import build_parser, main
from hn_plugins.cli.validation import bounded_float, bounded_int, pca_variance
from hn_plugins.retrain import RetrainingJob

# (command line before the option, option, a bad value, a fragment of the allowed range the message must state)
MINE = ["mine", "NO-SUCH-DATA", "--out", "x.jsonl"]
RETRAIN = ["retrain", "NO-SUCH-DATA", "--registry", "r"]
TRAIN = ["train", "t.jsonl", "--data", "NO-SUCH-DATA", "--base-model", "m", "--out", "o"]
BOOTSTRAP = ["bootstrap", "NO-SUCH-DATA", "--out", "o"]
EVAL = ["eval", "NO-SUCH-DATA", "--model", "m"]
BENCHMARK = ["benchmark", "NO-SUCH-DATA", "--out", "o"]
CASES = [
    (MINE, "--variance", "1.5", "in (0, 1), or 0 or 1 to turn PCA off"),
    (MINE, "--variance", "-0.5", "in (0, 1), or 0 or 1 to turn PCA off"),
    (MINE, "--variance", "nan", "in (0, 1)"),
    (MINE, "--num-negatives", "0", ">= 1"),
    (MINE, "--candidates", "0", ">= 1"),
    (MINE, "--seed", "-1", ">= 0"),
    (MINE, "--batch-size", "0", ">= 1"),
    (MINE, "--ray-workers", "0", ">= 1"),
    (MINE, "--verify-margin", "inf", "finite"),
    (RETRAIN, "--variance", "1.5", "in (0, 1), or 0 or 1 to turn PCA off"),
    (RETRAIN, "--variance", "-0.5", "in (0, 1), or 0 or 1 to turn PCA off"),
    (RETRAIN, "--num-negatives", "0", ">= 1"),
    (RETRAIN, "--folds", "1", ">= 2"),
    (RETRAIN, "--selection-alpha", "1.5", "in (0, 1], or 0 (0: no test)"),
    (RETRAIN, "--epochs", "0", ">= 1"),
    (RETRAIN, "--lr", "0", "> 0"),
    (RETRAIN, "--batch-size", "-4", ">= 1"),
    (RETRAIN, "--seed", "-1", ">= 0"),
    (RETRAIN, "--max-length", "0", ">= 1"),
    (RETRAIN, "--top-k", "0", ">= 1"),
    (RETRAIN, "--min-improvement", "2", "in [-1, 1]"),
    (RETRAIN, "--max-p-value", "0", "in (0, 1]"),
    (TRAIN, "--margin", "-0.5", ">= 0"),
    (TRAIN, "--num-negatives", "0", ">= 1"),
    (TRAIN, "--epochs", "0", ">= 1"),
    (TRAIN, "--lr", "-1e-5", "> 0"),
    (TRAIN, "--batch-size", "0", ">= 1"),
    (TRAIN, "--seed", "-3", ">= 0"),
    (TRAIN, "--max-length", "0", ">= 1"),
    (TRAIN, "--validation-fraction", "1", "in (0, 1)"),
    (TRAIN, "--top-k", "0", ">= 1"),
    (TRAIN, "--patience", "0", ">= 1 (or -1"),
    (TRAIN, "--folds", "1", ">= 2"),
    (TRAIN, "--selection-alpha", "-0.05", "in (0, 1], or 0 (0: no test)"),
    (BOOTSTRAP, "--pairs", "0", ">= 1"),
    (BOOTSTRAP, "--epochs", "0", ">= 1"),
    (BOOTSTRAP, "--batch-size", "0", ">= 1"),
    (BOOTSTRAP, "--max-length", "0", ">= 1"),
    (BOOTSTRAP, "--num-layers", "0", ">= 1"),
    (BOOTSTRAP, "--held-out", "0", ">= 1"),
    (BOOTSTRAP, "--min-pseudo-queries", "0", ">= 1"),
    (BOOTSTRAP, "--check-top-k", "-1", ">= 0"),
    (BOOTSTRAP, "--seed", "-1", ">= 0"),
    (["export-onnx", "NO-SUCH-MODEL"], "--opset", "3", "in [7, 20]"),
    (EVAL, "--top-k", "0", ">= 1"),
    (EVAL, "--max-length", "0", ">= 1"),
    (EVAL, "--window-words", "0", ">= 1"),
    (EVAL, "--stride-words", "0", ">= 1"),
    (EVAL, "--prerank-top-k", "0", ">= 1"),
    (EVAL, "--rag-contexts", "0", ">= 1"),
    (EVAL, "--rag-max-queries", "0", ">= 1"),
    (BENCHMARK, "--seeds", "0", ">= 1"),
    (BENCHMARK, "--variance", "1.5", "in (0, 1), or 0 or 1 to turn PCA off"),
    (BENCHMARK, "--num-negatives", "0", ">= 1"),
    (BENCHMARK, "--candidates", "0", ">= 1"),
    (BENCHMARK, "--epochs", "0", ">= 1"),
    (BENCHMARK, "--lr", "0", "> 0"),
    (BENCHMARK, "--train-batch-size", "0", ">= 1"),
    (BENCHMARK, "--margin", "-1", ">= 0"),
    (BENCHMARK, "--max-length", "0", ">= 1"),
    (BENCHMARK, "--top-k", "0", ">= 1"),
    (BENCHMARK, "--validation-top-k", "0", ">= 1"),
    (BENCHMARK, "--max-test-queries", "0", ">= 1"),
    (BENCHMARK, "--train-size", "0", ">= 1"),
    (BENCHMARK, "--rag-contexts", "0", ">= 1"),
    (BENCHMARK, "--rag-max-queries", "0", ">= 1"),
    (["demo"], "--num-negatives", "0", ">= 1"),
    (["demo"], "--epochs", "0", ">= 1"),
    (["demo"], "--seed", "-1", ">= 0"),
    (["demo"], "--max-length", "0", ">= 1"),
]


@pytest.mark.parametrize(("command", "option", "value", "allowed"), CASES)
def test_out_of_range_options_stop_the_command_while_parsing(command, option, value, allowed, capsys):
    with pytest.raises(SystemExit) as stopped:
        main([*command, f"{option}={value}"])
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert f"hn {command[0]}: error: argument {option}: must be" in err
    assert allowed in err and value in err


def test_every_numeric_option_of_every_command_is_range_checked():
    """No ``type=int``/``type=float`` left: a new numeric option must pick its range from hn_plugins.cli.validation."""
    parser = build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    unchecked = [
        f"hn {name} {' '.join(action.option_strings)}"
        for name, sub in subparsers.choices.items()
        for action in sub._actions
        if action.type in (int, float)
    ]
    assert unchecked == []
    checked = {(c[0], o) for c, o, _, _ in CASES}
    numeric = {
        (name, action.option_strings[0])
        for name, sub in subparsers.choices.items()
        for action in sub._actions
        if getattr(action.type, "__name__", "") in ("integer", "number")
    }
    assert numeric - checked == set()  # each one has a case above


@pytest.mark.parametrize("value", ["0", "1", "0.5", "0.999"])
def test_variance_zero_or_one_still_turns_pca_off_and_inner_values_pass(value):
    assert pca_variance(value) == float(value)


def test_types_accept_the_edges_of_their_range():
    assert bounded_int(2)("2") == 2 and bounded_int(1, also=(-1,))("-1") == -1
    assert bounded_float(-1, 1)("-1") == -1.0 and bounded_float(0, 1, low_open=True)("1") == 1.0
    with pytest.raises(argparse.ArgumentTypeError, match=r"an integer >= 1; got '2\.5'"):
        bounded_int(1)("2.5")


@pytest.mark.parametrize("variance", [1.5, -0.5, 0.0, 1.0, float("nan")])
def test_retraining_job_refuses_a_variance_outside_the_open_interval(variance, tmp_path):
    with pytest.raises(ValueError, match=r"variance must be in \(0, 1\) or None"):
        RetrainingJob(tmp_path / "registry", variance=variance)
    assert not (tmp_path / "registry").exists()


@pytest.mark.parametrize("command", [TRAIN, RETRAIN, BENCHMARK])
def test_an_unknown_fusion_rule_stops_the_command_while_parsing(command, capsys):
    with pytest.raises(SystemExit) as stopped:
        main([*command, "--fusion-rule", "argmax"])
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert "argument --fusion-rule: invalid choice: 'argmax'" in err and "'one-se'" in err and "'best'" in err
