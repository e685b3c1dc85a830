"""What every speed benchmark writes: the machine it ran on and a JSON file of results with the command."""

from __future__ import annotations

import json
import logging
import os
import platform
import sys
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

__all__ = ["machine", "save_result"]


def machine() -> dict[str, object]:
    """CPU count, Python, platform and the load average when the benchmark started."""
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average_at_start": os.getloadavg(),
    }


def save_result(folder: Path, name: str, payload: dict[str, Any]) -> Path:
    """Write ``folder/<name>.json``: the command line, :func:`machine`, then ``payload``."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.json"
    payload = {"command": " ".join(["python", *sys.argv]), "machine": machine(), **payload}
    path.write_text(json.dumps(payload, indent=2) + "\n")
    logger.info("wrote %s", path)
    return path
