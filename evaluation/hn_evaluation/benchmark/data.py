"""The benchmark's data: the train and test splits of a BEIR folder, the test sample, and the train subsets."""

from __future__ import annotations

import logging
import os
import random
from dataclasses import dataclass, field
from pathlib import Path

from hn_plugins.data import DatasetError, RetrievalDataset

from ..metrics import judged_queries
from .settings import BenchmarkSettings

logger = logging.getLogger(__name__)

__all__ = ["BenchmarkData", "TrainSplits", "check_split", "load_benchmark_data", "load_split"]


def load_split(path: str | os.PathLike[str], split: str) -> RetrievalDataset:
    """One split of a BEIR folder, documents without text dropped (as every benchmark row reads it)."""
    from hn_plugins.data import load_beir

    return load_beir(Path(path), split=split, empty_documents="drop")


def check_split(path: str | os.PathLike[str], split: str) -> None:
    """Raise a DatasetError naming the splits that exist unless ``path/qrels/<split>.tsv`` is a file.

    Example:
        >>> check_split("../shared/data/medline", "test-unseen")  # doctest: +SKIP
        Traceback (most recent call last):
        ...
        hn_plugins.data.DatasetError: No split 'test-unseen' in ../shared/data/medline: ...
    """
    qrels = Path(path) / "qrels"
    if not (qrels / f"{split}.tsv").is_file():
        available = sorted(p.stem for p in qrels.glob("*.tsv")) if qrels.is_dir() else []
        raise DatasetError(
            f"No split {split!r} in {path}: qrels/{split}.tsv is missing; the splits there are "
            f"{', '.join(available) or 'none'} (pass one of them as split / --split)."
        )


@dataclass
class BenchmarkData:
    """The splits one benchmark runs on."""

    name: str
    train: RetrievalDataset
    test: RetrievalDataset


def load_benchmark_data(
    data: str | os.PathLike[str] | tuple[RetrievalDataset, RetrievalDataset], settings: BenchmarkSettings
) -> BenchmarkData:
    """The train split and the (sampled) test split of ``data``: a BEIR folder or ``(train, test)`` datasets.

    The test split is ``settings.split``; with ``settings.max_test_queries`` only a seeded sample of its judged
    queries is kept (the same sample every run).

    Raises:
        DatasetError: ``data`` is not a BEIR folder, the test split does not exist, or the train split has no
            judgments.
        ValueError: ``settings.split`` is set for ``(train, test)`` datasets.
    """
    if isinstance(data, tuple):
        if settings.split != "test":
            raise ValueError(
                f"split={settings.split!r} names a qrels file of a BEIR folder; with (train, test) datasets, pass "
                "the test split you want as the second one."
            )
        train, test = data
        name = test.name.split(":")[0] or "dataset"
    else:
        path = Path(data)
        if not path.is_dir():
            raise DatasetError(f"{path} is not a BEIR folder (corpus.jsonl, queries.jsonl, qrels/).")
        check_split(path, settings.split)  # before loading anything
        train, test = load_split(path, "train"), load_split(path, settings.split)
        name = path.name
    if not train.judged_query_ids:
        raise DatasetError(f"The train split of {name} has no judgments; nothing to mine or train on.")
    test_qids = [q for q in judged_queries(test.qrels) if q in test.queries]
    n = settings.max_test_queries
    if n is not None and 0 < n < len(test_qids):
        chosen = set(random.Random(0).sample(test_qids, n))
        test = test.subset([q for q in test_qids if q in chosen], name=f"{test.name}[{n}q]")
    return BenchmarkData(name, train, test)


@dataclass
class TrainSplits:
    """The train split each seed trains on: the whole split, or ``train_size`` questions of it.

    With ``train_size``, seed ``s`` takes the first ``train_size`` ids of the sorted judged train query ids
    shuffled once by ``random.Random(s)``, so for one seed a smaller subset is part of every larger one.

    Args:
        train: the whole train split.
        train_size: questions per seed (``None``: the whole split for every seed).
        minimum: the fewest questions a subset may have (e.g. the number of cross-fitting folds).
        minimum_reason: why, for the error message (e.g. ``"each of the 5 cross-fitting folds needs one"``).

    Raises:
        ValueError: ``train_size`` is above the number of judged train questions or below ``minimum``.

    Example:
        >>> from hn_plugins.data import RetrievalDataset
        >>> train = RetrievalDataset({"d": ("", "x")}, {f"q{i}": "x" for i in range(9)},
        ...                          {f"q{i}": {"d": 1} for i in range(9)})
        >>> small, large = TrainSplits(train, 3).for_seed(0), TrainSplits(train, 6).for_seed(0)
        >>> set(small.queries) <= set(large.queries), len(small.queries)
        (True, 3)
    """

    train: RetrievalDataset
    train_size: int | None = None
    minimum: int = 1
    minimum_reason: str = "a subset needs one question"
    _by_seed: dict[int, RetrievalDataset] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.train_size is None:
            return
        n = len(self.train.judged_query_ids)
        if self.train_size > n:
            raise ValueError(
                f"train_size {self.train_size} is larger than the train split of {self.train.name!r}, which has "
                f"{n} judged questions; pass a train_size between {self.minimum} and {n}."
            )
        if self.train_size < self.minimum:
            raise ValueError(
                f"train_size {self.train_size} is too small for the rows asked for: {self.minimum_reason}; pass "
                f"train_size >= {self.minimum}."
            )

    @property
    def subsampled(self) -> bool:
        """Whether seeds train on subsets (``train_size`` is set)."""
        return self.train_size is not None

    def key(self, seed: int) -> int | None:
        """What the split depends on: the seed with ``train_size``, nothing without."""
        return seed if self.train_size is not None else None

    def for_seed(self, seed: int) -> RetrievalDataset:
        """The train split of ``seed``."""
        if self.train_size is None:
            return self.train
        if seed not in self._by_seed:
            order = sorted(self.train.judged_query_ids)
            random.Random(seed).shuffle(order)
            keep = set(order[: self.train_size])
            self._by_seed[seed] = self.train.subset(
                [q for q in self.train.judged_query_ids if q in keep],
                name=f"{self.train.name}[{self.train_size}q seed {seed}]",
            )
            logger.info("seed %d trains on %d of %d train questions", seed, self.train_size, len(order))
        return self._by_seed[seed]
