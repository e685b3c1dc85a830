"""``hn mine``: mine hard negatives for a BEIR folder or a LlamaIndex QA JSON file."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from hn_plugins.cli.validation import finite_float, non_negative_int, pca_variance, positive_int
from hn_plugins.encoders.engines import ENGINES
from hn_plugins.models import DEFAULT_ENSEMBLE

if TYPE_CHECKING:
    from hn_plugins.data import RetrievalDataset
    from hn_plugins.mining.miner import HardNegativeMiner
    from hn_plugins.mining.verifier import FalseNegativeVerifier

logger = logging.getLogger(__name__)

DEFAULT_MODELS = ",".join(DEFAULT_ENSEMBLE)


def add_mining_arguments(parser: argparse.ArgumentParser) -> None:
    """Options shared by the commands that mine (``mine``, ``demo``, ``benchmark``)."""
    parser.add_argument(
        "--models",
        default=DEFAULT_MODELS,
        help=f"comma-separated ensemble members: hub names or local folders (default: {DEFAULT_MODELS})",
    )
    parser.add_argument(
        "--variance",
        type=pca_variance,
        default=0.95,
        help="PCA variance to keep; 0 or 1 disables PCA (default: 0.95)",
    )
    parser.add_argument(
        "--selector",
        default="paper",
        choices=["paper", "default", "random", "bm25", "dense-topk", "positive-aware", "st"],
        help="negative selector (default: paper); 'default' = what `hn benchmark` ships as `default`: the paper's "
        "negatives, the positive-aware fallback (95%%) where none qualifies, plus one random negative",
    )
    parser.add_argument(
        "--num-negatives", type=positive_int, default=1, help="negatives per (query, positive) pair"
    )
    parser.add_argument(
        "--candidates", type=positive_int, default=100, help="initial FAISS depth per query (default: 100)"
    )
    parser.add_argument(
        "--index",
        default="exact",
        choices=["exact", "hnsw", "ivf", "auto"],
        help="FAISS index (default: exact)",
    )
    parser.add_argument(
        "--sampling",
        default="top",
        choices=["top", "random"],
        help="take qualifying negatives by rank or sample them (default: top)",
    )
    parser.add_argument(
        "--cache", type=Path, default=None, help="embedding cache folder (by id + content hash)"
    )
    parser.add_argument(
        "--seed", type=non_negative_int, default=0, help="seed of every random step (default: 0)"
    )
    parser.add_argument("--batch-size", type=positive_int, default=64, help="encoding batch size")
    parser.add_argument(
        "--query-prompts", default=None, help="comma-separated query prompts, one per model (empty for none)"
    )
    parser.add_argument(
        "--engine",
        choices=list(ENGINES),
        default="auto",
        help="how members run: auto (ONNX Runtime fp32 for transformers, numpy for static models, on a CPU), "
        "torch, onnx, or onnx-int8 (faster, vectors within ~0.01 cosine); a model the fast path cannot run "
        "falls back to torch with a warning (default: auto)",
    )
    parser.add_argument(
        "--backend",
        choices=["local", "ray"],
        default="local",
        help="where documents are embedded: this process, or Ray Data actors (pip install 'hn-plugins[ray]'; "
        "a local Ray cluster unless --ray-address)",
    )
    parser.add_argument(
        "--ray-workers",
        type=positive_int,
        default=None,
        help="Ray actors per model (default: one per cluster CPU)",
    )
    parser.add_argument(
        "--ray-address", default=None, help="Ray cluster address, e.g. ray://head:10001 (default: local)"
    )


def build_miner(args: argparse.Namespace, show_progress_bar: bool = True) -> HardNegativeMiner:
    from hn_plugins.embedders import EmbedderEnsemble
    from hn_plugins.mining.miner import HardNegativeMiner
    from hn_plugins.mining.named_selectors import get_selector
    from hn_plugins.reduction import PCAReducer

    selector = get_selector(args.selector)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    ensemble = None
    if selector.needs_embeddings or args.selector == "st":
        prompts = None
        if args.query_prompts is not None:
            prompts = [p or None for p in args.query_prompts.split(",")]
        ensemble = EmbedderEnsemble(
            models,
            cache_dir=args.cache,
            batch_size=args.batch_size,
            query_prompts=prompts,
            show_progress_bar=show_progress_bar,
            backend=args.backend,
            ray_workers=args.ray_workers,
            ray_address=args.ray_address,
            engine=args.engine,
        )
    reducer = PCAReducer(variance=args.variance) if 0.0 < args.variance < 1.0 else None
    return HardNegativeMiner(
        ensemble,
        reducer,
        selector=selector,
        num_negatives=args.num_negatives,
        candidates=args.candidates,
        index=args.index,
        sampling_strategy=args.sampling,
        seed=args.seed,
        show_progress_bar=show_progress_bar,
    )


def load_data(path: Path, split: str, drop_empty: bool) -> RetrievalDataset:
    from hn_plugins.data import load_beir, load_llamaindex_qa

    if path.is_file() and path.suffix == ".json":
        return load_llamaindex_qa(path)
    return load_beir(path, split=split, empty_documents="drop" if drop_empty else "raise")


def build_verifier(args: argparse.Namespace) -> FalseNegativeVerifier | None:
    """The ``--verify-with`` teacher as a :class:`~hn_plugins.mining.verifier.FalseNegativeVerifier` (or ``None``).

    Built before mining, so a bad model or margin stops the command before any embedding work.
    """
    from hn_plugins.mining.verifier import FalseNegativeVerifier

    if args.verify_with is None:
        if args.verify_margin != 0.0:
            raise ValueError(
                "--verify-margin needs --verify-with MODEL (the teacher that re-scores negatives)."
            )
        return None
    return FalseNegativeVerifier.from_model(
        args.verify_with, margin=args.verify_margin, batch_size=args.batch_size
    )


def run(args: argparse.Namespace) -> int:
    dataset = load_data(args.data, args.split, args.drop_empty)
    logger.info("Loaded %r", dataset)
    verifier = build_verifier(args)
    miner = build_miner(args)
    result = miner.fit(dataset).mine(dataset)
    if verifier is not None:
        result = verifier.verify(result, dataset)
    result.to_jsonl(args.out)
    diagnostics = args.diagnostics or args.out.with_suffix(".diagnostics.json")
    result.save_diagnostics(diagnostics)
    sys.stdout.write(result.format_summary() + "\n")
    sys.stdout.write(f"triplets -> {args.out}\ndiagnostics -> {diagnostics}\n")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "mine",
        help="mine hard negatives (ensemble + PCA + the paper's criteria, or a baseline)",
        description="Mine negatives for every (query, positive) pair and write them as JSON Lines.",
    )
    parser.add_argument(
        "data", type=Path, help="BEIR folder (corpus.jsonl, queries.jsonl, qrels/) or QA JSON file"
    )
    parser.add_argument("--split", default="train", help="qrels split to mine (default: train)")
    parser.add_argument("--out", type=Path, required=True, help="output JSON Lines file")
    parser.add_argument(
        "--diagnostics", type=Path, default=None, help="diagnostics JSON (default: next to --out)"
    )
    parser.add_argument("--drop-empty", action="store_true", help="skip documents without text")
    parser.add_argument(
        "--verify-with",
        default=None,
        metavar="MODEL",
        help="after mining, drop negatives this teacher scores >= the positive's score - --verify-margin "
        "(suspected false negatives): a folder from `hn train`, a cross-encoder name or folder, or bi:NAME for "
        "a bi-encoder scored by cosine (e.g. bi:all-MiniLM-L6-v2); every drop is listed in the diagnostics",
    )
    parser.add_argument(
        "--verify-margin",
        type=finite_float,
        default=0.0,
        help="keep a negative only if teacher(negative) < teacher(positive) - margin (default: 0.0)",
    )
    add_mining_arguments(parser)
    parser.set_defaults(func=run)
