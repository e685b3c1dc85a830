"""One reranker evaluated on a judged split: the first stage alone, then the reranker (alone and fused with the
first stage, or as the slow stage of a cascade) on its top-k; optionally the RAG answers of every row.

This is what ``hn eval`` runs; the report is a JSON-ready dict (metric keys ``mrr@3``, ``mrr@10``, ``ndcg@10``,
``recall@k`` per row, per-query values, the short-vs-long document split, reranking documents/s).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, cast

from hn_plugins.data import RetrievalDataset

from .benchmark.scoring import (
    EmbeddedBiEncoderScorer,
    FusedScorer,
    benchmark_metrics,
    first_stage_run,
    first_stage_scores_by_text,
    load_bi_encoder,
)
from .metrics import EvaluationError, judged_queries

if TYPE_CHECKING:
    from hn_plugins.onnx_backend import OnnxCrossEncoderReranker

logger = logging.getLogger(__name__)

__all__ = [
    "ZERO_SHOT_PREFIX",
    "add_rag_evaluation",
    "build_reranker",
    "check_window_args",
    "evaluate_model",
    "format_rows",
]

#: A reranker spec ``zero-shot:<bi-encoder>`` is the untuned bi-encoder (as :func:`hn_plugins.reranker.load_reranker`
#: reads it); the same string as ``hn_plugins.reranker.ZERO_SHOT_PREFIX``.
ZERO_SHOT_PREFIX = "zero-shot:"


def check_window_args(window_words: int | None, stride_words: int | None) -> None:
    """Raise a ValueError for ``--window-words`` / ``--stride-words`` that cannot cut a document (checked before
    anything loads)."""
    from hn_plugins.chunking import check_windows, default_stride

    if window_words is None:
        if stride_words is not None:
            raise ValueError("--stride-words needs --window-words (the window it moves).")
        return
    check_windows(window_words, stride_words if stride_words is not None else default_stride(window_words))


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
    check_window_args(window_words, stride_words)
    reranker = _build_whole_document_reranker(spec, candidate_texts, query_texts, max_length, backend)
    if window_words is None:
        return reranker
    from hn_plugins.chunking import ChunkedReranker

    return ChunkedReranker(reranker, window_words=window_words, stride_words=stride_words)


def _build_whole_document_reranker(
    spec: str, candidate_texts: list[str], query_texts: list[str], max_length: int | None, backend: str
) -> Any:
    from hn_plugins.reranker import BiEncoderReranker, load_reranker, zero_shot_model_name

    if spec.startswith(ZERO_SHOT_PREFIX):
        if backend != "torch":
            raise ValueError(f"--backend {backend} runs exported cross-encoder folders, not {spec!r}.")
        model = load_bi_encoder(zero_shot_model_name(spec), max_length)
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


def _cascade_rows(
    rows: dict[str, Any],
    name: str,
    model: str,
    reranker: Any,
    fusion: Any,
    prerank_model: str,
    prerank_top_k: int,
    fast: Any,
    prerank_fusion: Any,
    first_stage_scores: dict[str, dict[str, float]],
) -> None:
    """Add the cascade (``prerank_model`` then ``model`` on its best ``prerank_top_k``) and each stage alone."""
    from hn_plugins.cascade import CascadeReranker

    fast.fusion = (
        prerank_fusion  # each stage's own weight (None off BM25: the weights were chosen against it)
    )
    reranker.fusion = fusion
    cascade = CascadeReranker(fast, reranker, top_k=prerank_top_k)
    rows[name] = cascade
    if fusion is not None or prerank_fusion is not None:  # each stage fused by its own weight
        rows[f"{name}+fusion"] = _FirstStageFed(cascade, first_stage_scores)
    rows[f"{prerank_model} alone"] = fast
    rows[f"{model} alone"] = reranker


def evaluate_model(
    dataset: RetrievalDataset,
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

    Raises:
        ValueError: ``dataset`` has no judgments, or bad window / cascade settings.

    Example:
        >>> from hn_plugins.data import load_beir  # doctest: +SKIP
        >>> test = load_beir("data/medline", split="test")  # doctest: +SKIP
        >>> evaluate_model(test, "zero-shot:all-MiniLM-L6-v2")["rows"]["reranker"]["mrr@10"]  # doctest: +SKIP
    """
    if prerank_model is not None and prerank_top_k < 1:
        raise ValueError(f"--prerank-top-k must be >= 1, got {prerank_top_k}.")
    from .rerank import evaluate_reranking

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
        fast = _build_whole_document_reranker(prerank_model, docs, queries, max_length, "torch")
        prerank_fusion = _fusion_of_spec(prerank_model) if first_stage == "bm25" else None
        encode += float(getattr(fast, "encode_seconds", 0.0) or 0.0)
        fused = fusion is not None or prerank_fusion is not None
        by_text = first_stage_scores_by_text(dataset, run) if fused else {}
        _cascade_rows(
            rows, name, model, reranker, fusion, prerank_model, prerank_top_k, fast, prerank_fusion, by_text
        )
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
    dataset: RetrievalDataset,
    generator: Any,
    *,
    contexts: int = 3,
    max_queries: int | None = None,
) -> dict[str, Any]:
    """Answer every query from each row's top ``contexts`` documents of ``report["runs"]`` (a report of
    :func:`evaluate_model`) and store the scored answers under ``report["rag"]``; returns ``report``."""
    from .rag import evaluate_rag

    rag = evaluate_rag(dataset, report["runs"], generator, contexts=contexts, max_queries=max_queries)
    report["rag"] = rag.to_dict()
    report["rag"]["significance"] = rag.compare(baseline=report["first_stage"], metric="answer_f1")
    return report


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
