"""Per-query metrics of a RAG answer and of the contexts it was generated from (no LLM needed).

- :func:`context_recall` / :func:`context_precision`: by document id, as ragas' ``IDBasedContextRecall`` and
  ``IDBasedContextPrecision`` define them.
- :func:`answer_f1`: token F1 between the answer and a reference answer, with SQuAD's normalisation.
- :func:`answer_rouge_l`: ROUGE-L F-measure (longest common subsequence of tokens), tokenised as the
  ``rouge_score`` package does without stemming.

Judge-model metrics (faithfulness, answer correctness) need an LLM: pass ragas metrics to
:func:`hn_evaluation.rag.evaluate_rag` for those.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Collection, Sequence

__all__ = [
    "RAG_METRICS",
    "answer_f1",
    "answer_rouge_l",
    "context_precision",
    "context_recall",
    "rouge_tokens",
    "squad_tokens",
]

#: The metric keys of :func:`hn_evaluation.rag.evaluate_rag`, in report order.
RAG_METRICS: tuple[str, ...] = ("context_recall", "context_precision", "answer_f1", "answer_rouge_l")

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = set(string.punctuation)
_NON_ALNUM = re.compile(r"[^a-z0-9]+")


def context_recall(retrieved_ids: Sequence[str], reference_ids: Collection[str]) -> float:
    """Share of the reference (relevant) document ids that are among the retrieved contexts.

    Raises:
        ValueError: no reference ids (recall is undefined).

    Example:
        >>> context_recall(["d1", "d7", "d3"], {"d3", "d9"})
        0.5
    """
    reference = {str(d) for d in reference_ids}
    if not reference:
        raise ValueError("context_recall needs at least one reference document id; this query has none.")
    retrieved = {str(d) for d in retrieved_ids}
    return sum(d in retrieved for d in reference) / len(reference)


def context_precision(retrieved_ids: Sequence[str], reference_ids: Collection[str]) -> float:
    """Share of the distinct retrieved contexts that are reference (relevant) documents.

    Raises:
        ValueError: no retrieved ids (precision is undefined).

    Example:
        >>> context_precision(["d1", "d7", "d3"], {"d3", "d9"})
        0.3333333333333333
    """
    retrieved = {str(d) for d in retrieved_ids}
    if not retrieved:
        raise ValueError("context_precision needs at least one retrieved context; this query has none.")
    reference = {str(d) for d in reference_ids}
    return sum(d in reference for d in retrieved) / len(retrieved)


def squad_tokens(text: str) -> list[str]:
    """SQuAD's answer normalisation: lower case, no punctuation, no articles, split on whitespace.

    Example:
        >>> squad_tokens("The GIL, explained!")
        ['gil', 'explained']
    """
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return _ARTICLES.sub(" ", text).split()


def answer_f1(reference: str, response: str) -> float:
    """Token F1 between ``response`` and ``reference`` (SQuAD's ``f1_score``; 0.0 when either is empty).

    Example:
        >>> round(answer_f1("lists are arrays of references", "CPython lists are arrays"), 4)
        0.6667
    """
    ref, res = squad_tokens(reference), squad_tokens(response)
    common = Counter(ref) & Counter(res)
    overlap = sum(common.values())
    if overlap == 0:
        return 0.0
    precision, recall = overlap / len(res), overlap / len(ref)
    return 2 * precision * recall / (precision + recall)


def rouge_tokens(text: str) -> list[str]:
    """Tokens as ``rouge_score``'s default tokenizer makes them (lower case, runs of ``[a-z0-9]``).

    Example:
        >>> rouge_tokens("dict.get() -- O(1)")
        ['dict', 'get', 'o', '1']
    """
    return [t for t in _NON_ALNUM.split(text.lower()) if t]


def _lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    if len(a) < len(b):
        a, b = b, a
    previous = [0] * (len(b) + 1)
    for token in a:
        current = [0]
        for j, other in enumerate(b):
            current.append(previous[j] + 1 if token == other else max(previous[j + 1], current[j]))
        previous = current
    return previous[-1]


def answer_rouge_l(reference: str, response: str) -> float:
    """ROUGE-L F-measure of ``response`` against ``reference`` (0.0 when either has no token).

    Equals ``rouge_score.rouge_scorer.RougeScorer(["rougeL"]).score(reference, response)["rougeL"].fmeasure``.

    Example:
        >>> round(answer_rouge_l("the list is an array", "a list is really an array"), 4)
        0.7273
    """
    ref, res = rouge_tokens(reference), rouge_tokens(response)
    if not ref or not res:
        return 0.0
    lcs = _lcs_length(ref, res)
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(res), lcs / len(ref)
    return 2 * precision * recall / (precision + recall)
