"""Evaluate a fine-tuned reranker on the test split: BM25 alone, zero-shot, fine-tuned, fine-tuned fused with BM25.

    python examples/03_evaluate_reranker.py                         # the demo set, runs/train/model
    python examples/03_evaluate_reranker.py --data my-beir-folder --model runs/train/model --rag extractive

``--data`` is a BEIR folder with ``qrels/test.tsv``; by default the demo set ``hn demo`` writes to ``hn-demo/data``
(``hn demo --export DIR`` writes it anywhere), written there on first use. ``--model`` is a folder written by
``examples/02_train_reranker.py`` or ``hn train``. Retrieves the BM25 top-100 of every judged test query and reranks
it with the untrained all-MiniLM-L6-v2 (``zero-shot``), with the fine-tuned model, and, when the folder holds a
fusion weight chosen on validation, with the fine-tuned scores fused with BM25's. Prints a Markdown table of MRR@3,
MRR@10, nDCG@10, Recall@10 and Recall@100 per row, then each row's MRR@10 difference from zero-shot with its paired
permutation p-value. With ``--rag extractive`` (or ``smollm2``, or a causal LM's name) it then answers every query
from each row's top 3 documents and prints the downstream RAG table: context recall/precision and answer F1 /
ROUGE-L against each query's positive. Runs offline (a few minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from hn_evaluation.benchmark import FusedScorer, first_stage_run, first_stage_scores_by_text
from hn_evaluation.generators import load_generator
from hn_evaluation.rag import evaluate_rag
from hn_evaluation.report import format_markdown_table
from hn_evaluation.rerank import RerankReport, evaluate_reranking
from hn_plugins import load_beir, load_reranker
from hn_plugins.demo_data import export_demo_dataset
from hn_plugins.reranker import BiEncoderReranker

logger = logging.getLogger("example.evaluate")

#: Where the embedded demo set goes when no --data is given.
DEMO_DATA = Path("hn-demo/data")


def format_comparison(report: RerankReport, baseline: str = "zero-shot", metric: str = "mrr@10") -> str:
    """Each row's difference from ``baseline`` on ``metric`` with its paired permutation p-value.

    Args:
        report: the evaluation report.
        baseline: the row every other row is compared with.
        metric: the per-query metric compared.

    Returns:
        A plain-text table, one line per row other than ``baseline``.
    """
    lines = [
        f"vs {baseline} ({metric}, paired permutation test over {len(report.per_query[baseline])} queries)"
    ]
    for name, values in report.compare(baseline=baseline, metric=metric).items():
        lines.append(f"{name:<20} delta {values['delta']:+.3f}  p = {values['p_value']:.4f}")
    return "\n".join(lines)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=DEMO_DATA, help="BEIR folder (default: the demo set)")
    parser.add_argument(
        "--model", type=Path, default=Path("runs/train/model"), help="fine-tuned model folder"
    )
    parser.add_argument("--top-k", type=int, default=100, help="BM25 candidates reranked per query")
    parser.add_argument(
        "--max-length",
        type=int,
        default=None,
        help="maximum tokens per text for both bi-encoders (default: the fine-tuned folder's training length)",
    )
    parser.add_argument(
        "--rag",
        default=None,
        help="answer each query from every row's top 3 documents with this generator (extractive, smollm2, ...)",
    )
    args = parser.parse_args()

    # 1. load the test split (never trained or validated on) and its BM25 top-k, the candidates every row reranks
    if args.data == DEMO_DATA and not DEMO_DATA.exists():
        export_demo_dataset(DEMO_DATA)  # what `hn demo` writes there
    test = load_beir(args.data, split="test", empty_documents="drop")
    logger.info("%r", test)
    run = first_stage_run(test, "bm25", args.top_k)

    # 2. the fine-tuned reranker (it carries the fusion weight chosen on validation, if any) and its start model;
    #    both see texts cut at the same length, so the rows differ only by the fine-tuning
    loaded = load_reranker(args.model)
    zero_shot = BiEncoderReranker("all-MiniLM-L6-v2")
    max_length = args.max_length or getattr(loaded.model, "max_seq_length", None)
    if max_length is not None:
        zero_shot.model.max_seq_length = max_length
        if isinstance(loaded, BiEncoderReranker):
            loaded.model.max_seq_length = max_length
        else:
            loaded.model.max_length = max_length
    logger.info("reranking with at most %s tokens per text", max_length)

    rerankers: dict[str, Any] = {"none": None, "zero-shot": zero_shot, "fine-tuned": loaded}
    if loaded.fusion is not None:
        rerankers["fine-tuned+fusion"] = FusedScorer(
            loaded, loaded.fusion, first_stage_scores_by_text(test, run)
        )
    else:
        logger.info("%s holds no fusion weight; no fused row", args.model)

    # 3. rerank, evaluate every row on the same candidates, and compare with the zero-shot start model
    report = evaluate_reranking(test, run, rerankers, top_k=args.top_k)
    sys.stdout.write(
        f"{report.dataset}: BM25 top-{report.top_k} reranked, {len(report.per_query['none'])} queries\n"
    )
    sys.stdout.write(format_markdown_table(report.rows, report.metrics, 3, "row") + "\n\n")
    sys.stdout.write(format_comparison(report) + "\n")

    # 4. downstream: does the better ranking give better answers? (each row's top 3 documents as contexts)
    if args.rag is not None:
        rag = evaluate_rag(test, report.runs, load_generator(args.rag), contexts=3)
        sys.stdout.write(
            f"\nRAG: top {rag.contexts} documents -> {rag.generator}, reference: {rag.reference}\n"
        )
        sys.stdout.write(format_markdown_table(rag.rows, rag.metrics, 3, "row") + "\n")
        for name, values in rag.compare(baseline="zero-shot", metric="answer_f1").items():
            sys.stdout.write(
                f"{name:<20} answer_f1 delta {values['delta']:+.3f}  p = {values['p_value']:.4f}\n"
            )


if __name__ == "__main__":
    main()
