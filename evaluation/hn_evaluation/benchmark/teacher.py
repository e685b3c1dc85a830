"""The untrained starting model fused with BM25 on the train split: its fusion weight (the ``zero-shot+fusion``
row) and the teacher of the ``default+verify`` row's false-negative verifier."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from hn_plugins.data import RetrievalDataset
from hn_plugins.fusion import DEFAULT_FUSION_RULE, FusionRule

from ..metrics import EvaluationError
from .scoring import (
    EmbeddedBiEncoderScorer,
    FusedScorer,
    candidate_texts,
    first_stage_run,
    first_stage_scores_by_text,
    load_bi_encoder,
)
from .settings import BenchmarkSettings

__all__ = ["VERIFIER_TEACHER_TOP_K", "ZeroShotFusions", "zero_shot_fusion", "zero_shot_fusion_teacher"]

#: BM25 candidates per train query of the ``default+verify`` row's teacher (its first stage and its context).
VERIFIER_TEACHER_TOP_K = 100


class _FloorScores(dict):
    """``{document text: first-stage score}`` of one query; a document outside it scores ``floor``."""

    def __init__(self, scores: Mapping[str, float], floor: float) -> None:
        super().__init__(scores)
        self.floor = floor

    def __missing__(self, key: str) -> float:
        return self.floor


class _FloorScoresByQuery(dict):
    """``{query text: _FloorScores}``; a query without candidates gets floor 0.0 for every document."""

    def __missing__(self, key: str) -> _FloorScores:
        return _FloorScores({}, 0.0)


def zero_shot_fusion(
    train: RetrievalDataset,
    base_model: str,
    kind: str,
    max_length: int | None,
    top_k: int,
    rule: FusionRule = DEFAULT_FUSION_RULE,
) -> Any:
    """The fusion weight of the untrained starting model, chosen on every judged *train* query (BM25 top-k) by
    ``rule`` (:func:`~hn_plugins.fusion.choose_fusion_weight`).

    Returns:
        The chosen :class:`~hn_plugins.fusion.ScoreFusion`.
    """
    from hn_plugins.training.evaluator import RerankingMRREvaluator

    evaluator = RerankingMRREvaluator(train, top_k=top_k, name="zero-shot-fusion", write_csv=False)
    if kind == "bi":
        model: Any = load_bi_encoder(base_model, max_length)
    else:
        from hn_plugins.reranker import CrossEncoderReranker

        model = CrossEncoderReranker(base_model, max_length=max_length).model
    choice = evaluator.choose_fusion(model, rule=rule)
    if choice is None:  # pragma: no cover - BM25 candidates always carry scores
        raise EvaluationError("No first-stage scores to choose a fusion weight with.")
    return choice


class ZeroShotFusions:
    """The zero-shot fusion weight of each train split, chosen once (for the zero-shot row and the teacher).

    Args:
        settings: the benchmark's settings (base model, kind, ``max_length``, ``validation_top_k``).
    """

    def __init__(self, settings: BenchmarkSettings) -> None:
        self.settings = settings
        self._chosen: dict[Any, Any] = {}

    def choice(self, key: Any, train: RetrievalDataset) -> Any:
        """The weight chosen on ``train``; ``key`` names the split (the same key gives the same weight)."""
        if key not in self._chosen:
            s = self.settings
            self._chosen[key] = zero_shot_fusion(
                train, s.base_model, s.kind, s.max_length, s.validation_top_k, s.fusion_rule
            )
        return self._chosen[key]


def zero_shot_fusion_teacher(
    train: RetrievalDataset,
    base_model: str,
    kind: Literal["bi", "cross"],
    fusion: Any,
    *,
    max_length: int | None = None,
    top_k: int = VERIFIER_TEACHER_TOP_K,
    batch_size: int = 64,
) -> tuple[Any, dict[str, list[str]]]:
    """The ``default+verify`` row's teacher: the untrained base model fused with BM25 on the *train* split.

    BM25 retrieves the top ``top_k`` documents of every judged train query (:func:`first_stage_run`); the base model
    scores documents (``kind="bi"``: cosine of the base bi-encoder, :class:`EmbeddedBiEncoderScorer`, with the
    candidates encoded up front; ``kind="cross"``: the base cross-encoder, as the benchmark's zero-shot row scores);
    :class:`FusedScorer` mixes the two with ``fusion`` (the weight the benchmark chooses for ``zero-shot``). A
    document outside a query's BM25 top ``top_k`` (a positive or a mined negative BM25 ranked lower) gets that
    query's lowest top-``top_k`` BM25 score: BM25 ranks it no higher than its last candidate, and the fused score
    then rests on the base model. The top-``top_k`` lists are returned as the verifier's ``context``, so the
    per-query normalisation of the fusion runs over the real candidate list rather than over a positive and a few
    negatives.

    Args:
        train: the train split (the one mined).
        base_model: the benchmark's base model (name or folder).
        kind: ``bi`` or ``cross``.
        fusion: the :class:`~hn_plugins.fusion.ScoreFusion` to apply.
        max_length: maximum tokens per text (bi) or pair (cross).
        top_k: BM25 candidates per train query.
        batch_size: encoding / scoring batch size.

    Returns:
        ``(teacher, context)``: an object with ``score(query, documents)`` and a ``name``, and
        ``{query_id: [doc_id, ...]}`` (BM25 top ``top_k``, best first).

    Raises:
        ValueError: ``kind`` is neither ``bi`` nor ``cross``.
    """
    if kind not in ("bi", "cross"):
        raise ValueError(f"zero_shot_fusion_teacher(): kind must be 'bi' or 'cross', got {kind!r}.")
    run = first_stage_run(train, "bm25", top_k)
    context = {q: [d for d, _ in ranked] for q, ranked in run.items()}
    by_text = first_stage_scores_by_text(train, run)
    first_stage = _FloorScoresByQuery(
        {q: _FloorScores(scores, min(scores.values(), default=0.0)) for q, scores in by_text.items()}
    )
    scorer: Any
    if kind == "bi":
        texts = candidate_texts(train, run, top_k)
        texts += [
            train.document_text(p) for q in run for p in sorted(train.positives(q)) if p in train.corpus
        ]
        scorer = EmbeddedBiEncoderScorer(
            load_bi_encoder(base_model, max_length),
            documents=texts,
            queries=[train.queries[q] for q in run],
            batch_size=batch_size,
        )
    else:
        from hn_plugins.reranker import CrossEncoderReranker

        scorer = CrossEncoderReranker(base_model, batch_size=batch_size, max_length=max_length)
    teacher: Any = FusedScorer(scorer, fusion, first_stage)
    teacher.name = (
        f"zero-shot {base_model} ({kind}) + BM25 top-{top_k} on {train.name}, fusion weight {fusion.weight:g}"
    )
    return teacher, context
