"""Downstream RAG quality: answer each query from a ranking's top contexts, then score contexts and answers.

A better reranker is worth having when the answers get better. :func:`evaluate_rag` takes the rankings that
:func:`hn_evaluation.rerank.evaluate_reranking` produced (``RerankReport.runs``: first stage alone, start model,
fine-tuned model, ...), hands each query's top ``contexts`` documents to a generator, and scores per query:

- ``context_recall`` / ``context_precision``: judged documents among the contexts, by id (ragas' ID-based
  definitions);
- ``answer_f1`` / ``answer_rouge_l``: the answer against a reference answer, by token F1 and ROUGE-L.

Reference answers come from ``reference_answers`` when given; otherwise each query's judged positive document
(highest grade, then lowest id) is its reference answer. That is right for FAQ-style data, where the positive
*is* the answer (python-docs-faq, chatterbot), and only a proxy for collections whose positives are long
documents. ragas metrics (e.g. ``Faithfulness(llm=...)`` with your judge LLM) are added with ``ragas_metrics``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hn_plugins.data import RetrievalDataset

from .generators import Generator, generator_name
from .metrics import EvaluationError, judged_queries, rank_documents
from .rag_metrics import RAG_METRICS, answer_f1, answer_rouge_l, context_precision, context_recall
from .significance import compare_rows

logger = logging.getLogger(__name__)

__all__ = ["RagReport", "evaluate_rag", "reference_answers_from_positives", "score_rag_answers"]


@dataclass
class RagReport:
    """Result of :func:`evaluate_rag`.

    Attributes:
        dataset: the dataset's name.
        generator: the generator's name.
        contexts: documents given to the generator per query.
        reference: ``"positive-document"`` (each query's judged positive as reference answer) or ``"given"``.
        metrics: metric keys, in order.
        rows: ``{row_name: {metric: mean}}``.
        per_query: ``{row_name: {query_id: {metric: value}}}``.
        answers: ``{row_name: {query_id: {"context_ids": [...], "response": str}}}``.
        seconds: ``{row_name: generation seconds}`` (an answer shared with an earlier row costs nothing).
        generations: distinct (question, contexts) pairs the generator answered (``None`` when the answers were
            generated elsewhere, :func:`score_rag_answers`).

    Example:
        >>> report = RagReport("toy", "extractive", 3, "given", ["answer_f1"], {"bm25": {"answer_f1": 0.5}},
        ...                    {}, {}, {}, 1)
        >>> report.to_dict()["rows"]
        {'bm25': {'answer_f1': 0.5}}
    """

    dataset: str
    generator: str
    contexts: int
    reference: str
    metrics: list[str]
    rows: dict[str, dict[str, float]]
    per_query: dict[str, dict[str, dict[str, float]]]
    answers: dict[str, dict[str, dict[str, Any]]]
    seconds: dict[str, float]
    generations: int | None
    reference_answers: dict[str, str] = field(default_factory=dict, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dict of every field but the reference answers."""
        return {
            "dataset": self.dataset,
            "generator": self.generator,
            "contexts": self.contexts,
            "reference": self.reference,
            "metrics": list(self.metrics),
            "rows": {name: dict(values) for name, values in self.rows.items()},
            "per_query": {name: {q: dict(v) for q, v in pq.items()} for name, pq in self.per_query.items()},
            "answers": {name: {q: dict(v) for q, v in pq.items()} for name, pq in self.answers.items()},
            "seconds": dict(self.seconds),
            "generations": self.generations,
        }

    def format_table(
        self,
        label: str = "row",
        baseline: str | None = None,
        compared: Sequence[str] = ("context_recall", "answer_f1"),
    ) -> str:
        """The rows as a plain-text table; with ``baseline``, then each other row's difference from it on the
        ``compared`` metrics with its paired permutation p-value.

        Example:
            >>> report = RagReport("toy", "extractive", 1, "given", ["answer_f1"],
            ...                    {"bm25": {"answer_f1": 0.25}, "ours": {"answer_f1": 0.5}},
            ...                    {"bm25": {"q": {"answer_f1": 0.25}}, "ours": {"q": {"answer_f1": 0.5}}}, {}, {}, 1)
            >>> print(report.format_table(baseline="bm25", compared=["answer_f1"]))
            row             answer_f1
            bm25               0.2500
            ours               0.5000
            ours vs bm25: answer_f1 +0.2500 (paired permutation p = 1.0000)
        """
        width = max(len(label), *(len(n) for n in self.rows)) + 2
        lines = [f"{label:<{width}}" + "".join(f"{m:>19}" for m in self.metrics)]
        for name, values in self.rows.items():
            lines.append(f"{name:<{width}}" + "".join(f"{values[m]:>19.4f}" for m in self.metrics))
        if baseline is not None:
            for metric in compared:
                for name, diff in self.compare(baseline, metric=metric).items():
                    lines.append(
                        f"{name} vs {baseline}: {metric} {diff['delta']:+.4f} (paired permutation p = "
                        f"{diff['p_value']:.4f})"
                    )
        return "\n".join(lines)

    def compare(
        self, baseline: str, metric: str = "answer_f1", n_resamples: int = 10000, seed: int = 0
    ) -> dict[str, dict[str, float]]:
        """Each row against ``baseline`` on ``metric``: mean difference and paired permutation p-value.

        Raises:
            EvaluationError: unknown row or metric.
        """
        return compare_rows(self.per_query, self.metrics, baseline, metric, n_resamples, seed)


def reference_answers_from_positives(dataset: RetrievalDataset, query_ids: Sequence[str]) -> dict[str, str]:
    """Each query's judged positive document (highest grade, then lowest id) as its reference answer.

    The document's text is used (its title when the text is empty): FAQ-style titles are categories, not answers.

    Example:
        >>> ds = RetrievalDataset(corpus={"d1": ("Lists", "Lists are arrays."), "d2": ("", "Other.")},
        ...                       queries={"q": "How are lists implemented?"}, qrels={"q": {"d1": 1}})
        >>> reference_answers_from_positives(ds, ["q"])
        {'q': 'Lists are arrays.'}
    """
    out: dict[str, str] = {}
    for qid in query_ids:
        judged = [(grade, d) for d, grade in dataset.qrels.get(qid, {}).items() if grade > 0]
        if not judged:
            raise EvaluationError(f"Query {qid!r} of {dataset.name!r} has no judged positive document.")
        _, best = min(judged, key=lambda pair: (-pair[0], pair[1]))
        title, text = dataset.corpus[best]
        out[qid] = text.strip() or title.strip()
    return out


def _select_queries(
    dataset: RetrievalDataset, runs: Mapping[str, Mapping[str, Any]], max_queries: int | None, seed: int
) -> list[str]:
    try:
        judged = [q for q in judged_queries(dataset.qrels) if q in dataset.queries]
    except EvaluationError as exc:
        raise EvaluationError(f"Dataset {dataset.name!r}: {exc}") from exc
    for name, run in runs.items():
        absent = [q for q in judged if q not in run]
        if absent:
            raise EvaluationError(
                f"Row {name!r} has no ranking for {len(absent)} judged query(ies) (first: {absent[:5]}); pass the "
                "runs of evaluate_reranking on the same split."
            )
    if max_queries is not None:
        if not isinstance(max_queries, int) or max_queries < 1:
            raise EvaluationError(f"max_queries must be a positive integer or None, got {max_queries!r}.")
        if max_queries < len(judged):
            picked = np.random.default_rng(seed).choice(len(judged), size=max_queries, replace=False)
            judged = [judged[i] for i in sorted(picked.tolist())]
    return judged


def _ragas_scorer(metrics: Sequence[Any]) -> Any:
    if not metrics:
        return None
    try:
        from ragas.dataset_schema import SingleTurnSample
    except ImportError as exc:
        raise ImportError('ragas_metrics need ragas: pip install "hn-evaluation[rag]"') from exc
    names = [getattr(m, "name", None) for m in metrics]
    clash = [n for n in names if not n or n in RAG_METRICS]
    if clash or len(set(names)) != len(names):
        raise EvaluationError(f"ragas metrics need distinct names other than {RAG_METRICS}; got {names}.")

    def score(sample_fields: dict[str, Any]) -> dict[str, float]:
        sample = SingleTurnSample(**sample_fields)
        return {m.name: float(m.single_turn_score(sample)) for m in metrics}

    return score


def _check_in_corpus(dataset: RetrievalDataset, doc_ids: Iterable[Any], source: str, fix: str) -> None:
    unknown = sorted({str(d) for d in doc_ids if d not in dataset.corpus})
    if unknown:
        raise EvaluationError(
            f"{source} {len(unknown)} document id(s) not in the corpus of {dataset.name!r} (first: "
            f"{unknown[:5]}); {fix}."
        )


def _references(
    dataset: RetrievalDataset, qids: Sequence[str], reference_answers: Mapping[str, str] | None
) -> tuple[dict[str, str], str]:
    if reference_answers is None:
        return reference_answers_from_positives(dataset, qids), "positive-document"
    missing = [q for q in qids if not str(reference_answers.get(q, "")).strip()]
    if missing:
        raise EvaluationError(
            f"{len(missing)} judged query(ies) have no reference answer (first: {missing[:5]}); give one per "
            "query, or leave reference_answers out to use each query's positive document."
        )
    return {q: str(reference_answers[q]) for q in qids}, "given"


def score_rag_answers(
    dataset: RetrievalDataset,
    answers: Mapping[str, Mapping[str, Mapping[str, Any]]],
    *,
    reference_answers: Mapping[str, str] | None = None,
    ragas_metrics: Sequence[Any] = (),
    generator: str = "given",
    contexts: int | None = None,
    seconds: Mapping[str, float] | None = None,
    generations: int | None = None,
) -> RagReport:
    """Score answers that were already generated, e.g. by your LlamaIndex or Haystack pipeline.

    Args:
        dataset: queries, corpus and judgments of the evaluated split.
        answers: ``{row_name: {query_id: {"context_ids": [...], "response": str}}}``, optionally with
            ``"contexts"`` (the context texts the generator saw; default ``dataset.document_text`` of each id).
            Every row must answer the same judged queries.
        reference_answers: ``{query_id: answer}``; default: each query's judged positive document's text.
        ragas_metrics: ragas ``SingleTurnMetric`` objects scored on every answer too (see :func:`evaluate_rag`).
        generator, contexts, seconds, generations: recorded in the report as given.

    Returns:
        A :class:`RagReport`.

    Raises:
        EvaluationError: no rows, rows over different queries, a query without judgments or reference answer,
            an unknown document id, or a response that is not a string.

    Example:
        >>> ds = RetrievalDataset(corpus={"d1": ("", "Lists are arrays."), "d2": ("", "Dicts use hash tables.")},
        ...                       queries={"q": "How are lists implemented?"}, qrels={"q": {"d1": 1}})
        >>> answers = {"engine": {"q": {"context_ids": ["d1", "d2"], "response": "Lists are arrays."}}}
        >>> score_rag_answers(ds, answers).rows["engine"]
        {'context_recall': 1.0, 'context_precision': 0.5, 'answer_f1': 1.0, 'answer_rouge_l': 1.0}
    """
    if not isinstance(dataset, RetrievalDataset):
        raise EvaluationError(
            f"RAG evaluation needs a RetrievalDataset, got {type(dataset)}; see load_beir()."
        )
    if not answers:
        raise EvaluationError("No answers given; pass {row_name: {query_id: {'context_ids', 'response'}}}.")
    ragas_score = _ragas_scorer(ragas_metrics)
    qids = list(next(iter(answers.values())))
    if not qids:
        raise EvaluationError("The first row answers no query; answer at least one judged query.")
    for name, by_query in answers.items():
        if set(by_query) != set(qids):
            raise EvaluationError(
                f"Row {name!r} answers other queries than row {next(iter(answers))!r}; every row must answer the "
                "same queries, so that rows compare query by query."
            )
    unjudged = [
        q
        for q in qids
        if q not in dataset.queries or not any(g > 0 for g in dataset.qrels.get(q, {}).values())
    ]
    if unjudged:
        raise EvaluationError(
            f"{len(unjudged)} answered query(ies) are not judged queries of {dataset.name!r} (first: "
            f"{unjudged[:5]}); answer the judged queries of the same split."
        )
    _check_in_corpus(
        dataset,
        (d for by_q in answers.values() for a in by_q.values() for d in a["context_ids"]),
        "The contexts name",
        "use documents of the same corpus",
    )
    references, reference_kind = _references(dataset, qids, reference_answers)
    metric_names = list(RAG_METRICS) + [m.name for m in ragas_metrics]
    rows: dict[str, dict[str, float]] = {}
    per_query: dict[str, dict[str, dict[str, float]]] = {}
    kept: dict[str, dict[str, dict[str, Any]]] = {}
    for name, by_query in answers.items():
        per_query[name], kept[name] = {}, {}
        for qid in qids:
            ids = [str(d) for d in by_query[qid]["context_ids"]]
            response = by_query[qid]["response"]
            if not isinstance(response, str):
                raise EvaluationError(
                    f"Row {name!r} answered query {qid!r} with {type(response).__name__}; answers must be strings."
                )
            relevant = [d for d, grade in dataset.qrels[qid].items() if grade > 0]
            values = {
                "context_recall": context_recall(ids, relevant),
                "context_precision": context_precision(ids, relevant) if ids else 0.0,
                "answer_f1": answer_f1(references[qid], response),
                "answer_rouge_l": answer_rouge_l(references[qid], response),
            }
            if ragas_score is not None:
                texts = by_query[qid].get("contexts") or [dataset.document_text(d) for d in ids]
                values.update(
                    ragas_score(
                        {
                            "user_input": dataset.queries[qid],
                            "response": response,
                            "reference": references[qid],
                            "retrieved_contexts": list(texts),
                            "retrieved_context_ids": ids,
                            "reference_context_ids": relevant,
                        }
                    )
                )
            per_query[name][qid] = values
            kept[name][qid] = {"context_ids": ids, "response": response}
        rows[name] = {m: float(np.mean([per_query[name][q][m] for q in qids])) for m in metric_names}
        logger.info("RAG %s on %s: %s", name, dataset.name, {k: round(v, 4) for k, v in rows[name].items()})
    return RagReport(
        dataset=dataset.name,
        generator=generator,
        contexts=contexts
        if contexts is not None
        else max(len(a["context_ids"]) for r in kept.values() for a in r.values()),
        reference=reference_kind,
        metrics=metric_names,
        rows=rows,
        per_query=per_query,
        answers=kept,
        seconds=dict(seconds) if seconds is not None else {name: 0.0 for name in answers},
        generations=generations,
        reference_answers=references,
    )


def evaluate_rag(
    dataset: RetrievalDataset,
    runs: Mapping[str, Mapping[str, Any]],
    generator: Generator,
    *,
    contexts: int = 3,
    reference_answers: Mapping[str, str] | None = None,
    max_queries: int | None = None,
    ragas_metrics: Sequence[Any] = (),
    seed: int = 0,
) -> RagReport:
    """Generate an answer per query and row from the row's top ``contexts`` documents, and score it.

    Args:
        dataset: queries, corpus and judgments of the evaluated split. Contexts are shown to the generator as
            ``dataset.document_text(doc_id)``, what the rerankers saw.
        runs: ``{row_name: {query_id: results}}``, e.g. ``evaluate_reranking(...).runs`` (results as accepted
            by :func:`hn_evaluation.metrics.evaluate_run`). Rows keep this order.
        generator: ``generator(question, contexts) -> answer`` (see :mod:`hn_evaluation.generators`).
        contexts: documents per query given to the generator (the top of each ranking).
        reference_answers: ``{query_id: answer}``; default: each query's judged positive document's text.
        max_queries: evaluate a seeded random sample of this many judged queries (generation is the slow part).
        ragas_metrics: ragas ``SingleTurnMetric`` objects scored on every answer too, e.g.
            ``Faithfulness(llm=LangchainLLMWrapper(...))``; samples carry ``user_input``, ``response``,
            ``reference``, ``retrieved_contexts``, ``retrieved_context_ids`` and ``reference_context_ids``.
        seed: seed of the ``max_queries`` sample.

    Returns:
        A :class:`RagReport`. The same (question, contexts) pair is answered once and shared between rows, so
        two rows that put the same documents on top get the same answer. Answers generated elsewhere are scored
        with :func:`score_rag_answers`.

    Raises:
        EvaluationError: no judged queries, a row without a ranking for a judged query, an unknown document id,
            a judged query without a reference answer, ``contexts < 1``, or a generator that returns no string.

    Example:
        >>> ds = RetrievalDataset(corpus={"d1": ("", "Lists are arrays."), "d2": ("", "Dicts use hash tables.")},
        ...                       queries={"q": "How are lists implemented?"}, qrels={"q": {"d1": 1}})
        >>> first = lambda question, contexts: contexts[0]
        >>> report = evaluate_rag(ds, {"bm25": {"q": ["d2", "d1"]}, "reranked": {"q": ["d1", "d2"]}}, first,
        ...                       contexts=1)
        >>> report.rows["reranked"]["answer_f1"], report.rows["bm25"]["answer_f1"]
        (1.0, 0.0)
    """
    if not isinstance(dataset, RetrievalDataset):
        raise EvaluationError(f"evaluate_rag needs a RetrievalDataset, got {type(dataset)}; see load_beir().")
    if not runs:
        raise EvaluationError("No runs given; pass e.g. evaluate_reranking(...).runs.")
    if not isinstance(contexts, int) or contexts < 1:
        raise EvaluationError(f"contexts must be a positive integer, got {contexts!r}.")
    if not callable(generator):
        raise EvaluationError(
            f"generator must be callable as generator(question, contexts), got {type(generator)}."
        )
    _ragas_scorer(ragas_metrics)  # bad metrics fail before any generation
    qids = _select_queries(dataset, runs, max_queries, seed)
    _references(
        dataset, qids, reference_answers
    )  # a missing reference answer fails before any generation too
    top = {name: {q: rank_documents(run[q])[:contexts] for q in qids} for name, run in runs.items()}
    _check_in_corpus(
        dataset,
        (d for by_q in top.values() for ids in by_q.values() for d in ids),
        "The runs name",
        "rank documents of the same corpus",
    )
    answered: dict[tuple[str, tuple[str, ...]], str] = {}
    answers: dict[str, dict[str, dict[str, Any]]] = {}
    seconds: dict[str, float] = {}
    for name in runs:
        answers[name], seconds[name] = {}, 0.0
        for qid in qids:
            ids = top[name][qid]
            question = dataset.queries[qid]
            key = (question, tuple(ids))
            if key not in answered:
                start = time.perf_counter()
                response = generator(question, [dataset.document_text(d) for d in ids])
                seconds[name] += time.perf_counter() - start
                if not isinstance(response, str):
                    raise EvaluationError(
                        f"Generator {generator_name(generator)!r} returned {type(response).__name__} for query "
                        f"{qid!r}; it must return the answer as a string."
                    )
                answered[key] = response
            answers[name][qid] = {"context_ids": list(ids), "response": answered[key]}
    return score_rag_answers(
        dataset,
        answers,
        reference_answers=reference_answers,
        ragas_metrics=ragas_metrics,
        generator=generator_name(generator),
        contexts=contexts,
        seconds=seconds,
        generations=len(answered),
    )
