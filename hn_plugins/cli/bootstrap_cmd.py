"""``hn bootstrap``: warm-start a reranker without labels.

``--kind cross`` (default) distils an embedding ensemble into a cross-encoder; ``--kind bi`` adapts a bi-encoder to
the corpus' pseudo-queries with in-batch negatives.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from hn_plugins.cli.validation import non_negative_int, positive_int
from hn_plugins.models import DEFAULT_ENSEMBLE

logger = logging.getLogger(__name__)


#: the cross-encoder distillation's teacher when --teacher-models is not given
DEFAULT_TEACHERS = ",".join(DEFAULT_ENSEMBLE)
#: options only the cross-encoder distillation reads: argparse name -> bootstrap_cross_encoder keyword
_CROSS_ONLY = {
    "teacher_models": None,
    "pairs": "num_pairs",
    "num_layers": "num_layers",
    "held_out": "held_out_queries",
}
#: options both kinds read; passed on only when given, so each function keeps its own default
_SHARED = ("epochs", "batch_size", "max_length")


def run(args: argparse.Namespace) -> int:
    from hn_plugins.data import load_beir, load_llamaindex_qa

    given = {name: getattr(args, name) for name in _SHARED if getattr(args, name) is not None}
    if args.kind == "bi":
        cross_flags = [name for name in _CROSS_ONLY if getattr(args, name) is not None]
        if cross_flags:
            flags = ", ".join("--" + name.replace("_", "-") for name in cross_flags)
            sys.stderr.write(
                f"error: {flags} only apply to --kind cross (a distilled cross-encoder); drop them.\n"
            )
            return 2
        if args.min_pseudo_queries is not None:
            given["min_pseudo_queries"] = args.min_pseudo_queries
        if args.negatives is not None:
            given["negatives"] = args.negatives
        if args.cache is not None:
            if args.negatives != "mined":
                sys.stderr.write(
                    "error: --cache holds the embeddings of the cross-encoder's teacher or of the mining ensemble of "
                    "--kind bi --negatives mined; in-batch adaptation embeds nothing to cache: drop --cache.\n"
                )
                return 2
            given["cache_dir"] = args.cache
        if args.check_top_k is not None:
            given["check_top_k"] = args.check_top_k or None
    else:
        bi_flags = [
            flag
            for flag, value in (
                ("--min-pseudo-queries", args.min_pseudo_queries),
                ("--check-top-k", args.check_top_k),
                ("--negatives", args.negatives),
            )
            if value is not None
        ]
        if bi_flags:
            sys.stderr.write(
                f"error: {', '.join(bi_flags)} only appl{'ies' if len(bi_flags) == 1 else 'y'} to --kind bi; "
                "--kind cross measures itself on --held-out pseudo-queries.\n"
            )
            return 2
        given.update(
            {
                key: getattr(args, name)
                for name, key in _CROSS_ONLY.items()
                if key and getattr(args, name) is not None
            }
        )
    if args.data.is_file() and args.data.suffix == ".json":
        dataset = load_llamaindex_qa(args.data)
    else:
        dataset = load_beir(
            args.data, split=args.split, empty_documents="drop" if args.drop_empty else "raise"
        )
    if args.kind == "bi":
        from hn_plugins.training.corpus_adaptation import adapt_bi_encoder

        folder = adapt_bi_encoder(dataset, args.base_model, output_dir=args.out, seed=args.seed, **given)
        metrics = json.loads((folder / "hn_reranker.json").read_text(encoding="utf-8"))["metrics"]
        sys.stdout.write(
            f"Corpus-adapted bi-encoder -> {folder}\n{_adaptation_verdict(metrics, folder, args)}"
        )
        if args.json:
            args.json.write_text(
                json.dumps({"path": str(folder), "metrics": metrics}, indent=2), encoding="utf-8"
            )
        return 0
    from hn_plugins.training.bootstrap import bootstrap_cross_encoder

    teachers = [m.strip() for m in (args.teacher_models or DEFAULT_TEACHERS).split(",") if m.strip()]
    result = bootstrap_cross_encoder(
        dataset,
        teachers,
        base_model=args.base_model,
        output_dir=args.out,
        seed=args.seed,
        cache_dir=args.cache,
        **given,
    )
    m = result.metrics
    sys.stdout.write(
        f"Held-out pseudo-queries: {m['pseudo_queries_held_out']} (teacher top-{m['eval_top_k']} candidates)\n"
        f"{'model':<28}{'MRR@3':>8}{'MRR@10':>8}\n"
        f"{'teacher ' + '+'.join(teachers):<28}{m['teacher_mrr@3']:8.4f}{m['teacher_mrr@10']:8.4f}\n"
        f"{'bootstrapped cross-encoder':<28}{m['student_mrr@3']:8.4f}{m['student_mrr@10']:8.4f}\n"
        f"{'reached teacher level' if result.reached_teacher else 'below the teacher'}; model -> {result.path}\n"
    )
    if args.json:
        args.json.write_text(
            json.dumps(
                {"path": str(result.path), "history": result.history, "metrics": m}, indent=2, default=str
            ),
            encoding="utf-8",
        )
    return 0


def _adaptation_verdict(metrics: dict, folder: Path, args: argparse.Namespace) -> str:
    """What the judged-query check found, and which model to fine-tune next."""
    check = metrics.get("check")
    if check is None:
        return (
            f"No judged query checked it (none in --split {args.split}, or --check-top-k 0); compare it with the "
            f"untuned model on judged queries: hn eval DATA --model zero-shot:{folder}\n"
        )
    table = (
        f"{check['queries']} judged {args.split} queries, BM25 top-{check['top_k']} reranked, MRR@10\n"
        f"{'model':<22}{'alone':>8}{'fused with BM25':>17}\n"
        f"{'BM25':<22}{check['first_stage_mrr@10']:8.4f}\n"
        f"{'untuned':<22}{check['untuned_mrr@10']:8.4f}{check['untuned_mrr@10_fused']:17.4f}\n"
        f"{'adapted':<22}{check['adapted_mrr@10']:8.4f}{check['adapted_mrr@10_fused']:17.4f}\n"
    )
    if check["adapted_is_better"]:
        return (
            table + f"Adapting helped: fine-tune it with hn train TRIPLETS --kind bi --base-model {folder}\n"
        )
    return table + (
        f"Adapting did not help on these queries: fine-tune the untuned model instead "
        f"(hn train TRIPLETS --kind bi --base-model {args.base_model}).\n"
    )


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "bootstrap",
        help="warm-start a reranker without labels (cross: distil an ensemble; bi: adapt to the corpus)",
        description="--kind cross (default): build a cross-encoder from a bi-encoder's transformer and train it to "
        "reproduce the teacher ensemble's rankings of unlabeled corpus pairs (titles / first sentences vs their "
        "neighbours and random documents); reports student and teacher MRR@10 on held-out pseudo-queries. "
        "--kind bi: adapt a sentence-transformers model to the corpus, each pseudo-query matched to the rest of its "
        "document among the other answers of its batch (in-batch negatives); when --split has judged queries, "
        "reports the untuned and the adapted model's MRR@10 on them and says which one to fine-tune.",
    )
    parser.add_argument(
        "data",
        type=Path,
        help="BEIR folder or LlamaIndex QA JSON (trained on its corpus; --kind bi checks on its judged queries)",
    )
    parser.add_argument(
        "--split", default="train", help="qrels split to load the folder with (default: train)"
    )
    parser.add_argument(
        "--kind",
        choices=("cross", "bi"),
        default="cross",
        help="cross: distil into a cross-encoder; bi: adapt a bi-encoder to the corpus (default: cross)",
    )
    parser.add_argument(
        "--teacher-models",
        default=None,
        help="cross only: comma-separated teacher ensemble (default: all-MiniLM-L6-v2,static-model)",
    )
    parser.add_argument(
        "--base-model",
        default="all-MiniLM-L6-v2",
        help="transformer the reranker starts from (default: all-MiniLM-L6-v2)",
    )
    parser.add_argument("--out", type=Path, required=True, help="model folder to write")
    parser.add_argument(
        "--pairs",
        type=positive_int,
        default=None,
        help="cross only: training (query, document) pairs (default: 6000)",
    )
    parser.add_argument(
        "--epochs", type=positive_int, default=None, help="epochs (default: cross 3 at most, bi 1)"
    )
    parser.add_argument(
        "--batch-size",
        type=positive_int,
        default=None,
        help="pseudo-queries per step (default: cross 8, bi 32)",
    )
    parser.add_argument(
        "--max-length",
        type=positive_int,
        default=None,
        help="tokens per text or pair (default: cross 256, bi 128)",
    )
    parser.add_argument(
        "--num-layers",
        type=positive_int,
        default=None,
        help="cross only: keep the base model's first N transformer layers: a shallower, faster student",
    )
    parser.add_argument(
        "--held-out",
        type=positive_int,
        default=None,
        help="cross only: held-out pseudo-queries (default: 60)",
    )
    parser.add_argument(
        "--min-pseudo-queries",
        type=positive_int,
        default=None,
        help="bi only: fewer documents giving a pseudo-query is an error (default: 100)",
    )
    parser.add_argument(
        "--check-top-k",
        type=non_negative_int,
        default=None,
        help="bi only: rerank BM25's top K of every judged --split query with the untuned and the adapted model "
        "(default: 100; 0 skips the check)",
    )
    parser.add_argument(
        "--negatives",
        choices=("in-batch", "mined"),
        default=None,
        help="bi only: in-batch (default) or in-batch plus one hard negative per pseudo-query mined by "
        "all-MiniLM-L6-v2 + static-model (paper selector, positive-aware fallback; see experiments/corpus_adaptation)",
    )
    parser.add_argument("--seed", type=non_negative_int, default=0, help="seed (default: 0)")
    parser.add_argument(
        "--cache",
        type=Path,
        default=None,
        help="embedding cache folder of the teacher (cross) or of the mining ensemble (bi, --negatives mined)",
    )
    parser.add_argument("--drop-empty", action="store_true", help="drop documents without text")
    parser.add_argument("--json", type=Path, default=None, help="also write the metrics as JSON")
    parser.set_defaults(func=run)
