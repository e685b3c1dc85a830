"""``report.md`` of the strategy benchmark: the table, the fusion controls, the quality bar, mining and training
diagnostics, significance, RAG, short vs long documents, speed, failures and plots."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ..benchmark_rag import format_rag_section
from ..report import format_markdown_table

__all__ = ["format_benchmark_markdown"]


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:+.1f}%"


def _header(report: Mapping[str, Any]) -> list[str]:
    cfg = report.get("config", {})
    parts = [f"# Strategy benchmark: {report.get('dataset', '')}", ""]
    if cfg:
        parts += [
            f"{cfg.get('kind')}-encoder reranker from `{cfg.get('base_model')}`, {cfg.get('epochs')} epoch(s), lr "
            f"{cfg.get('lr')}, batch {cfg.get('batch_size')}, {cfg.get('num_negatives')} mined negative(s) per pair, "
            f"seeds {cfg.get('seeds')}; test: {cfg.get('first_stage')} top-{cfg.get('top_k')} reranked, "
            f"{cfg.get('test_queries')} queries; ensemble {cfg.get('models')} + PCA {cfg.get('variance')}.",
            "",
        ]
    return parts


def _tables(report: Mapping[str, Any], metrics: list[str], controls: set[str], digits: int) -> list[str]:
    main = {n: v for n, v in report["rows"].items() if n not in controls}
    parts = [
        "Mean ± std over seeds. Each strategy's row is its fine-tuned reranker alone (the paper's setting);"
        + (
            " `default` is the configuration we ship: its reranker fused with BM25 by the weight chosen on its"
            " validation queries."
            if controls
            else ""
        ),
        "",
        format_markdown_table(main, metrics, digits, "strategy"),
        "",
    ]
    if controls:
        parts += [
            "### Fusion control: every row fused with BM25 (weight chosen on validation, never on test)",
            "",
            format_markdown_table(
                {n: v for n, v in report["rows"].items() if n in controls}, metrics, digits, "row"
            ),
            "",
        ]
    return parts


def _quality_bar(bar: Mapping[str, Any] | None) -> list[str]:
    if not bar:
        return []
    parts = [
        "### Quality bar (`default`, MRR@10)",
        "",
        f"- vs the better of none / zero-shot (`{bar['start']}`): {_pct(bar['lift_over_start'])} "
        f"(target +{100 * bar['targets']['over_start']:.0f}%)",
        (
            f"- vs the best other strategy (`{bar['best_other']}`): {_pct(bar['lift_over_best_other'])} "
            if bar["best_other"] is not None
            else "- vs the best other strategy: none in this run "
        )
        + f"(target +{100 * bar['targets']['over_others']:.0f}%)",
    ]
    if bar.get("best_fused_control"):
        parts.append(
            f"- vs the best fused control (`{bar['best_fused_control']}`): "
            f"{_pct(bar['lift_over_best_fused_control'])}"
        )
    return [*parts, f"- met: **{'yes' if bar['met'] else 'no'}**", ""]


def _mining(strategies: Mapping[str, Any]) -> list[str]:
    mining = {
        n: s["mining"]
        for n, s in strategies.items()
        if s.get("mining") and s["mining"].get("selector") != "in-batch"
    }
    if not mining:
        return []
    parts = [
        "## Mining (train split)",
        "",
        "| strategy | pairs | with negative | selection rate | negatives | queries without negative |",
        "|---|---|---|---|---|---|",
    ]
    for n, m in mining.items():
        parts.append(
            f"| {n} | {m.get('pairs')} | {m.get('pairs_with_negative')} | {m.get('selection_rate', 0):.3f} | "
            f"{m.get('negatives')} | {m.get('queries_without_negative')} |"
        )
    if "in-batch" in strategies:
        parts.append("")
        parts.append("`in-batch` mines nothing: other pairs' positives are its negatives at training time.")
    for n, m in mining.items():
        if isinstance(m.get("verifier"), dict):
            parts += [
                "",
                f"`{n}`: the verifier ({m['verifier'].get('teacher')}, margin {m['verifier'].get('margin')}) "
                f"dropped {m.get('negatives_dropped')} of {m.get('negatives_checked')} paper + fallback "
                f"negatives; {m.get('pairs_moved_to_fallback')} pair(s) moved to the fallback, "
                f"{m.get('pairs_emptied_by_verifier')} lost every hard negative (see verifier_dropped.json).",
            ]
    parts.append("")
    return parts


def _training(training: Mapping[str, Any]) -> list[str]:
    if not training:
        return []
    parts = [
        "## Training (validation on train queries, never test)",
        "",
        "`holdout`: 20% of the train queries held out; `cross-fit`: every train query, held out of one fold model"
        " (the values are pooled over the folds; `final` = trained on all train queries for the chosen epochs;"
        " `base (n ep., p)` = n epochs scored best but not significantly above the starting model, which is kept;"
        " `examples/s`: rows trained on by every run, fold models included, counted once per epoch, per second of"
        " training, validation during training included; `of which validation`: the seconds spent validating during"
        " training, – in reports from before the field).",
        "",
        "| strategy | seed | validation | rows | steps | seconds | of which validation | examples/s | val MRR@10 start |"
        " val MRR@10 kept | kept | fusion weight | val MRR@10 fused |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for n, runs in training.items():
        for t in runs:
            start, kept = t.get("validation_mrr@10_start"), t.get("validation_mrr@10_selected")
            fusion = t.get("fusion") or {}
            fused = (fusion.get("validation") or {}).get("mrr@10_fused")
            speed, validating = t.get("train_examples_per_second"), t.get("validation_seconds")
            parts.append(
                f"| {n} | {t['seed']} | {t.get('selection') or 'holdout'} ({t.get('validation_queries', '?')} q) | "
                f"{t.get('train_rows')} | {t.get('steps')} | {t.get('train_seconds')} | "
                f"{'–' if validating is None else validating} | {'–' if speed is None else f'{speed:.1f}'} | "
                f"{'–' if start is None else f'{start:.3f}'} | {'–' if kept is None else f'{kept:.3f}'} | "
                f"{_kept(t)} | {fusion.get('weight', '–')} | {'–' if fused is None else f'{fused:.3f}'} |"
            )
    parts.append("")
    return parts + _adaptation(training)


def _kept(run: Mapping[str, Any]) -> str:
    """The training table's ``kept`` cell: ``final``/``base``, and why ``base`` when the significance rule chose it."""
    best = run.get("best_epochs")
    if run.get("selected") != "base" or not best:
        return str(run.get("selected"))
    p = next((h.get("p_vs_start") for h in run.get("validation_curve") or [] if h.get("epoch") == best), None)
    return f"base ({best} ep., p {p:.2g})" if p is not None else f"base ({best} ep.)"


def _adaptation(training: Mapping[str, Any]) -> list[str]:
    """report.md lines on the corpus adaptations of ``default+adapt``: their check and which start was trained."""
    lines = []
    for name, runs in training.items():
        for t in runs:
            a = t.get("adaptation")
            if not a:
                continue
            c = a.get("check") or {}
            lines.append(
                f"| {name} | {t['seed']} | {a.get('pseudo_queries')} | {a.get('train_seconds')} | "
                f"{c.get('queries', '–')} | {c.get('untuned_mrr@10_fused', float('nan')):.3f} | "
                f"{c.get('adapted_mrr@10_fused', float('nan')):.3f} | "
                f"{'adapted' if a.get('started_from_adapted') else 'base model'} |"
            )
    if not lines:
        return []
    return [
        "## Corpus adaptation (no labels), checked on the judged train queries",
        "",
        "BM25 top-k of every judged train query reranked by the untuned and the adapted model, each fused with BM25 at"
        " its best weight; the fine-tune starts from the adapted model only if it is better there.",
        "",
        "| row | seed | pseudo-queries | seconds | train queries | untuned MRR@10 fused | adapted MRR@10 fused |"
        " fine-tuned from |",
        "|---|---|---|---|---|---|---|---|",
        *lines,
        "",
    ]


def _significance(significance: Mapping[str, Any], digits: int) -> list[str]:
    parts: list[str] = []
    for anchor, rows in significance.items():
        parts += [
            f"## `{anchor}` vs each row (paired permutation test, per-query MRR@10, mean over seeds)",
            "",
            "| row | Δ MRR@10 | p |",
            "|---|---|---|",
        ]
        parts += [f"| {n} | {s['delta']:+.{digits}f} | {s['p_value']:.4f} |" for n, s in rows.items()]
        parts.append("")
    return parts


def _short_long(short_long: Mapping[str, Any], metrics: list[str], digits: int) -> list[str]:
    if not short_long.get("rows"):
        return []
    info = short_long.get("info") or {}
    parts = [
        f"## Short vs long positive documents (threshold {info.get('threshold', '?')} "
        f"{info.get('length_unit', '')}; queries {info.get('n_queries', '?')})",
        "",
    ]
    for group in ("short", "long"):
        rows = {n: v.get(group, {}) for n, v in short_long["rows"].items() if v.get(group)}
        if rows:
            parts += [f"**{group}**", "", format_markdown_table(rows, metrics, digits, "strategy"), ""]
    return parts


def _speed(strategies: Mapping[str, Any]) -> list[str]:
    speeds = {n: s["speed"] for n, s in strategies.items() if s.get("speed")}
    if not speeds:
        return []
    parts = ["## Reranking speed (encoding included)", "", "| strategy | documents/s |", "|---|---|"]
    for n, runs in speeds.items():
        values = [r["docs_per_second"] for r in runs if r.get("docs_per_second")]
        parts.append(f"| {n} | {np.mean(values):.1f} |" if values else f"| {n} | – |")
    parts.append("")
    return parts


def format_benchmark_markdown(report: Mapping[str, Any], digits: int = 3) -> str:
    """The benchmark report as Markdown: the table, mining diagnostics, significance, short/long, speed.

    Example:
        >>> text = format_benchmark_markdown({"dataset": "toy", "config": {}, "metrics": ["mrr@10"],
        ...                                   "rows": {"none": {"mrr@10": {"mean": 0.5, "std": 0.0}}}})
        >>> "| none | 0.500 ± 0.000 |" in text
        True
    """
    cfg = report.get("config", {})
    metrics = list(report.get("metrics") or [])
    controls = set(cfg.get("control_rows") or [])
    strategies = {n: v for n, v in (report.get("strategies") or {}).items() if n not in controls}
    training = {n: s["training"] for n, s in strategies.items() if s.get("training")}
    parts = (
        _header(report) + _tables(report, metrics, controls, digits) + _quality_bar(report.get("quality_bar"))
    )
    parts += _mining(strategies) + _training(training)
    parts += _significance(report.get("significance") or {}, digits)
    parts += format_rag_section(report.get("rag"), digits)
    parts += _short_long(report.get("short_long") or {}, metrics, digits) + _speed(strategies)
    if report.get("failed"):
        parts += ["## Failed", ""] + [f"- {n}: {why}" for n, why in report["failed"].items()] + [""]
    if report.get("plots"):
        parts += ["## Plots", ""] + [f"![{p}]({p})" for p in report["plots"]] + [""]
    return "\n".join(parts)
