"""``hn`` finds sub-commands of other distributions through the entry-point group ``hn_plugins.cli``; without
hn-evaluation, ``hn eval`` and ``hn benchmark`` say how to install it, and a broken plugin leaves the other commands
working. The group's contents are the boundary here (a group nothing declares, or chosen entry points); the parser
and ``main`` are the real ones."""

from __future__ import annotations

from importlib.metadata import EntryPoint

import pytest

import hn_plugins.cli as cli
from hn_plugins.cli import build_parser, main, plugin_commands

ABSENT = "hn_plugins.cli.test-group-nothing-declares"


def test_a_group_nothing_declares_has_no_commands():
    assert plugin_commands(ABSENT) == []


@pytest.mark.parametrize("command", ["eval", "benchmark"])
def test_without_hn_evaluation_the_command_names_the_install(monkeypatch, capsys, command):
    monkeypatch.setattr(cli, "PLUGIN_GROUP", ABSENT)  # as if hn-evaluation were not installed
    assert main([command, "some/folder", "--model", "x", "--out", "o"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"hn {command}: error: this command needs the evaluation package hn-evaluation: pip install -e "
        "./evaluation (from the hn-plugins repository)."
    ]


def test_without_hn_evaluation_help_lists_the_commands_with_the_install(capsys):
    with pytest.raises(SystemExit):
        build_parser(ABSENT).parse_args(["--help"])
    out = capsys.readouterr().out
    for command in ("mine", "train", "eval", "benchmark", "demo"):
        assert f"\n    {command} " in out, out
    assert out.count("needs hn-evaluation: pip install -e ./evaluation") == 3


def _entry_points(*pairs: tuple[str, str]):
    def fake(group: str):
        return [EntryPoint(name, value, group) for name, value in pairs] if group == "g" else []

    return fake


def test_a_plugin_that_fails_to_load_is_reported_when_run_and_the_rest_works(monkeypatch, capsys):
    monkeypatch.setattr(cli, "entry_points", _entry_points(("broken", "hn_plugins.no_such_module:register")))
    parser = build_parser("g")
    assert parser.parse_args(["mine", "data", "--out", "x.jsonl"]).command == "mine"
    monkeypatch.setattr(cli, "PLUGIN_GROUP", "g")
    assert main(["broken", "--anything"]) == 2
    err = capsys.readouterr().err
    assert "hn broken: error: this command could not be loaded from hn_plugins.no_such_module:register" in err
    assert "ModuleNotFoundError" in err


def test_a_built_in_command_wins_over_a_plugin_of_the_same_name(monkeypatch):
    from hn_plugins.cli import mine_cmd

    monkeypatch.setattr(cli, "entry_points", _entry_points(("mine", "hn_plugins.no_such_module:register")))
    args = build_parser("g").parse_args(["mine", "data", "--out", "x.jsonl"])
    assert args.func is mine_cmd.run
