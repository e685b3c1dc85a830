"""Embedding a corpus locally vs on Ray Data actors (``EmbedderEnsemble(..., backend="ray")``).

Embeds every document of a BEIR corpus with one model, no cache, three ways: in this process, and on a local Ray
cluster with 1 and 2 actors (Ray started once beforehand, as a long-lived cluster would be). Records seconds,
documents/s and the largest difference from the local vectors. On one machine Ray only adds overhead (actor start,
model load per actor, serialisation); its use is a cluster whose workers each bring their own CPUs or GPU.
Writes a JSON report.

    python benchmarks/bench_ray_embedding.py --data ../shared/data/cranfield --model all-MiniLM-L6-v2 \
        --out benchmarks/results/ray_embedding_cranfield.json
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import tempfile
import time
from pathlib import Path

logger = logging.getLogger("bench_ray_embedding")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="BEIR folder")
    parser.add_argument("--model", default="all-MiniLM-L6-v2")
    parser.add_argument("--workers", default="1,2", help="actor counts to time (default: 1,2)")
    parser.add_argument("--max-length", type=int, default=128, help="tokens per document (default: 128)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    import numpy as np
    import ray

    from hn_plugins.data import load_beir
    from hn_plugins.embedders import EmbedderEnsemble
    from hn_plugins.models import load_sentence_transformer

    data = load_beir(args.data, split="train", empty_documents="drop")
    ids = data.doc_ids
    texts = [data.document_text(d) for d in ids]
    model = load_sentence_transformer(args.model)
    model.max_seq_length = args.max_length
    rows: dict[str, dict[str, float]] = {}
    start = time.perf_counter()
    local = EmbedderEnsemble([model]).encode_documents(ids, texts)
    rows["local"] = {"seconds": time.perf_counter() - start}

    home = Path(tempfile.mkdtemp())  # no probe of the cloud-metadata address (design.md)
    (home / "ray_bootstrap_config.yaml").write_text("provider:\n  type: local\n")
    os.environ.update(HOME=str(home), RAY_USAGE_STATS_ENABLED="0")
    start = time.perf_counter()
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    ray_start = time.perf_counter() - start
    for workers in (int(w) for w in args.workers.split(",")):
        start = time.perf_counter()
        remote = EmbedderEnsemble([model], backend="ray", ray_workers=workers).encode_documents(ids, texts)
        rows[f"ray-{workers}"] = {
            "seconds": time.perf_counter() - start,
            "max_abs_difference_from_local": float(np.abs(remote - local).max()),
        }
    ray.shutdown()
    for row in rows.values():
        row["documents_per_second"] = len(ids) / row["seconds"]
    report = {
        "command": "python benchmarks/bench_ray_embedding.py "
        f"--data {args.data} --model {args.model} --workers {args.workers} --max-length {args.max_length}",
        "documents": len(ids),
        "model": args.model,
        "max_length": args.max_length,
        "ray_init_seconds": ray_start,
        "rows": rows,
        "machine": {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine()},
        "ray": ray.__version__,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2), encoding="utf-8")
    logger.info("%s", json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
