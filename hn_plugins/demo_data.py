"""The embedded default dataset of ``hn demo``: English question -> answer pairs of the PyPI package
``chatterbot-corpus`` (tech support, computers, coding, science, ...), as a retrieval dataset.

Every distinct answer text is one document; every distinct question is one query whose positives are all the
answers given to it. Questions are split into train and test with a fixed seed. Near-duplicate answers are
common (tech support repeats itself), which is exactly where false negatives hide.

:func:`export_demo_dataset` writes the same splits as a BEIR folder, the format every ``hn`` command reads.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import random
from pathlib import Path
from typing import Literal

from hn_plugins.data import DatasetError, RetrievalDataset

logger = logging.getLogger(__name__)

__all__ = ["BEIR_FILES", "export_demo_dataset", "load_demo_dataset"]

#: The files :func:`export_demo_dataset` writes, relative to its folder.
BEIR_FILES = ("corpus.jsonl", "queries.jsonl", "qrels/train.tsv", "qrels/test.tsv")


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


def export_demo_dataset(
    folder: str | Path, *, force: bool = False, test_fraction: float = 0.4, seed: int = 13
) -> Path:
    """Write the demo dataset as a BEIR folder: ``corpus.jsonl``, ``queries.jsonl``, ``qrels/train.tsv`` and
    ``qrels/test.tsv`` (the train and test splits of :func:`load_demo_dataset` with the same arguments).

    ``load_beir(folder, split)`` then gives the same documents, queries and judgments, in the same order, as
    ``load_demo_dataset(split)``.

    Args:
        folder: the folder to write; created when missing.
        force: overwrite the four files when ``folder`` already holds files (other files are left alone).
        test_fraction: share of questions in the test split.
        seed: seed of the split.

    Returns:
        The folder.

    Raises:
        DatasetError: ``folder`` is a file, or a folder that is not empty and ``force`` is false; or
            chatterbot-corpus is missing.

    Example:
        >>> path = export_demo_dataset("hn-demo-data")  # doctest: +SKIP
        >>> load_beir(path, split="train")  # doctest: +SKIP
        RetrievalDataset(name='hn-demo-data:train', documents=864, queries=303, judged=303, pairs=489)
    """
    root = Path(folder)
    if root.exists() and not root.is_dir():
        raise DatasetError(f"{root} is a file; pass a folder to write the demo dataset into.")
    if root.is_dir() and any(root.iterdir()) and not force:
        raise DatasetError(
            f"{root} is not empty; choose a new folder, or pass --force (in Python: force=True) to overwrite "
            f"{', '.join(BEIR_FILES)} in it."
        )
    splits = {
        "all": load_demo_dataset("all", test_fraction=test_fraction, seed=seed),
        "train": load_demo_dataset("train", test_fraction=test_fraction, seed=seed),
        "test": load_demo_dataset("test", test_fraction=test_fraction, seed=seed),
    }
    every = splits["all"]
    (root / "qrels").mkdir(parents=True, exist_ok=True)
    with (root / "corpus.jsonl").open("w", encoding="utf-8") as handle:
        for doc_id, (title, text) in every.corpus.items():
            handle.write(json.dumps({"_id": doc_id, "title": title, "text": text}, ensure_ascii=False) + "\n")
    with (root / "queries.jsonl").open("w", encoding="utf-8") as handle:
        for qid, text in every.queries.items():
            handle.write(json.dumps({"_id": qid, "text": text}, ensure_ascii=False) + "\n")
    for name in ("train", "test"):
        with (root / "qrels" / f"{name}.tsv").open("w", encoding="utf-8", newline="") as handle:
            handle.write("query-id\tcorpus-id\tscore\n")
            for qid, relevant in splits[name].qrels.items():
                handle.writelines(f"{qid}\t{doc_id}\t{grade}\n" for doc_id, grade in relevant.items())
    logger.info(
        "demo dataset written to %s: %d documents, %d train and %d test queries",
        root,
        len(every.corpus),
        len(splits["train"].judged_query_ids),
        len(splits["test"].judged_query_ids),
    )
    return root
