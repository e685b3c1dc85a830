"""Strategy benchmark: mine negatives on the train split with each strategy, fine-tune one reranker per strategy and
seed under identical settings, evaluate every reranker on the test split (first stage -> rerank), write a report.

Rows of the report:

- ``none``: the first stage alone (BM25 top-k by default);
- ``zero-shot``: the starting reranker, not fine-tuned (for ``kind="bi"``: the base bi-encoder scoring by cosine);
- ``random``, ``bm25``, ``dense-topk``, ``positive-aware``, ``st``: mined baselines (the dense ones in the space of
  the first ensemble member alone, as those tools run: one embedding model, no PCA);
- ``in-batch``: no mined negative, loss ``in-batch`` on the positive pairs (other pairs' positives are the
  negatives);
- ``paper``: the paper's exact method: ensemble + PCA (95% variance) + Eq. 5 and Eq. 6, triplet loss;
- ``default``: the configuration we ship, :data:`DEFAULT_STRATEGY` (defined only there);
- ablation rows (``paper@pca0.7``, ``paper@single-model``, ``default@train0.25``, ...) when asked for.

Everything else (base model, loss, epochs, learning rate, batch size, number of negatives, validation) is the same
for every row, so the rows differ only by their negatives.
"""

from __future__ import annotations

import gc
import logging
import os
import random
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from hn_plugins.data import DatasetError, RetrievalDataset

from .first_stage import BM25Retriever, DenseRetriever, encode_texts
from .metrics import EvaluationError, judged_queries, rank_documents
from .plots import plot_metric_bars, plot_pca_neighbourhood
from .report import aggregate_seed_rows, format_markdown_table, write_report_json
from .rerank import RerankReport, evaluate_reranking
from .significance import paired_permutation_test

logger = logging.getLogger(__name__)

__all__ = [
    "ALL_STRATEGIES",
    "DEFAULT_STRATEGY",
    "EmbeddedBiEncoderScorer",
    "benchmark_metrics",
    "combine_default_negatives",
    "first_stage_run",
    "format_benchmark_markdown",
    "run_benchmark",
]

#: Every strategy ``hn benchmark --strategies`` accepts, in report order.
ALL_STRATEGIES: tuple[str, ...] = (
    "none",
    "zero-shot",
    "random",
    "bm25",
    "in-batch",
    "dense-topk",
    "positive-aware",
    "st",
    "paper",
    "default",
)

#: The configuration we ship as ``default`` (the only place it is defined).
#:
#: 1. the paper's selector (ensemble + PCA 95% + Eq. 5/6) gives the primary hard negatives;
#: 2. a (query, positive) pair for which nothing satisfies Eq. 5/6 falls back to NV-Retriever's positive-aware
#:    selector in the same ensemble + PCA space (score < 95% of the positive's: a false-negative guard), instead
#:    of being dropped, as the paper does (it drops 23-60% of the train pairs of ../shared/data);
#: 3. one seeded random negative is added to every pair: on collections with many unjudged relevant documents
#:    hard negatives are often false negatives, and a random negative keeps an easy, almost surely correct signal.
#: Loss: the paper's triplet margin loss, as every mined row.
DEFAULT_STRATEGY: dict[str, Any] = {
    "primary": {"selector": "paper", "space": "ensemble+pca"},
    "fallback": {"selector": "positive-aware", "space": "ensemble+pca", "relative_margin": 0.05},
    "random_negatives": 1,
    "loss": "triplet",
}

_MINED = {"random", "bm25", "dense-topk", "positive-aware", "st", "paper"}
_SINGLE_MODEL = {"dense-topk", "positive-aware", "st"}


def benchmark_metrics(top_k: int) -> tuple[str, ...]:
    """Metric keys of ``hn eval`` and ``hn benchmark``: MRR@3, MRR@10, nDCG@10, Recall@10 and Recall@top_k.

    Example:
        >>> benchmark_metrics(100)
        ('mrr@3', 'mrr@10', 'ndcg@10', 'recall@10', 'recall@100')
    """
    recall = [f"recall@{k}" for k in dict.fromkeys((10, int(top_k)))]
    return ("mrr@3", "mrr@10", "ndcg@10", *recall)


# ---------------------------------------------------------------------------------------------- scoring
class EmbeddedBiEncoderScorer:
    """A bi-encoder reranker whose document and query vectors are computed once, in large batches, up front.

    ``score(query, documents)`` is then a lookup and a matrix product, so reranking a test split costs one
    encoding pass over the distinct candidate documents instead of one per query. Texts not seen up front are
    encoded on demand (and kept).

    Args:
        model: a ``SentenceTransformer`` (or anything with ``encode(list[str])``).
        documents: document texts to encode now (e.g. every first-stage candidate of the test queries).
        queries: query texts to encode now.
        batch_size: encoding batch size.

    Attributes:
        encode_seconds: time spent encoding (up front and on demand).

    Example:
        >>> class Letters:
        ...     def encode(self, texts):
        ...         return [[t.count("a"), t.count("b"), 1.0] for t in texts]
        >>> scorer = EmbeddedBiEncoderScorer(Letters(), documents=["aaaa", "bbbb"], queries=["aa"])
        >>> int(scorer.score("aa", ["aaaa", "bbbb"]).argmax())
        0
    """

    def __init__(
        self, model: Any, documents: Sequence[str] = (), queries: Sequence[str] = (), batch_size: int = 32
    ) -> None:
        self.model, self.batch_size = model, batch_size
        self._docs: dict[str, np.ndarray] = {}
        self._queries: dict[str, np.ndarray] = {}
        self.encode_seconds = 0.0
        self._add(self._docs, documents)
        self._add(self._queries, queries)

    def _add(self, store: dict[str, np.ndarray], texts: Sequence[str]) -> None:
        todo = [t for t in dict.fromkeys(texts) if t not in store]
        if not todo:
            return
        start = time.perf_counter()
        vectors = encode_texts(self.model, todo, self.batch_size)
        self.encode_seconds += time.perf_counter() - start
        store.update(zip(todo, vectors, strict=True))

    def score(self, query: str, documents: Sequence[str]) -> np.ndarray:
        """Cosine similarity of the query with each document."""
        if not documents:
            return np.zeros(0, dtype=np.float32)
        self._add(self._docs, documents)
        self._add(self._queries, [query])
        matrix = np.stack([self._docs[d] for d in documents])
        return (matrix @ self._queries[query]).astype(np.float32)


def first_stage_run(
    dataset: RetrievalDataset,
    first_stage: Literal["bm25", "dense"] = "bm25",
    top_k: int = 100,
    dense_model: Any = "all-MiniLM-L6-v2",
) -> dict[str, list[tuple[str, float]]]:
    """Retrieve the top ``top_k`` documents of every judged query of ``dataset`` (excluded documents removed).

    Args:
        dataset: a split with judgments.
        first_stage: ``bm25`` (bm25s, the settings of ``shared/data/bm25_sanity.py``) or ``dense`` (exact cosine).
        top_k: candidates per query.
        dense_model: model of the dense first stage (name, folder or loaded model).

    Raises:
        EvaluationError: the split has no judgments, or an unknown first stage.

    Example:
        >>> from hn_plugins.data import RetrievalDataset
        >>> ds = RetrievalDataset({"d1": ("", "cloud network"), "d2": ("", "pasta")}, {"q": "network"},
        ...                       {"q": {"d1": 1}})
        >>> first_stage_run(ds, "bm25", top_k=1)["q"][0][0]
        'd1'
    """
    try:
        qids = [q for q in judged_queries(dataset.qrels) if q in dataset.queries]
    except EvaluationError as exc:
        raise EvaluationError(
            f"Dataset {dataset.name!r} has no relevance judgments, so it cannot be evaluated: {exc}"
        ) from exc
    queries = {q: dataset.queries[q] for q in qids}
    k = min(top_k, len(dataset.corpus))
    if first_stage == "bm25":
        return BM25Retriever(dataset).retrieve(queries, top_k=k, exclude=dataset.excluded)
    if first_stage == "dense":
        model = dense_model
        if isinstance(model, (str, os.PathLike)):
            from hn_plugins.models import load_sentence_transformer

            model = load_sentence_transformer(model)
        return DenseRetriever(model, dataset).retrieve(queries, top_k=k, exclude=dataset.excluded)
    raise EvaluationError(f"first_stage must be 'bm25' or 'dense', got {first_stage!r}.")


def _candidate_texts(dataset: RetrievalDataset, run: Mapping[str, Any], top_k: int) -> list[str]:
    return list(dict.fromkeys(dataset.document_text(d) for q in run for d in rank_documents(run[q])[:top_k]))


# ---------------------------------------------------------------------------------------------- mining
def combine_default_negatives(
    primary: Any,
    fallback: Any,
    random_result: Any | None = None,
    random_negatives: int = DEFAULT_STRATEGY["random_negatives"],
    name: str = "default",
) -> Any:
    """Merge mined results into the ``default`` strategy's negatives (see :data:`DEFAULT_STRATEGY`).

    Per (query, positive) pair: the primary selector's negatives when it found any, else the fallback's; then up
    to ``random_negatives`` of the random result's negatives that are not already there.

    Args:
        primary: the paper selector's :class:`~hn_plugins.mining.result.MiningResult`.
        fallback: the fallback selector's result on the same pairs.
        random_result: a random selector's result (``None``: no random negative).
        random_negatives: random negatives appended per pair.
        name: the merged result's selector name.

    Returns:
        A ``MiningResult`` with diagnostics ``pairs_from_primary``, ``pairs_from_fallback``,
        ``pairs_without_hard_negative`` and ``random_negatives_added``.

    Example:
        >>> from hn_plugins.mining.result import MiningResult, TripletRecord
        >>> p = MiningResult([TripletRecord("q", "d1", [], 0.3, [], [], "paper")], "paper")
        >>> f = MiningResult([TripletRecord("q", "d1", ["d5"], 0.3, [0.4], [0.6], "positive-aware")], "pa")
        >>> r = MiningResult([TripletRecord("q", "d1", ["d9"], None, [None], [None], "random")], "random")
        >>> combine_default_negatives(p, f, r).records[0].negative_ids
        ['d5', 'd9']
    """
    from hn_plugins.mining.result import MiningResult, TripletRecord

    fb = {(r.query_id, r.positive_id): r for r in fallback.records}
    rnd = {(r.query_id, r.positive_id): r for r in random_result.records} if random_result else {}
    counts = {
        "pairs_from_primary": 0,
        "pairs_from_fallback": 0,
        "pairs_without_hard_negative": 0,
        "random_negatives_added": 0,
    }
    records = []
    for rec in primary.records:
        source = rec
        if rec.negative_ids:
            counts["pairs_from_primary"] += 1
        elif (rec.query_id, rec.positive_id) in fb and fb[(rec.query_id, rec.positive_id)].negative_ids:
            source = fb[(rec.query_id, rec.positive_id)]
            counts["pairs_from_fallback"] += 1
        else:
            counts["pairs_without_hard_negative"] += 1
        negatives = list(source.negative_ids)
        d_q_neg = list(source.d_q_neg) or [None] * len(negatives)
        d_pos_neg = list(source.d_pos_neg) or [None] * len(negatives)
        extra = rnd.get((rec.query_id, rec.positive_id))
        added = 0
        for neg in extra.negative_ids if extra else []:
            if added >= random_negatives:
                break
            if neg not in negatives:
                negatives.append(neg)
                d_q_neg.append(None)
                d_pos_neg.append(None)
                added += 1
        counts["random_negatives_added"] += added
        records.append(
            TripletRecord(rec.query_id, rec.positive_id, negatives, rec.d_q_pos, d_q_neg, d_pos_neg, name)
        )
    diagnostics = {**counts, "definition": DEFAULT_STRATEGY}
    return MiningResult(records, selector=name, diagnostics=diagnostics)


def _positive_pairs_result(train: RetrievalDataset) -> Any:
    from hn_plugins.mining.result import MiningResult, TripletRecord

    records = [TripletRecord(q, p, [], None, [], [], "in-batch") for q, p in train.positive_pairs()]
    return MiningResult(
        records, selector="in-batch", diagnostics={"note": "no mined negative (loss in-batch)"}
    )


def _mining_summary(result: Any) -> dict[str, Any]:
    summary = result.summary()
    keep = ("selector", "pairs", "pairs_with_negative", "selection_rate", "negatives", "queries")
    out = {k: summary[k] for k in keep if k in summary}
    out["queries_without_negative"] = len(summary.get("queries_without_negative") or [])
    for key in (
        "pairs_from_primary",
        "pairs_from_fallback",
        "pairs_without_hard_negative",
        "random_negatives_added",
        "pca_components",
        "pca_variance_kept",
    ):
        if key in summary:
            out[key] = summary[key]
    return out


@dataclass
class _Miners:
    """Lazily built ensembles and fitted miners, shared by every strategy and seed."""

    train: RetrievalDataset
    models: list[str]
    variance: float
    num_negatives: int
    candidates: int
    cache_dir: Path | None
    batch_size: int
    ensembles: dict[tuple[str, ...], Any] = field(default_factory=dict)
    fitted: dict[tuple[Any, ...], Any] = field(default_factory=dict)
    results: dict[tuple[Any, ...], Any] = field(default_factory=dict)

    def ensemble(self, models: Sequence[str]) -> Any:
        from hn_plugins.embedders import EmbedderEnsemble

        key = tuple(models)
        if key not in self.ensembles:
            loaded = self._loaded_members()
            specs = [loaded.get(m, m) for m in models]
            self.ensembles[key] = EmbedderEnsemble(
                specs, cache_dir=self.cache_dir, batch_size=self.batch_size
            )
        return self.ensembles[key]

    def _loaded_members(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for names, ensemble in self.ensembles.items():
            for name, member in zip(names, ensemble.members, strict=True):
                out.setdefault(name, member.encoder)
        return out

    def miner(
        self, selector: str, models: Sequence[str], variance: float | None, seed: int, **kw: Any
    ) -> Any:
        from hn_plugins.mining.miner import HardNegativeMiner
        from hn_plugins.reduction import PCAReducer

        needs_embeddings = selector not in {"random", "bm25"}
        ensemble = self.ensemble(models) if needs_embeddings else None
        reducer = PCAReducer(variance=variance) if variance is not None and 0.0 < variance < 1.0 else None
        miner = HardNegativeMiner(
            ensemble,
            reducer,
            selector=selector,
            num_negatives=self.num_negatives,
            candidates=self.candidates,
            seed=seed,
            **kw,
        )
        return miner

    def mine(
        self, selector: str, models: Sequence[str], variance: float | None, seed: int = 0, **kw: Any
    ) -> Any:
        seeded = selector == "random"
        if selector in {"random", "bm25"}:
            models, variance = (), None
        key = (selector, tuple(models), variance, seed if seeded else None, tuple(sorted(kw.items())))
        if key not in self.results:
            miner = self.miner(selector, models, variance, seed if seeded else 0, **kw)
            start = time.perf_counter()
            self.results[key] = miner.fit(self.train).mine(self.train)
            self.fitted[key] = miner
            logger.info("mined %s (%s) in %.1fs", selector, ",".join(models), time.perf_counter() - start)
        return self.results[key]


# ---------------------------------------------------------------------------------------------- benchmark
@dataclass
class _Row:
    """How to produce one row: which negatives, which loss, which training data."""

    name: str
    kind: Literal["none", "zero-shot", "trained"]
    mine: Any = None  # callable(seed) -> MiningResult
    loss: str = "triplet"
    train_fraction: float | None = None


def _load_split(path: Path, split: str) -> RetrievalDataset:
    from hn_plugins.data import load_beir

    return load_beir(path, split=split, empty_documents="drop")


def _parse_models(models: str | Sequence[str]) -> list[str]:
    if isinstance(models, str):
        models = models.split(",")
    out = [m.strip() for m in models if m and m.strip()]
    if not out:
        raise ValueError("models: give at least one embedding model, e.g. 'all-MiniLM-L6-v2,static-model'.")
    return out


def _load_bi_encoder(path: str | os.PathLike[str], max_length: int | None) -> Any:
    from hn_plugins.models import load_sentence_transformer

    model = load_sentence_transformer(path)
    if max_length is not None:
        model.max_seq_length = max_length
    return model


def run_benchmark(
    data: str | os.PathLike[str] | tuple[RetrievalDataset, RetrievalDataset],
    strategies: Sequence[str] = ALL_STRATEGIES,
    seeds: int | Sequence[int] = 3,
    out_dir: str | os.PathLike[str] = "benchmark",
    *,
    kind: Literal["bi", "cross"] = "bi",
    base_model: str = "all-MiniLM-L6-v2",
    models: str | Sequence[str] = ("all-MiniLM-L6-v2", "static-model"),
    variance: float = 0.95,
    num_negatives: int = 1,
    candidates: int = 100,
    epochs: int = 1,
    lr: float = 2e-5,
    batch_size: int = 16,
    margin: float | None = None,
    max_length: int | None = None,
    first_stage: Literal["bm25", "dense"] = "bm25",
    top_k: int = 100,
    validation_top_k: int = 100,
    max_test_queries: int | None = None,
    ablation_variance: Sequence[float] = (),
    ablation_single_model: bool = False,
    ablation_train_size: Sequence[float] = (),
    keep_models: bool = False,
    n_resamples: int = 10000,
    cache_dir: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """Mine with each strategy, fine-tune one reranker per strategy and seed, evaluate all on the test split.

    Args:
        data: a BEIR folder with ``train`` and ``test`` qrels, or ``(train, test)`` datasets.
        strategies: rows to produce, from :data:`ALL_STRATEGIES` (``none`` and ``zero-shot`` need no training).
        seeds: number of seeds (``0..n-1``) or the seeds themselves; each seeds mining (random), the validation
            split and training.
        out_dir: where ``report.json``, ``report.md``, the PNG plots, the mined triplets and (``keep_models``) the
            models go.
        kind: ``bi`` (bi-encoder reranker, Eq. 8) or ``cross`` (cross-encoder, Eq. 7/9).
        base_model: starting model of every fine-tune and the ``zero-shot`` row.
        models: embedding ensemble of the ``paper`` and ``default`` strategies (comma-separated or a list); the
            single-model baselines use its first member.
        variance: PCA variance of ``paper`` and ``default``.
        num_negatives: mined negatives per (query, positive) pair, for every selector.
        candidates: FAISS depth of the dense selectors.
        epochs: training epochs (early stopping on validation MRR@10 of held-out *train* queries).
        lr: learning rate.
        batch_size: training batch size.
        margin: triplet margin (default: the trainer's, 0.2 for bi, 1.0 for cross).
        max_length: maximum tokens per text (bi) or pair (cross), for training and evaluation; ``None``: the
            model's own.
        first_stage: ``bm25`` or ``dense`` (the base model).
        top_k: first-stage candidates reranked per test query.
        validation_top_k: BM25 candidates reranked per validation query during training.
        max_test_queries: evaluate on a seeded sample of this many judged test queries (``None``: all).
        ablation_variance: extra rows ``paper@pca<v>`` mining with PCA variance ``v`` (1.0: no PCA).
        ablation_single_model: extra row ``paper@single-model`` (the first ensemble member alone, PCA as set).
        ablation_train_size: extra rows ``default@train<f>`` training on a seeded share ``f`` of train queries.
        keep_models: keep every fine-tuned model under ``out_dir/models`` (default: deleted after evaluation).
        n_resamples: permutations of the paired significance tests.
        cache_dir: embedding cache of the mining ensemble (default ``out_dir/cache``).

    Returns:
        The report dict that was written to ``out_dir/report.json``: ``config``, ``metrics``,
        ``default_strategy``, ``strategies`` (per row: ``metrics`` {metric: {mean, std, values}}, ``per_seed``,
        ``mining``, ``training``, ``short_long``, ``speed``), ``rows`` (means ± std, as in the table),
        ``significance`` (``default`` and ``paper`` vs every other row: Δ and p of per-query MRR@10),
        ``per_query`` (MRR@10 per test query, mean over seeds), ``failed``, ``plots``, ``timings_s``.

    Raises:
        ValueError: unknown strategies or settings.
        DatasetError: a split without judgments or a missing folder.

    Example:
        >>> report = run_benchmark("../shared/data/medline", ["none", "zero-shot", "random", "paper"], seeds=1,
        ...                        out_dir="bench/medline", epochs=1, max_test_queries=10)  # doctest: +SKIP
        >>> report["rows"]["paper"]["mrr@10"]["mean"]  # doctest: +SKIP
        0.71
    """
    started = time.perf_counter()
    strategies = list(dict.fromkeys(s.strip() for s in strategies if s and s.strip()))
    unknown = [s for s in strategies if s not in ALL_STRATEGIES]
    if unknown:
        raise ValueError(f"Unknown strategies {unknown}; choose from {', '.join(ALL_STRATEGIES)}.")
    if not strategies and not (ablation_variance or ablation_single_model or ablation_train_size):
        raise ValueError(
            "No strategy to run; pass e.g. strategies=['none', 'zero-shot', 'paper', 'default']."
        )
    seed_list = list(range(seeds)) if isinstance(seeds, int) else [int(s) for s in seeds]
    if not seed_list:
        raise ValueError("seeds must be >= 1 (or a non-empty list of seeds).")
    if kind not in ("bi", "cross"):
        raise ValueError(f"kind must be 'bi' or 'cross', got {kind!r}.")
    for f in ablation_train_size:
        if not 0.0 < f <= 1.0:
            raise ValueError(f"ablation_train_size values must be in (0, 1], got {f}.")
    for v in ablation_variance:
        if not 0.0 < v <= 1.0:
            raise ValueError(f"ablation_variance values must be in (0, 1], got {v}.")
    model_list = _parse_models(models)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    # 1. data
    if isinstance(data, tuple):
        train, test = data
        data_name = test.name.split(":")[0] or "dataset"
    else:
        path = Path(data)
        if not path.is_dir():
            raise DatasetError(f"{path} is not a BEIR folder (corpus.jsonl, queries.jsonl, qrels/).")
        train, test = _load_split(path, "train"), _load_split(path, "test")
        data_name = path.name
    if not train.judged_query_ids:
        raise DatasetError(f"The train split of {data_name} has no judgments; nothing to mine or train on.")
    test_qids = [q for q in judged_queries(test.qrels) if q in test.queries]
    if max_test_queries is not None and 0 < max_test_queries < len(test_qids):
        chosen = set(random.Random(0).sample(test_qids, max_test_queries))
        test = test.subset([q for q in test_qids if q in chosen], name=f"{test.name}[{max_test_queries}q]")
    metrics = benchmark_metrics(top_k)
    timings: dict[str, float] = {}

    # 2. first stage once
    t0 = time.perf_counter()
    fs_run = first_stage_run(test, first_stage, top_k, dense_model=base_model)
    timings["first_stage_s"] = time.perf_counter() - t0
    candidate_texts = _candidate_texts(test, fs_run, top_k)
    query_texts = [test.queries[q] for q in fs_run]
    logger.info(
        "%s: %d train queries, %d test queries, %d distinct candidate documents (%s top-%d)",
        data_name,
        len(train.judged_query_ids),
        len(fs_run),
        len(candidate_texts),
        first_stage,
        top_k,
    )

    # 3. rows
    miners = _Miners(
        train,
        model_list,
        variance,
        num_negatives,
        candidates,
        Path(cache_dir) if cache_dir is not None else out / "cache",
        batch_size=64,
    )
    single = [model_list[0]]

    def default_mine(seed: int, models_: Sequence[str] = model_list, variance_: float = variance) -> Any:
        primary = miners.mine("paper", models_, variance_)
        fb = DEFAULT_STRATEGY["fallback"]
        fallback = miners.mine(fb["selector"], models_, variance_, relative_margin=fb["relative_margin"])
        rnd = miners.mine("random", models_, None, seed) if DEFAULT_STRATEGY["random_negatives"] else None
        return combine_default_negatives(primary, fallback, rnd, DEFAULT_STRATEGY["random_negatives"])

    rows: list[_Row] = []
    for name in strategies:
        if name == "none":
            rows.append(_Row(name, "none"))
        elif name == "zero-shot":
            rows.append(_Row(name, "zero-shot"))
        elif name == "in-batch":
            rows.append(
                _Row(name, "trained", mine=lambda seed: _positive_pairs_result(train), loss="in-batch")
            )
        elif name == "paper":
            rows.append(_Row(name, "trained", mine=lambda seed: miners.mine("paper", model_list, variance)))
        elif name == "default":
            rows.append(_Row(name, "trained", mine=default_mine, loss=DEFAULT_STRATEGY["loss"]))
        elif name == "random":
            rows.append(_Row(name, "trained", mine=lambda seed: miners.mine("random", single, None, seed)))
        elif name in _MINED:
            models_ = single if name in _SINGLE_MODEL else model_list
            rows.append(_Row(name, "trained", mine=lambda seed, n=name, m=models_: miners.mine(n, m, None)))
    for v in ablation_variance:
        label = f"paper@pca{v:g}" if v < 1.0 else "paper@nopca"
        rows.append(_Row(label, "trained", mine=lambda seed, v=v: miners.mine("paper", model_list, v)))
    if ablation_single_model:
        rows.append(
            _Row("paper@single-model", "trained", mine=lambda seed: miners.mine("paper", single, variance))
        )
    for f in ablation_train_size:
        rows.append(_Row(f"default@train{f:g}", "trained", mine=default_mine, train_fraction=f))

    # 4. evaluate each row for each seed
    per_seed_rows: dict[str, list[dict[str, float]]] = {}
    per_query: dict[str, list[dict[str, float]]] = {}
    details: dict[str, dict[str, Any]] = {}
    failed: dict[str, str] = {}
    for row in rows:
        details[row.name] = {"per_seed": [], "mining": None, "training": [], "short_long": [], "speed": []}
    zero_shot_cache: dict[str, Any] = {}

    def evaluate(name: str, reranker: Any) -> RerankReport:
        return evaluate_reranking(test, fs_run, {name: reranker}, top_k=top_k, metrics=metrics)

    def scorer_for(model_path: str | os.PathLike[str]) -> Any:
        if kind == "bi":
            model = _load_bi_encoder(model_path, max_length)
            return EmbeddedBiEncoderScorer(model, candidate_texts, query_texts, batch_size=64)
        from hn_plugins.reranker import CrossEncoderReranker, load_reranker

        path = Path(str(model_path))
        if path.is_dir() and (path / "hn_reranker.json").is_file():
            return load_reranker(path, batch_size=64)
        return CrossEncoderReranker(model_path, batch_size=64, max_length=max_length)

    for row in rows:
        for seed in seed_list:
            t_row = time.perf_counter()
            try:
                if row.kind == "none":
                    report = zero_shot_cache.get("none") or evaluate("none", None)
                    zero_shot_cache["none"] = report
                elif row.kind == "zero-shot":
                    if "zero-shot" not in zero_shot_cache:
                        scorer = scorer_for(base_model)
                        zero_shot_cache["zero-shot"] = (evaluate("zero-shot", scorer), scorer)
                    report, scorer = zero_shot_cache["zero-shot"]
                    details[row.name]["speed"].append(_speed(report, "zero-shot", scorer))
                else:
                    report = _train_and_evaluate(
                        row,
                        seed,
                        train,
                        out,
                        details[row.name],
                        evaluate,
                        scorer_for,
                        kind=kind,
                        base_model=base_model,
                        epochs=epochs,
                        lr=lr,
                        batch_size=batch_size,
                        margin=margin,
                        max_length=max_length,
                        validation_top_k=validation_top_k,
                        keep_models=keep_models,
                    )
            except (DatasetError, ValueError) as exc:
                logger.warning("%s (seed %d) failed: %s", row.name, seed, exc)
                failed[row.name] = f"seed {seed}: {exc}"
                break
            name_in_report = next(iter(report.rows))
            per_seed_rows.setdefault(row.name, []).append(report.rows[name_in_report])
            per_query.setdefault(row.name, []).append(
                {q: v["mrr@10"] for q, v in report.per_query[name_in_report].items()}
            )
            details[row.name]["per_seed"].append({"seed": seed, "metrics": report.rows[name_in_report]})
            details[row.name]["short_long"].append(
                {g: info["rows"].get(name_in_report, {}) for g, info in report.short_long["groups"].items()}
            )
            if row.kind == "none":
                details[row.name]["short_long_info"] = {
                    "threshold": report.short_long["threshold"],
                    "length_unit": report.short_long["length_unit"],
                    "n_queries": {g: i["n_queries"] for g, i in report.short_long["groups"].items()},
                }
            timings[f"{row.name}/seed{seed}_s"] = round(time.perf_counter() - t_row, 1)
            logger.info(
                "%s seed %d: %s (%.0fs)",
                row.name,
                seed,
                {k: round(v, 4) for k, v in report.rows[name_in_report].items()},
                time.perf_counter() - t_row,
            )
        gc.collect()

    done = [r.name for r in rows if r.name in per_seed_rows and r.name not in failed]
    for name in list(per_seed_rows):
        if name in failed:
            per_seed_rows.pop(name)
            per_query.pop(name, None)
    if not done:
        raise EvaluationError(f"Every strategy failed: {failed}")

    # 5. aggregate, significance, report
    aggregated = aggregate_seed_rows([{n: per_seed_rows[n][i] for n in done} for i in range(len(seed_list))])
    mean_per_query = {
        name: {q: float(np.mean([s[q] for s in per_query[name]])) for q in per_query[name][0]}
        for name in done
    }
    significance: dict[str, dict[str, dict[str, float]]] = {}
    for anchor in ("default", "paper"):
        if anchor not in mean_per_query:
            continue
        qids = list(mean_per_query[anchor])
        significance[anchor] = {}
        for other in done:
            if other == anchor:
                continue
            a = [mean_per_query[anchor][q] for q in qids]
            b = [mean_per_query[other][q] for q in qids]
            significance[anchor][other] = {
                "delta": float(np.mean(a) - np.mean(b)),
                "p_value": paired_permutation_test(a, b, n_resamples=n_resamples, seed=0),
            }
    strategies_out: dict[str, Any] = {}
    for name in done:
        info = details[name]
        short_long = {
            g: _mean_dicts([s[g] for s in info["short_long"] if s.get(g)]) for g in ("short", "long")
        }
        strategies_out[name] = {
            "metrics": aggregated[name],
            "per_seed": info["per_seed"],
            "mining": info["mining"],
            "training": info["training"],
            "short_long": short_long,
            "speed": info["speed"],
        }
    plots = _plots(out, aggregated, miners, data_name)
    config = {
        "dataset": data_name,
        "train": repr(train),
        "test": repr(test),
        "strategies": strategies,
        "seeds": seed_list,
        "kind": kind,
        "base_model": base_model,
        "models": model_list,
        "single_model_baselines": single,
        "variance": variance,
        "num_negatives": num_negatives,
        "candidates": candidates,
        "epochs": epochs,
        "lr": lr,
        "batch_size": batch_size,
        "margin": margin,
        "max_length": max_length,
        "first_stage": first_stage,
        "top_k": top_k,
        "validation_top_k": validation_top_k,
        "max_test_queries": max_test_queries,
        "test_queries": len(fs_run),
        "ablation_variance": list(ablation_variance),
        "ablation_single_model": ablation_single_model,
        "ablation_train_size": list(ablation_train_size),
    }
    timings["total_s"] = round(time.perf_counter() - started, 1)
    report_dict: dict[str, Any] = {
        "dataset": data_name,
        "config": config,
        "metrics": list(metrics),
        "default_strategy": DEFAULT_STRATEGY,
        "rows": {
            n: {m: {"mean": v["mean"], "std": v["std"]} for m, v in aggregated[n].items()} for n in done
        },
        "strategies": strategies_out,
        "significance": significance,
        "short_long": {
            "info": details.get("none", {}).get("short_long_info"),
            "rows": {n: strategies_out[n]["short_long"] for n in done},
        },
        "per_query": {"metric": "mrr@10", "values": mean_per_query},
        "failed": failed,
        "plots": [p.name for p in plots],
        "timings_s": timings,
    }
    write_report_json(report_dict, out / "report.json")
    (out / "report.md").write_text(format_benchmark_markdown(report_dict), encoding="utf-8")
    logger.info("benchmark of %s written to %s (%.0fs)", data_name, out, timings["total_s"])
    return report_dict


def _mean_dicts(values: Sequence[Mapping[str, float]]) -> dict[str, float]:
    if not values:
        return {}
    return {k: float(np.mean([v[k] for v in values])) for k in values[0]}


def _speed(report: RerankReport, name: str, scorer: Any) -> dict[str, Any]:
    speed = dict(report.speed.get(name) or {})
    encode = float(getattr(scorer, "encode_seconds", 0.0) or 0.0)
    documents = float(speed.get("documents") or 0.0)
    # the up-front encoding is part of the reranking cost: count it
    seconds = float(speed.get("seconds") or 0.0) + (
        encode if isinstance(scorer, EmbeddedBiEncoderScorer) else 0.0
    )
    speed.update(
        {
            "seconds_including_encoding": seconds,
            "docs_per_second": documents / seconds if seconds > 0 else None,
        }
    )
    return speed


def _train_and_evaluate(
    row: _Row,
    seed: int,
    train: RetrievalDataset,
    out: Path,
    info: dict[str, Any],
    evaluate: Any,
    scorer_for: Any,
    **settings: Any,
) -> RerankReport:
    from hn_plugins.training.trainer import fine_tune_reranker

    result = row.mine(seed)
    summary = _mining_summary(result)
    if info["mining"] is None or row.name in {"random", "default"} or row.name.startswith("default@"):
        info.setdefault("mining_per_seed", []).append({"seed": seed, **summary})
        info["mining"] = summary
    train_data = train
    if row.train_fraction is not None and row.train_fraction < 1.0:
        qids = sorted(train.judged_query_ids)
        n = max(2, round(row.train_fraction * len(qids)))
        keep = set(random.Random(seed).sample(qids, n))
        train_data = train.subset(
            [q for q in train.judged_query_ids if q in keep], name=f"{train.name}[{n}q]"
        )
        from hn_plugins.mining.result import MiningResult

        records = [r for r in result.records if r.query_id in train_data.queries]
        result = MiningResult(records, selector=result.selector, diagnostics=result.diagnostics)
    safe = row.name.replace("@", "_").replace("/", "_")
    result.to_jsonl(out / "triplets" / f"{safe}-seed{seed}.jsonl")
    model_dir = out / "models" / f"{safe}-seed{seed}"
    trained = fine_tune_reranker(
        result,
        train_data,
        settings["base_model"],
        kind=settings["kind"],
        loss=row.loss,
        margin=settings["margin"],
        epochs=settings["epochs"],
        lr=settings["lr"],
        batch_size=settings["batch_size"],
        seed=seed,
        first_stage_top_k=settings["validation_top_k"],
        output_dir=model_dir,
        max_length=settings["max_length"],
        device="cpu" if not _has_cuda() else None,
    )
    m = trained.metrics
    info["training"].append(
        {
            "seed": seed,
            "selected": m.get("selected"),
            "selected_step": m.get("selected_step"),
            "steps": m.get("steps"),
            "train_rows": m.get("train_rows"),
            "train_seconds": m.get("train_seconds"),
            "validation_mrr@10_start": m.get("validation_mrr@10_start"),
            "validation_mrr@10_selected": m.get("validation_mrr@10_selected"),
            "validation_curve": trained.history,
        }
    )
    scorer = scorer_for(trained.path)
    report = evaluate(row.name, scorer)
    info["speed"].append(_speed(report, row.name, scorer))
    del scorer
    if not settings["keep_models"]:
        shutil.rmtree(model_dir, ignore_errors=True)
    return report


def _has_cuda() -> bool:
    try:
        import torch

        return bool(torch.cuda.is_available())
    except ImportError:  # pragma: no cover
        return False


def _plots(out: Path, aggregated: Mapping[str, Any], miners: _Miners, title: str) -> list[Path]:
    paths = []
    for metric in ("mrr@10", "mrr@3"):
        name = metric.replace("@", "_at_")
        paths.append(plot_metric_bars(aggregated, metric, out / f"{name}.png", title=f"{title}: {metric}"))
    picture = _pca_picture(out / "pca_neighbourhood.png", miners, title)
    if picture is not None:
        paths.append(picture)
    return paths


def _pca_picture(path: Path, miners: _Miners, title: str) -> Path | None:
    """The paper's Figure 2: one train query, its positive and its paper negatives, in the mining space."""
    key = next((k for k in miners.fitted if k[0] == "paper" and k[1] == tuple(miners.models)), None)
    key = key or next((k for k in miners.fitted if k[0] == "paper"), None)
    if key is None:
        return None
    miner, result = miners.fitted[key], miners.results[key]
    with_neg = [r for r in result.records if r.negative_ids]
    if not with_neg:
        return None
    rec = max(with_neg, key=lambda r: (len(r.negative_ids), -(r.d_q_pos or 0.0)))
    row_of = {d: i for i, d in enumerate(miner.doc_ids_)}
    vectors = miner.doc_vectors_
    query = miner.embed_queries([miners.train.queries[rec.query_id]])[0]
    positives = [row_of[p] for p in sorted(miners.train.positives(rec.query_id)) if p in row_of]
    negatives = [row_of[n] for n in rec.negative_ids if n in row_of]
    rng = np.random.default_rng(0)
    taken = set(positives) | set(negatives)
    pool = [i for i in range(len(vectors)) if i not in taken]
    others = sorted(rng.choice(pool, size=min(300, len(pool)), replace=False).tolist()) if pool else []
    return plot_pca_neighbourhood(
        query,
        vectors[positives],
        vectors[negatives],
        vectors[others] if others else None,
        path,
        title=f"{title}: query {rec.query_id}, paper negatives (ensemble + PCA space)",
    )


def format_benchmark_markdown(report: Mapping[str, Any], digits: int = 3) -> str:
    """The benchmark report as Markdown: the table, mining diagnostics, significance, short/long, speed.

    Example:
        >>> text = format_benchmark_markdown({"dataset": "toy", "config": {}, "metrics": ["mrr@10"],
        ...                                   "rows": {"none": {"mrr@10": {"mean": 0.5, "std": 0.0}}}})
        >>> "| none | 0.500 ± 0.000 |" in text
        True
    """
    cfg = report.get("config", {})
    metrics = list(report.get("metrics") or [])
    parts = [f"# Strategy benchmark: {report.get('dataset', '')}", ""]
    if cfg:
        parts += [
            f"{cfg.get('kind')}-encoder reranker from `{cfg.get('base_model')}`, {cfg.get('epochs')} epoch(s), lr "
            f"{cfg.get('lr')}, batch {cfg.get('batch_size')}, {cfg.get('num_negatives')} mined negative(s) per pair, "
            f"seeds {cfg.get('seeds')}; test: {cfg.get('first_stage')} top-{cfg.get('top_k')} reranked, "
            f"{cfg.get('test_queries')} queries; ensemble {cfg.get('models')} + PCA {cfg.get('variance')}.",
            "",
        ]
    parts += [
        "Mean ± std over seeds.",
        "",
        format_markdown_table(report["rows"], metrics, digits, "strategy"),
        "",
    ]
    strategies = report.get("strategies") or {}
    mining = {
        n: s["mining"]
        for n, s in strategies.items()
        if s.get("mining") and s["mining"].get("selector") != "in-batch"
    }
    if mining:
        parts += [
            "## Mining (train split)",
            "",
            "| strategy | pairs | with negative | selection rate | negatives | queries without negative |",
            "|---|---|---|---|---|---|",
        ]
        for n, m in mining.items():
            parts.append(
                f"| {n} | {m.get('pairs')} | {m.get('pairs_with_negative')} | {m.get('selection_rate', 0):.3f} | "
                f"{m.get('negatives')} | {m.get('queries_without_negative')} |"
            )
        if "in-batch" in strategies:
            parts.append("")
            parts.append(
                "`in-batch` mines nothing: other pairs' positives are its negatives at training time."
            )
        parts.append("")
    training = {n: s["training"] for n, s in strategies.items() if s.get("training")}
    if training:
        parts += [
            "## Training (validation = held-out train queries)",
            "",
            "| strategy | seed | rows | steps | seconds | val MRR@10 start | val MRR@10 kept | kept |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for n, runs in training.items():
            for t in runs:
                start, kept = t.get("validation_mrr@10_start"), t.get("validation_mrr@10_selected")
                parts.append(
                    f"| {n} | {t['seed']} | {t.get('train_rows')} | {t.get('steps')} | {t.get('train_seconds')} | "
                    f"{'–' if start is None else f'{start:.3f}'} | {'–' if kept is None else f'{kept:.3f}'} | "
                    f"{t.get('selected')} |"
                )
        parts.append("")
    for anchor, rows in (report.get("significance") or {}).items():
        parts += [
            f"## `{anchor}` vs each row (paired permutation test, per-query MRR@10, mean over seeds)",
            "",
            "| row | Δ MRR@10 | p |",
            "|---|---|---|",
        ]
        parts += [f"| {n} | {s['delta']:+.{digits}f} | {s['p_value']:.4f} |" for n, s in rows.items()]
        parts.append("")
    short_long = report.get("short_long") or {}
    if short_long.get("rows"):
        info = short_long.get("info") or {}
        parts += [
            f"## Short vs long positive documents (threshold {info.get('threshold', '?')} "
            f"{info.get('length_unit', '')}; queries {info.get('n_queries', '?')})",
            "",
        ]
        for group in ("short", "long"):
            rows = {n: v.get(group, {}) for n, v in short_long["rows"].items() if v.get(group)}
            if rows:
                parts += [f"**{group}**", "", format_markdown_table(rows, metrics, digits, "strategy"), ""]
    speeds = {n: s["speed"] for n, s in strategies.items() if s.get("speed")}
    if speeds:
        parts += ["## Reranking speed (encoding included)", "", "| strategy | documents/s |", "|---|---|"]
        for n, runs in speeds.items():
            values = [r["docs_per_second"] for r in runs if r.get("docs_per_second")]
            parts.append(f"| {n} | {np.mean(values):.1f} |" if values else f"| {n} | – |")
        parts.append("")
    if report.get("failed"):
        parts += ["## Failed", ""] + [f"- {n}: {why}" for n, why in report["failed"].items()] + [""]
    if report.get("plots"):
        parts += ["## Plots", ""] + [f"![{p}]({p})" for p in report["plots"]] + [""]
    return "\n".join(parts)
