"""``hn registry``: list a model registry's versions, promote one, roll back, or rebuild a lost index."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hn_plugins.registry import ModelRegistry

logger = logging.getLogger(__name__)


def _table(registry: ModelRegistry) -> str:
    """The versions, their MRR@10 and source, and which one is current."""
    current = registry.current
    lines = [f"{'version':<10}{'current':<9}{'mrr@10':>8}  source"]
    for name, meta in registry.versions.items():
        metrics = meta.get("metrics") or {}
        mrr = metrics.get("mrr@10")
        lines.append(
            f"{name:<10}{'*' if name == current else '':<9}"
            f"{(f'{mrr:.4f}' if isinstance(mrr, (int, float)) else '-'):>8}  {meta.get('source', '-')}"
        )
    if current is None:
        lines.append(f"no version is current; serve one with: hn registry promote {registry.root} VERSION")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from hn_plugins.registry import ModelRegistry

    is_registry = (args.registry / "registry.json").is_file() or (args.registry / "versions").is_dir()
    if not is_registry:
        raise FileNotFoundError(
            f"{args.registry} is not a model registry (no registry.json, no versions/); "
            f"`hn retrain DATA --registry {args.registry}` creates one."
        )
    if args.action == "repair":
        registry = ModelRegistry.repair(args.registry, current=args.current)
    else:
        registry = ModelRegistry(args.registry)
        if args.action == "promote":
            if args.version is None:
                raise ValueError("hn registry promote needs the VERSION to serve (see `hn registry list`).")
            if args.version not in registry.versions:
                raise ValueError(
                    f"{args.registry} has no version {args.version!r}; versions: {sorted(registry.versions)}."
                )
            registry.promote(args.version)
        elif args.action == "rollback":
            try:
                registry.rollback()
            except RuntimeError as exc:
                raise ValueError(str(exc)) from exc
    sys.stdout.write(_table(registry) + "\n")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "registry",
        help="list, promote, roll back or repair a model registry (the folder hn retrain writes)",
        description="list: the versions and the current one. promote VERSION: serve that version. rollback: serve "
        "the version that was current before the last promotion. repair: rebuild a missing or unreadable "
        "registry.json from the version folders (the damaged file is kept beside it); --current picks the "
        "version to serve. The LlamaIndex and Haystack adapters follow every change before their next query.",
    )
    parser.add_argument("action", choices=["list", "promote", "rollback", "repair"], help="what to do")
    parser.add_argument("registry", type=Path, help="registry folder")
    parser.add_argument("version", nargs="?", default=None, help="promote: the version to serve")
    parser.add_argument("--current", default=None, help="repair: the version to serve after the rebuild")
    parser.set_defaults(func=run)
