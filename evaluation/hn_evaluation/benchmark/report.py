"""The benchmark report: the run's configuration, aggregation over seeds, significance, the quality bar of
``default``, plots, ``report.json`` and ``report.md``. Merging and joining finished reports is in
:mod:`hn_evaluation.benchmark.merge`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hn_plugins.data import RetrievalDataset
from hn_plugins.mining.default_recipe import DEFAULT_STRATEGY

from ..benchmark_rag import aggregate_rag
from ..plots import plot_metric_bars, plot_pca_neighbourhood
from ..report import aggregate_seed_rows, write_report_json
from ..significance import paired_permutation_test
from .markdown import format_benchmark_markdown
from .miners import Miners
from .settings import BenchmarkSettings

__all__ = [
    "assemble_report",
    "benchmark_config",
    "pca_picture",
    "quality_bar",
]


def benchmark_config(
    data_name: str,
    train: RetrievalDataset,
    test: RetrievalDataset,
    strategies: Sequence[str],
    seeds: Sequence[int],
    settings: BenchmarkSettings,
    test_queries: int,
    controls: Sequence[str],
    rag: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """The report's ``config``: the data, the rows asked for, the seeds and every setting of the run.

    ``rag``, ``train_size`` and ``split`` appear only when set, so that reports without them still merge with
    reports written before those settings existed.
    """
    s = settings
    return {
        "dataset": data_name,
        "train": repr(train),
        "test": repr(test),
        "strategies": list(strategies),
        "seeds": list(seeds),
        "kind": s.kind,
        "base_model": s.base_model,
        "models": s.model_list,
        "single_model_baselines": s.model_list[:1],
        "variance": s.variance,
        "num_negatives": s.num_negatives,
        "candidates": s.candidates,
        "epochs": s.epochs,
        "lr": s.lr,
        "batch_size": s.batch_size,
        "margin": s.margin,
        "max_length": s.max_length,
        "first_stage": s.first_stage,
        "top_k": s.top_k,
        "validation_top_k": s.validation_top_k,
        "max_test_queries": s.max_test_queries,
        "test_queries": test_queries,
        "ablation_variance": list(s.ablation_variance),
        "ablation_single_model": s.ablation_single_model,
        "ablation_train_size": list(s.ablation_train_size),
        "ablation_verifier": s.ablation_verifier,
        "ablation_adapt": s.ablation_adapt,
        "fusion": s.fusion,
        "fusion_rule": s.fusion_rule,
        "control_rows": list(controls),
        **({"rag": dict(rag)} if rag else {}),
        **({"train_size": s.train_size} if s.train_size is not None else {}),
        **({"split": s.split} if s.split != "test" else {}),
    }


def quality_bar(
    rows: Mapping[str, Mapping[str, Mapping[str, float]]],
    controls: Sequence[str] = (),
    metric: str = "mrr@10",
    over_start: float = 0.10,
    over_others: float = 0.03,
) -> dict[str, Any] | None:
    """How ``default`` compares with its quality bar: ``metric`` at least ``over_start`` above the better of
    ``none`` and ``zero-shot``, and at least ``over_others`` above the best other strategy.

    The other strategies are every row but ``none``, ``zero-shot``, the controls and ``default``'s own ablations
    (``default@train*``, ``default+verify``). ``controls`` (the fused rows and ``default-no-fusion``) are reported
    beside: the best fused control (any control but the ``-no-fusion`` rows) says how much of ``default``'s lead
    comes from its negatives and training rather than from fusion alone.

    Example:
        >>> rows = {"none": {"mrr@10": {"mean": 0.5}}, "zero-shot": {"mrr@10": {"mean": 0.6}},
        ...         "paper": {"mrr@10": {"mean": 0.62}}, "default": {"mrr@10": {"mean": 0.7}}}
        >>> bar = quality_bar(rows)
        >>> round(bar["lift_over_start"], 3), bar["best_other"], bar["met"]
        (0.167, 'paper', True)
    """
    if "default" not in rows:
        return None
    value = {n: float(r[metric]["mean"]) for n, r in rows.items() if metric in r}
    start = max((n for n in ("none", "zero-shot") if n in value), key=lambda n: value[n], default=None)
    # other strategies: not the starting points, not default's own ablations (default@train*, default+verify)
    others = [
        n
        for n in value
        if n not in {"none", "zero-shot"} and not n.startswith("default") and n not in controls
    ]
    best_other = max(others, key=lambda n: value[n], default=None)
    fused = [c for c in controls if not c.endswith("-no-fusion") and c in value]
    best_control = max(fused, key=lambda n: value[n], default=None)

    def lift(name: str | None) -> float | None:
        return value["default"] / value[name] - 1.0 if name is not None and value[name] > 0 else None

    out: dict[str, Any] = {
        "metric": metric,
        "default": value["default"],
        "start": start,
        "lift_over_start": lift(start),
        "best_other": best_other,
        "lift_over_best_other": lift(best_other),
        "best_fused_control": best_control,
        "lift_over_best_fused_control": lift(best_control),
        "targets": {"over_start": over_start, "over_others": over_others},
    }
    out["met"] = bool(
        out["lift_over_start"] is not None
        and out["lift_over_start"] >= over_start
        and (out["lift_over_best_other"] is None or out["lift_over_best_other"] >= over_others)
    )
    return out


def _significance(
    mean_per_query: Mapping[str, Mapping[str, float]], done: Sequence[str], n_resamples: int
) -> dict[str, dict[str, dict[str, float]]]:
    """``default`` and ``paper`` against every other result: Δ and p of the per-query MRR@10 (mean over seeds)."""
    significance: dict[str, dict[str, dict[str, float]]] = {}
    for anchor in ("default", "paper"):
        if anchor not in mean_per_query:
            continue
        qids = list(mean_per_query[anchor])
        significance[anchor] = {}
        for other in done:
            if other == anchor:
                continue
            a = [mean_per_query[anchor][q] for q in qids]
            b = [mean_per_query[other][q] for q in qids]
            significance[anchor][other] = {
                "delta": float(np.mean(a) - np.mean(b)),
                "p_value": paired_permutation_test(a, b, n_resamples=n_resamples, seed=0),
            }
    return significance


def _plots(out: Path, aggregated: Mapping[str, Any], title: str) -> list[Path]:
    paths = []
    for metric in ("mrr@10", "mrr@3"):
        name = metric.replace("@", "_at_")
        paths.append(plot_metric_bars(aggregated, metric, out / f"{name}.png", title=f"{title}: {metric}"))
    return paths


def assemble_report(
    out: Path,
    config: dict[str, Any],
    metrics: list[str],
    done: Sequence[str],
    per_query: Mapping[str, Sequence[Mapping[str, float]]],
    strategies_out: dict[str, Any],
    short_long_info: Any,
    failed: Mapping[str, str],
    timings: Mapping[str, float],
    n_resamples: int,
    extra_plots: Sequence[Path] = (),
) -> dict[str, Any]:
    """Aggregate over seeds, test significance, check the quality bar, plot, write report.json and report.md."""
    n_seeds = len(config["seeds"])
    per_seed_rows = {n: [ps["metrics"] for ps in strategies_out[n]["per_seed"]] for n in done}
    aggregated = aggregate_seed_rows([{n: per_seed_rows[n][i] for n in done} for i in range(n_seeds)])
    for name in done:
        strategies_out[name]["metrics"] = aggregated[name]
    mean_per_query = {
        name: {q: float(np.mean([s[q] for s in per_query[name]])) for q in per_query[name][0]}
        for name in done
    }
    controls = [c for c in config.get("control_rows", []) if c in done]
    main_rows = [n for n in done if n not in controls]
    plots = _plots(out, {n: aggregated[n] for n in main_rows}, config["dataset"]) + list(extra_plots)
    report_dict: dict[str, Any] = {
        "dataset": config["dataset"],
        "config": config,
        "metrics": metrics,
        "default_strategy": DEFAULT_STRATEGY,
        "rows": {
            n: {m: {"mean": v["mean"], "std": v["std"]} for m, v in aggregated[n].items()} for n in done
        },
        "quality_bar": quality_bar(aggregated, controls),
        "strategies": strategies_out,
        "significance": _significance(mean_per_query, done, n_resamples),
        "short_long": {
            "info": short_long_info,
            "rows": {n: strategies_out[n]["short_long"] for n in done},
        },
        "rag": aggregate_rag(config.get("rag"), strategies_out, done, n_resamples),
        "per_query": {
            "metric": "mrr@10",
            "values": mean_per_query,
            "per_seed": {n: [dict(v) for v in per_query[n]] for n in done},
        },
        "failed": dict(failed),
        "plots": [p.name for p in plots],
        "timings_s": dict(timings),
    }
    write_report_json(report_dict, out / "report.json")
    (out / "report.md").write_text(format_benchmark_markdown(report_dict), encoding="utf-8")
    return report_dict


def pca_picture(path: Path, miners: Miners | None, title: str) -> Path | None:
    """The paper's Figure 2: one train query, its positive and its paper negatives, in the mining space.

    Returns None when nothing was mined with the paper's selector (or it found no negative).
    """
    if miners is None:
        return None
    key = next((k for k in miners.fitted if k[0] == "paper" and k[1] == tuple(miners.models)), None)
    key = key or next((k for k in miners.fitted if k[0] == "paper"), None)
    if key is None:
        return None
    miner, result = miners.fitted[key], miners.results[key]
    with_neg = [r for r in result.records if r.negative_ids]
    if not with_neg:
        return None
    rec = max(with_neg, key=lambda r: (len(r.negative_ids), -(r.d_q_pos or 0.0)))
    row_of = {d: i for i, d in enumerate(miner.doc_ids_)}
    vectors = miner.doc_vectors_
    query = miner.embed_queries([miners.train.queries[rec.query_id]])[0]
    positives = [row_of[p] for p in sorted(miners.train.positives(rec.query_id)) if p in row_of]
    negatives = [row_of[n] for n in rec.negative_ids if n in row_of]
    rng = np.random.default_rng(0)
    taken = set(positives) | set(negatives)
    pool = [i for i in range(len(vectors)) if i not in taken]
    others = sorted(rng.choice(pool, size=min(300, len(pool)), replace=False).tolist()) if pool else []
    return plot_pca_neighbourhood(
        query,
        vectors[positives],
        vectors[negatives],
        vectors[others] if others else None,
        path,
        title=f"{title}: query {rec.query_id}, paper negatives (ensemble + PCA space)",
    )
