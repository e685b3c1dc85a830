"""Mine hard negatives with the paper's method and the shipped ``default``, and compare them with the baselines.

    python examples/01_mine_hard_negatives.py                      # the embedded demo set (./hn-demo/data)
    python examples/01_mine_hard_negatives.py --data my-beir-folder --out runs/mining

``--data`` is a BEIR folder (``corpus.jsonl``, ``queries.jsonl``, ``qrels/train.tsv``); by default the demo set
``hn demo`` writes to ``hn-demo/data`` (``hn demo --export DIR`` writes it anywhere), written there on first use.
Prints, for each selector, how many (query, positive) pairs got a negative and the median query-negative distance,
and writes each selector's triplets as JSON Lines. Runs offline with the packaged models (about a minute on 2 cores for the demo set).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from hn_plugins import EmbedderEnsemble, HardNegativeMiner, PCAReducer, load_beir
from hn_plugins.demo_data import export_demo_dataset

logger = logging.getLogger("example.mine")

#: Where the embedded demo set goes when no --data is given.
DEMO_DATA = Path("hn-demo/data")


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=DEMO_DATA, help="BEIR folder (default: the demo set)")
    parser.add_argument("--out", type=Path, default=Path("runs/mining"))
    args = parser.parse_args()

    # 1. load the train split (documents and queries by id; several positives per query are normal)
    if args.data == DEMO_DATA and not DEMO_DATA.exists():
        export_demo_dataset(DEMO_DATA)  # what `hn demo` writes there
    train = load_beir(args.data, split="train", empty_documents="drop")
    logger.info("%r", train)

    # 2. an ensemble of two diverse bi-encoders, cached by document id + content hash
    ensemble = EmbedderEnsemble(["all-MiniLM-L6-v2", "static-model"], cache_dir=args.out / "cache")

    # 3. the paper: ensemble -> PCA (95% of the variance) -> Eq. 5 and Eq. 6; pairs where nothing qualifies get no
    #    negative. The shipped `default` takes the paper's negatives, falls back to positive-aware ones where there
    #    are none, and adds one random negative to every pair.
    results = {}
    for selector in ("paper", "default"):
        miner = HardNegativeMiner(ensemble, PCAReducer(variance=0.95), selector=selector, num_negatives=1)
        results[selector] = miner.fit(train).mine(train)

    # 4. baselines on the same data (single-model ones use the ensemble space without PCA)
    for selector in ("dense-topk", "positive-aware", "bm25", "random"):
        miner = HardNegativeMiner(ensemble, None, selector=selector, num_negatives=1, seed=0)
        results[selector] = miner.fit(train).mine(train)

    # 5. write triplets and compare the selection rates
    rows = []
    for name, result in results.items():
        result.to_jsonl(args.out / f"{name}.jsonl")
        s = result.summary()
        q = s["distance_quantiles"]["d_q_neg"]
        rows.append(
            f"{name:<15} {s['pairs_with_negative']:>5}/{s['pairs']:<5} {100 * s['selection_rate']:6.1f}%  "
            + (f"median d(Q,N) {q['p50']:.3f}" if q else "")
        )
    sys.stdout.write("selector        pairs with a negative\n" + "\n".join(rows) + "\n")
    sys.stdout.write("\npaper diagnostics\n" + results["paper"].format_summary() + "\n")


if __name__ == "__main__":
    main()
