"""``FalseNegativeVerifier``: a teacher reranker re-scores mined negatives and drops suspected false negatives.

Classic collections judge only a few documents per query, so a mined "hard negative" is often an unjudged relevant
document (NV-Retriever and RocketQA measured large false-negative rates in exactly the zone the paper's Eq. 5
selects from). The verifier asks a teacher (a cross-encoder, a bi-encoder, a fused scorer: anything with
``score(query, documents)``) to score each pair's positive and negatives, and drops every negative the teacher
scores at least as high as the positive minus a margin. Every drop is recorded, so it can be audited.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from hn_plugins.data import DatasetError, RetrievalDataset
from hn_plugins.mining.result import MiningResult, TripletRecord

logger = logging.getLogger(__name__)

__all__ = ["FalseNegativeVerifier"]


def _checked_margin(margin: Any) -> float:
    try:
        value = float(margin)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"FalseNegativeVerifier: margin must be a number >= 0, got {margin!r}.") from exc
    if not math.isfinite(value) or value < 0:
        raise ValueError(
            f"FalseNegativeVerifier: margin must be a finite number >= 0, got {value}; 0 drops only negatives "
            "the teacher scores at least as high as the positive, larger values drop more."
        )
    return value


def _teacher_name(teacher: Any) -> str:
    name = getattr(teacher, "name", None)
    if isinstance(name, str) and name:
        return f"{type(teacher).__name__}({name})"
    return str(getattr(teacher, "__qualname__", None) or type(teacher).__name__)


class FalseNegativeVerifier:
    """Drop mined negatives that a teacher reranker scores too close to (or above) the positive.

    For each query, one teacher call scores the documents of all its (query, positive) records: the positives, the
    negatives and, when ``context`` lists documents for that query, those too (teachers that normalise scores over
    the list, such as a scorer fused with the first stage, then see the real candidate list). Only the positive and
    the negatives of the same record are compared: a negative is a suspected false negative, and dropped, when
    ``score(negative) >= score(positive) - margin``.

    Args:
        teacher: an object with ``score(query: str, documents: Sequence[str]) -> np.ndarray`` (higher = more
            relevant), e.g. a :func:`~hn_plugins.reranker.load_reranker` result, a
            :class:`~hn_plugins.reranker.CrossEncoderReranker` or :class:`~hn_plugins.reranker.BiEncoderReranker`;
            or a plain callable ``(query, documents) -> scores``.
        margin: how far below the positive's score a negative must stay to be kept (``>= 0``, in the teacher's
            score units; 0 drops only negatives scored at least as high as the positive). A larger margin drops
            more negatives.
        context: ``{query_id: [doc_id, ...]}``: extra documents scored in the same call as the query's records
            (never compared, never dropped).

    Raises:
        ValueError: the teacher has no ``score`` method and is not callable, or the margin is negative or not a
            number.

    Example:
        >>> from hn_plugins.data import RetrievalDataset
        >>> from hn_plugins.mining.result import MiningResult, TripletRecord
        >>> class WordOverlap:
        ...     def score(self, query, documents):
        ...         words = set(query.split())
        ...         return [len(words & set(d.split())) for d in documents]
        >>> data = RetrievalDataset(
        ...     {"p": ("", "virtual cloud network"), "n1": ("", "cloud network setup"), "n2": ("", "pasta")},
        ...     {"q": "virtual cloud network"}, {"q": {"p": 1}})
        >>> mined = MiningResult([TripletRecord("q", "p", ["n1", "n2"], 0.2, [0.3, 0.9], [0.4, 0.8], "paper")],
        ...                      selector="paper")
        >>> verified = FalseNegativeVerifier(WordOverlap(), margin=0.0).verify(mined, data)
        >>> verified.records[0].negative_ids, verified.records[0].d_q_neg
        (['n1', 'n2'], [0.3, 0.9])
        >>> strict = FalseNegativeVerifier(WordOverlap(), margin=1.0).verify(mined, data)
        >>> strict.records[0].negative_ids
        ['n2']
        >>> strict.diagnostics["negatives_dropped"], strict.diagnostics["dropped"][0]["negative_id"]
        (1, 'n1')
    """

    def __init__(
        self,
        teacher: Any,
        margin: float = 0.0,
        context: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        score = getattr(teacher, "score", None)
        if callable(score):
            self._score: Callable[[str, Sequence[str]], Any] = score
        elif callable(teacher):
            self._score = teacher
        else:
            raise ValueError(
                f"FalseNegativeVerifier expects a teacher with score(query, documents) or a callable "
                f"(query, documents) -> scores, but got {type(teacher).__name__}; pass e.g. "
                "hn_plugins.reranker.load_reranker(MODEL)."
            )
        self.teacher = teacher
        self.margin = _checked_margin(margin)
        self.context = {str(q): [str(d) for d in ids] for q, ids in (context or {}).items()}
        self.teacher_name = _teacher_name(teacher)

    @classmethod
    def from_model(
        cls,
        model: str | os.PathLike[str],
        margin: float = 0.0,
        context: Mapping[str, Sequence[str]] | None = None,
        batch_size: int = 32,
        device: str | None = None,
    ) -> FalseNegativeVerifier:
        """A verifier whose teacher is loaded from a model name or folder.

        Args:
            model: a folder or cross-encoder name for :func:`~hn_plugins.reranker.load_reranker` (a folder written
                by ``hn train``, a registry folder, ``cross-encoder/ms-marco-MiniLM-L6-v2``), or ``bi:NAME`` for a
                sentence-transformers bi-encoder scored by cosine (:class:`~hn_plugins.reranker.BiEncoderReranker`,
                e.g. ``bi:all-MiniLM-L6-v2``).
            margin: see the class.
            context: see the class.
            batch_size: the teacher's scoring batch size.
            device: torch device.

        Raises:
            ValueError: the model cannot be loaded (the message names the model and what to pass instead).

        Example:
            >>> verifier = FalseNegativeVerifier.from_model("bi:all-MiniLM-L6-v2", margin=0.05)  # doctest: +SKIP
        """
        from hn_plugins.rerankers.bi_encoder import BiEncoderReranker
        from hn_plugins.rerankers.loading import load_reranker

        margin = _checked_margin(margin)  # before loading a model
        spec = str(model).strip()
        teacher: Any
        # load errors: RerankerLoadError is a ValueError; a model missing offline raises FileNotFoundError (OSError)
        try:
            if spec.startswith("bi:"):
                name = spec[3:].strip()
                if not name:
                    raise ValueError("'bi:' needs a bi-encoder name or folder, e.g. bi:all-MiniLM-L6-v2.")
                teacher = BiEncoderReranker(name, device=device, batch_size=batch_size)
            else:
                if not spec:
                    raise ValueError("no model given.")
                teacher = load_reranker(spec, device=device, batch_size=batch_size)
        except (OSError, ValueError) as exc:
            raise ValueError(
                f"Cannot load the verifier teacher {spec!r}: {exc} Pass a folder written by `hn train`, a "
                "cross-encoder name or folder, or bi:NAME for a sentence-transformers bi-encoder "
                "(e.g. bi:all-MiniLM-L6-v2)."
            ) from exc
        return cls(teacher, margin=margin, context=context)

    def _teacher_scores(self, query: str, texts: list[str]) -> np.ndarray:
        raw = self._score(query, texts)
        try:
            scores = np.asarray(raw, dtype=np.float64).reshape(-1)
        except (TypeError, ValueError) as exc:
            raise ValueError(
                f"Teacher {self.teacher_name} returned {type(raw).__name__}, not numbers; score(query, documents) "
                "must return one number per document."
            ) from exc
        if scores.size != len(texts):
            raise ValueError(
                f"Teacher {self.teacher_name} returned {scores.size} score(s) for {len(texts)} documents; "
                "score(query, documents) must return one score per document, in order."
            )
        if not np.all(np.isfinite(scores)):
            raise ValueError(
                f"Teacher {self.teacher_name} returned NaN or infinite scores for query {query[:60]!r}; "
                "check the model (a finite score per document is needed to compare them)."
            )
        return scores

    def verify(self, result: MiningResult, dataset: RetrievalDataset) -> MiningResult:
        """Re-score every record's positive and negatives with the teacher; keep the negatives it does not doubt.

        Args:
            result: mined negatives (any selector, or a triplet file read with
                :meth:`~hn_plugins.mining.result.MiningResult.from_jsonl`).
            dataset: the data they were mined from (query and document texts).

        Returns:
            A new :class:`MiningResult` with the same records in the same order, each with only its kept negatives
            (``d_q_neg``/``d_pos_neg`` aligned with them, the same selector name); records left with no negative
            stay, with empty ``negative_ids``. Its diagnostics are the input's plus ``verifier`` (teacher, margin),
            ``negatives_checked``, ``negatives_dropped``, ``pairs_emptied_by_verifier`` and ``dropped`` (one
            ``{query_id, positive_id, negative_id, teacher_pos, teacher_neg}`` per dropped negative); a second
            verification replaces them.

        Raises:
            DatasetError: (a ValueError) a record or ``context`` names a query or document not in ``dataset``.
            ValueError: the teacher returns a wrong number of scores, or scores that are not finite numbers.
        """
        try:
            result.check_ids(dataset)
        except DatasetError as exc:
            raise DatasetError(f"FalseNegativeVerifier.verify(): {exc}") from exc
        by_query: dict[str, list[int]] = {}
        for i, rec in enumerate(result.records):
            by_query.setdefault(rec.query_id, []).append(i)
        records: list[TripletRecord] = list(result.records)
        checked = emptied = 0
        dropped: list[dict[str, Any]] = []
        for qid, rows in by_query.items():
            if not any(result.records[i].negative_ids for i in rows):
                continue
            extra = self.context.get(qid, [])
            unknown = [d for d in extra if d not in dataset.corpus]
            if unknown:
                raise DatasetError(
                    f"FalseNegativeVerifier: context of query {qid!r} names {len(unknown)} document(s) not in the "
                    f"corpus of {dataset.name!r} (first: {unknown[:3]}); give ids of the same dataset."
                )
            ids: list[str] = []
            for i in rows:
                rec = result.records[i]
                ids += [rec.positive_id, *rec.negative_ids]
            ids = list(dict.fromkeys([*ids, *extra]))
            scores = self._teacher_scores(dataset.queries[qid], [dataset.document_text(d) for d in ids])
            score_of = dict(zip(ids, scores.tolist(), strict=True))
            for i in rows:
                rec = result.records[i]
                if not rec.negative_ids:
                    continue
                n = len(rec.negative_ids)
                d_q_neg = list(rec.d_q_neg) if len(rec.d_q_neg) == n else [None] * n
                d_pos_neg = list(rec.d_pos_neg) if len(rec.d_pos_neg) == n else [None] * n
                pos = score_of[rec.positive_id]
                kept: list[int] = []
                for j, neg_id in enumerate(rec.negative_ids):
                    checked += 1
                    neg = score_of[neg_id]
                    if neg >= pos - self.margin:
                        dropped.append(
                            {
                                "query_id": rec.query_id,
                                "positive_id": rec.positive_id,
                                "negative_id": neg_id,
                                "teacher_pos": pos,
                                "teacher_neg": neg,
                            }
                        )
                    else:
                        kept.append(j)
                if not kept:
                    emptied += 1
                records[i] = TripletRecord(
                    rec.query_id,
                    rec.positive_id,
                    [rec.negative_ids[j] for j in kept],
                    rec.d_q_pos,
                    [d_q_neg[j] for j in kept],
                    [d_pos_neg[j] for j in kept],
                    rec.selector,
                )
        diagnostics = {
            **result.diagnostics,
            "verifier": self.get_config_dict(),
            "negatives_checked": checked,
            "negatives_dropped": len(dropped),
            "pairs_emptied_by_verifier": emptied,
            "dropped": dropped,
        }
        logger.info(
            "verifier %s (margin %g): dropped %d of %d negatives as suspected false negatives; "
            "%d pair(s) left without a negative",
            self.teacher_name,
            self.margin,
            len(dropped),
            checked,
            emptied,
        )
        return MiningResult(records, selector=result.selector, diagnostics=diagnostics)

    def get_config_dict(self) -> dict[str, Any]:
        """Teacher name and margin (what the diagnostics' ``verifier`` entry holds)."""
        return {"teacher": self.teacher_name, "margin": self.margin}
