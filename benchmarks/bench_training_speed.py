"""Training and reranking speed on CPU (issue 3's speed targets), written to benchmarks/results/speed_<label>.json.

- loss overhead: forward + backward + AdamW step of the cross-encoder triplet margin loss and the listwise loss vs
  BCE on the same Cranfield records (1 BM25 negative each, batch 16, 128 tokens), steps interleaved across losses;
  the bi-encoder triplet loss (Eq. 8) is timed the same way against the bi-encoder's in-batch loss;
- reranking: seconds to rerank BM25's top-100 for one Cranfield test query with the MiniLM bi-encoder (documents
  encoded at query time) and with a MiniLM cross-encoder (median over timed queries, first one untimed).

Run on a quiet machine, pinned to 2 cores::

    taskset -c 0,1 python benchmarks/bench_training_speed.py --threads 2 --label cpu2 \
        --data ../shared/data/cranfield
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import sys
import time
from pathlib import Path

logger = logging.getLogger("bench_training_speed")


def _bi_loss_overhead(train, records, steps: int, batch_size: int, max_length: int, seed: int) -> dict:
    """Step time of the bi-encoder triplet loss vs in-batch (MNRL) on the same (q, p, n) rows, interleaved."""
    import torch
    from sentence_transformers import losses as st_losses

    from hn_plugins.models import load_sentence_transformer
    from hn_plugins.training.losses import BiEncoderTripletLoss

    rows = [
        (
            train.queries[r.query_id],
            train.document_text(r.positive_id),
            train.document_text(r.negative_ids[0]),
        )
        for r in records
        if r.negative_ids
    ]
    models, optims, loss_fns = {}, {}, {}
    for name in ("in-batch", "triplet"):
        torch.manual_seed(seed)
        model = load_sentence_transformer("all-MiniLM-L6-v2", device="cpu")
        model.max_seq_length = max_length
        models[name] = model
        optims[name] = torch.optim.AdamW(model.parameters(), lr=2e-5)
        loss_fns[name] = (
            BiEncoderTripletLoss(model)
            if name == "triplet"
            else st_losses.MultipleNegativesRankingLoss(model)
        )
    times: dict[str, list[float]] = {n: [] for n in models}
    for step in range(steps + 1):
        batch = rows[(step * batch_size) % len(rows) :][:batch_size]
        for name, model in models.items():
            features = [model.tokenize([row[i] for row in batch]) for i in range(3)]
            start = time.perf_counter()
            loss = loss_fns[name](features, None)
            loss.backward()
            optims[name].step()
            optims[name].zero_grad()
            if step > 0:
                times[name].append(time.perf_counter() - start)
    base = statistics.median(times["in-batch"])
    return {
        name: {
            "seconds_per_step": statistics.median(t),
            "triplets_per_second": batch_size / statistics.median(t),
            "overhead_vs_in_batch": statistics.median(t) / base - 1.0,
        }
        for name, t in times.items()
    }


def _cached_bi_speed(test, queries: int, max_length: int) -> dict:
    """BiEncoderReranker with its document cache warmed by ``precompute`` on the candidates: query-time cost only."""
    from hn_plugins.reranker import BiEncoderReranker
    from hn_plugins.training.evaluator import bm25_candidates

    reranker = BiEncoderReranker("all-MiniLM-L6-v2", device="cpu")
    reranker.model.max_seq_length = max_length
    qids = test.judged_query_ids[: queries + 1]
    candidates = bm25_candidates(test, qids, top_k=100)
    reranker.precompute([test.document_text(d) for q in qids for d in candidates[q]])
    times = []
    for i, q in enumerate(qids):
        docs = [test.document_text(d) for d in candidates[q]]
        start = time.perf_counter()
        reranker.score(test.queries[q], docs)
        if i > 0:
            times.append(time.perf_counter() - start)
    return {
        "seconds_per_query": statistics.median(times),
        "documents_per_second": 100 * len(times) / sum(times),
        "top_k": 100,
        "queries": len(times),
        "model": "BiEncoderReranker (cache warmed with precompute)",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=Path("../shared/data/cranfield"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--label", default="cpu2")
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--queries", type=int, default=8)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stdout)
    import torch

    torch.set_num_threads(args.threads)
    from hn_plugins.data import load_beir
    from hn_plugins.mining.miner import HardNegativeMiner
    from hn_plugins.training.model_folder import load_base_model
    from hn_plugins.training.speed import measure_loss_overhead, measure_reranking_speed

    train = load_beir(args.data, split="train", empty_documents="drop")
    test = load_beir(args.data, split="test", empty_documents="drop")
    records = HardNegativeMiner(None, selector="bm25", num_negatives=1, seed=0).fit(train).mine(train).records
    started = time.perf_counter()
    cross = measure_loss_overhead(
        train,
        records,
        "all-MiniLM-L6-v2",
        losses=("bce", "triplet", "listwise"),
        steps=args.steps,
        max_length=128,
    )
    bi = _bi_loss_overhead(train, records, args.steps, 16, 128, 0)
    cross_model, _ = load_base_model("all-MiniLM-L6-v2", "cross", device="cpu")
    rerank = {
        "bi (MiniLM, cosine)": measure_reranking_speed(
            "all-MiniLM-L6-v2", test, kind="bi", queries=args.queries, max_length=256
        ),
        "cross (MiniLM)": measure_reranking_speed(cross_model, test, queries=args.queries, max_length=256),
    }
    rerank["bi (MiniLM, document vectors cached)"] = _cached_bi_speed(test, args.queries, 256)
    report = {
        "label": args.label,
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "torch_threads": torch.get_num_threads(),
            "affinity": sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
            "torch": torch.__version__,
            "load_average_before": os.getloadavg(),
        },
        "data": str(args.data.name),
        "cross_encoder_losses": cross,
        "bi_encoder_losses": bi,
        "reranking_top100": rerank,
        "seconds": round(time.perf_counter() - started, 1),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"speed_{args.label}.json"
    path.write_text(json.dumps(report, indent=1), encoding="utf-8")
    logger.info("written %s\n%s", path, json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
