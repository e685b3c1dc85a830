"""Mining benchmarks (issue 2): time per stage, us vs sentence-transformers, incremental re-mine, 1M-doc scale.

Usage (each writes ``benchmarks/results/<name>.json``; ``report`` renders ``benchmarks/MINING.md``)::

    python benchmarks/bench_mining.py stages --data ../shared/data
    python benchmarks/bench_mining.py vs-st --data ../shared/data --dataset cranfield
    python benchmarks/bench_mining.py incremental --data ../shared/data --dataset cranfield
    python benchmarks/bench_mining.py scale --docs 1000000 --queries 100000
    python benchmarks/bench_mining.py report

The ``scale`` corpus is SYNTHETIC (random word sequences drawn with the word frequencies of the shared
collections); it measures speed and memory only, never quality.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a file: the repository root makes `tools` importable
    sys.path.insert(0, str(ROOT))

from tools.bench_results import save_result  # noqa: E402

logger = logging.getLogger("bench_mining")
HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
DATASETS = ["cranfield", "cisi", "medline", "npl", "cacm", "python-docs-faq"]


def _save(name: str, payload: dict) -> Path:
    return save_result(RESULTS, name, payload)


def _load(data: Path, name: str):  # type: ignore[no-untyped-def]
    from hn_plugins.data import load_beir

    return load_beir(data / name, split="train", empty_documents="drop")


# ---------------------------------------------------------------------------------------------- stages
def bench_stages(args: argparse.Namespace) -> None:
    from hn_plugins.embedders import EmbedderEnsemble
    from hn_plugins.mining.miner import HardNegativeMiner
    from hn_plugins.reduction import PCAReducer

    ensemble = EmbedderEnsemble(args.models.split(","), batch_size=64)
    rows = {}
    for name in args.datasets.split(","):
        ds = _load(args.data, name)
        miner = HardNegativeMiner(ensemble, PCAReducer(variance=0.95), selector="paper", num_negatives=3)
        start = time.perf_counter()
        result = miner.fit(ds).mine(ds)
        total = time.perf_counter() - start
        s = result.summary()
        rows[name] = {
            "documents": len(ds.corpus),
            "train_queries": len(ds.judged_query_ids),
            "pairs": s["pairs"],
            "timings_s": miner.timings,
            "total_s": total,
            "selection_rate": s["selection_rate"],
            "pca_components": s.get("pca_components"),
            "deepened_pairs": s.get("deepened_pairs"),
        }
        logger.info("%s: %s", name, rows[name])
    _save("stages", {"models": args.models, "datasets": rows})


# ---------------------------------------------------------------------------------------------- vs-st
def bench_vs_st(args: argparse.Namespace) -> None:
    """One model, same data: our cold run (no cache) vs sentence-transformers' mine_hard_negatives."""
    from datasets import Dataset
    from sentence_transformers.util import mine_hard_negatives

    from hn_plugins.embedders import EmbedderEnsemble
    from hn_plugins.mining.miner import HardNegativeMiner
    from hn_plugins.models import load_sentence_transformer

    model = load_sentence_transformer(args.model)
    ds = _load(args.data, args.dataset)
    texts = [ds.document_text(d) for d in ds.doc_ids]
    pairs = ds.positive_pairs()
    runs: dict[str, list[float]] = {"ours": [], "sentence_transformers": []}
    for _ in range(args.repeats):
        start = time.perf_counter()
        miner = HardNegativeMiner(
            EmbedderEnsemble([model], batch_size=32),
            None,
            selector="positive-aware",
            num_negatives=3,
            candidates=100,
            relative_margin=0.05,
        )
        miner.fit(ds).mine(ds)
        runs["ours"].append(time.perf_counter() - start)
        start = time.perf_counter()
        data = Dataset.from_dict(
            {"query": [ds.queries[q] for q, _ in pairs], "positive": [ds.document_text(p) for _, p in pairs]}
        )
        mine_hard_negatives(
            data,
            model,
            corpus=texts,
            range_max=100,
            num_negatives=3,
            relative_margin=0.05,
            batch_size=32,
            verbose=False,
            use_faiss=True,
        )
        runs["sentence_transformers"].append(time.perf_counter() - start)
    best = {k: min(v) for k, v in runs.items()}
    _save(
        f"vs_st_{args.dataset}",
        {
            "model": args.model,
            "dataset": args.dataset,
            "documents": len(texts),
            "pairs": len(pairs),
            "runs_s": runs,
            "best_s": best,
            "ratio_ours_over_st": best["ours"] / best["sentence_transformers"],
        },
    )


# ---------------------------------------------------------------------------------------------- incremental
def bench_incremental(args: argparse.Namespace) -> None:
    """Cold mine with an empty cache, then change 1% of the documents and mine again."""
    import tempfile

    from hn_plugins.embedders import EmbedderEnsemble
    from hn_plugins.mining.miner import HardNegativeMiner
    from hn_plugins.reduction import PCAReducer

    ds = _load(args.data, args.dataset)
    models = args.models.split(",")
    with tempfile.TemporaryDirectory() as cache:

        def mine(dataset):  # type: ignore[no-untyped-def]
            # a new process would also reload the models
            ensemble = EmbedderEnsemble(models, cache_dir=cache, engine=args.engine)
            miner = HardNegativeMiner(ensemble, PCAReducer(variance=0.95), selector="paper", num_negatives=3)
            start = time.perf_counter()
            miner.fit(dataset).mine(dataset)
            return time.perf_counter() - start, ensemble.encode_calls, dict(miner.timings)

        cold_s, cold_calls, cold_t = mine(ds)
        rng = np.random.default_rng(0)
        changed_ids = rng.choice(ds.doc_ids, size=max(1, len(ds.doc_ids) // 100), replace=False).tolist()
        corpus = dict(ds.corpus)
        for doc_id in changed_ids:
            title, text = corpus[doc_id]
            corpus[doc_id] = (title, text + " (revised)")
        warm_s, warm_calls, warm_t = mine(ds.with_corpus(corpus))
    _save(
        f"incremental_{args.dataset}",
        {
            "models": models,
            "engine": args.engine,
            "dataset": args.dataset,
            "documents": len(ds.corpus),
            "changed": len(changed_ids),
            "cold_s": cold_s,
            "cold_texts_encoded": cold_calls,
            "cold_timings_s": cold_t,
            "remine_s": warm_s,
            "remine_texts_encoded": warm_calls,
            "remine_timings_s": warm_t,
            "remine_over_cold": warm_s / cold_s,
        },
    )


# ---------------------------------------------------------------------------------------------- scale
def _synthetic(
    n_docs: int, n_queries: int, data: Path, seed: int = 0
) -> tuple[list[str], list[str], list[int]]:
    """SYNTHETIC texts: words drawn with the unigram frequencies of the shared collections."""
    counts: Counter[str] = Counter()
    for name in ("cranfield", "npl", "cacm", "medline"):
        with (data / name / "corpus.jsonl").open() as handle:
            for line in handle:
                rec = json.loads(line)
                counts.update(f"{rec.get('title', '')} {rec.get('text', '')}".lower().split())
    vocab = np.array([w for w, _ in counts.most_common(20000)])
    probs = np.array([c for _, c in counts.most_common(20000)], dtype=np.float64)
    probs /= probs.sum()
    rng = np.random.default_rng(seed)
    lengths = rng.integers(20, 60, size=n_docs)
    words = rng.choice(len(vocab), size=int(lengths.sum()), p=probs)
    docs, pos = [], 0
    for length in lengths:
        docs.append(" ".join(vocab[words[pos : pos + length]]))
        pos += length
    positives = rng.integers(n_docs, size=n_queries).tolist()
    queries = []
    for p in positives:
        toks = docs[p].split()
        take = rng.choice(len(toks), size=min(8, len(toks)), replace=False)
        noise = vocab[rng.choice(len(vocab), size=2, p=probs)].tolist()
        queries.append(" ".join([toks[i] for i in sorted(take)] + noise))
    return docs, queries, positives


def bench_scale(args: argparse.Namespace) -> None:
    from hn_plugins.data import RetrievalDataset
    from hn_plugins.embedders import EmbedderEnsemble
    from hn_plugins.mining.miner import HardNegativeMiner
    from hn_plugins.reduction import PCAReducer

    start = time.perf_counter()
    docs, queries, positives = _synthetic(args.docs, args.queries, args.data)
    gen_s = time.perf_counter() - start
    ds = RetrievalDataset(
        corpus={f"d{i}": ("", t) for i, t in enumerate(docs)},
        queries={f"q{i}": t for i, t in enumerate(queries)},
        qrels={f"q{i}": {f"d{p}": 1} for i, p in enumerate(positives)},
        name="synthetic",
    )
    del docs
    ensemble = EmbedderEnsemble(["static-model"], batch_size=4096, engine=args.engine)
    reducer = PCAReducer(variance=0.95) if args.variance < 1 else None
    miner = HardNegativeMiner(
        ensemble,
        reducer,
        selector="paper",
        num_negatives=1,
        candidates=args.candidates,
        index=args.index,
        max_candidates=args.candidates,
        fit_pca_on_queries=False,
    )
    start = time.perf_counter()
    result = miner.fit(ds).mine(ds)
    total = time.perf_counter() - start
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    s = result.summary()
    _save(
        f"scale_{args.index}",
        {
            "corpus": "SYNTHETIC: random word sequences with the unigram frequencies of cranfield/npl/cacm/medline",
            "documents": args.docs,
            "queries": args.queries,
            "model": "static-model (model2vec, 64 dims)",
            "engine": ensemble.engine,
            "encoder": type(ensemble.members[0].encoder).__name__,
            "tokenizers_parallelism": os.environ.get("TOKENIZERS_PARALLELISM"),
            "end_to_end_s": total,
            "index": args.index,
            "candidates": args.candidates,
            "generate_s": gen_s,
            "timings_s": miner.timings,
            "mining_total_s": total,
            "peak_rss_gb": peak_gb,
            "selection_rate": s["selection_rate"],
            "depth_limited_pairs": s.get("depth_limited_pairs", 0),
            "pca_components": s.get("pca_components"),
        },
    )


# ---------------------------------------------------------------------------------------------- report
def report(_: argparse.Namespace) -> None:
    lines = [
        "# Mining benchmarks",
        "",
        "Produced by `benchmarks/bench_mining.py` (commands below) on the 2-core CPU machine; raw JSON in "
        "`benchmarks/results/`. Load average at start is recorded: other jobs running at the same time slow "
        "the numbers down.",
        "",
    ]
    for path in sorted(RESULTS.glob("*.json")):
        data = json.loads(path.read_text())
        lines += [
            f"## {path.stem}",
            "",
            f"`{data.get('command')}`",
            "",
            "```json",
            json.dumps({k: v for k, v in data.items() if k not in {"command"}}, indent=1)[:4000],
            "```",
            "",
        ]
    (HERE / "MINING.md").write_text("\n".join(lines))


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="cmd", required=True)
    default_data = HERE.parent.parent / "shared" / "data"
    p = sub.add_parser("stages")
    p.add_argument("--data", type=Path, default=default_data)
    p.add_argument("--datasets", default=",".join(DATASETS))
    p.add_argument("--models", default="all-MiniLM-L6-v2,static-model")
    p.set_defaults(func=bench_stages)
    p = sub.add_parser("vs-st")
    p.add_argument("--data", type=Path, default=default_data)
    p.add_argument("--dataset", default="cranfield")
    p.add_argument("--model", default="all-MiniLM-L6-v2")
    p.add_argument("--repeats", type=int, default=2)
    p.set_defaults(func=bench_vs_st)
    p = sub.add_parser("incremental")
    p.add_argument("--data", type=Path, default=default_data)
    p.add_argument("--dataset", default="cranfield")
    p.add_argument("--models", default="all-MiniLM-L6-v2,static-model")
    p.add_argument("--engine", default="auto", choices=["auto", "torch", "onnx", "onnx-int8"])
    p.set_defaults(func=bench_incremental)
    p = sub.add_parser("scale")
    p.add_argument("--data", type=Path, default=default_data)
    p.add_argument("--docs", type=int, default=1_000_000)
    p.add_argument("--queries", type=int, default=100_000)
    p.add_argument("--index", default="ivf", choices=["exact", "hnsw", "ivf"])
    p.add_argument("--candidates", type=int, default=100)
    p.add_argument("--variance", type=float, default=0.95)
    p.add_argument("--engine", default="auto", choices=["auto", "torch", "onnx", "onnx-int8"])
    p.set_defaults(func=bench_scale)
    p = sub.add_parser("report")
    p.set_defaults(func=report)
    args = parser.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
