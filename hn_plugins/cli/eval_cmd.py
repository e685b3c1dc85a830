"""``hn eval``: evaluate a reranker on a judged split: the first stage alone, then the reranker on its top-k.

Writes a JSON report (metric keys ``mrr@3``, ``mrr@10``, ``ndcg@10``, ``recall@k`` per row, per-query values,
the short-vs-long document split, reranking documents/s) and prints the table. Needs the evaluation package
(``pip install -e ./evaluation``, distribution ``hn-evaluation``).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from hn_plugins.cli.validation import positive_int

if TYPE_CHECKING:
    from hn_plugins.onnx_backend import OnnxCrossEncoderReranker

logger = logging.getLogger(__name__)

# = hn_plugins.reranker.ZERO_SHOT_PREFIX, not imported from there: `hn --help` loads no numpy
ZERO_SHOT_PREFIX = "zero-shot:"


def import_evaluation() -> Any:
    """Import ``hn_evaluation`` or say how to install it.

    Raises:
        ImportError: naming ``pip install -e ./evaluation`` (distribution ``hn-evaluation``) when it is not
            installed; the original error when it is installed but one of its own imports fails.

    Example:
        >>> import_evaluation().__name__  # doctest: +SKIP
        'hn_evaluation'
    """
    try:
        import hn_evaluation
    except ImportError as exc:
        if exc.name != "hn_evaluation":  # installed, but something it imports is missing or broken: say what
            raise
        raise ImportError(
            "This command needs the evaluation package hn-evaluation: pip install -e ./evaluation "
            "(from the hn-plugins repository)."
        ) from exc
    return hn_evaluation


def build_reranker(
    spec: str,
    candidate_texts: list[str],
    query_texts: list[str],
    max_length: int | None,
    backend: str = "torch",
    window_words: int | None = None,
    stride_words: int | None = None,
) -> Any:
    """A reranker for ``spec``: ``zero-shot:<bi-encoder>`` (un-tuned bi-encoder) or a folder for load_reranker.

    Bi-encoders embed every candidate document and query once, up front (one batched pass), then score by cosine.

    Args:
        spec: ``zero-shot:<name or folder>`` or a reranker folder / cross-encoder name for ``load_reranker``.
        candidate_texts: documents to embed up front (bi-encoders).
        query_texts: queries to embed up front (bi-encoders).
        max_length: maximum tokens per text or pair (``None``: the model's).
        backend: ``torch``, or ``onnx`` / ``onnx-int8`` for a cross-encoder folder exported with ``hn export-onnx``.
        window_words: score documents window by window (this many words) and keep the best window
            (:class:`~hn_plugins.chunking.ChunkedReranker`); ``None``: whole documents, truncated by the model.
        stride_words: words between window starts (default: three quarters of ``window_words``).

    Example:
        >>> rr = build_reranker("zero-shot:all-MiniLM-L6-v2", ["A cloud network."], ["what is a VCN"], None)  # doctest: +SKIP
        >>> rr.score("what is a VCN", ["A cloud network."]).shape  # doctest: +SKIP
        (1,)
    """
    _check_window_args(window_words, stride_words)
    reranker = _build_whole_document_reranker(spec, candidate_texts, query_texts, max_length, backend)
    if window_words is None:
        return reranker
    from hn_plugins.chunking import ChunkedReranker

    return ChunkedReranker(reranker, window_words=window_words, stride_words=stride_words)


def _check_window_args(window_words: int | None, stride_words: int | None) -> None:
    """``--window-words`` / ``--stride-words`` that can cut a document (checked before anything loads)."""
    from hn_plugins.chunking import check_windows, default_stride

    if window_words is None:
        if stride_words is not None:
            raise ValueError("--stride-words needs --window-words (the window it moves).")
        return
    check_windows(window_words, stride_words if stride_words is not None else default_stride(window_words))


def _build_whole_document_reranker(
    spec: str, candidate_texts: list[str], query_texts: list[str], max_length: int | None, backend: str
) -> Any:
    from hn_evaluation.benchmark import EmbeddedBiEncoderScorer
    from hn_plugins.models import load_sentence_transformer
    from hn_plugins.reranker import BiEncoderReranker, load_reranker, zero_shot_model_name

    if spec.startswith(ZERO_SHOT_PREFIX):
        if backend != "torch":
            raise ValueError(f"--backend {backend} runs exported cross-encoder folders, not {spec!r}.")
        name = zero_shot_model_name(spec)
        model = load_sentence_transformer(name)
        if max_length is not None:
            model.max_seq_length = max_length
        return EmbeddedBiEncoderScorer(model, candidate_texts, query_texts, batch_size=64)
    reranker = load_reranker(spec, batch_size=64, backend=backend)  # type: ignore[arg-type]
    if backend != "torch":
        # an ONNX backend: load_reranker returned an OnnxCrossEncoderReranker
        onnx_reranker = cast("OnnxCrossEncoderReranker", reranker)
        if max_length is not None:
            onnx_reranker.max_length = max_length
        return onnx_reranker
    if isinstance(reranker, BiEncoderReranker) and not (reranker.query_prompt or reranker.document_prompt):
        if max_length is not None:
            reranker.model.max_seq_length = max_length
        return EmbeddedBiEncoderScorer(reranker.model, candidate_texts, query_texts, batch_size=64)
    if max_length is not None and hasattr(reranker, "model"):
        reranker.model.max_length = max_length
    return reranker


def _fusion_of_spec(spec: str) -> Any:
    """The fusion weight stored with a reranker folder (``None`` for ``zero-shot:`` specs and plain models)."""
    if spec.startswith(ZERO_SHOT_PREFIX):
        return None
    from hn_plugins.reranker import folder_fusion

    return folder_fusion(spec)


class _FirstStageFed:
    """Scores of ``reranker.rerank_scores`` given the first stage's scores of the candidates (looked up by text)."""

    def __init__(self, reranker: Any, first_stage_scores: dict[str, dict[str, float]]) -> None:
        self.reranker, self.first_stage_scores = reranker, first_stage_scores

    def score(self, query: str, documents: list[str]) -> Any:
        first = self.first_stage_scores[query]
        return self.reranker.rerank_scores(query, documents, [first[d] for d in documents])


def evaluate_model(
    dataset: Any,
    model: str,
    *,
    first_stage: str = "bm25",
    top_k: int = 100,
    dense_model: str = "all-MiniLM-L6-v2",
    max_length: int | None = None,
    row_name: str | None = None,
    backend: str = "torch",
    window_words: int | None = None,
    stride_words: int | None = None,
    prerank_model: str | None = None,
    prerank_top_k: int = 20,
) -> dict[str, Any]:
    """First stage alone, then ``model`` reranking its top ``top_k``; the report as a JSON-ready dict.

    With ``prerank_model`` (a reranker folder or ``zero-shot:<bi-encoder>``) the reranker is a
    :class:`~hn_plugins.cascade.CascadeReranker`: ``prerank_model`` orders the top ``top_k``, ``model`` re-orders
    its best ``prerank_top_k``.

    Example:
        >>> from hn_plugins.data import load_beir  # doctest: +SKIP
        >>> test = load_beir("data/medline", split="test")  # doctest: +SKIP
        >>> evaluate_model(test, "zero-shot:all-MiniLM-L6-v2")["rows"]["reranker"]["mrr@10"]  # doctest: +SKIP
    """
    if prerank_model is not None and prerank_top_k < 1:
        raise ValueError(f"--prerank-top-k must be >= 1, got {prerank_top_k}.")
    import_evaluation()
    from hn_evaluation.benchmark import (
        FusedScorer,
        benchmark_metrics,
        first_stage_run,
        first_stage_scores_by_text,
    )
    from hn_evaluation.metrics import EvaluationError, judged_queries
    from hn_evaluation.rerank import evaluate_reranking

    try:
        judged_queries(dataset.qrels)
    except EvaluationError as exc:
        raise ValueError(
            f"Split {dataset.name!r} has no relevance judgments (qrels with grade > 0); evaluate a split that has "
            "them, e.g. --split test."
        ) from exc
    run = first_stage_run(dataset, first_stage, top_k, dense_model=dense_model)  # type: ignore[arg-type]
    docs = list(dict.fromkeys(dataset.document_text(d) for q in run for d, _ in run[q][:top_k]))
    queries = [dataset.queries[q] for q in run]
    reranker = build_reranker(model, docs, queries, max_length, backend, window_words, stride_words)
    name = row_name or "reranker"
    rows: dict[str, Any] = {first_stage: None}
    fusion = _fusion_of_spec(model) if first_stage == "bm25" else None
    prerank_fusion = None
    encode = float(getattr(reranker, "encode_seconds", 0.0) or 0.0)
    if prerank_model is not None:
        from hn_plugins.cascade import CascadeReranker

        fast = _build_whole_document_reranker(prerank_model, docs, queries, max_length, "torch")
        prerank_fusion = _fusion_of_spec(prerank_model) if first_stage == "bm25" else None
        fast.fusion = (
            prerank_fusion  # each stage's own weight (None off BM25: the weights were chosen against it)
        )
        reranker.fusion = fusion
        encode += float(getattr(fast, "encode_seconds", 0.0) or 0.0)
        cascade = CascadeReranker(fast, reranker, top_k=prerank_top_k)
        rows[name] = cascade
        if fusion is not None or prerank_fusion is not None:  # each stage fused by its own weight
            rows[f"{name}+fusion"] = _FirstStageFed(cascade, first_stage_scores_by_text(dataset, run))
        rows[f"{prerank_model} alone"] = fast
        rows[f"{model} alone"] = reranker
    else:
        rows[name] = reranker
        if fusion is not None:  # what the adapters rank by when the retriever gives scores
            rows[f"{name}+fusion"] = FusedScorer(reranker, fusion, first_stage_scores_by_text(dataset, run))
    report = evaluate_reranking(dataset, run, rows, top_k=top_k, metrics=benchmark_metrics(top_k))
    out = report.to_dict()
    speed = out["speed"][name]
    seconds = float(speed.get("seconds") or 0.0) + encode
    speed["seconds_including_encoding"] = seconds
    speed["docs_per_second"] = float(speed["documents"]) / seconds if seconds > 0 else None
    out["runs"] = {
        row: {q: [[d, float(s)] for d, s in ranked] for q, ranked in r.items()}
        for row, r in report.runs.items()
    }
    out["model"] = model
    out["backend"] = backend
    out["windows"] = (
        {
            "window_words": reranker.window_words,
            "stride_words": reranker.stride_words,
            "aggregate": reranker.aggregate,
        }
        if window_words is not None
        else None
    )
    out["first_stage"] = first_stage
    out["rows_order"] = list(rows)
    out["fusion"] = fusion.to_dict() if fusion is not None else None
    out["prerank"] = (
        {
            "model": prerank_model,
            "top_k": prerank_top_k,
            "fusion": prerank_fusion.to_dict() if prerank_fusion is not None else None,
        }
        if prerank_model is not None
        else None
    )
    out["significance"] = report.compare(baseline=first_stage, metric="mrr@10")
    out["rag"] = None  # filled by add_rag_evaluation (hn eval --rag)
    return out


def add_rag_evaluation(
    report: dict[str, Any],
    dataset: Any,
    generator: Any,
    *,
    contexts: int = 3,
    max_queries: int | None = None,
) -> dict[str, Any]:
    """Answer every query from each row's top ``contexts`` documents of ``report["runs"]`` (a report of
    :func:`evaluate_model`) and store the scored answers under ``report["rag"]``; returns ``report``."""
    from hn_evaluation.rag import evaluate_rag

    rag = evaluate_rag(dataset, report["runs"], generator, contexts=contexts, max_queries=max_queries)
    report["rag"] = rag.to_dict()
    report["rag"]["significance"] = rag.compare(baseline=report["first_stage"], metric="answer_f1")
    return report


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


def _check_rag_args(contexts: int, max_queries: int | None) -> None:
    if contexts < 1:
        raise ValueError(f"--rag-contexts must be >= 1, got {contexts}.")
    if max_queries is not None and max_queries < 1:
        raise ValueError(f"--rag-max-queries must be >= 1, got {max_queries}.")


def format_rows(report: dict[str, Any]) -> str:
    """The rows as a plain-text table (what ``hn eval`` prints).

    Example:
        >>> print(format_rows({"metrics": ["mrr@10"], "rows": {"bm25": {"mrr@10": 0.5}}, "speed": {},
        ...                    "rows_order": ["bm25"]}))
        row        mrr@10
        bm25       0.5000
    """
    metrics = report["metrics"]
    width = max(len(n) for n in report["rows"]) + 2
    col = {m: max(11, len(m) + 2) for m in metrics}  # a long metric name keeps a gap before it
    lines = [f"{'row':<{width}}" + "".join(f"{m:>{col[m]}}" for m in metrics)]
    for name, values in report["rows"].items():
        lines.append(f"{name:<{width}}" + "".join(f"{values[m]:>{col[m]}.4f}" for m in metrics))
    speed = report["speed"].get(report["rows_order"][min(1, len(report["rows_order"]) - 1)], {})
    if speed.get("docs_per_second"):
        lines.append(f"reranking: {speed['docs_per_second']:.1f} documents/s (encoding included)")
    rag = report.get("rag")
    if rag:
        n_queries = len(next(iter(rag["per_query"].values()), {}))
        lines.append(
            f"RAG: top {rag['contexts']} contexts -> {rag['generator']}, {n_queries} queries, reference answers: "
            f"{rag['reference']}"
        )
        names = rag["metrics"]
        col = {m: max(19, len(m) + 2) for m in names}
        lines.append(f"{'row':<{width}}" + "".join(f"{m:>{col[m]}}" for m in names))
        for name, values in rag["rows"].items():
            lines.append(f"{name:<{width}}" + "".join(f"{values[m]:>{col[m]}.4f}" for m in names))
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    import_evaluation()
    from hn_evaluation.report import write_report_json
    from hn_plugins.cli.mine_cmd import load_data

    _check_window_args(args.window_words, args.stride_words)  # bad window settings fail before any loading
    from hn_plugins.reranker import zero_shot_model_name

    for spec in (args.model, args.prerank_model):
        if spec is not None and spec.startswith(ZERO_SHOT_PREFIX):
            zero_shot_model_name(spec)  # an empty zero-shot: name fails before any loading too
    if args.prerank_model is not None and args.prerank_top_k < 1:
        raise ValueError(f"--prerank-top-k must be >= 1, got {args.prerank_top_k}.")
    _check_rag_args(args.rag_contexts, args.rag_max_queries)
    dataset = load_data(args.data, args.split, args.drop_empty)
    logger.info("Loaded %r", dataset)
    generator = None
    if args.rag is not None:  # loaded before the reranking: a bad generator costs no reranking work
        from hn_evaluation.generators import load_generator

        generator = load_generator(args.rag)
    report = evaluate_model(
        dataset,
        args.model,
        first_stage=args.first_stage,
        top_k=args.top_k,
        dense_model=args.dense_model,
        max_length=args.max_length,
        backend=args.backend,
        window_words=args.window_words,
        stride_words=args.stride_words,
        prerank_model=args.prerank_model,
        prerank_top_k=args.prerank_top_k,
    )
    if args.json is not None:  # written before the answers are generated: a failed generation loses nothing
        write_report_json(report, args.json)
    if generator is not None:
        add_rag_evaluation(
            report, dataset, generator, contexts=args.rag_contexts, max_queries=args.rag_max_queries
        )
        if args.json is not None:
            write_report_json(report, args.json)
    sys.stdout.write(format_rows(report) + "\n")
    if args.json is not None:
        sys.stdout.write(f"report -> {args.json}\n")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "eval",
        help="evaluate a reranker: first stage alone, then reranked (MRR@3/10, nDCG@10, Recall@k)",
        description="First stage (BM25 or dense) top-k of every judged query, then the reranker on those "
        "candidates; per-query values, short-vs-long documents and speed go to the JSON report.",
    )
    parser.add_argument("data", type=Path, help="BEIR folder or QA JSON file")
    parser.add_argument("--split", default="test", help="qrels split with judgments (default: test)")
    parser.add_argument(
        "--model",
        required=True,
        help="reranker: a folder (hn train output, registry, cross-encoder) or zero-shot:<bi-encoder name>",
    )
    parser.add_argument("--first-stage", choices=["bm25", "dense"], default="bm25", help="default: bm25")
    parser.add_argument(
        "--top-k", type=positive_int, default=100, help="candidates reranked per query (default: 100)"
    )
    parser.add_argument(
        "--dense-model",
        default="all-MiniLM-L6-v2",
        help="model of --first-stage dense (default: all-MiniLM-L6-v2)",
    )
    parser.add_argument(
        "--max-length", type=positive_int, default=None, help="maximum tokens per text (default: model's)"
    )
    parser.add_argument(
        "--backend",
        choices=["torch", "onnx", "onnx-int8"],
        default="torch",
        help="run a cross-encoder folder with onnxruntime (after `hn export-onnx`); default: torch",
    )
    parser.add_argument(
        "--window-words",
        type=positive_int,
        default=None,
        help="score long documents window by window (this many words) and keep the best window (MaxP)",
    )
    parser.add_argument(
        "--stride-words",
        type=positive_int,
        default=None,
        help="words between window starts (default: 3/4 of --window-words)",
    )
    parser.add_argument(
        "--prerank-model",
        default=None,
        help="cascade: this faster reranker (folder or zero-shot:<bi-encoder>) orders the top-k first and --model "
        "re-orders only its best --prerank-top-k",
    )
    parser.add_argument(
        "--prerank-top-k",
        type=positive_int,
        default=20,
        help="candidates --model re-orders after --prerank-model (20)",
    )
    add_rag_arguments(parser)
    parser.add_argument("--json", type=Path, default=None, help="write the JSON report here")
    parser.add_argument("--drop-empty", action="store_true", help="skip documents without text")
    parser.set_defaults(func=run)
