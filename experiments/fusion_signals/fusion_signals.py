"""Would a third fusion signal, or another normalisation, help? BM25 + all-MiniLM-L6-v2 (+ static-model), zero-shot.

``default`` fuses its reranker with BM25 (``hn_plugins.fusion``). The mining ensemble's second member, the static
model, costs almost nothing at query time, so it is the cheapest extra signal a shipped reranker could add. This
measures, per dataset, BM25's top-100 of every judged test query re-scored by z-normalised mixtures of the three
signals (untuned models, documents cut at 256 tokens), the weights (steps of 0.1, summing to 1) chosen on the
*train* queries by MRR@10 and then applied to the test queries. For BM25 + MiniLM alone it also compares the
per-query normalisation: z-scores (what ``hn_plugins.fusion`` uses) with weight steps of 0.1 and of 0.05, min-max,
and reciprocal ranks (``1 / (60 + rank)``, as reciprocal rank fusion). No training.
Writes ``experiments/fusion_signals/results/fusion_signals.json``::

    python experiments/fusion_signals/fusion_signals.py --data ../shared/data
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

logger = logging.getLogger("fusion_signals")

SIGNALS = ("bm25", "minilm", "static")
#: every weight vector (bm25, minilm, static) in steps of 0.1 that sums to 1
GRID = [np.array([a, b, 10 - a - b]) / 10 for a in range(11) for b in range(11 - a)]
#: per-query normalisations compared for BM25 + MiniLM: (normalisation, weight step)
NORMALIZATIONS = {
    "z": ("z", 0.1),
    "z, steps of 0.05": ("z", 0.05),
    "minmax": ("minmax", 0.1),
    "rrf": ("rrf", 0.1),
}
MIXES = {
    "bm25+minilm": lambda w: w[2] == 0,
    "minilm+static": lambda w: w[0] == 0,
    "bm25+minilm+static": lambda w: True,
}


def query_signals(
    split: Any, bm25: Any, doc_vectors: dict, models: dict
) -> list[tuple[list[str], np.ndarray, set]]:
    """Per judged query: BM25's top-100 ids, the three raw score lists (one row each), the relevant ids."""
    qids = [q for q in split.qrels if q in split.queries]
    run = bm25.retrieve({q: split.queries[q] for q in qids}, top_k=100, exclude=split.excluded)
    query_vectors = {
        name: model.encode([split.queries[q] for q in qids], normalize_embeddings=True, convert_to_numpy=True)
        for name, model in models.items()
    }
    rows = []
    for i, qid in enumerate(qids):
        docs = [doc_id for doc_id, _ in run[qid]]
        rows_of = [doc_vectors["index"][d] for d in docs]
        scores = [np.array([s for _, s in run[qid]])] + [
            doc_vectors[name][rows_of] @ query_vectors[name][i] for name in ("minilm", "static")
        ]
        relevant = {d for d, grade in split.qrels[qid].items() if grade > 0}
        rows.append((docs, np.stack(scores), relevant))
    return rows


def normalized(rows: list, method: str) -> list:
    """The rows with each signal normalised per query: ``z``, ``minmax`` or ``rrf`` (``1 / (60 + rank)``)."""
    from hn_plugins.fusion import normalize_scores

    def norm(scores: np.ndarray) -> np.ndarray:
        if method == "rrf":
            ranks = np.argsort(np.argsort(-scores, kind="stable"), kind="stable")
            return 1.0 / (60.0 + ranks)
        return normalize_scores(scores, method)  # type: ignore[arg-type]

    return [(docs, np.stack([norm(s) for s in scores]), relevant) for docs, scores, relevant in rows]


def _mrr(rows: list, weights: np.ndarray) -> float:
    from hn_evaluation.metrics import mrr_at_k

    values = [
        mrr_at_k([docs[j] for j in np.argsort(-(weights @ scores), kind="stable")[:10]], relevant)
        for docs, scores, relevant in rows
    ]
    return float(np.mean(values))


def mixture_results(
    train_rows: list, test_rows: list, signals: tuple[str, ...], mixes: dict[str, Any]
) -> dict[str, Any]:
    """Test MRR@10 of each signal alone and of each mixture, its weights (a :data:`GRID` point that ``mixes[name]``
    allows) chosen on the train rows; plus the best :data:`GRID` point on test (an upper bound, not a result)."""
    result: dict[str, Any] = {
        "train_queries": len(train_rows),
        "test_queries": len(test_rows),
        "alone": {name: _mrr(test_rows, np.eye(3)[i]) for i, name in enumerate(signals)},
    }
    for mix, allowed in mixes.items():
        candidates = [w for w in GRID if allowed(w)]
        train_values = [_mrr(train_rows, w) for w in candidates]
        best = int(np.argmax(train_values))  # first best: ties go to the earlier grid point
        result[mix] = {
            "weights": dict(zip(signals, candidates[best].round(1).tolist(), strict=True)),
            "train_mrr@10": train_values[best],
            "test_mrr@10": _mrr(test_rows, candidates[best]),
        }
    result["best_three_way_on_test"] = max(_mrr(test_rows, w) for w in GRID)
    return result


def measure(path: Path) -> dict[str, Any]:
    from hn_evaluation.benchmark import load_split
    from hn_evaluation.first_stage import BM25Retriever
    from hn_plugins.models import load_sentence_transformer

    start = time.perf_counter()
    train, test = load_split(path, "train"), load_split(path, "test")
    bm25 = BM25Retriever(train)
    minilm = load_sentence_transformer("all-MiniLM-L6-v2")
    minilm.max_seq_length = 256
    models = {"minilm": minilm, "static": load_sentence_transformer("static-model")}
    texts = [train.document_text(d) for d in train.doc_ids]
    doc_vectors: dict[str, Any] = {"index": {d: i for i, d in enumerate(train.doc_ids)}}
    for name, model in models.items():
        doc_vectors[name] = model.encode(
            texts, batch_size=64, normalize_embeddings=True, convert_to_numpy=True
        )
    raw_train = query_signals(train, bm25, doc_vectors, models)
    raw_test = query_signals(test, bm25, doc_vectors, models)
    train_rows, test_rows = normalized(raw_train, "z"), normalized(raw_test, "z")
    result = mixture_results(train_rows, test_rows, SIGNALS, MIXES)
    result["bm25+minilm_normalization"] = {}
    for label, (method, step) in NORMALIZATIONS.items():
        steps = round(1 / step)
        # the order of GRID (BM25's weight rising), so ties go the same way and z at 0.1 equals bm25+minilm
        candidates = [np.array([i / steps, 1 - i / steps, 0.0]) for i in range(steps + 1)]
        norm_train, norm_test = normalized(raw_train, method), normalized(raw_test, method)
        train_values = [_mrr(norm_train, w) for w in candidates]
        best = int(np.argmax(train_values))
        result["bm25+minilm_normalization"][label] = {
            "minilm_weight": round(float(candidates[best][1]), 2),
            "train_mrr@10": train_values[best],
            "test_mrr@10": _mrr(norm_test, candidates[best]),
        }
    result["seconds"] = round(time.perf_counter() - start, 1)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data", type=Path, required=True, help="folder of the BEIR datasets (../shared/data)"
    )
    parser.add_argument("--datasets", default="medline,cranfield,cisi,cacm,python-docs-faq,npl")
    parser.add_argument(
        "--out", type=Path, default=Path("experiments/fusion_signals/results/fusion_signals.json")
    )
    args = parser.parse_args()
    quiet_logging()
    results = {}
    for name in args.datasets.split(","):
        results[name] = measure(args.data / name)
        logger.info("%s: %s", name, json.dumps(results[name]))
    args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    logger.info("wrote %s", args.out)


if __name__ == "__main__":
    main()
