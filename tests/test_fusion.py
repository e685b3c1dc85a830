"""Score fusion: hand-computed cases, the weight search against a brute-force loop, and the reranker hook."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hn_plugins.fusion import (
    DEFAULT_FUSION_RULE,
    FUSION_RULES,
    FUSION_WEIGHTS,
    ScoreFusion,
    best_fusion_weight,
    check_fusion_rule,
    choose_fusion_weight,
    fuse_scores,
    normalize_scores,
)
from hn_plugins.reranker import BiEncoderReranker, load_reranker


def test_normalize_scores_by_hand():
    assert normalize_scores([2.0, 4.0, 6.0], "minmax").tolist() == [0.0, 0.5, 1.0]
    z = normalize_scores([2.0, 4.0, 6.0], "z")
    std = np.sqrt(8.0 / 3.0)  # population std of (2, 4, 6)
    np.testing.assert_allclose(z, [-2.0 / std, 0.0, 2.0 / std])
    assert normalize_scores([], "z").size == 0
    with pytest.raises(ValueError, match="finite"):
        normalize_scores([1.0, float("nan")])
    with pytest.raises(ValueError, match="'z' or 'minmax'"):
        normalize_scores([1.0, 2.0], "rank")  # type: ignore[arg-type]


def test_equal_scores_are_constant_even_with_floating_point_noise():
    # np.std of three equal 0.2 values is 2.8e-17, not 0: dividing by it used to give z-scores of -1 (noise)
    assert float(np.std([0.2, 0.2, 0.2])) > 0.0
    assert normalize_scores([0.2, 0.2, 0.2], "z").tolist() == [0.0, 0.0, 0.0]
    assert normalize_scores([0.2, 0.2, 0.2], "minmax").tolist() == [0.0, 0.0, 0.0]
    # a tied reranker leaves the first stage's order alone in the fusion
    fused = fuse_scores([0.2, 0.2, 0.2], [1.0, 3.0, 2.0], weight=0.5)
    assert np.argsort(-fused).tolist() == [1, 2, 0]
    # tiny but real differences are still scaled, whatever the magnitude of the scores
    np.testing.assert_allclose(normalize_scores([1e-13, 2e-13], "z"), [-1.0, 1.0])
    np.testing.assert_allclose(normalize_scores([-5e5 + 0.1, -5e5], "z"), [1.0, -1.0])


def test_fuse_scores_by_hand():
    # minmax: reranker (1, 0, 0.5), first stage (0, 1, 0.5) -> 0.3 * r + 0.7 * f
    fused = fuse_scores([3.0, 1.0, 2.0], [10.0, 30.0, 20.0], weight=0.3, normalization="minmax")
    np.testing.assert_allclose(fused, [0.3, 0.7, 0.5])
    np.testing.assert_allclose(fuse_scores([3.0, 1.0], [5.0, 9.0], 1.0), normalize_scores([3.0, 1.0]))
    with pytest.raises(ValueError, match="one of each per document"):
        fuse_scores([1.0, 2.0], [1.0], 0.5)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        fuse_scores([1.0], [1.0], 1.5)


def _brute_force_rr(query, w, k=10):
    rerank, first, relevant = query
    r, f = np.asarray(rerank, float), np.asarray(first, float)
    r = (r - r.mean()) / r.std() if r.std() > 0 else r * 0
    f = (f - f.mean()) / f.std() if f.std() > 0 else f * 0
    fused = w * r + (1 - w) * f
    order = sorted(range(len(fused)), key=lambda i: (-fused[i], i))
    return next((1.0 / rank for rank, i in enumerate(order[:k], start=1) if relevant[i]), 0.0)


def _brute_force_weight(queries, weights, k=10):
    best, best_value = None, -1.0
    for w in weights:
        total = 0.0
        for rerank, first, relevant in queries:
            r = np.asarray(rerank, float)
            f = np.asarray(first, float)
            r = (r - r.mean()) / r.std() if r.std() > 0 else r * 0
            f = (f - f.mean()) / f.std() if f.std() > 0 else f * 0
            fused = w * r + (1 - w) * f
            order = sorted(range(len(fused)), key=lambda i: (-fused[i], i))
            rr = 0.0
            for rank, i in enumerate(order[:k], start=1):
                if relevant[i]:
                    rr = 1.0 / rank
                    break
            total += rr
        value = total / len(queries)
        tie = abs(value - best_value) <= 1e-12
        closer = best is not None and (abs(w - 0.5), -w) < (abs(best - 0.5), -best)
        if value > best_value + 1e-12 or (tie and closer):
            best, best_value = w, value
    return best, best_value


def test_choose_fusion_weight_matches_brute_force():
    rng = np.random.default_rng(0)
    queries = []
    for _ in range(40):
        n = int(rng.integers(5, 30))
        relevant = np.zeros(n, dtype=bool)
        relevant[rng.choice(n, size=int(rng.integers(1, 3)), replace=False)] = True
        # both signals are noisy views of relevance, so the best weight is in between
        rerank = relevant * 1.0 + rng.normal(0, 0.8, n)
        first = relevant * 1.0 + rng.normal(0, 0.8, n)
        queries.append((rerank, first, relevant))
    weight, curve = choose_fusion_weight(queries, rule="best")
    expected_weight, expected_value = _brute_force_weight(queries, FUSION_WEIGHTS)
    assert weight == expected_weight
    assert curve[weight] == pytest.approx(expected_value)
    assert set(curve) == set(FUSION_WEIGHTS)


def _noisy_queries(seed: int, n: int, reranker_signal: float, first_signal: float) -> list:
    """``n`` queries of 10 candidates, one relevant; each signal is ``signal * relevant + N(0, 1)``."""
    rng = np.random.default_rng(seed)
    queries = []
    for _ in range(n):
        relevant = np.zeros(10, dtype=bool)
        relevant[rng.integers(10)] = True
        noise_r, noise_f = rng.normal(0, 1, 10), rng.normal(0, 1, 10)
        queries.append((relevant * reranker_signal + noise_r, relevant * first_signal + noise_f, relevant))
    return queries


def test_choose_fusion_weight_leaves_the_balanced_mix_only_on_evidence():
    # 15 queries, both signals informative: the best weight (0.9) is a lucky one; within one standard error of
    # it lies the balanced mix, which is chosen
    few = _noisy_queries(1, 15, 1.5, 0.8)
    best, curve = choose_fusion_weight(few, rule="best")
    chosen, same_curve = choose_fusion_weight(few)
    assert (best, chosen) == (0.9, 0.5) and same_curve == curve  # the curve is reported either way
    # 200 queries on which BM25 knows nothing: the evidence keeps the weight high
    many = _noisy_queries(0, 200, 3.0, 0.0)
    assert choose_fusion_weight(many, rule="best")[0] == 1.0
    assert choose_fusion_weight(many)[0] >= 0.8
    # one query has no standard error: the best weight
    assert choose_fusion_weight(few[:1])[0] == choose_fusion_weight(few[:1], rule="best")[0]


def test_one_standard_error_rule_matches_a_brute_force():
    rng = np.random.default_rng(3)
    for trial in range(20):
        queries = []
        for _ in range(int(rng.integers(5, 40))):
            n = int(rng.integers(5, 20))
            relevant = np.zeros(n, dtype=bool)
            relevant[rng.integers(n)] = True
            strength = rng.uniform(0.2, 2.0, size=2)  # how much each signal knows, per trial
            queries.append(
                (
                    relevant * strength[0] + rng.normal(0, 1, n),
                    relevant * strength[1] + rng.normal(0, 1, n),
                    relevant,
                )
            )
        rr = {w: np.array([_brute_force_rr(q, w) for q in queries]) for w in FUSION_WEIGHTS}
        means = {w: v.mean() for w, v in rr.items()}
        top = max(means.values())
        best = min((w for w in FUSION_WEIGHTS if np.isclose(means[w], top)), key=lambda w: (abs(w - 0.5), -w))
        within = []
        for w in FUSION_WEIGHTS:
            gap = rr[best] - rr[w]
            if gap.mean() <= gap.std(ddof=1) / np.sqrt(len(gap)) + 1e-9:
                within.append(w)
        expected = min(within, key=lambda w: (abs(w - 0.5), -w))
        assert choose_fusion_weight(queries)[0] == expected, trial


def test_choose_fusion_weight_breaks_ties_towards_a_balanced_mix():
    # one query that every weight ranks perfectly: all weights tie, 0.5 wins
    perfect = ([1.0, 0.0], [1.0, 0.0], [True, False])
    assert choose_fusion_weight([perfect])[0] == 0.5
    weight, curve = choose_fusion_weight([perfect], weights=[0.0, 0.3, 0.7, 1.0])
    assert weight == 0.7 and set(curve.values()) == {1.0}


def test_best_fusion_weight_by_hand():
    # the best score wins outright, whatever its distance from 0.5
    assert best_fusion_weight({0.0: 0.5, 0.5: 0.6, 1.0: 0.61}) == 1.0
    # scores equal to 12 decimals tie; floating-point noise below that does not pick a side
    assert best_fusion_weight({0.2: 0.7, 0.5: 0.7 - 1e-14, 0.8: 0.7}) == 0.5
    # a real difference above 12 decimals is not a tie
    assert best_fusion_weight({0.2: 0.7 + 1e-9, 0.5: 0.7}) == 0.2
    # equally close to 0.5: the larger weight
    assert best_fusion_weight({0.3: 0.9, 0.7: 0.9, 1.0: 0.9}) == 0.7
    with pytest.raises(ValueError, match="at least one weight"):
        best_fusion_weight({})


def test_choose_fusion_weight_rejects_bad_input():
    with pytest.raises(ValueError, match="at least one"):
        choose_fusion_weight([])
    with pytest.raises(ValueError, match="must match"):
        choose_fusion_weight([([1.0, 2.0], [1.0], [True, False])])


def test_score_fusion_round_trip_and_validation():
    fusion = ScoreFusion(0.7, "z", "bm25", {"mrr@10_fused": 0.5})
    assert ScoreFusion.from_dict(json.loads(json.dumps(fusion.to_dict()))) == fusion
    assert ScoreFusion.from_dict(None) is None
    with pytest.raises(ValueError, match="weight"):
        ScoreFusion(-0.1)


def test_loaded_reranker_applies_the_folders_fusion(minilm, tmp_path):
    """A trainer-style folder with a ``fusion`` entry: load_reranker() fuses when given first-stage scores."""
    folder = tmp_path / "bi"
    minilm.save_pretrained(str(folder))
    (folder / "hn_reranker.json").write_text(
        json.dumps({"kind": "bi", "fusion": {"weight": 0.0, "normalization": "z"}}), encoding="utf-8"
    )
    reranker = load_reranker(folder, device="cpu")
    assert isinstance(reranker, BiEncoderReranker)
    assert reranker.fusion == ScoreFusion(0.0, "z")
    docs = ["The wing flutters at high speed.", "Boiling water transfers heat."]
    alone = reranker.score("wing flutter", docs)
    assert alone[0] > alone[1]
    # weight 0: the first stage alone decides, whatever the model says
    fused = reranker.rerank_scores("wing flutter", docs, [0.0, 5.0])
    assert fused[1] > fused[0]
    # no or partial first-stage scores: the model's scores unchanged
    np.testing.assert_allclose(reranker.rerank_scores("wing flutter", docs), alone, rtol=1e-5)
    np.testing.assert_allclose(reranker.rerank_scores("wing flutter", docs, [1.0, None]), alone, rtol=1e-5)

    (folder / "hn_reranker.json").write_text(
        json.dumps({"kind": "bi", "fusion": {"weight": 3}}), encoding="utf-8"
    )
    with pytest.raises(ValueError, match="unreadable 'fusion' entry"):
        load_reranker(folder, device="cpu")


def test_evaluator_chooses_the_fusion_weight_of_its_validation_queries(cranfield_train):
    """RerankingMRREvaluator.choose_fusion == choose_fusion_weight on the same scores (real Cranfield BM25)."""
    from hn_plugins.data import DatasetError
    from hn_plugins.training.evaluator import RerankingMRREvaluator, bm25_scored_candidates

    qids = cranfield_train.judged_query_ids[:30]  # 30 questions: the two rules choose different weights
    part = cranfield_train.subset(qids)
    scored = bm25_scored_candidates(part, qids, top_k=20)
    ids = {q: [d for d, _ in r] for q, r in scored.items()}
    bm25 = {q: [s for _, s in r] for q, r in scored.items()}

    class TitleOverlap:
        """A weak reranker: words shared by the query and the document."""

        def score(self, query, documents):
            words = set(query.lower().split())
            return [float(len(words & set(d.lower().split()))) for d in documents]

    evaluator = RerankingMRREvaluator(part, candidates=ids, first_stage_scores=bm25, first_stage_name="bm25")
    rerank = evaluator.scores(TitleOverlap())
    queries = [
        (r, bm25[q], [d in part.positives(q) for d in ids[q]])
        for q, r in zip(evaluator.query_ids, rerank, strict=True)
    ]
    weights = {}
    for rule in ("one-se", "best"):
        fusion = evaluator.choose_fusion(TitleOverlap(), rule=rule)
        expected, curve = choose_fusion_weight(queries, rule=rule)
        assert fusion.weight == expected and fusion.first_stage == "bm25"
        assert fusion.validation["mrr@10_fused"] == pytest.approx(curve[expected])
        assert fusion.validation["mrr@10_first_stage"] == pytest.approx(evaluator.first_stage["mrr@10"])
        assert fusion.validation["rule"] == rule
        weights[rule] = fusion.weight
    assert weights["one-se"] != weights["best"]  # the rule reaches the choice
    assert evaluator.choose_fusion(TitleOverlap()) == evaluator.choose_fusion(TitleOverlap(), rule="one-se")

    assert RerankingMRREvaluator(part, candidates=ids).choose_fusion(TitleOverlap()) is None
    with pytest.raises(DatasetError, match="first_stage_scores"):
        RerankingMRREvaluator(part, candidates=ids, first_stage_scores={q: s[:-1] for q, s in bm25.items()})


def test_an_unknown_fusion_rule_is_refused_with_the_known_ones():
    queries = _noisy_queries(0, 5, 1.0, 1.0)
    with pytest.raises(ValueError, match=r"Unknown fusion rule 'argmax'; choose 'one-se' .* or 'best'"):
        choose_fusion_weight(queries, rule="argmax")  # type: ignore[arg-type]
    assert check_fusion_rule("one-se") == "one-se" and DEFAULT_FUSION_RULE == "one-se"
    assert set(FUSION_RULES) == {"one-se", "best"}
