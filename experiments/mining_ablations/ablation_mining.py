"""The paper selector's mining ablations without training: PCA variance and one model vs the ensemble, per dataset.

For each dataset's train split, mine with the paper's selector (Eq. 5 + Eq. 6) as ``hn benchmark`` does (ensemble
all-MiniLM-L6-v2 + static-model, 1 negative per pair, 100 candidates) at every PCA variance of ``--variances``
(1.0 = no PCA), and with each ensemble member alone at PCA 95%. For every variant it records the selection rate
(pairs that get a negative), the PCA components kept, how often its negative equals the reference variant's
(ensemble, PCA 95%: the paper's setting), and how many of its negatives the ``default+verify`` teacher doubts (the
untuned all-MiniLM-L6-v2 fused with BM25, weight chosen on the train queries, ranks the negative at or above the
judged positive): a proxy for false negatives on collections with unjudged relevant documents. This is what the
training ablations (``hn benchmark --ablation-variance ... --ablation-single-model``) change, measured on every
dataset at the cost of mining alone. Writes ``experiments/mining_ablations/results/ablation_mining.json``::

    python experiments/mining_ablations/ablation_mining.py --data ../shared/data
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

from experiments.false_negative_verifier.verifier_drop_rates import train_split_verifier  # noqa: E402
from tools.script_logging import quiet_logging  # noqa: E402

logger = logging.getLogger("ablation_mining")

ENSEMBLE = ("all-MiniLM-L6-v2", "static-model")
REFERENCE = "ensemble@pca0.95"


def _variant_name(models: tuple[str, ...], variance: float) -> str:
    who = "ensemble" if models == ENSEMBLE else models[0]
    return f"{who}@pca{variance:g}" if variance < 1.0 else f"{who}@nopca"


def ablate(path: Path, variances: list[float], max_length: int, cache_dir: Path) -> dict[str, Any]:
    """Mine one dataset's train split with every variant and compare them (see the module docstring)."""
    from hn_evaluation.benchmark import Miners, load_split

    start = time.perf_counter()
    train = load_split(path, "train")
    miners = Miners(train, list(ENSEMBLE), 0.95, 1, 100, cache_dir, batch_size=64)
    variants = [(ENSEMBLE, v) for v in variances] + [((m,), 0.95) for m in ENSEMBLE]
    if (ENSEMBLE, 0.95) not in variants:
        variants.insert(0, (ENSEMBLE, 0.95))
    mined = {
        _variant_name(models, variance): miners.mine(
            "paper", list(models), variance if variance < 1.0 else None
        )
        for models, variance in variants
    }
    verifier, weight = train_split_verifier(train, max_length)
    reference = {(r.query_id, r.positive_id): r.negative_ids[:1] for r in mined[REFERENCE].records}
    out: dict[str, Any] = {
        "train_pairs": len(mined[REFERENCE].records),
        "teacher_fusion_weight": weight,
        "variants": {},
    }
    for name, result in mined.items():
        summary = result.summary()
        both = [r for r in result.records if r.negative_ids and reference.get((r.query_id, r.positive_id))]
        same = sum(1 for r in both if r.negative_ids[:1] == reference[(r.query_id, r.positive_id)])
        d = verifier.verify(result, train).diagnostics
        out["variants"][name] = {
            "pca_components": summary.get("pca_components"),
            "selection_rate": summary["selection_rate"],
            "pairs_with_negative": summary["pairs_with_negative"],
            "same_negative_as_reference": same / len(both) if both else None,
            "pairs_compared_with_reference": len(both),
            "negatives_doubted_by_teacher": d["negatives_dropped"],
            "doubted_share": d["negatives_dropped"] / d["negatives_checked"]
            if d["negatives_checked"]
            else None,
        }
    out["seconds"] = round(time.perf_counter() - start, 1)
    logger.info("%s: %s", path.name, json.dumps(out["variants"]))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--datasets", default="cranfield,cisi,cacm,medline,npl,python-docs-faq")
    parser.add_argument(
        "--variances", default="0.7,0.8,0.9,0.95,0.99,1.0", help="PCA variances of the ensemble (1.0: no PCA)"
    )
    parser.add_argument("--max-length", type=int, default=128, help="tokens per text of the teacher")
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).parent / "results" / "ablation_mining.json"
    )
    args = parser.parse_args(argv)
    variances = [float(v) for v in args.variances.split(",") if v.strip()]
    bad = [v for v in variances if not 0.0 < v <= 1.0]
    if bad:
        parser.error(f"--variances must lie in (0, 1], got {bad}")
    quiet_logging()
    results = {}
    with tempfile.TemporaryDirectory() as cache:
        for name in args.datasets.split(","):
            results[name] = ablate(args.data / name, variances, args.max_length, Path(cache) / name)
    report = {
        "command": " ".join(["python", *sys.argv]),
        "selector": "paper",
        "reference": REFERENCE,
        "teacher_max_length": args.max_length,
        "datasets": results,
    }
    args.out.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    sys.stdout.write(json.dumps(results, indent=1) + f"\n-> {args.out}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
