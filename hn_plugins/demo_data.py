"""The embedded default dataset of ``hn demo``: English question -> answer pairs of the PyPI package
``chatterbot-corpus`` (tech support, computers, coding, science, ...), as a retrieval dataset.

Every distinct answer text is one document; every distinct question is one query whose positives are all the
answers given to it. Questions are split into train and test with a fixed seed. Near-duplicate answers are
common (tech support repeats itself), which is exactly where false negatives hide.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import random
from pathlib import Path
from typing import Literal

from hn_plugins.data import DatasetError, RetrievalDataset

logger = logging.getLogger(__name__)

__all__ = ["load_demo_dataset"]


def _corpus_dir() -> Path:
    spec = importlib.util.find_spec("chatterbot_corpus")
    if spec is None or not spec.submodule_search_locations:
        raise DatasetError(
            'The demo dataset needs the chatterbot-corpus package: pip install "hn-plugins[demo]"'
        )
    folder = Path(next(iter(spec.submodule_search_locations))) / "data" / "english"
    if not folder.is_dir():
        raise DatasetError(f"chatterbot-corpus is installed but has no {folder}; reinstall it.")
    return folder


def _doc_id(text: str) -> str:
    return "a" + hashlib.blake2b(text.encode(), digest_size=5).hexdigest()


def load_demo_dataset(
    split: Literal["train", "test", "all"] = "train", test_fraction: float = 0.4, seed: int = 13
) -> RetrievalDataset:
    """Load the demo dataset (needs ``pip install "hn-plugins[demo]"``).

    Args:
        split: ``train``, ``test`` or ``all`` judged queries; the corpus is always every answer.
        test_fraction: share of questions in the test split.
        seed: seed of the split.

    Example:
        >>> ds = load_demo_dataset("train")  # doctest: +SKIP
        >>> len(ds.corpus) > 500  # doctest: +SKIP
        True
    """
    import yaml

    corpus: dict[str, tuple[str, str]] = {}
    queries: dict[str, str] = {}
    qrels: dict[str, dict[str, int]] = {}
    for path in sorted(_corpus_dir().glob("*.yml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        for conversation in data.get("conversations") or []:
            texts = [
                str(t).strip() for t in conversation if isinstance(t, (str, int, float)) and str(t).strip()
            ]
            if len(texts) < 2:
                continue
            question, answers = texts[0], texts[1:]
            qid = "q" + hashlib.blake2b(question.lower().encode(), digest_size=5).hexdigest()
            queries.setdefault(qid, question)
            for answer in answers:
                if len(answer.split()) < 3:  # "Yes.", "Why?": not a document
                    continue
                doc_id = _doc_id(answer)
                corpus.setdefault(doc_id, (path.stem.replace("_", " "), answer))
                qrels.setdefault(qid, {})[doc_id] = 1
    queries = {q: t for q, t in queries.items() if q in qrels}
    ordered = sorted(queries)
    random.Random(seed).shuffle(ordered)
    n_test = round(test_fraction * len(ordered))
    chosen = {"test": set(ordered[:n_test]), "train": set(ordered[n_test:]), "all": set(ordered)}.get(split)
    if chosen is None:
        raise DatasetError(f"load_demo_dataset: split must be 'train', 'test' or 'all', got {split!r}.")
    return RetrievalDataset(
        corpus=corpus,
        queries={q: t for q, t in queries.items() if q in chosen},
        qrels={q: rel for q, rel in qrels.items() if q in chosen},
        name=f"chatterbot-demo:{split}",
    )
