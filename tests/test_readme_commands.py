"""The README's shell commands run on what a user has after the two commands (the install, then ``hn demo``).

Every fenced ``bash`` block of README.md is split into commands (backslash continuations joined). A trailing comment
says how a command is checked:

- ``# setup: ...``: the installation itself. It is what this test runs on, so it is not run again: the script must
  exist and parse (``bash -n``).
- ``# slow: ...``: minutes on 2 cores (it trains, embeds a corpus, or needs what those wrote). The default run
  checks it with ``--help``; the ``slow`` run runs it as written.
- ``# long: ...``: a long run (the whole test suite); checked with ``--help`` in every run.
- no mark: runs as written in every run.

Commands of the README's "Development" section run from the repository root; the others run in README order in one
fresh folder, as a user's would (so ``hn mine demo-data`` reads what ``hn demo --export demo-data`` wrote).
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
REPORTS = REPO / "benchmarks" / "results"
MARK = re.compile(r"\s#\s*(setup|slow|long):")


@dataclass(frozen=True)
class Command:
    """One README command: its shell text (comment included), the check its mark asks for, and its section."""

    text: str
    mark: str | None
    section: str

    @property
    def shell(self) -> str:
        """The command without its trailing mark comment."""
        match = MARK.search(self.text)
        return self.text[: match.start()].rstrip() if match else self.text

    @property
    def from_repository(self) -> bool:
        return self.section == "Development"


def readme_commands(text: str) -> list[Command]:
    """The commands of every fenced ``bash`` block of ``text``, in order."""
    commands: list[Command] = []
    section, block, pending = "", None, ""
    for line in text.splitlines():
        if block is None:
            if line.startswith("## "):
                section = line[3:].strip()
            elif line.strip() == "```bash":
                block = []
            continue
        if line.strip() == "```":
            block = None
            continue
        pending += line.strip() if pending else line
        if pending.endswith("\\"):
            pending = pending[:-1].rstrip() + " "
            continue
        if pending.strip() and not pending.lstrip().startswith("#"):
            match = MARK.search(pending)
            commands.append(Command(pending.strip(), match.group(1) if match else None, section))
        pending = ""
    return commands


def _environment() -> dict[str, str]:
    """The test's environment, offline, with this interpreter's scripts (``hn``, ``python3``) first on PATH."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false", RAGAS_DO_NOT_TRACK="true")
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


def _run(command: Command, shell: str, cwd: Path, timeout: int) -> None:
    completed = subprocess.run(
        ["bash", "-c", shell],
        cwd=REPO if command.from_repository else cwd,
        env=_environment(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert completed.returncode == 0, (
        f"README command failed (exit {completed.returncode}): {shell}\n"
        f"stdout:\n{completed.stdout[-3000:]}\nstderr:\n{completed.stderr[-3000:]}"
    )


def _with_help(command: Command) -> str:
    shell = command.shell
    if any(token in shlex.split(shell) for token in ("&&", "||", "|", ";")):
        pytest.fail(f"a marked README command must be one command, to be checked with --help: {shell}")
    return f"{shell} --help"


def _check_setup(command: Command) -> None:
    words = shlex.split(command.shell)
    assert words[:1] == ["bash"] and len(words) == 2, f"setup command is not `bash SCRIPT`: {command.shell}"
    script = REPO / words[1]
    assert script.is_file(), f"{command.shell}: {script} does not exist"
    subprocess.run(["bash", "-n", str(script)], check=True)


COMMANDS = readme_commands(README.read_text(encoding="utf-8"))


def test_readme_commands_are_found_and_use_data_a_user_has():
    shells = [c.shell for c in COMMANDS]
    assert any(s.startswith("hn demo --export") for s in shells), shells
    assert [c.text for c in COMMANDS if c.mark == "setup"], "the README shows no install command"
    assert not [s for s in shells if "shared/" in s], (
        "README commands must not need this repository's ../shared"
    )


def test_readme_is_for_users_and_short():
    assert len(README.read_text(encoding="utf-8").splitlines()) <= 250


def test_readme_commands_run(tmp_path):
    """Unmarked commands run; ``slow`` and ``long`` ones answer ``--help``; the setup script parses."""
    for command in COMMANDS:
        if command.mark == "setup":
            _check_setup(command)
        elif command.mark in ("slow", "long"):
            _run(command, _with_help(command), tmp_path, timeout=300)
        else:
            _run(command, command.shell, tmp_path, timeout=900)


@pytest.mark.slow
def test_readme_commands_run_with_training(tmp_path):
    """Every command as written, in README order, ``slow`` ones included (``long`` ones answer ``--help``)."""
    for command in COMMANDS:
        if command.mark == "setup":
            _check_setup(command)
        elif command.mark == "long":
            _run(command, _with_help(command), tmp_path, timeout=300)
        else:
            _run(command, command.shell, tmp_path, timeout=3600)


def test_readme_command_parsing_joins_continuations_and_reads_marks():
    text = "\n".join(
        [
            "## Quickstart",
            "```bash",
            "# a comment line",
            "hn mine data --out t.jsonl   # slow: embeds",
            "hn train t.jsonl \\",
            "    --out m   # slow: trains",
            "hn demo --export d",
            "```",
            "```python",
            "print('not a shell command')",
            "```",
            "## Development",
            "```bash",
            "ruff check .",
            "```",
        ]
    )
    commands = readme_commands(text)
    assert [(c.shell, c.mark, c.from_repository) for c in commands] == [
        ("hn mine data --out t.jsonl", "slow", False),
        ("hn train t.jsonl --out m", "slow", False),
        ("hn demo --export d", None, False),
        ("ruff check .", None, True),
    ]


def _markdown_tables(text: str) -> list[list[list[str]]]:
    """Every table of a Markdown text as rows of cells (header first, the ``|---|`` line left out)."""
    tables: list[list[list[str]]] = []
    current: list[list[str]] = []
    for line in [*text.splitlines(), ""]:
        if line.startswith("|"):
            cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
            if not all(set(cell) <= {"-", ":"} for cell in cells):
                current.append(cells)
        elif current:
            tables.append(current)
            current = []
    return tables


def _row_name(cell: str) -> str:
    """``**default** (shipped)`` -> ``default``: the report's row name of a table's first cell."""
    return re.sub(r"\s*\(.*\)$", "", cell.replace("*", "").replace("`", "")).strip()


@pytest.mark.parametrize("page", ["README.md", "docs/results.md"])
def test_results_tables_quote_the_committed_reports(page):
    """Each MRR@10 (and ± std) in a ``row`` table with dataset columns equals its report.json, rounded as shown."""
    import json

    checked = 0
    for header, *rows in _markdown_tables((REPO / page).read_text(encoding="utf-8")):
        if header[0] != "row":
            continue
        reports = {
            i: json.loads((REPORTS / f"benchmark_{name}" / "report.json").read_text(encoding="utf-8"))
            for i, name in enumerate(header)
            if (REPORTS / f"benchmark_{name}" / "report.json").is_file()
        }
        for row in rows:
            for i, report in reports.items():
                values = report["rows"][_row_name(row[0])]["mrr@10"]
                cell = row[i].replace("*", "")
                mean, _, std = cell.partition(" ± ")
                assert mean == f"{values['mean']:.3f}", (page, row[0], header[i], cell, values)
                if std:
                    assert std == f"{values['std']:.3f}", (page, row[0], header[i], cell, values)
                checked += 1
    assert checked >= 30, f"{page}: only {checked} results cells found"


SCIFACT_CURVE = (
    REPO / "experiments/cross_fit_significance_rule/results/one_se_scifact_128/curve/learning_curve.json"
)


def test_learning_curve_table_quotes_the_committed_curve():
    """Each cell of the README's ``train claims`` table (seeds, MRR@10 ± std, p) equals the committed curve JSON."""
    import json

    points = {p["train_size"]: p for p in json.loads(SCIFACT_CURVE.read_text(encoding="utf-8"))["points"]}
    tables = [t for t in _markdown_tables(README.read_text(encoding="utf-8")) if t[0][0] == "train claims"]
    assert len(tables) == 1, (
        "README.md should hold one learning-curve table (first header cell: train claims)"
    )
    header, *rows = tables[0]
    sizes = [int(row[0].split()[0]) for row in rows]
    assert sizes == sorted(points), (sizes, sorted(points))
    curve_rows = {name for point in points.values() for name in point["rows"]}
    columns = [name for name in ("default", "paper", "zero-shot+fusion") if name in curve_rows]
    assert all(f"`{name}`" in header for name in columns), (header, columns)
    for size, row in zip(sizes, rows, strict=True):
        point = points[size]
        assert row[header.index("seeds")] == str(point["seeds"]), row
        for name in columns:
            values = point["rows"][name]
            seeds = point.get("row_seeds", {}).get(name, point["seeds"])
            note = "" if seeds == point["seeds"] else f" ({seeds} seed{'s' if seeds != 1 else ''})"
            expected = f"{values['mean']:.3f} ± {values['std']:.3f}{note}"
            assert row[header.index(f"`{name}`")] == expected, (row, name)
        assert row[header.index("p")] == f"{point['p_default_vs_zero_shot_fusion']:.2g}", row


@pytest.mark.parametrize(
    "page",
    [
        "README.md",
        "CHANGELOG.md",
        "experiments/README.md",
        *sorted(f"docs/{p.name}" for p in (REPO / "docs").glob("*.md")),
    ],
)
def test_relative_links_resolve(page):
    """Every relative Markdown link of the user-facing pages points at a file or folder of the repository."""
    text = (REPO / page).read_text(encoding="utf-8")
    targets = [t for t in re.findall(r"\]\(([^)\s]+)\)", text) if not re.match(r"[a-z]+:", t)]
    missing = [t for t in targets if not (REPO / page).parent.joinpath(t.split("#")[0]).exists()]
    assert targets and not missing, (page, missing)
