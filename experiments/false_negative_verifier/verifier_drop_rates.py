"""How many mined hard negatives the false-negative verifier of ``default+verify`` doubts, per dataset (no training).

For each dataset's train split: mine with the paper's selector and the positive-aware fallback (ensemble
all-MiniLM-L6-v2 + static-model, PCA 95%, as ``hn benchmark`` does), build the ``default+verify`` teacher (untuned
all-MiniLM-L6-v2 fused with BM25 at the zero-shot fusion weight chosen on the train queries), verify both results,
and count. Writes ``experiments/false_negative_verifier/results/verifier_drop_rates.json``::

    python experiments/false_negative_verifier/verifier_drop_rates.py --data ../shared/data --datasets cranfield,cisi,cacm,medline
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

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # run as a file: the repository root makes `experiments` and `tools` importable
    sys.path.insert(0, str(ROOT))

from tools.script_logging import quiet_logging  # noqa: E402

logger = logging.getLogger("verifier_drop_rates")


def train_split_verifier(train: Any, max_length: int) -> tuple[Any, float]:
    """The ``default+verify`` row's verifier for a train split (margin 0) and its teacher's BM25 fusion weight."""
    from hn_evaluation.benchmark import zero_shot_fusion, zero_shot_fusion_teacher
    from hn_plugins.mining.verifier import FalseNegativeVerifier

    fusion = zero_shot_fusion(train, "all-MiniLM-L6-v2", "bi", max_length, 100)
    teacher, context = zero_shot_fusion_teacher(
        train, "all-MiniLM-L6-v2", "bi", fusion, max_length=max_length
    )
    return FalseNegativeVerifier(teacher, margin=0.0, context=context), fusion.weight


def drop_rates(path: Path, max_length: int, cache_dir: Path) -> dict:
    from hn_evaluation.benchmark import DEFAULT_STRATEGY, Miners, load_split

    start = time.perf_counter()
    train = load_split(path, "train")
    models = ["all-MiniLM-L6-v2", "static-model"]
    miners = Miners(train, models, 0.95, 1, 100, cache_dir, batch_size=64)
    fb = DEFAULT_STRATEGY["fallback"]
    mined = {
        "paper": miners.mine("paper", models, 0.95),
        "positive-aware": miners.mine(fb["selector"], models, 0.95, relative_margin=fb["relative_margin"]),
    }
    verifier, weight = train_split_verifier(train, max_length)
    out: dict = {"train_pairs": len(mined["paper"].records), "zero_shot_fusion_weight": weight}
    for name, result in mined.items():
        verified = verifier.verify(result, train)
        d = verified.diagnostics
        out[name] = {
            "pairs_with_negative": sum(1 for r in result.records if r.negative_ids),
            "negatives_checked": d["negatives_checked"],
            "negatives_dropped": d["negatives_dropped"],
            "drop_rate": d["negatives_dropped"] / d["negatives_checked"] if d["negatives_checked"] else None,
            "pairs_emptied_by_verifier": d["pairs_emptied_by_verifier"],
        }
    out["seconds"] = round(time.perf_counter() - start, 1)
    logger.info("%s: %s", path.name, out)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--datasets", default="cranfield,cisi,cacm,medline,python-docs-faq")
    parser.add_argument(
        "--max-length", type=int, default=128, help="tokens per text of the teacher (default: 128)"
    )
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).parent / "results" / "verifier_drop_rates.json"
    )
    args = parser.parse_args(argv)
    quiet_logging()
    results = {}
    with tempfile.TemporaryDirectory() as cache:
        for name in args.datasets.split(","):
            results[name] = drop_rates(args.data / name, args.max_length, Path(cache) / name)
    report = {
        "command": " ".join(["python", *sys.argv]),
        "teacher_max_length": args.max_length,
        "datasets": results,
    }
    args.out.write_text(json.dumps(report, indent=1), encoding="utf-8")
    sys.stdout.write(json.dumps(results, indent=1) + f"\n-> {args.out}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
