"""Fuse a reranker's scores with the first stage's scores (hybrid reranking).

A fine-tuned reranker trained on a few hundred queries knows the domain's vocabulary less well than BM25 knows the
exact terms of a query; on collections such as Cranfield or CISI, BM25 alone beats a MiniLM bi-encoder. Mixing both
rankings per query is the standard remedy: each score list is normalised per query (z-score by default, or min-max)
and the fused score is ``weight * reranker + (1 - weight) * first_stage``. ``weight = 1`` is the reranker alone,
``weight = 0`` the first stage alone.

The weight is chosen on validation queries (held-out *train* queries, never the test split) by
:func:`choose_fusion_weight` under a rule (:data:`FUSION_RULES`): by default ``one-se``, the most balanced weight
within one standard error of the best; ``best`` takes the best weight. The trainer stores the chosen
:class:`ScoreFusion` in the model folder's ``hn_reranker.json``, and the LlamaIndex postprocessor and the Haystack
ranker apply it whenever the retrieved nodes/documents carry first-stage scores.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np

from hn_plugins.fusion_rules import DEFAULT_FUSION_RULE, FUSION_RULES, FusionRule, check_fusion_rule
from hn_plugins.metrics import mrr_at_k_of_order

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_FUSION_RULE",
    "FUSION_RULES",
    "FUSION_WEIGHTS",
    "FusionRule",
    "ScoreFusion",
    "best_fusion_weight",
    "check_fusion_rule",
    "choose_fusion_weight",
    "fuse_scores",
    "fused_reciprocal_ranks",
    "normalize_scores",
]

Normalization = Literal["z", "minmax"]
#: Weights tried by :func:`choose_fusion_weight` (0 = first stage alone, 1 = reranker alone).
FUSION_WEIGHTS: tuple[float, ...] = tuple(round(0.1 * i, 1) for i in range(11))


def normalize_scores(scores: Sequence[float] | np.ndarray, method: Normalization = "z") -> np.ndarray:
    """Normalise one query's scores: ``z`` (mean 0, std 1) or ``minmax`` (0..1); constant scores give zeros.

    Example:
        >>> normalize_scores([1.0, 2.0, 3.0], "minmax").tolist()
        [0.0, 0.5, 1.0]
        >>> normalize_scores([5.0, 5.0], "z").tolist()
        [0.0, 0.0]
        >>> normalize_scores([0.2, 0.2, 0.2], "z").tolist()  # std 2.8e-17 in floating point: still constant
        [0.0, 0.0, 0.0]
    """
    x = np.asarray(scores, dtype=np.float64).reshape(-1)
    if x.size == 0:
        return x
    if not np.all(np.isfinite(x)):
        raise ValueError("Scores to fuse must be finite numbers (got NaN or inf).")
    # spreads at rounding-error size (equal scores that float arithmetic leaves 1e-17 apart) count as constant:
    # dividing by them would turn rounding noise into z-scores of +-1
    tiny = 1e-12 * float(np.abs(x).max())
    if method == "minmax":
        spread = float(x.max() - x.min())
        return (x - x.min()) / spread if spread > tiny else np.zeros_like(x)
    if method == "z":
        std = float(x.std())
        return (x - x.mean()) / std if std > tiny else np.zeros_like(x)
    raise ValueError(f"normalization must be 'z' or 'minmax', got {method!r}.")


def fuse_scores(
    reranker_scores: Sequence[float] | np.ndarray,
    first_stage_scores: Sequence[float] | np.ndarray,
    weight: float,
    normalization: Normalization = "z",
) -> np.ndarray:
    """``weight * norm(reranker) + (1 - weight) * norm(first_stage)`` for one query's candidates.

    Example:
        >>> fuse_scores([0.9, 0.1], [1.0, 3.0], weight=1.0, normalization="minmax").tolist()
        [1.0, 0.0]
        >>> fuse_scores([0.9, 0.1], [1.0, 3.0], weight=0.25, normalization="minmax").tolist()
        [0.25, 0.75]
    """
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"Fusion weight must be in [0, 1], got {weight}.")
    r = np.asarray(reranker_scores, dtype=np.float64).reshape(-1)
    f = np.asarray(first_stage_scores, dtype=np.float64).reshape(-1)
    if r.shape != f.shape:
        raise ValueError(
            f"fuse_scores(): {r.size} reranker scores but {f.size} first-stage scores; pass one of each per document."
        )
    return weight * normalize_scores(r, normalization) + (1.0 - weight) * normalize_scores(f, normalization)


@dataclass(frozen=True)
class ScoreFusion:
    """How to mix a reranker's scores with the first stage's: the weight and the per-query normalisation.

    Args:
        weight: share of the reranker (1.0: reranker alone; 0.0: first stage alone).
        normalization: ``z`` or ``minmax``, applied per query to both score lists.
        first_stage: the first stage the weight was chosen for (informational, e.g. ``bm25``).
        validation: validation MRR@10 of the reranker alone and fused (informational; cross-fitting adds a
            ``method`` note).

    Example:
        >>> fusion = ScoreFusion(weight=0.5, normalization="minmax")
        >>> fusion([0.2, 0.8], [10.0, 0.0]).tolist()
        [0.5, 0.5]
        >>> ScoreFusion.from_dict(fusion.to_dict()) == fusion
        True
    """

    weight: float
    normalization: Normalization = "z"
    first_stage: str = "bm25"
    validation: Mapping[str, float | str] | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= float(self.weight) <= 1.0:
            raise ValueError(f"ScoreFusion weight must be in [0, 1], got {self.weight}.")
        if self.normalization not in ("z", "minmax"):
            raise ValueError(
                f"ScoreFusion normalization must be 'z' or 'minmax', got {self.normalization!r}."
            )

    def __call__(
        self, reranker_scores: Sequence[float] | np.ndarray, first_stage_scores: Sequence[float] | np.ndarray
    ) -> np.ndarray:
        return fuse_scores(reranker_scores, first_stage_scores, self.weight, self.normalization)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["validation"] = dict(self.validation) if self.validation else None
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> ScoreFusion | None:
        """Read the ``fusion`` entry of ``hn_reranker.json`` (``None`` stays ``None``)."""
        if not data:
            return None
        return cls(
            weight=float(data["weight"]),
            normalization=data.get("normalization", "z"),
            first_stage=str(data.get("first_stage", "bm25")),
            validation=data.get("validation"),
        )


def choose_fusion_weight(
    queries: Sequence[
        tuple[Sequence[float] | np.ndarray, Sequence[float] | np.ndarray, Sequence[bool] | np.ndarray]
    ],
    weights: Sequence[float] = FUSION_WEIGHTS,
    normalization: Normalization = "z",
    k: int = 10,
    rule: FusionRule = DEFAULT_FUSION_RULE,
) -> tuple[float, dict[float, float]]:
    """Pick the fusion weight on validation queries: the most balanced mix whose mean MRR@k is within one standard
    error of the best weight's (the one-standard-error rule), or the best weight.

    Args:
        queries: per query ``(reranker_scores, first_stage_scores, is_relevant)``, one entry per candidate.
        weights: weights to try.
        normalization: per-query normalisation.
        k: MRR cut-off.
        rule: ``one-se``: among the weights whose mean MRR@k is at most one standard error of the per-query
            differences below the best weight's, the one closest to 0.5 (then the larger). On a few dozen queries
            the best weight is often a lucky one; this keeps both signals unless the queries show that one is
            better. ``best``: the best weight.

    Returns:
        ``(chosen_weight, {weight: mean MRR@k})``. Among weights that tie (common with a few validation queries)
        the most balanced mix wins (closest to 0.5, then the larger).

    Raises:
        ValueError: no query, a query whose three lists differ in length, or an unknown ``rule``.

    Example:
        >>> # the reranker finds the relevant document in query 1, the first stage in query 2
        >>> q1 = ([1.0, 0.0, 0.5], [0.6, 1.0, 0.0], [True, False, False])
        >>> q2 = ([0.6, 1.0, 0.0], [1.0, 0.0, 0.5], [True, False, False])
        >>> weight, curve = choose_fusion_weight([q1, q2], weights=[0.0, 0.5, 1.0], normalization="minmax")
        >>> weight, curve
        (0.5, {0.0: 0.75, 0.5: 1.0, 1.0: 0.75})
    """
    check_fusion_rule(rule)
    if not queries:
        raise ValueError("choose_fusion_weight() needs at least one validation query.")
    prepared = _prepare(queries, normalization, "choose_fusion_weight")
    per_query = {float(w): _reciprocal_ranks(prepared, w, k) for w in weights}
    curve = {w: float(np.mean(v)) for w, v in per_query.items()}
    best = best_fusion_weight(curve)
    if rule == "best" or len(prepared) < 2:
        return best, curve
    close = {}
    for w, values in per_query.items():
        gap = per_query[best] - values
        if gap.mean() <= gap.std(ddof=1) / np.sqrt(gap.size) + 1e-12:
            close[w] = 0.0  # equal scores: best_fusion_weight's tie-break picks the most balanced
    chosen = best_fusion_weight(close)
    if chosen != best:
        logger.info(
            "Fusion weight %.1f: within one standard error of the best, %.1f (MRR@%d %.4f against %.4f, %d queries).",
            chosen, best, k, curve[chosen], curve[best], len(prepared),
        )  # fmt: skip
    return chosen, curve


def best_fusion_weight(curve: Mapping[float, float]) -> float:
    """The weight of ``curve`` with the best score; among ties, the most balanced mix (closest to 0.5, then the larger).

    Scores equal to 12 decimals tie (with a few validation queries many weights reach the same mean MRR).

    Args:
        curve: ``{weight: score}``, e.g. mean validation MRR@10 per fusion weight.

    Returns:
        The chosen weight.

    Raises:
        ValueError: ``curve`` is empty.

    Example:
        >>> best_fusion_weight({0.2: 0.8, 0.3: 0.9, 0.8: 0.9})  # 0.3 and 0.8 tie; 0.3 is closer to 0.5
        0.3
        >>> best_fusion_weight({0.4: 0.9, 0.6: 0.9, 0.9: 0.9})  # 0.4 and 0.6 are equally close; the larger wins
        0.6
    """
    if not curve:
        raise ValueError("best_fusion_weight() needs at least one weight with a score.")
    return float(max(curve, key=lambda w: (round(curve[w], 12), -abs(w - 0.5), w)))


def fused_reciprocal_ranks(
    queries: Sequence[
        tuple[Sequence[float] | np.ndarray, Sequence[float] | np.ndarray, Sequence[bool] | np.ndarray]
    ],
    weight: float,
    normalization: Normalization = "z",
    k: int = 10,
) -> np.ndarray:
    """Per-query reciprocal rank (cut at ``k``) of the fused ranking at one weight: the values whose mean
    :func:`choose_fusion_weight` reports, for a paired test between two rankers on the same queries.

    Args:
        queries: per query ``(reranker_scores, first_stage_scores, is_relevant)``, one entry per candidate.
        weight: the reranker's weight (0 = first stage alone, 1 = reranker alone).
        normalization: per-query normalisation.
        k: cut-off.

    Returns:
        One value per query, in the order given.

    Raises:
        ValueError: a query whose three lists differ in length.

    Example:
        >>> q1 = ([1.0, 0.0, 0.5], [0.6, 1.0, 0.0], [True, False, False])
        >>> q2 = ([0.6, 1.0, 0.0], [1.0, 0.0, 0.5], [True, False, False])
        >>> fused_reciprocal_ranks([q1, q2], 1.0, normalization="minmax").tolist()
        [1.0, 0.5]
    """
    return _reciprocal_ranks(_prepare(queries, normalization, "fused_reciprocal_ranks"), float(weight), k)


def _prepare(
    queries: Sequence[
        tuple[Sequence[float] | np.ndarray, Sequence[float] | np.ndarray, Sequence[bool] | np.ndarray]
    ],
    normalization: Normalization,
    caller: str,
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Normalised ``(reranker, first stage, relevant)`` arrays per query, the three lengths checked."""
    prepared = []
    for rerank, first, relevant in queries:
        rel = np.asarray(relevant, dtype=bool).reshape(-1)
        if not (len(rerank) == len(first) == rel.size):
            raise ValueError(
                f"{caller}(): a query has {len(rerank)} reranker scores, {len(first)} first-stage "
                f"scores and {rel.size} relevance flags; they must match."
            )
        prepared.append(
            (normalize_scores(rerank, normalization), normalize_scores(first, normalization), rel)
        )
    return prepared


def _reciprocal_ranks(
    prepared: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]], weight: float, k: int
) -> np.ndarray:
    return np.array(
        [
            mrr_at_k_of_order(np.argsort(-(weight * r + (1.0 - weight) * f), kind="stable"), rel, k)
            for r, f, rel in prepared
        ],
        dtype=np.float64,
    )
