"""How ``hn bootstrap``'s teacher ensemble itself ranks the real test queries (no training).

The teacher scores a (query, document) pair by the cosine of the concatenated, per-member L2-normalised embeddings,
i.e. the mean of its members' cosines. This reranks BM25's top-100 of each judged test query by that score and by
each member alone, so a bootstrapped student's ``hn eval`` can be compared with the teacher it learned from::

    python experiments/cross_encoder_bootstrap/bootstrap_teacher_on_test.py --data ../shared/data/cranfield --max-length 256 \
        --out experiments/cross_encoder_bootstrap/results/bootstrap_cranfield_cpu/eval_teacher_ensemble_test.json
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import numpy as np


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="BEIR folder with a test split")
    parser.add_argument("--models", default="all-MiniLM-L6-v2,static-model", help="the teacher ensemble")
    parser.add_argument(
        "--max-length",
        type=int,
        default=256,
        help="tokens per text of transformer members (default: 256, MiniLM's own, which hn bootstrap's teacher uses)",
    )
    parser.add_argument("--top-k", type=int, default=100)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    for name in ("sentence_transformers", "transformers", "bm25s", "httpx"):
        logging.getLogger(name).setLevel(logging.WARNING)

    from hn_evaluation.benchmark import benchmark_metrics, first_stage_run
    from hn_evaluation.first_stage import encode_texts
    from hn_evaluation.rerank import evaluate_reranking
    from hn_plugins.data import load_beir
    from hn_plugins.models import load_sentence_transformer

    test = load_beir(args.data, split="test", empty_documents="drop")
    run = first_stage_run(test, "bm25", args.top_k)
    doc_ids = sorted({d for ranked in run.values() for d, _ in ranked})
    qids = list(run)
    members = [m.strip() for m in args.models.split(",") if m.strip()]
    vectors = {}
    for name in members:
        model = load_sentence_transformer(name)
        if hasattr(model, "max_seq_length") and name != "static-model":
            model.max_seq_length = args.max_length
        docs = dict(zip(doc_ids, encode_texts(model, [test.document_text(d) for d in doc_ids]), strict=True))
        queries = dict(zip(qids, encode_texts(model, [test.queries[q] for q in qids]), strict=True))
        vectors[name] = (docs, queries)

    class Cosine:
        """Mean cosine over ``names`` (one name: that member alone), looked up from the vectors above."""

        def __init__(self, names: list[str]) -> None:
            self.names = names
            self.text_to_query = {test.queries[q]: q for q in qids}
            self.text_to_doc = {test.document_text(d): d for d in doc_ids}

        def score(self, query: str, documents: list[str]) -> np.ndarray:
            q = self.text_to_query[query]
            ds = [self.text_to_doc[t] for t in documents]
            return np.mean(
                [np.stack([vectors[n][0][d] for d in ds]) @ vectors[n][1][q] for n in self.names], axis=0
            )

    rows: dict = {"bm25": None, "teacher ensemble": Cosine(members)}
    rows.update({name: Cosine([name]) for name in members})
    report = evaluate_reranking(test, run, rows, top_k=args.top_k, metrics=benchmark_metrics(args.top_k))
    result = {
        "data": args.data.name,
        "teacher": members,
        "max_length": args.max_length,
        "queries": len(run),
        "rows": report.rows,
        "command": "python experiments/cross_encoder_bootstrap/bootstrap_teacher_on_test.py "
        + " ".join(sys.argv[1:]),
    }
    args.out.write_text(json.dumps(result, indent=1), encoding="utf-8")
    sys.stdout.write(json.dumps(report.rows, indent=1) + f"\n-> {args.out}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
