"""Logging set-up shared by the scripts of ``benchmarks/``, ``experiments/`` and ``tools/``."""

from __future__ import annotations

import logging
import sys

#: loggers whose per-batch INFO records drown the scripts' own progress
QUIET_LOGGERS = (
    "httpx",
    "sentence_transformers",
    "transformers",
    "bm25s",
    "datasets",
    "hn_plugins.mining.selectors",
    "hn_plugins.embedders",
)
#: the benchmark drivers' records: ``tools/summarize_device_logs.py`` reads ``<logger> <row> seed <n>: {...}``
DRIVER_FORMAT = "%(asctime)s %(name)s %(message)s"
#: the experiment scripts' records
SCRIPT_FORMAT = "%(asctime)s %(name)s: %(message)s"


def quiet_logging(*, driver: bool = False) -> None:
    """Log INFO records and turn the loggers of :data:`QUIET_LOGGERS` down to WARNING.

    Args:
        driver: Log as the benchmark drivers do (:data:`DRIVER_FORMAT` on stdout, which the GPU run tees into
            the per-process logs); otherwise :data:`SCRIPT_FORMAT` with the time of day on stderr.
    """
    if driver:
        logging.basicConfig(level=logging.INFO, format=DRIVER_FORMAT, stream=sys.stdout)
    else:
        logging.basicConfig(level=logging.INFO, format=SCRIPT_FORMAT, datefmt="%H:%M:%S")
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
