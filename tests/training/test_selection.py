"""Cross-fitted selection: folds of the train queries, and the pooled choice of epochs and fusion weight."""

from __future__ import annotations

import numpy as np
import pytest

from hn_plugins.data import DatasetError
from hn_plugins.training.evaluator import RerankingMRREvaluator, bm25_scored_candidates, mrr_at_k
from hn_plugins.training.selection import choose_by_cross_fitting


def test_folds_hold_out_every_judged_query_exactly_once(cranfield_train):
    folds = cranfield_train.folds(5, seed=1)
    judged = set(cranfield_train.judged_query_ids)
    held = [set(h.judged_query_ids) for _, h in folds]
    assert len(folds) == 5 and sorted(q for h in held for q in h) == sorted(judged)
    for rest, h in zip((r for r, _ in folds), held, strict=True):
        assert set(rest.judged_query_ids) == judged - h and rest.corpus is cranfield_train.corpus
    assert max(map(len, held)) - min(map(len, held)) <= 1
    assert [set(h.judged_query_ids) for _, h in cranfield_train.folds(5, seed=1)] == held  # seeded
    assert [set(h.judged_query_ids) for _, h in cranfield_train.folds(5, seed=2)] != held
    with pytest.raises(DatasetError, match="k >= 2"):
        cranfield_train.folds(1)


def _z(x):
    x = np.asarray(x, dtype=float)
    return (x - x.mean()) / x.std() if x.std() > 0 else np.zeros_like(x)


def _recorded_folds(dataset, epochs_scores, folds=3, top_k=20):
    """Fold evaluators of ``dataset`` whose recorded scores are ``epochs_scores(epoch, ev, q)`` per query."""
    evaluators = []
    for _, held in dataset.folds(folds, seed=0):
        scored = bm25_scored_candidates(held, held.judged_query_ids, top_k=top_k)
        ev = RerankingMRREvaluator(
            held,
            candidates={q: [d for d, _ in r] for q, r in scored.items()},
            first_stage_scores={q: [s for _, s in r] for q, r in scored.items()},
            first_stage_name="bm25",
            write_csv=False,
            record_scores=True,
        )
        for epoch in range(3):
            scores = [epochs_scores(epoch, ev, q) for q in ev.query_ids]
            ev.recorded.append({"epoch": float(epoch), "step": epoch, "scores": scores})
        evaluators.append(ev)
    return evaluators


def _pooled_fused_rr(evaluators, epoch, weight):
    values = []
    for ev in evaluators:
        for q, s in zip(ev.query_ids, ev.recorded[epoch]["scores"], strict=True):
            fused = weight * _z(s) + (1 - weight) * _z(ev.first_stage_scores[q])
            ranked = [ev.candidates[q][i] for i in np.argsort(-fused, kind="stable")]
            values.append(mrr_at_k(ranked, ev.dataset.positives(q), 10))
    return np.array(values)


def test_choice_matches_a_brute_force_over_epochs_and_weights(cranfield_train):
    """Recorded fold scores (seeded noise around BM25 order) give the epoch/weight a brute force finds."""
    rng = np.random.default_rng(0)

    def scores(epoch, ev, q):  # noise shrinks with epochs: later "checkpoints" find more positives
        relevant = np.array([float(d in ev.dataset.positives(q)) for d in ev.candidates[q]])
        return relevant * epoch + rng.normal(size=relevant.size)

    evaluators = _recorded_folds(cranfield_train, scores)
    decision = choose_by_cross_fitting(evaluators)

    weights = [round(0.1 * i, 1) for i in range(11)]
    brute = {(epoch, w): _pooled_fused_rr(evaluators, epoch, w) for epoch in range(3) for w in weights}
    # each epoch count's weight: the most balanced one within one standard error of its best (choose_fusion_weight)
    chosen = {}
    for epoch in range(3):
        means = {w: brute[(epoch, w)].mean() for w in weights}
        top = max(means.values())
        best_w = min((w for w in weights if np.isclose(means[w], top)), key=lambda w: (abs(w - 0.5), -w))
        gaps = {w: brute[(epoch, best_w)] - brute[(epoch, w)] for w in weights}
        within = [w for w, g in gaps.items() if g.mean() <= g.std(ddof=1) / np.sqrt(g.size) + 1e-9]
        chosen[epoch] = min(within, key=lambda w: (abs(w - 0.5), -w))
    values = {epoch: float(brute[(epoch, chosen[epoch])].mean()) for epoch in range(3)}
    best_epoch = max(range(3), key=lambda e: (round(values[e], 12), -e))
    assert (decision.epochs, decision.fusion.weight) == (best_epoch, chosen[best_epoch])
    assert decision.curve[decision.epochs]["mrr@10_fused"] == pytest.approx(values[best_epoch])
    assert decision.queries == len(cranfield_train.judged_query_ids) and decision.folds == 3
    assert decision.fusion.validation["queries"] == decision.queries
    for epoch in range(3):  # unfused pooled MRR@10 = the weight-1 brute force
        assert decision.curve[epoch]["mrr@10"] == pytest.approx(brute[(epoch, 1.0)].mean())
    assert decision.epochs > 0  # the signal grows with epochs, so training beats the start here
    assert decision.fusion.validation["rule"] == "one-se"

    # fusion_rule="best": each epoch count's weight is its best pooled weight (ties: the most balanced)
    best = choose_by_cross_fitting(evaluators, fusion_rule="best")
    best_weight = {}
    for epoch in range(3):
        means = {w: brute[(epoch, w)].mean() for w in weights}
        best_weight[epoch] = max(weights, key=lambda w: (round(means[w], 12), -abs(w - 0.5), w))
        assert best.curve[epoch]["weight"] == best_weight[epoch]
        assert best.curve[epoch]["mrr@10_fused"] == pytest.approx(means[best_weight[epoch]])
    assert best.fusion.validation["rule"] == "best"
    assert any(best_weight[e] != decision.curve[e]["weight"] for e in range(3))  # the rules differ here


def test_ties_keep_the_starting_model_and_empty_records_are_refused(cranfield_train):
    _, held = cranfield_train.folds(2)[0]
    scored = bm25_scored_candidates(held, held.judged_query_ids, top_k=10)
    ev = RerankingMRREvaluator(
        held,
        candidates={q: [d for d, _ in r] for q, r in scored.items()},
        write_csv=False,
        record_scores=True,
    )
    with pytest.raises(ValueError, match="recorded no scores"):
        choose_by_cross_fitting([ev])
    same = [np.arange(len(ev.candidates[q]), 0, -1, dtype=float) for q in ev.query_ids]
    ev.recorded = [{"epoch": float(e), "step": e, "scores": same} for e in range(3)]
    decision = choose_by_cross_fitting([ev])  # no first-stage scores: unfused choice
    assert decision.epochs == 0 and decision.fusion is None


def test_the_significance_rule_trains_on_a_clear_gain_and_reports_its_p(cranfield_train):
    """A gain on most of 90 pooled queries passes alpha=0.05; p_vs_start is the paired test of the fused values."""
    from hn_plugins.significance import paired_permutation_test

    rng = np.random.default_rng(0)

    def scores(epoch, ev, q):
        relevant = np.array([float(d in ev.dataset.positives(q)) for d in ev.candidates[q]])
        return relevant * 2 * epoch + rng.normal(size=relevant.size)

    evaluators = _recorded_folds(cranfield_train, scores)
    plain = choose_by_cross_fitting(evaluators)
    ruled = choose_by_cross_fitting(evaluators, alpha=0.05)
    assert ruled.epochs == plain.epochs == ruled.best_epochs > 0 and not ruled.kept_start_by_rule
    assert ruled.fusion == plain.fusion and ruled.alpha == 0.05 and plain.alpha is None
    best = ruled.curve[ruled.epochs]
    expected = paired_permutation_test(
        _pooled_fused_rr(evaluators, ruled.epochs, best["weight"]),
        _pooled_fused_rr(evaluators, 0, ruled.curve[0]["weight"]),
    )
    assert best["p_vs_start"] == pytest.approx(expected) and expected < 0.05
    assert ruled.curve[0]["p_vs_start"] is None


def test_the_significance_rule_keeps_the_start_on_a_gain_of_one_query(cranfield_train):
    """Training that lifts one query of 90 is the best pooled value, but not significant: the start is kept."""
    lifted: list[str] = []

    def scores(
        epoch, ev, q
    ):  # the first-stage order, except that later epochs rank one query's positive first
        first = np.asarray(ev.first_stage_scores[q], dtype=float)
        relevant = np.array([d in ev.dataset.positives(q) for d in ev.candidates[q]])
        if epoch > 0 and not lifted and relevant.any() and not relevant[int(np.argmax(first))]:
            lifted.append(q)  # the first query whose positive BM25 ranks below another candidate
        if epoch > 0 and lifted == [q]:
            return 10.0 * relevant + first / 1e3
        return first

    evaluators = _recorded_folds(cranfield_train, scores)
    plain = choose_by_cross_fitting(evaluators, fuse=False)
    ruled = choose_by_cross_fitting(evaluators, fuse=False, alpha=0.05)
    assert plain.epochs == 1 and plain.curve[1]["mrr@10"] > plain.curve[0]["mrr@10"]
    assert ruled.epochs == 0 and ruled.best_epochs == 1 and ruled.kept_start_by_rule
    assert ruled.curve[1]["p_vs_start"] >= 0.05 and ruled.fusion is None
