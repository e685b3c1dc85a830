"""The RAG options shared by ``hn eval`` and ``hn benchmark``."""

from __future__ import annotations

import argparse

from hn_plugins.cli.validation import positive_int

__all__ = ["add_rag_arguments", "check_rag_args"]


def add_rag_arguments(parser: argparse.ArgumentParser) -> None:
    """``--rag GENERATOR``, ``--rag-contexts K`` and ``--rag-max-queries N`` (``hn eval``, ``hn benchmark``)."""
    parser.add_argument(
        "--rag",
        default=None,
        metavar="GENERATOR",
        help="downstream RAG quality: answer every test query from each row's top contexts with GENERATOR "
        "(extractive, extractive:<bi-encoder>, smollm2, or a causal LM's name or folder) and score the answers",
    )
    parser.add_argument(
        "--rag-contexts", type=positive_int, default=3, help="contexts per answer (default: 3)"
    )
    parser.add_argument(
        "--rag-max-queries",
        type=positive_int,
        default=None,
        help="answer a seeded sample of this many queries (default: all judged test queries)",
    )


def check_rag_args(contexts: int, max_queries: int | None) -> None:
    """Raise a ValueError naming the option for ``--rag-contexts`` < 1 or ``--rag-max-queries`` < 1."""
    if contexts < 1:
        raise ValueError(f"--rag-contexts must be >= 1, got {contexts}.")
    if max_queries is not None and max_queries < 1:
        raise ValueError(f"--rag-max-queries must be >= 1, got {max_queries}.")
