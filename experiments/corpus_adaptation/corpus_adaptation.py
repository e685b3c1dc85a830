"""Does adapting the bi-encoder to the corpus first, without labels, help? Pseudo-query pre-training, no judgments.

GPL-style domain adaptation asks nothing of the user: every document that has a title (or a first sentence) gives
a pseudo-query (:func:`hn_plugins.training.bootstrap.make_pseudo_queries`, the same pairs ``hn bootstrap`` uses)
whose answer is the rest of the document. ``hn bootstrap --kind bi``
(:func:`hn_plugins.training.corpus_adaptation.adapt_bi_encoder`) fine-tunes all-MiniLM-L6-v2 on those pairs with
in-batch negatives (1 epoch, batch 32, lr 2e-5, 128 tokens; one run per seed) and this measures, like
``fusion_signals.py``, BM25's top-100 of every judged test query re-scored by the untuned and by the adapted model
(documents cut at 256 tokens), alone and fused with BM25 (z-scores, the weight chosen on the *train* queries),
with a paired permutation test between each adapted fused row and the untuned one. A dataset with fewer than 200
pseudo-queries (npl has no titles) is skipped. Writes ``experiments/corpus_adaptation/results/corpus_adaptation.json``::

    python experiments/corpus_adaptation/corpus_adaptation.py --data ../shared/data

``--negatives mined`` adapts with one mined hard negative per pseudo-query as well
(``experiments/corpus_adaptation/results/corpus_adaptation_mined.json``: cisi, seeds 0 and 1; python-docs-faq, seed 0).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # run as a file: the repository root makes `experiments` and `tools` importable
    sys.path.insert(0, str(ROOT))

from experiments.fusion_signals.fusion_signals import (  # noqa: E402
    SIGNALS,
    mixture_results,
    normalized,
    query_signals,
)
from tools.script_logging import quiet_logging  # noqa: E402

logger = logging.getLogger("corpus_adaptation")

MIN_PSEUDO_QUERIES = 200
FUSED = {"bm25+minilm": lambda w: w[2] == 0}


def _per_query_mrr(rows: list, weights: dict[str, float]) -> list[float]:
    from hn_evaluation.metrics import mrr_at_k

    w = np.array([weights[s] for s in SIGNALS])
    return [
        mrr_at_k([docs[j] for j in np.argsort(-(w @ scores), kind="stable")[:10]], relevant)
        for docs, scores, relevant in rows
    ]


def measure(path: Path, seeds: list[int], negatives: str = "in-batch") -> dict[str, Any]:
    from hn_evaluation.benchmark import load_split
    from hn_evaluation.first_stage import BM25Retriever
    from hn_evaluation.significance import paired_permutation_test
    from hn_plugins.models import load_sentence_transformer
    from hn_plugins.training.bootstrap import make_pseudo_queries
    from hn_plugins.training.corpus_adaptation import adapt_bi_encoder

    start = time.perf_counter()
    train, test = load_split(path, "train"), load_split(path, "test")
    pairs = make_pseudo_queries(train.corpus)
    if len(pairs) < MIN_PSEUDO_QUERIES:
        return {"pseudo_queries": len(pairs), "skipped": f"fewer than {MIN_PSEUDO_QUERIES} pseudo-queries"}
    bm25 = BM25Retriever(train)
    static = load_sentence_transformer("static-model")
    texts = [train.document_text(d) for d in train.doc_ids]

    def encode(model: Any) -> Any:
        return model.encode(texts, batch_size=64, normalize_embeddings=True, convert_to_numpy=True)

    # the static model is the same in every row: its document vectors are computed once
    static_vectors = {"index": {d: i for i, d in enumerate(train.doc_ids)}, "static": encode(static)}

    def scored(minilm: Any) -> tuple[dict[str, Any], list[float]]:
        """Test row and per-query fused MRR@10 of ``minilm``: z-normalised (BM25, MiniLM, static) signals."""
        minilm.max_seq_length = 256
        models = {"minilm": minilm, "static": static}
        doc_vectors = {**static_vectors, "minilm": encode(minilm)}
        train_rows, test_rows = (
            normalized(query_signals(split, bm25, doc_vectors, models), "z") for split in (train, test)
        )
        mixes = mixture_results(train_rows, test_rows, SIGNALS, FUSED)
        row = {"minilm_alone": mixes["alone"]["minilm"], "bm25_alone": mixes["alone"]["bm25"]}
        row["bm25+minilm"] = mixes["bm25+minilm"]
        return row, _per_query_mrr(test_rows, mixes["bm25+minilm"]["weights"])

    result: dict[str, Any] = {
        "pseudo_queries": len(pairs),
        "from_titles": sum(p.source == "title" for p in pairs),
        "negatives": negatives,
    }
    result["untuned"], untuned = scored(load_sentence_transformer("all-MiniLM-L6-v2"))
    result["adapted"] = {}
    for seed in seeds:
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            folder = adapt_bi_encoder(
                train, "all-MiniLM-L6-v2", output_dir=Path(tmp) / "adapted", negatives=negatives, seed=seed
            )
            train_seconds = round(time.perf_counter() - t0, 1)
            marker = json.loads((folder / "hn_reranker.json").read_text(encoding="utf-8"))
            row, adapted = scored(load_sentence_transformer(folder))
        row["train_seconds"] = train_seconds
        if "mined_negatives" in marker["metrics"]:
            row["mined_negatives"] = marker["metrics"]["mined_negatives"]
        row["p_fused_vs_untuned_fused"] = paired_permutation_test(adapted, untuned)
        result["adapted"][str(seed)] = row
    fused = [row["bm25+minilm"]["test_mrr@10"] for row in result["adapted"].values()]
    result["adapted_fused_test_mrr@10_mean"] = float(np.mean(fused))
    result["adapted_fused_test_mrr@10_std"] = float(np.std(fused))
    result["seconds"] = round(time.perf_counter() - start, 1)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data", type=Path, required=True, help="folder of the BEIR datasets (../shared/data)"
    )
    parser.add_argument("--datasets", default="cisi,cranfield,cacm,medline,python-docs-faq,npl")
    parser.add_argument(
        "--out", type=Path, default=Path("experiments/corpus_adaptation/results/corpus_adaptation.json")
    )
    parser.add_argument("--seeds", default="0,1", help="one adaptation run per seed")
    parser.add_argument(
        "--negatives",
        default="in-batch",
        choices=["in-batch", "mined"],
        help="adapt_bi_encoder's negatives: batch-mates only, or plus one mined hard negative each",
    )
    args = parser.parse_args()
    quiet_logging()
    results = {}
    seeds = [int(seed) for seed in args.seeds.split(",")]
    for name in args.datasets.split(","):
        results[name] = measure(args.data / name, seeds, args.negatives)
        logger.info("%s: %s", name, json.dumps(results[name]))
        args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    logger.info("wrote %s", args.out)


if __name__ == "__main__":
    main()
