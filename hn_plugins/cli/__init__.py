"""The ``hn`` command line. Each built-in sub-command lives in its own module ``hn_plugins.cli.<name>_cmd`` with a
``register(subparsers)`` function that adds its parser and sets ``func`` (a callable taking the parsed args and
returning an exit code).

Other distributions add sub-commands through the entry-point group ``hn_plugins.cli`` (as pytest and Haystack
discover plugins): each entry point names a ``register(subparsers)`` callable, loaded after the built-in commands.
hn-evaluation declares ``eval``, ``benchmark`` and ``demo`` there; without it, ``hn eval`` (etc.) says how to
install it.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Callable, Sequence
from importlib.metadata import EntryPoint, entry_points

from hn_plugins import __version__

logger = logging.getLogger("hn_plugins.cli")

#: Built-in sub-command modules, in the order ``hn --help`` lists them.
COMMAND_MODULES = ("mine", "bootstrap", "train", "export_onnx", "retrain", "registry")
#: Entry-point group of the sub-commands other distributions add.
PLUGIN_GROUP = "hn_plugins.cli"
#: Sub-commands that hn-evaluation adds, and the distribution a user installs to get them.
EVALUATION_COMMANDS = ("eval", "benchmark", "demo")
EVALUATION_INSTALL = (
    "this command needs the evaluation package hn-evaluation: pip install -e ./evaluation (from the hn-plugins "
    "repository)."
)
EVALUATION_SUMMARY = "needs hn-evaluation: pip install -e ./evaluation"
#: Top-level loggers whose INFO records ``hn`` shows without ``-v``; other libraries' records need WARNING.
OWN_LOGGERS = ("hn_plugins", "hn_evaluation")


class _OwnInfoOnly(logging.Filter):
    """Pass WARNING and above from any logger, lower levels only from :data:`OWN_LOGGERS`.

    Logger levels cannot do this alone: faiss reports a failed optional AVX2 import at INFO (users read it as an
    error), and bm25s sets its own logger to DEBUG when imported.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING or record.name.split(".", 1)[0] in OWN_LOGGERS


def configure_logging(verbose: int = 0) -> None:
    """Log to stderr: ``hn``'s own progress at INFO and other libraries' warnings (``verbose=0``), every library's
    INFO (``1``, ``-v``) or everything at DEBUG (``2``, ``-vv``).

    Leaves logging alone when the root logger already has handlers (an application or a test set it up).
    """
    root = logging.getLogger()
    if root.handlers:
        return
    logging.basicConfig(
        level=logging.DEBUG if verbose >= 2 else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    for handler in root.handlers:
        if verbose < 2:
            handler.setLevel(logging.INFO)  # bm25s's DEBUG records too, whatever its logger's level
        if verbose == 0:
            handler.addFilter(_OwnInfoOnly())


def plugin_commands(group: str = PLUGIN_GROUP) -> list[EntryPoint]:
    """The entry points of ``group``, sorted by name (one per sub-command; a repeated name keeps the first)."""
    found: dict[str, EntryPoint] = {}
    for ep in sorted(entry_points(group=group), key=lambda e: (e.name, e.value)):
        found.setdefault(ep.name, ep)
    return list(found.values())


def _missing_command(name: str, message: str) -> Callable[[argparse.Namespace], int]:
    """The ``func`` of a sub-command that cannot run here: one line on stderr saying why, exit code 2."""

    def run(args: argparse.Namespace) -> int:
        sys.stderr.write(f"hn {name}: error: {message}\n")
        return 2

    return run


def _add_placeholder(subparsers: argparse._SubParsersAction, name: str, summary: str, message: str) -> None:
    """A sub-command that takes any arguments and fails with ``message`` (so ``hn eval ...`` says what is missing
    instead of argparse's "invalid choice")."""
    parser = subparsers.add_parser(name, help=f"({summary})", description=f"hn {name}: {message}")
    parser.set_defaults(func=_missing_command(name, message), accepts_any_arguments=True)


def register_plugins(subparsers: argparse._SubParsersAction, group: str = PLUGIN_GROUP) -> list[str]:
    """Add the sub-commands of ``group``'s entry points; returns their names.

    A plugin whose name a built-in command already has is skipped; one that fails to load is replaced by a
    sub-command that reports the failure when run (the other commands keep working). The hn-evaluation commands
    missing after that get a sub-command naming the install.
    """
    taken = set(subparsers.choices)
    added = []
    for ep in plugin_commands(group):
        if ep.name in taken:
            logger.debug("hn %s is built in; skipping the entry point %s", ep.name, ep.value)
            continue
        try:
            ep.load()(subparsers)
        except Exception as exc:  # a broken plugin must not take the other commands down
            logger.debug("entry point %s = %s failed to load", ep.name, ep.value, exc_info=True)
            message = f"this command could not be loaded from {ep.value}: {type(exc).__name__}: {exc}"
            if ep.name not in subparsers.choices:
                _add_placeholder(subparsers, ep.name, "failed to load; run it to see why", message)
        added.append(ep.name)
        taken.add(ep.name)
    for name in EVALUATION_COMMANDS:
        if name not in taken:
            _add_placeholder(subparsers, name, EVALUATION_SUMMARY, EVALUATION_INSTALL)
    return added


def build_parser(plugin_group: str = PLUGIN_GROUP) -> argparse.ArgumentParser:
    """``hn``'s parser: the built-in sub-commands, then those of the entry-point group ``plugin_group``."""
    parser = argparse.ArgumentParser(
        prog="hn",
        description="Hard-negative mining (ensemble + PCA) and reranker fine-tuning for LlamaIndex and Haystack.",
    )
    parser.add_argument("--version", action="version", version=f"hn-plugins {__version__}")
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="-v: every library's INFO logs, not only hn's; -vv: debug",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"hn_plugins.cli.{name}_cmd").register(subparsers)
    register_plugins(subparsers, plugin_group)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``hn`` console script."""
    parser = build_parser(PLUGIN_GROUP)
    args, unknown = parser.parse_known_args(argv)
    if unknown and not getattr(args, "accepts_any_arguments", False):
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    configure_logging(args.verbose)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    from hn_plugins.data import DatasetError

    try:
        return int(args.func(args) or 0)
    except (DatasetError, FileNotFoundError, ImportError, ValueError) as exc:
        logger.error("%s", exc)
        sys.stderr.write(f"hn {args.command}: error: {exc}\n")
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
