"""What the significance rule of cross-fitting can change on the six small collections, from the committed reports.

With ``selection_alpha``, cross-fitting keeps the starting model unless its best epoch count beats it on the pooled
held-out train queries with a paired permutation p below alpha. Keeping the starting model makes ``default`` the
untuned model fused with BM25 at the weight chosen on every train query, which is how the ``zero-shot+fusion`` row
is built, so for each seed ``default`` is either what the committed GPU run measured (it trained) or the
``zero-shot+fusion`` value (it kept the start). This script reads the committed 3-seed reports and gives, per
dataset, both ends and the worst mix of the two over the seeds, against the no-harm threshold
``max(none, zero-shot, zero-shot+fusion) - 0.01``; and the pooled held-out gain each seed's cross-fitting saw.

    python experiments/cross_fit_significance_rule/bounds.py \
        --out experiments/cross_fit_significance_rule/results/bounds.json
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

logger = logging.getLogger("significance_rule_bounds")

REPO = Path(__file__).resolve().parents[2]
DATASETS = ("medline", "cacm", "cranfield", "python-docs-faq", "npl", "cisi")
UNTRAINED = ("none", "zero-shot", "zero-shot+fusion")


def dataset_bounds(report: dict[str, Any]) -> dict[str, Any]:
    """Both ends of ``default`` under the rule, the worst mix over the seeds, and the no-harm threshold.

    Args:
        report: a committed ``benchmark_<dataset>/report.json``.

    Returns:
        ``{"trained", "kept_start", "worst_mix", "threshold", "holds", "seeds"}``; ``seeds`` lists per seed the
        measured MRR@10, the selection kept, and the pooled held-out fused gain of the best epoch count.
    """
    rows = report["rows"]
    fused_start = rows["zero-shot+fusion"]["mrr@10"]["mean"]
    strategy = report["strategies"]["default"]
    seeds = []
    for run, training in zip(strategy["per_seed"], strategy["training"], strict=True):
        curve = training["validation_curve"]
        gain = max(c["mrr@10_fused"] for c in curve) - curve[0]["mrr@10_fused"]
        seeds.append(
            {
                "seed": run["seed"],
                "mrr@10": run["metrics"]["mrr@10"],
                "kept": training["selected"],
                "pooled_fused_gain": round(gain, 4),
                "pooled_queries": training["validation_queries"],
            }
        )
    worst = sum(min(s["mrr@10"], fused_start) for s in seeds) / len(seeds)
    threshold = max(rows[r]["mrr@10"]["mean"] for r in UNTRAINED) - 0.01
    return {
        "trained": rows["default"]["mrr@10"]["mean"],
        "kept_start": fused_start,
        "worst_mix": worst,
        "threshold": threshold,
        "holds": worst >= threshold,
        "seeds": seeds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reports", type=Path, default=REPO / "benchmarks" / "results")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    result = {}
    for name in DATASETS:
        report = json.loads((args.reports / f"benchmark_{name}" / "report.json").read_text(encoding="utf-8"))
        result[name] = dataset_bounds(report)
        b = result[name]
        logger.info(
            "%-16s trained %.3f  kept start %.3f  worst mix %.3f  threshold %.3f  holds %s  gains %s",
            name,
            b["trained"],
            b["kept_start"],
            b["worst_mix"],
            b["threshold"],
            b["holds"],
            [s["pooled_fused_gain"] for s in b["seeds"]],
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
