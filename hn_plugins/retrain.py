"""Periodic retraining (step 7 of the method): re-mine, retrain, promote only what evaluates better, lose nothing.

When documents or QA pairs change, :class:`RetrainingJob` (``hn retrain``):

1. fingerprints the data and the settings, and stops at once if the last retrained version had the same ones;
2. mines negatives with a persistent embedding cache (by default inside the registry), so only new or changed
   documents are embedded;
3. fine-tunes a candidate from the base model (or from the current version);
4. evaluates the candidate and the current version (the base model before the first promotion) on the same judged
   split, each as it is served (fused with BM25 when its folder holds a fusion weight), with a paired permutation
   test on per-query MRR@10 (:func:`hn_plugins.promotion.compare_served`);
5. registers the candidate in the :class:`~hn_plugins.registry.ModelRegistry` whatever the outcome, and promotes it
   only if its MRR@10 beats the current one by more than ``min_improvement`` (and, if asked, significantly:
   ``max_p_value``); earlier versions stay, and
   ``ModelRegistry.rollback()`` returns to the previous one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from hn_plugins.cache import content_hash
from hn_plugins.data import DatasetError, RetrievalDataset
from hn_plugins.encoders.engines import resolve_engine
from hn_plugins.fusion import DEFAULT_FUSION_RULE, FusionRule, check_fusion_rule
from hn_plugins.models import DEFAULT_ENSEMBLE
from hn_plugins.registry import ModelRegistry

logger = logging.getLogger(__name__)

__all__ = ["RetrainingError", "RetrainingJob", "RetrainingResult", "data_fingerprint"]

#: Lock file a running retraining holds in the registry folder.
LOCK_FILE = ".hn-retrain.lock"


class RetrainingError(ValueError):
    """Raised when a retraining cannot start (another one holds the registry)."""


@contextmanager
def registry_lock(root: Path) -> Iterator[None]:
    """Hold the registry's retraining lock, or fail at once if another process holds it (POSIX ``flock``)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: no lock
        logger.warning("No file locking on this platform: do not run two retrainings on %s at once.", root)
        yield
        return
    with open(root / LOCK_FILE, "w", encoding="utf-8") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RetrainingError(
                f"Another retraining is running on {root} (it holds {root / LOCK_FILE}); wait for it to finish. "
                "Nothing was changed."
            ) from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def data_fingerprint(*datasets: RetrievalDataset) -> str:
    """A hash of the documents' texts, the queries and the judgments of the datasets (order-independent).

    Example:
        >>> a = RetrievalDataset({"d1": ("", "text")}, {"q": "query"}, {"q": {"d1": 1}})
        >>> b = RetrievalDataset({"d1": ("", "new text")}, {"q": "query"}, {"q": {"d1": 1}})
        >>> data_fingerprint(a) == data_fingerprint(a), data_fingerprint(a) == data_fingerprint(b)
        (True, False)
    """
    digest = hashlib.sha256()
    for dataset in datasets:
        parts = {
            "corpus": sorted((d, content_hash(dataset.document_text(d))) for d in dataset.corpus),
            "queries": sorted(dataset.queries.items()),
            "qrels": sorted((q, sorted(r.items())) for q, r in dataset.qrels.items()),
            "excluded": sorted((q, sorted(e)) for q, e in dataset.excluded.items()),
        }
        digest.update(json.dumps(parts, sort_keys=True).encode("utf-8"))
    return digest.hexdigest()


@dataclass
class RetrainingResult:
    """What one :meth:`RetrainingJob.run` did.

    Attributes:
        status: ``promoted`` (the candidate is now current), ``kept`` (registered, the current version stays) or
            ``unchanged`` (same data and settings as the last retrained version: nothing was computed).
        version: the candidate's registry version (``None`` when unchanged).
        current: the current version after the run.
        baseline: what the candidate was compared with: a registry version, or the base model before the first
            promotion.
        candidate_mrr10: the candidate's MRR@10 on the evaluation split, as served.
        baseline_mrr10: the baseline's MRR@10 on the same queries and candidates.
        p_value: paired permutation test of the two per-query MRR@10 lists.
        fingerprint: hash of the data and the settings.
        documents: per mining model, documents ``embedded`` in this run and read from the cache (``cached``).
        seconds: time of each stage.
    """

    status: Literal["promoted", "kept", "unchanged"]
    version: str | None
    current: str | None
    baseline: str | None = None
    candidate_mrr10: float | None = None
    baseline_mrr10: float | None = None
    p_value: float | None = None
    fingerprint: str = ""
    documents: dict[str, dict[str, int]] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def format_summary(self) -> str:
        """A few lines for the command line."""
        if self.status == "unchanged":
            return (
                f"Nothing changed since the last retrained version; current: {self.current}. "
                "Use --force to retrain anyway."
            )
        embedded = ", ".join(
            f"{name}: {c['embedded']} embedded, {c['cached']} cached" for name, c in self.documents.items()
        )
        if self.status == "promoted":
            verdict = f"promoted {self.version} (now current)"
        elif self.current is None:
            verdict = f"registered {self.version}, not promoted; no version is current yet"
        else:
            verdict = f"registered {self.version}, kept {self.current} current"
        return "\n".join(
            [
                f"documents: {embedded or 'no embedding model'}",
                f"{'model':<40}MRR@10",
                f"{'candidate ' + str(self.version):<40}{self.candidate_mrr10:.4f}",
                f"{'baseline ' + str(self.baseline):<40}{self.baseline_mrr10:.4f}",
                f"p (paired permutation, MRR@10) = {self.p_value:.3g}",
                verdict,
            ]
        )


class RetrainingJob:
    """Re-mine, retrain and promote into a model registry only when the new reranker evaluates better.

    Args:
        registry: the registry folder (created if missing) or a :class:`~hn_plugins.registry.ModelRegistry`.
        base_model: the starting reranker: a sentence-transformers model (``kind="bi"``) or a cross-encoder.
        kind: ``"bi"`` or ``"cross"``.
        mining_models: the embedding ensemble that mines negatives.
        variance: PCA variance kept (``None``: no PCA).
        selector: negative selector (``default``: the configuration we ship; ``paper``: the paper's exact one).
        num_negatives: hard negatives per (query, positive) pair.
        cache_dir: embedding cache; ``None`` keeps it in ``<registry>/embedding-cache`` so that every run embeds
            only new and changed documents.
        loss: training loss (``in-batch``: batch-mates plus the mined negatives, as ``default`` trains).
        selection: ``cross-fit`` (epochs and fusion weight chosen on folds of the train queries) or ``holdout``.
        folds: folds of ``cross-fit``.
        selection_alpha: ``cross-fit`` trains only when the chosen epochs beat the starting model on the pooled
            held-out queries with a paired permutation p below this (``None``: whenever the pooled gain is positive).
        fusion_rule: how the fusion weight with BM25 is chosen (:func:`~hn_plugins.fusion.choose_fusion_weight`:
            ``one-se``, the most balanced weight within one standard error of the best; ``best``).
        epochs: maximum epochs.
        lr: learning rate.
        batch_size: training batch size.
        seed: seed of mining and training (same data and seed give the same candidate).
        max_length: maximum tokens per text (``None``: the model's).
        top_k: BM25 candidates per query, for validation and for the promotion check.
        min_improvement: promote only if the candidate's MRR@10 exceeds the baseline's by more than this (0.0:
            any gain; a negative value accepts a candidate up to that much worse).
        start_from: ``base`` (every candidate starts from ``base_model``: reproducible) or ``current`` (continue
            from the current version).
        max_p_value: promote only if the paired permutation test gives at most this p-value as well (1.0: no
            significance needed; 0.05 for a cautious promotion when the evaluation split has many queries).
        engine: how the mining ensemble runs (:mod:`hn_plugins.encoders`: ``auto``, ``torch``, ``onnx``,
            ``onnx-int8``); the embedding cache keeps one set of entries per engine.

    Example:
        >>> from hn_plugins import load_beir  # doctest: +SKIP
        >>> job = RetrainingJob("models/registry", base_model="all-MiniLM-L6-v2", kind="bi")  # doctest: +SKIP
        >>> result = job.run(load_beir("data", split="train"), load_beir("data", split="test"))  # doctest: +SKIP
        >>> result.status  # doctest: +SKIP
        'promoted'
    """

    def __init__(
        self,
        registry: str | os.PathLike[str] | ModelRegistry,
        *,
        base_model: str = "all-MiniLM-L6-v2",
        kind: Literal["bi", "cross"] = "bi",
        mining_models: Sequence[Any] = DEFAULT_ENSEMBLE,
        variance: float | None = 0.95,
        selector: str = "default",
        num_negatives: int = 1,
        cache_dir: str | os.PathLike[str] | None = None,
        loss: str = "in-batch",
        selection: Literal["holdout", "cross-fit"] = "cross-fit",
        folds: int = 5,
        selection_alpha: float | None = 0.05,
        fusion_rule: FusionRule = DEFAULT_FUSION_RULE,
        epochs: int = 4,
        lr: float = 2e-5,
        batch_size: int = 16,
        seed: int = 0,
        max_length: int | None = None,
        top_k: int = 100,
        min_improvement: float = 0.0,
        start_from: Literal["base", "current"] = "base",
        max_p_value: float = 1.0,
        engine: str = "auto",
    ) -> None:
        if kind not in ("bi", "cross"):
            raise ValueError(f"kind must be 'bi' or 'cross', got {kind!r}.")
        if start_from not in ("base", "current"):
            raise ValueError(f"start_from must be 'base' or 'current', got {start_from!r}.")
        if top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {top_k}.")
        if not 0.0 < max_p_value <= 1.0:
            raise ValueError(f"max_p_value must be in (0, 1], got {max_p_value}.")
        if variance is not None and not 0.0 < variance < 1.0:
            raise ValueError(f"variance must be in (0, 1) or None (no PCA), got {variance}.")
        if isinstance(registry, ModelRegistry):
            self.registry = registry
        else:
            root = Path(registry)
            if root.exists() and not root.is_dir():
                raise FileNotFoundError(
                    f"The registry {root} is a file; give a folder (it is created if missing)."
                )
            self.registry = ModelRegistry(root)
        self.base_model = str(base_model)
        self.kind = kind
        self.mining_models = [m if not isinstance(m, os.PathLike) else str(m) for m in mining_models]
        self.variance = variance
        self.selector = selector
        self.num_negatives = num_negatives
        self.cache_dir = Path(cache_dir) if cache_dir is not None else self.registry.root / "embedding-cache"
        self.loss = loss
        self.selection = selection
        self.folds = folds
        self.selection_alpha = selection_alpha
        self.fusion_rule = check_fusion_rule(fusion_rule)
        self.epochs = epochs
        self.lr = lr
        self.batch_size = batch_size
        self.seed = seed
        self.max_length = max_length
        self.top_k = top_k
        self.min_improvement = float(min_improvement)
        self.start_from = start_from
        self.max_p_value = float(max_p_value)
        self.engine = resolve_engine(engine)

    def settings(self) -> dict[str, Any]:
        """The settings that shape a candidate (part of the fingerprint and of each version's metadata)."""
        return {
            "base_model": self.base_model,
            "kind": self.kind,
            "mining_models": [m if isinstance(m, str) else type(m).__name__ for m in self.mining_models],
            "engine": self.engine,
            "variance": self.variance,
            "selector": self.selector,
            "num_negatives": self.num_negatives,
            "loss": self.loss,
            "selection": self.selection,
            "folds": self.folds,
            "selection_alpha": self.selection_alpha,
            "fusion_rule": self.fusion_rule,
            "epochs": self.epochs,
            "lr": self.lr,
            "batch_size": self.batch_size,
            "seed": self.seed,
            "max_length": self.max_length,
            "top_k": self.top_k,
            "start_from": self.start_from,
        }

    def fingerprint(self, train: RetrievalDataset, evaluation: RetrievalDataset) -> str:
        """Hash of the data (:func:`data_fingerprint`) and of :meth:`settings`: equal ones mean nothing to retrain."""
        settings = json.dumps(self.settings(), sort_keys=True).encode("utf-8")
        return hashlib.sha256(data_fingerprint(train, evaluation).encode() + settings).hexdigest()

    def _last_retrained(self) -> tuple[str, Mapping[str, Any]] | None:
        retrained = [(v, m) for v, m in self.registry.versions.items() if "retrain" in m]
        return retrained[-1] if retrained else None

    def _baseline_spec(self) -> str:
        current = self.registry.current
        if current is not None:
            return str(self.registry.path(current))
        return f"zero-shot:{self.base_model}" if self.kind == "bi" else self.base_model

    def run(
        self, train: RetrievalDataset, evaluation: RetrievalDataset, force: bool = False
    ) -> RetrainingResult:
        """Retrain on ``train`` and decide on ``evaluation`` (a judged split the candidate never trains on).

        Args:
            train: the documents and the judged QA pairs to mine and train on.
            evaluation: judged queries over the same documents, for the promotion check.
            force: retrain even if data and settings equal those of the last retrained version.

        Raises:
            DatasetError: ``train`` has no judged query, or ``evaluation`` has none.
            ValueError: the evaluation queries overlap the training queries.
            RetrainingError: another retraining holds this registry.
        """
        if not train.judged_query_ids:
            raise DatasetError(f"{train.name!r} has no judged query to mine and train on; add QA pairs.")
        if not evaluation.judged_query_ids:
            raise DatasetError(
                f"{evaluation.name!r} has no judged query; the promotion check needs judged queries (e.g. the "
                "test split, or QA pairs held out of training)."
            )
        overlap = sorted(set(train.judged_query_ids) & set(evaluation.judged_query_ids))
        if overlap:
            raise ValueError(
                f"{len(overlap)} evaluation queries are also training queries (first: {overlap[:3]}); hold them out "
                "of training, or the promotion check measures memorisation."
            )
        with registry_lock(self.registry.root):
            return self._run_locked(train, evaluation, force)

    def _run_locked(
        self, train: RetrievalDataset, evaluation: RetrievalDataset, force: bool
    ) -> RetrainingResult:
        fingerprint = self.fingerprint(train, evaluation)
        last = self._last_retrained()
        if not force and last is not None and last[1]["retrain"].get("fingerprint") == fingerprint:
            logger.info("Data and settings unchanged since %s; nothing to retrain.", last[0])
            return RetrainingResult("unchanged", None, self.registry.current, fingerprint=fingerprint)
        seconds: dict[str, float] = {}
        start = time.perf_counter()
        mined, documents = self._mine(train)
        seconds["mine"] = time.perf_counter() - start
        staging = self.registry.root / ".retrain-candidate"
        shutil.rmtree(staging, ignore_errors=True)
        try:
            start = time.perf_counter()
            trained = self._train(mined, train, staging)
            seconds["train"] = time.perf_counter() - start
            start = time.perf_counter()
            baseline_spec = self._baseline_spec()
            baseline = self.registry.current or baseline_spec
            candidate_mrr, baseline_mrr, p_value = self._compare(evaluation, trained, baseline_spec)
            seconds["evaluate"] = time.perf_counter() - start
            promote = candidate_mrr > baseline_mrr + self.min_improvement and p_value <= self.max_p_value
            metadata = {
                "fingerprint": fingerprint,
                "settings": self.settings(),
                "baseline": baseline,
                "baseline_mrr@10": baseline_mrr,
                "p_value": p_value,
                "documents": documents,
                "train": {"name": train.name, "queries": len(train.judged_query_ids)},
                "evaluation": {"name": evaluation.name, "queries": len(evaluation.judged_query_ids)},
                "min_improvement": self.min_improvement,
                "max_p_value": self.max_p_value,
                "promoted": promote,
                "seconds": seconds,
            }
            version = self.registry.register(
                trained, metrics={"mrr@10": candidate_mrr}, promote=promote, retrain=metadata
            )
        finally:  # the registry holds the candidate now (or training failed): no scratch folder stays behind
            shutil.rmtree(staging, ignore_errors=True)
            shutil.rmtree(staging.parent / f".{staging.name}.training", ignore_errors=True)
        logger.info(
            "Candidate %s: MRR@10 %.4f vs %s %.4f (p = %.3g): %s",
            version,
            candidate_mrr,
            baseline,
            baseline_mrr,
            p_value,
            "promoted" if promote else "not promoted",
        )
        return RetrainingResult(
            "promoted" if promote else "kept",
            version,
            self.registry.current,
            baseline=baseline,
            candidate_mrr10=candidate_mrr,
            baseline_mrr10=baseline_mrr,
            p_value=p_value,
            fingerprint=fingerprint,
            documents=documents,
            seconds=seconds,
        )

    def _mine(self, train: RetrievalDataset) -> tuple[Any, dict[str, dict[str, int]]]:
        from hn_plugins.embedders import EmbedderEnsemble
        from hn_plugins.mining.miner import HardNegativeMiner
        from hn_plugins.mining.named_selectors import get_selector
        from hn_plugins.reduction import PCAReducer

        selector = get_selector(self.selector)
        ensemble = (
            EmbedderEnsemble(self.mining_models, cache_dir=self.cache_dir, engine=self.engine)
            if selector.needs_embeddings
            else None
        )
        reducer = (
            PCAReducer(variance=self.variance) if ensemble is not None and self.variance is not None else None
        )
        miner = HardNegativeMiner(
            ensemble, reducer, selector=selector, num_negatives=self.num_negatives, seed=self.seed
        )
        mined = miner.fit(train).mine(train)
        return mined, dict(ensemble.document_counts) if ensemble is not None else {}

    def _train(self, mined: Any, train: RetrievalDataset, out: Path) -> Path:
        from hn_plugins.training.trainer import fine_tune_reranker

        start = self.base_model
        if self.start_from == "current" and self.registry.current is not None:
            start = str(self.registry.path())
        trained = fine_tune_reranker(
            mined,
            train,
            start,
            kind=self.kind,
            loss=self.loss,
            epochs=self.epochs,
            lr=self.lr,
            batch_size=self.batch_size,
            seed=self.seed,
            first_stage_top_k=self.top_k,
            output_dir=out,
            max_length=self.max_length,
            selection=self.selection,
            folds=self.folds,
            selection_alpha=self.selection_alpha,
            fusion_rule=self.fusion_rule,
        )
        return Path(trained.path)

    def _compare(
        self, evaluation: RetrievalDataset, candidate: Path, baseline: str
    ) -> tuple[float, float, float]:
        """MRR@10 of the candidate and the baseline as served, and the paired permutation p-value."""
        from hn_plugins.promotion import compare_served

        result = compare_served(
            evaluation,
            str(candidate),
            baseline,
            top_k=self.top_k,
            max_length=self.max_length,
            seed=self.seed,
        )
        return result.candidate_mrr10, result.baseline_mrr10, result.p_value
