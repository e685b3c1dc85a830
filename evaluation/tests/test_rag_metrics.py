"""RAG answer and context metrics: hand-computed cases, and agreement with independent implementations
(rouge_score's ROUGE-L, ragas' ID-based context recall and precision) on real python-docs-faq texts."""

from __future__ import annotations

import json
import random

import pytest

from hn_evaluation.rag_metrics import (
    answer_f1,
    answer_rouge_l,
    context_precision,
    context_recall,
    rouge_tokens,
    squad_tokens,
)


@pytest.fixture(scope="module")
def faq_texts(eval_data_dir) -> list[str]:
    with open(eval_data_dir / "python-docs-faq" / "corpus.jsonl", encoding="utf-8") as handle:
        return [json.loads(line)["text"] for line in handle]


def test_answer_f1_hand_computed():
    # reference: gil / protects / interpreter / state (4 tokens after dropping "the" and punctuation)
    # response: gil / protects / objects (3); overlap 2 -> P 2/3, R 2/4, F1 = 2 * (2/3 * 1/2) / (2/3 + 1/2) = 4/7
    assert answer_f1("The GIL protects the interpreter state.", "GIL protects objects") == pytest.approx(
        4 / 7
    )
    assert answer_f1("a b c", "a b c") == pytest.approx(1.0)
    assert answer_f1("lists", "tuples") == 0.0
    assert answer_f1("", "anything") == 0.0
    assert answer_f1("anything", "") == 0.0
    # repeated tokens count as often as both sides have them (Counter intersection)
    assert answer_f1("x x y", "x x x") == pytest.approx(2 * (2 / 3) * (2 / 3) / (4 / 3))


def test_squad_and_rouge_tokenisation():
    assert squad_tokens("An Object's __dict__, the end.") == ["objects", "dict", "end"]
    assert rouge_tokens("An Object's __dict__, the end.") == ["an", "object", "s", "dict", "the", "end"]


def test_answer_rouge_l_hand_computed():
    # LCS of [a b c d e] and [a x c e] is [a c e] = 3: P 3/4, R 3/5
    assert answer_rouge_l("a b c d e", "a x c e") == pytest.approx(2 * 0.75 * 0.6 / 1.35)
    assert answer_rouge_l("a b", "b a") == pytest.approx(0.5)
    assert answer_rouge_l("", "a") == 0.0
    assert answer_rouge_l("a", "b") == 0.0


def test_answer_rouge_l_matches_rouge_score(faq_texts):
    rouge_scorer = pytest.importorskip("rouge_score.rouge_scorer")
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    rng = random.Random(0)
    checked = 0
    for _ in range(60):
        reference, response = rng.sample(faq_texts, 2)
        # answers are a sentence or two: cut the response, keep the reference whole up to 400 words
        reference = " ".join(reference.split()[:400])
        response = " ".join(response.split()[: rng.randint(5, 60)])
        expected = scorer.score(reference, response)["rougeL"].fmeasure
        assert answer_rouge_l(reference, response) == pytest.approx(expected, abs=1e-12)
        checked += expected > 0
    assert checked > 30  # most pairs share some tokens, so the comparison is not all zeros


def test_context_metrics_hand_computed():
    assert context_recall(["d1", "d2", "d3"], {"d2", "d9"}) == 0.5
    assert context_recall(["d1"], ["d1"]) == 1.0
    assert context_precision(["d1", "d2", "d3"], {"d2", "d9"}) == pytest.approx(1 / 3)
    assert context_precision(["d2", "d2"], {"d2"}) == 1.0  # distinct ids, as ragas counts them
    with pytest.raises(ValueError, match="reference document id"):
        context_recall(["d1"], [])
    with pytest.raises(ValueError, match="retrieved context"):
        context_precision([], ["d1"])


def test_context_metrics_match_ragas():
    metrics = pytest.importorskip("ragas.metrics")
    from ragas.dataset_schema import SingleTurnSample

    recall, precision = metrics.IDBasedContextRecall(), metrics.IDBasedContextPrecision()
    rng = random.Random(1)
    ids = [f"doc{i}" for i in range(12)]
    for _ in range(40):
        retrieved = rng.sample(ids, rng.randint(1, 5))
        reference = rng.sample(ids, rng.randint(1, 3))
        sample = SingleTurnSample(retrieved_context_ids=retrieved, reference_context_ids=reference)
        assert context_recall(retrieved, reference) == pytest.approx(recall.single_turn_score(sample))
        assert context_precision(retrieved, reference) == pytest.approx(precision.single_turn_score(sample))
