"""Every setting of a strategy benchmark run in one object, checked when it is made."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from hn_plugins.fusion import DEFAULT_FUSION_RULE, FusionRule, check_fusion_rule
from hn_plugins.models import DEFAULT_ENSEMBLE

from ..generators import Generator

__all__ = ["BenchmarkSettings", "parse_models", "settings_with"]


def parse_models(models: str | Sequence[str]) -> tuple[str, ...]:
    """The ensemble's model names from a comma-separated string or a list (blanks dropped).

    Raises:
        ValueError: no model name is left.

    Example:
        >>> parse_models("all-MiniLM-L6-v2, static-model")
        ('all-MiniLM-L6-v2', 'static-model')
    """
    if isinstance(models, str):
        models = models.split(",")
    out = tuple(m.strip() for m in models if m and m.strip())
    if not out:
        raise ValueError("models: give at least one embedding model, e.g. 'all-MiniLM-L6-v2,static-model'.")
    return out


def _at_least(name: str, value: Any, minimum: int, optional: bool = False) -> None:
    """Raise a ValueError naming ``name`` unless ``value`` is an integer >= ``minimum`` (or None if ``optional``)."""
    if optional and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        allowed = f"an integer >= {minimum}" + (" or None" if optional else "")
        raise ValueError(f"{name} must be {allowed}, got {value!r}.")


def _fractions(name: str, values: Sequence[float]) -> tuple[float, ...]:
    """``values`` as floats, each in (0, 1]."""
    out = tuple(float(v) for v in values)
    for v in out:
        if not 0.0 < v <= 1.0:
            raise ValueError(f"{name} values must be in (0, 1], got {v}.")
    return out


@dataclass(frozen=True)
class BenchmarkSettings:
    """How every row of :func:`~hn_evaluation.benchmark.run_benchmark` is mined, trained and evaluated.

    Every row shares these settings, so the rows differ only by their negatives. Invalid values raise a
    ``ValueError`` naming the setting, the value and what is allowed, before any work starts.

    Args:
        kind: ``bi`` (bi-encoder reranker) or ``cross`` (cross-encoder).
        base_model: starting model of every fine-tune and of the ``zero-shot`` row.
        models: embedding ensemble of the ``paper`` and ``default`` strategies (comma-separated or a list); the
            single-model baselines use its first member. Stored as a tuple of names.
        variance: PCA variance of ``paper`` and ``default``, in (0, 1] (1.0: no PCA).
        num_negatives: mined negatives per (query, positive) pair, for every selector.
        candidates: FAISS depth of the dense selectors.
        epochs: training epochs (early stopping on validation MRR@10 of held-out *train* queries).
        lr: learning rate.
        batch_size: training batch size.
        margin: triplet margin (``None``: the trainer's, 0.2 for bi, 1.0 for cross).
        max_length: maximum tokens per text (bi) or pair (cross), for training and evaluation; ``None``: the
            model's own.
        first_stage: ``bm25`` or ``dense`` (the base model).
        top_k: first-stage candidates reranked per test query.
        validation_top_k: BM25 candidates reranked per validation query during training.
        max_test_queries: evaluate on a seeded sample of this many judged test queries (``None``: all).
        ablation_variance: extra rows ``paper@pca<v>`` mining with PCA variance ``v`` (1.0: no PCA).
        ablation_single_model: extra row ``paper@single-model`` (the first ensemble member alone, PCA as set).
        ablation_train_size: extra rows ``default@train<f>`` training on a seeded share ``f`` of train queries.
        ablation_verifier: extra row ``default+verify`` (``default`` whose paper and fallback negatives first pass
            a false-negative verifier whose teacher is the zero-shot base model fused with BM25).
        ablation_adapt: extra row ``default+adapt`` (``kind="bi"`` only): ``default`` fine-tuned from the base
            model adapted to the train corpus without labels, when that adaptation helps the train queries.
        keep_models: keep every fine-tuned model under ``out_dir/models`` (default: deleted after evaluation).
        n_resamples: permutations of the paired significance tests.
        cache_dir: embedding cache of the mining ensemble (``None``: ``out_dir/cache``).
        fusion: also choose, for every fine-tuned model, the weight that fuses its scores with BM25's and report
            the fused rows (``default`` is reported fused); ``False``: rerankers alone.
        fusion_rule: how every fusion weight is chosen (``zero-shot+fusion``'s, each trained row's, cross-fitting's):
            ``one-se`` (the most balanced weight within one standard error of the best) or ``best``
            (:func:`~hn_plugins.fusion.choose_fusion_weight`).
        rag: downstream RAG quality of every row: a generator (``generator(question, contexts) -> str``) or a
            name for :func:`~hn_evaluation.generators.load_generator`; ``None``: no RAG section.
        rag_contexts: documents per answer.
        rag_max_queries: answer a seeded sample of this many test queries (``None``: all).
        train_size: train on this many train questions, a seeded random subset per seed (``None``: all of them).
            Subsets are nested: for one seed, a smaller ``train_size`` takes the first questions of the same
            seeded permutation of the sorted train query ids.
        split: the test split, the name of the BEIR folder's ``qrels/<split>.tsv`` (e.g. ``test-unseen``).

    Raises:
        ValueError: a setting outside its allowed values.

    Example:
        >>> settings = BenchmarkSettings(models="all-MiniLM-L6-v2,static-model", epochs=1, train_size=50)
        >>> settings.models, settings.epochs, settings.train_size
        (('all-MiniLM-L6-v2', 'static-model'), 1, 50)
        >>> BenchmarkSettings(top_k=0)
        Traceback (most recent call last):
        ...
        ValueError: top_k must be an integer >= 1, got 0.
    """

    kind: Literal["bi", "cross"] = "bi"
    base_model: str = "all-MiniLM-L6-v2"
    models: str | Sequence[str] = DEFAULT_ENSEMBLE
    variance: float = 0.95
    num_negatives: int = 1
    candidates: int = 100
    epochs: int = 4
    lr: float = 2e-5
    batch_size: int = 16
    margin: float | None = None
    max_length: int | None = None
    first_stage: Literal["bm25", "dense"] = "bm25"
    top_k: int = 100
    validation_top_k: int = 100
    max_test_queries: int | None = None
    ablation_variance: Sequence[float] = ()
    ablation_single_model: bool = False
    ablation_train_size: Sequence[float] = ()
    ablation_verifier: bool = False
    ablation_adapt: bool = False
    keep_models: bool = False
    n_resamples: int = 10000
    cache_dir: str | os.PathLike[str] | None = None
    fusion: bool = True
    fusion_rule: FusionRule = DEFAULT_FUSION_RULE
    rag: str | Generator | None = None
    rag_contexts: int = 3
    rag_max_queries: int | None = None
    train_size: int | None = None
    split: str = "test"

    def __post_init__(self) -> None:
        if self.kind not in ("bi", "cross"):
            raise ValueError(f"kind must be 'bi' or 'cross', got {self.kind!r}.")
        if self.ablation_adapt and self.kind != "bi":
            raise ValueError(
                "ablation_adapt adapts a bi-encoder to the corpus (kind='bi'); for cross-encoders warm-start the "
                "base model with `hn bootstrap` (kind cross) and pass that folder as base_model."
            )
        check_fusion_rule(self.fusion_rule)
        if self.first_stage not in ("bm25", "dense"):
            raise ValueError(f"first_stage must be 'bm25' or 'dense', got {self.first_stage!r}.")
        object.__setattr__(self, "models", parse_models(self.models))
        object.__setattr__(self, "ablation_variance", _fractions("ablation_variance", self.ablation_variance))
        object.__setattr__(
            self, "ablation_train_size", _fractions("ablation_train_size", self.ablation_train_size)
        )
        if not 0.0 < self.variance <= 1.0:
            raise ValueError(f"variance must be in (0, 1] (1.0: no PCA), got {self.variance}.")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}.")
        if self.margin is not None and self.margin < 0:
            raise ValueError(f"margin must be >= 0 or None, got {self.margin}.")
        for name in ("num_negatives", "candidates", "epochs", "batch_size", "top_k", "validation_top_k"):
            _at_least(name, getattr(self, name), 1)
        _at_least("n_resamples", self.n_resamples, 1)
        for name in ("max_length", "max_test_queries", "train_size"):
            _at_least(name, getattr(self, name), 1, optional=True)
        if (
            isinstance(self.rag_contexts, bool)
            or not isinstance(self.rag_contexts, int)
            or self.rag_contexts < 1
        ):
            raise ValueError(f"rag_contexts must be a positive integer, got {self.rag_contexts!r}.")
        if self.rag_max_queries is not None and self.rag_max_queries < 1:
            raise ValueError(f"rag_max_queries must be >= 1 or None, got {self.rag_max_queries!r}.")
        if not isinstance(self.split, str) or not self.split.strip() or any(c in self.split for c in "/\\"):
            raise ValueError(
                f"split must name a qrels file of the BEIR folder (e.g. 'test' for qrels/test.tsv), got "
                f"{self.split!r}."
            )

    @property
    def model_list(self) -> list[str]:
        """The ensemble's model names, as a list."""
        return list(self.models)

    @property
    def has_ablations(self) -> bool:
        """Whether any ablation row is asked for."""
        return bool(
            self.ablation_variance
            or self.ablation_single_model
            or self.ablation_train_size
            or self.ablation_verifier
            or self.ablation_adapt
        )


def settings_with(settings: BenchmarkSettings | None, overrides: Mapping[str, Any]) -> BenchmarkSettings:
    """``settings`` (default: :class:`BenchmarkSettings` ()) with the fields in ``overrides`` replaced.

    Raises:
        TypeError: an override that is not a field of :class:`BenchmarkSettings`.

    Example:
        >>> settings_with(BenchmarkSettings(epochs=2), {"top_k": 20}).top_k
        20
    """
    fields = [f.name for f in dataclasses.fields(BenchmarkSettings)]
    unknown = sorted(set(overrides) - set(fields))
    if unknown:
        raise TypeError(f"Unknown benchmark settings {unknown}; BenchmarkSettings has: {', '.join(fields)}.")
    base = settings if settings is not None else BenchmarkSettings()
    return dataclasses.replace(base, **overrides) if overrides else base
