"""Would pseudo-relevance feedback in the reranker's embedding space help? BM25 + all-MiniLM-L6-v2, zero-shot.

A bi-encoder reranker already holds the embeddings of the candidates it re-scores, so Rocchio-style feedback costs
one more product per candidate: after the fused ranking (``w * z(MiniLM) + (1 - w) * z(BM25)``, ``hn_plugins.fusion``),
the mean embedding ``m`` of its top ``k`` documents scores every candidate again, and the final score is
``fused + gamma * z(m . d)``. This measures, per dataset, BM25's top-100 of every judged test query (untuned
MiniLM, documents cut at 256 tokens): the fusion weight chosen on the *train* queries as ``zero-shot+fusion`` does
(:func:`hn_plugins.fusion.choose_fusion_weight`), then ``(k, gamma)`` chosen on the train queries by MRR@10
(``gamma = 0`` is plain fusion; ties go to the smaller gamma, then the smaller k) and applied to the test queries,
with a paired permutation test against plain fusion. Also the best ``(k, gamma)`` on test, an upper bound and not a
result. No training. Writes ``experiments/dense_prf/results/dense_prf.json``::

    python experiments/dense_prf/dense_prf.py --data ../shared/data
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # run as a file: the repository root makes `experiments` and `tools` importable
    sys.path.insert(0, str(ROOT))

from tools.script_logging import quiet_logging  # noqa: E402

logger = logging.getLogger("dense_prf")

FEEDBACK_DOCS = (1, 2, 3, 5, 10)
GAMMAS = (0.0, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0)


def _rows(split: Any, bm25: Any, doc_vectors: np.ndarray, index: dict, model: Any) -> list[tuple]:
    """Per judged query: candidate ids, z(BM25), z(MiniLM), candidate embeddings, relevance flags."""
    from hn_plugins.fusion import normalize_scores

    qids = [q for q in split.qrels if q in split.queries]
    run = bm25.retrieve({q: split.queries[q] for q in qids}, top_k=100, exclude=split.excluded)
    query_vectors = model.encode(
        [split.queries[q] for q in qids], normalize_embeddings=True, convert_to_numpy=True
    )
    rows = []
    for i, qid in enumerate(qids):
        docs = [doc_id for doc_id, _ in run[qid]]
        vectors = doc_vectors[[index[d] for d in docs]]
        relevant = np.array([split.qrels[qid].get(d, 0) > 0 for d in docs])
        rows.append(
            (
                docs,
                normalize_scores(np.array([s for _, s in run[qid]])),
                normalize_scores(vectors @ query_vectors[i]),
                vectors,
                relevant,
            )
        )
    return rows


def _reciprocal_rank(scores: np.ndarray, relevant: np.ndarray, k: int = 10) -> float:
    from hn_plugins.metrics import mrr_at_k_of_order  # what choose_fusion_weight scores weights by

    return mrr_at_k_of_order(np.argsort(-scores, kind="stable"), relevant, k)


def _per_query(rows: list, weight: float, feedback: int, gamma: float) -> np.ndarray:
    from hn_plugins.fusion import normalize_scores

    values = []
    for _, bm25, minilm, vectors, relevant in rows:
        fused = weight * minilm + (1.0 - weight) * bm25
        if gamma:
            top = np.argsort(-fused, kind="stable")[:feedback]
            fused = fused + gamma * normalize_scores(vectors @ vectors[top].mean(axis=0))
        values.append(_reciprocal_rank(fused, relevant))
    return np.array(values)


def measure(path: Path, max_length: int) -> dict[str, Any]:
    from hn_evaluation.benchmark import load_split
    from hn_evaluation.first_stage import BM25Retriever
    from hn_evaluation.significance import paired_permutation_test
    from hn_plugins.fusion import choose_fusion_weight
    from hn_plugins.models import load_sentence_transformer

    start = time.perf_counter()
    train, test = load_split(path, "train"), load_split(path, "test")
    bm25 = BM25Retriever(train)
    model = load_sentence_transformer("all-MiniLM-L6-v2")
    model.max_seq_length = max_length
    doc_vectors = model.encode(
        [train.document_text(d) for d in train.doc_ids],
        batch_size=64,
        normalize_embeddings=True,
        convert_to_numpy=True,
    )
    index = {d: i for i, d in enumerate(train.doc_ids)}
    train_rows = _rows(train, bm25, doc_vectors, index, model)
    test_rows = _rows(test, bm25, doc_vectors, index, model)
    weight, _ = choose_fusion_weight([(m, b, rel) for _, b, m, _, rel in train_rows])
    grid = [(k, g) for g in GAMMAS for k in FEEDBACK_DOCS if g or k == FEEDBACK_DOCS[0]]
    train_values = {cell: float(_per_query(train_rows, weight, *cell).mean()) for cell in grid}
    chosen = max(grid, key=lambda cell: (round(train_values[cell], 12), -cell[1], -cell[0]))
    test_per_query = {cell: _per_query(test_rows, weight, *cell) for cell in grid}
    test_values = {cell: float(values.mean()) for cell, values in test_per_query.items()}
    fused, with_feedback = test_per_query[grid[0]], test_per_query[chosen]
    best_on_test = max(grid, key=lambda cell: test_values[cell])
    return {
        "train_queries": len(train_rows),
        "test_queries": len(test_rows),
        "fusion_weight": weight,
        "train_mrr@10": {"fused": train_values[grid[0]], "feedback": train_values[chosen]},
        "chosen": {"feedback_docs": chosen[0], "gamma": chosen[1]},
        "test_mrr@10": {"fused": float(fused.mean()), "feedback": float(with_feedback.mean())},
        "p_value": paired_permutation_test(with_feedback, fused),
        "best_on_test": {
            "feedback_docs": best_on_test[0],
            "gamma": best_on_test[1],
            "test_mrr@10": test_values[best_on_test],
        },
        "test_grid": {f"k={k},gamma={g}": round(v, 4) for (k, g), v in test_values.items()},
        "max_length": max_length,
        "seconds": round(time.perf_counter() - start, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data", type=Path, required=True, help="folder of the BEIR datasets (../shared/data)"
    )
    parser.add_argument("--datasets", default="medline,cranfield,cisi,cacm,python-docs-faq,npl")
    parser.add_argument("--max-length", type=int, default=256, help="tokens per document")
    parser.add_argument("--out", type=Path, default=Path("experiments/dense_prf/results/dense_prf.json"))
    args = parser.parse_args()
    quiet_logging()
    results = {}
    for name in args.datasets.split(","):
        results[name] = measure(args.data / name, args.max_length)
        logger.info("%s: %s", name, json.dumps({k: v for k, v in results[name].items() if k != "test_grid"}))
    args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    logger.info("wrote %s", args.out)


if __name__ == "__main__":
    main()
