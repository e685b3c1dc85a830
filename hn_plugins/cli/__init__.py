"""The ``hn`` command line. Each sub-command lives in its own module ``hn_plugins.cli.<name>_cmd`` with a
``register(subparsers)`` function that adds its parser and sets ``func`` (a callable taking the parsed args and
returning an exit code)."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from hn_plugins import __version__

logger = logging.getLogger("hn_plugins.cli")

#: Sub-command modules, in the order ``hn --help`` lists them.
COMMAND_MODULES = ("mine", "bootstrap", "train", "export_onnx", "eval", "benchmark", "demo")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hn",
        description="Hard-negative mining (ensemble + PCA) and reranker fine-tuning for LlamaIndex and Haystack.",
    )
    parser.add_argument("--version", action="version", version=f"hn-plugins {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv for debug)")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        module_name = f"hn_plugins.cli.{name}_cmd"
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:
                continue
            raise
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``hn`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose + 1, 2)
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S"
    )
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
