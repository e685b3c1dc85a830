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
COMMAND_MODULES = (
    "mine",
    "bootstrap",
    "train",
    "export_onnx",
    "eval",
    "benchmark",
    "retrain",
    "registry",
    "demo",
)
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


def build_parser() -> argparse.ArgumentParser:
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
