"""Retrieval datasets keyed by id: BEIR folders and LlamaIndex QA JSON.

A :class:`RetrievalDataset` holds a corpus ``{doc_id: (title, text)}``, queries ``{query_id: text}``, graded
relevance judgments ``{query_id: {doc_id: grade}}`` and, optionally, documents that must never be used as a
negative for a query (``excluded``; e.g. Cranfield's source papers).
"""

from __future__ import annotations

import csv
import json
import logging
import random
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

logger = logging.getLogger(__name__)

__all__ = [
    "DatasetError",
    "RetrievalDataset",
    "join_title_text",
    "load_beir",
    "load_llamaindex_qa",
    "read_utf8_lines",
]


class DatasetError(ValueError):
    """Raised when a dataset file or object is malformed; the message names the problem and the fix."""


def join_title_text(title: str | None, text: str | None) -> str:
    """The text a model sees for a document with ``title`` and ``text``: ``"title. text"``, the text alone when it
    starts with the title (many abstracts repeat it), or whichever part is present.

    Example:
        >>> join_title_text("Boundary layers", "Experiments at Mach 3.")
        'Boundary layers. Experiments at Mach 3.'
        >>> join_title_text("What is pip?", "pip installs packages.")
        'What is pip? pip installs packages.'
        >>> join_title_text("", "Only text.")
        'Only text.'
    """
    title, text = (title or "").strip(), (text or "").strip()
    if title and text:
        if text.lower().startswith(title.lower()):
            return text
        sep = " " if title.endswith((".", "?", "!", ":")) else ". "
        return f"{title}{sep}{text}"
    return title or text


@dataclass
class RetrievalDataset:
    """Corpus, queries and relevance judgments, all keyed by id.

    Args:
        corpus: ``{doc_id: (title, text)}``.
        queries: ``{query_id: text}``. Queries without judgments are allowed and ignored by mining.
        qrels: ``{query_id: {doc_id: grade}}`` with grade > 0 for relevant documents. Several positives per query
            are normal.
        excluded: ``{query_id: {doc_id, ...}}``: documents that are never negatives for that query although they
            are not judged relevant (Cranfield's source papers, known duplicates).
        name: a label used in reports.

    Example:
        >>> ds = RetrievalDataset(
        ...     corpus={"d1": ("VCN", "A virtual cloud network."), "d2": ("VNIC", "A virtual NIC.")},
        ...     queries={"q1": "what is a VCN"},
        ...     qrels={"q1": {"d1": 1}},
        ... )
        >>> ds.positive_pairs()
        [('q1', 'd1')]
        >>> ds.document_text("d2")
        'VNIC. A virtual NIC.'
    """

    corpus: dict[str, tuple[str, str]]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]
    excluded: dict[str, set[str]] = field(default_factory=dict)
    name: str = ""

    def __post_init__(self) -> None:
        self.validate()

    # ------------------------------------------------------------------ checks
    def validate(self) -> None:
        """Check ids and texts; raise :class:`DatasetError` naming the problem and the fix."""
        if not self.corpus:
            raise DatasetError(
                f"Dataset {self.name!r} has an empty corpus: give at least one document (doc_id -> (title, text))."
            )
        empty_docs = [
            doc_id
            for doc_id, (title, text) in self.corpus.items()
            if not (title or "").strip() and not (text or "").strip()
        ]
        if empty_docs:
            raise DatasetError(
                f"Dataset {self.name!r}: {len(empty_docs)} document(s) have empty or whitespace-only text "
                f"(first ids: {empty_docs[:5]}). Remove them, or load with empty_documents='drop' "
                "(CLI: --drop-empty) to skip them and their judgments."
            )
        empty_queries = [qid for qid, text in self.queries.items() if not (text or "").strip()]
        if empty_queries:
            raise DatasetError(
                f"Dataset {self.name!r}: {len(empty_queries)} query(ies) have empty text "
                f"(first ids: {empty_queries[:5]}). Give every query a text or remove it."
            )
        unknown_queries = [qid for qid in self.qrels if qid not in self.queries]
        if unknown_queries:
            raise DatasetError(
                f"Dataset {self.name!r}: judgments name {len(unknown_queries)} query id(s) that are not in the "
                f"queries (first: {unknown_queries[:5]}). Fix the qrels or add the queries."
            )
        unknown_docs = sorted({d for rel in self.qrels.values() for d in rel if d not in self.corpus})
        if unknown_docs:
            raise DatasetError(
                f"Dataset {self.name!r}: judgments name {len(unknown_docs)} document id(s) that are not in the "
                f"corpus (first: {unknown_docs[:5]}). Fix the qrels or add the documents."
            )

    # ------------------------------------------------------------------ views
    def document_text(self, doc_id: str) -> str:
        """The text a model sees for a document: ``"title. text"`` (or whichever part is present)."""
        return join_title_text(*self.corpus[doc_id])

    @property
    def doc_ids(self) -> list[str]:
        """Corpus ids in their stored order."""
        return list(self.corpus)

    @property
    def judged_query_ids(self) -> list[str]:
        """Ids of queries with at least one relevant document, in query order."""
        return [qid for qid in self.queries if any(g > 0 for g in self.qrels.get(qid, {}).values())]

    def positives(self, query_id: str) -> set[str]:
        """Relevant document ids (grade > 0) of a query."""
        return {d for d, g in self.qrels.get(query_id, {}).items() if g > 0}

    def never_negative(self, query_id: str) -> set[str]:
        """Documents that must never be a negative for a query: its positives and its excluded documents."""
        return self.positives(query_id) | self.excluded.get(query_id, set())

    def positive_pairs(self) -> list[tuple[str, str]]:
        """All (query_id, positive_id) pairs, queries in order, positives by decreasing grade then id."""
        pairs: list[tuple[str, str]] = []
        for qid in self.judged_query_ids:
            rel = self.qrels[qid]
            for doc_id in sorted((d for d, g in rel.items() if g > 0), key=lambda d: (-rel[d], d)):
                pairs.append((qid, doc_id))
        return pairs

    def subset(self, query_ids: Iterable[str], name: str | None = None) -> RetrievalDataset:
        """The same corpus with only the given queries and their judgments."""
        keep = list(query_ids)
        missing = [q for q in keep if q not in self.queries]
        if missing:
            raise DatasetError(f"subset(): unknown query ids {missing[:5]}; take ids from dataset.queries.")
        return RetrievalDataset(
            corpus=self.corpus,
            queries={q: self.queries[q] for q in keep},
            qrels={q: dict(self.qrels[q]) for q in keep if q in self.qrels},
            excluded={q: set(self.excluded[q]) for q in keep if q in self.excluded},
            name=name if name is not None else self.name,
        )

    def split(self, fraction: float = 0.2, seed: int = 0) -> tuple[RetrievalDataset, RetrievalDataset]:
        """Split judged queries into (rest, held-out) with ``fraction`` held out; seeded and order-independent.

        Used to carve a validation set out of a train split; the corpus is shared.
        """
        if not 0.0 < fraction < 1.0:
            raise DatasetError(f"split(fraction={fraction}) needs 0 < fraction < 1.")
        qids = sorted(self.judged_query_ids)
        if len(qids) < 2:
            raise DatasetError(
                f"Dataset {self.name!r} has {len(qids)} judged query; need 2 or more to split."
            )
        random.Random(seed).shuffle(qids)
        n_held = min(len(qids) - 1, max(1, round(fraction * len(qids))))
        held = set(qids[:n_held])
        order = self.judged_query_ids
        return (
            self.subset([q for q in order if q not in held], name=f"{self.name}:rest"),
            self.subset([q for q in order if q in held], name=f"{self.name}:held-out"),
        )

    def folds(self, k: int = 5, seed: int = 0) -> list[tuple[RetrievalDataset, RetrievalDataset]]:
        """Split judged queries into ``k`` seeded folds: ``[(rest, held-out), ...]``, each query held out once.

        Used for cross-fitted model selection (every train query validates exactly one model); the corpus is
        shared. ``k`` is capped at the number of judged queries.

        Example:
            >>> ds = RetrievalDataset(corpus={"d": ("", "x")}, queries={f"q{i}": "x" for i in range(5)},
            ...                       qrels={f"q{i}": {"d": 1} for i in range(5)})
            >>> [(len(rest.queries), len(held.queries)) for rest, held in ds.folds(2)]
            [(2, 3), (3, 2)]
        """
        qids = sorted(self.judged_query_ids)
        if k < 2 or len(qids) < 2:
            raise DatasetError(
                f"folds(k={k}) needs k >= 2 and 2 or more judged queries (dataset {self.name!r} has {len(qids)})."
            )
        k = min(k, len(qids))
        random.Random(seed).shuffle(qids)
        order = self.judged_query_ids
        out = []
        for i in range(k):
            held = set(qids[i::k])
            out.append(
                (
                    self.subset([q for q in order if q not in held], name=f"{self.name}:rest{i}"),
                    self.subset([q for q in order if q in held], name=f"{self.name}:fold{i}"),
                )
            )
        return out

    def with_corpus(self, corpus: Mapping[str, tuple[str, str]]) -> RetrievalDataset:
        """The same queries and judgments over another corpus (e.g. after documents changed)."""
        return RetrievalDataset(
            corpus=dict(corpus),
            queries=self.queries,
            qrels=self.qrels,
            excluded=self.excluded,
            name=self.name,
        )

    def __repr__(self) -> str:
        return (
            f"RetrievalDataset(name={self.name!r}, documents={len(self.corpus)}, queries={len(self.queries)}, "
            f"judged={len(self.judged_query_ids)}, pairs={sum(len(self.positives(q)) for q in self.qrels)})"
        )

    # ------------------------------------------------------------------ conversion
    def to_llamaindex_qa(self) -> dict[str, dict]:
        """The ``{"queries", "corpus", "relevant_docs"}`` dict of LlamaIndex's EmbeddingQAFinetuneDataset."""
        return {
            "queries": {q: self.queries[q] for q in self.judged_query_ids},
            "corpus": {d: self.document_text(d) for d in self.corpus},
            "relevant_docs": {q: sorted(self.positives(q)) for q in self.judged_query_ids},
        }


# ---------------------------------------------------------------------- readers
def _not_utf8(path: Path, line_no: int, line: bytes, exc: UnicodeDecodeError) -> DatasetError:
    return DatasetError(
        f"{path}:{line_no}: byte 0x{line[exc.start]:02x} at column {exc.start + 1} is not UTF-8 (a file saved as "
        "Latin-1 or cp1252?); re-save the file as UTF-8."
    )


def read_utf8_lines(path: str | Path) -> Iterator[tuple[int, str]]:
    """The lines of a UTF-8 text file with their 1-based numbers; a byte that is not UTF-8 stops with ``file:line``.

    Raises:
        DatasetError: a line is not valid UTF-8 (the message names the file, the line, the byte and its column).

    Example:
        >>> import tempfile, pathlib
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "f.txt"
        >>> _ = path.write_bytes("café".encode() + bytes([10]) + "naïve".encode("latin-1") + bytes([10]))
        >>> lines = read_utf8_lines(path)
        >>> next(lines)
        (1, 'café\\n')
        >>> next(lines)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        hn_plugins.data.DatasetError: .../f.txt:2: byte 0xef at column 3 is not UTF-8 ...
    """
    path = Path(path)
    with path.open("rb") as handle:
        for line_no, raw in enumerate(handle, start=1):
            try:
                yield line_no, raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise _not_utf8(path, line_no, raw, exc) from None


def _read_utf8_text(path: Path) -> str:
    """The whole file as UTF-8; a bad byte is reported as ``file:line`` like :func:`read_utf8_lines`."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line_start = data.rfind(b"\n", 0, exc.start) + 1
        line_no = data.count(b"\n", 0, exc.start) + 1
        exc.start -= line_start
        raise _not_utf8(path, line_no, data[line_start:], exc) from None


def _read_jsonl(path: Path) -> Iterator[tuple[int, dict]]:
    if not path.is_file():
        raise DatasetError(
            f"Missing file {path}: a BEIR folder holds corpus.jsonl, queries.jsonl and qrels/<split>.tsv."
        )
    for line_no, line in read_utf8_lines(path):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DatasetError(
                f"{path}:{line_no}: malformed JSON ({exc.msg}); fix or remove that line."
            ) from exc
        if not isinstance(record, dict) or "_id" not in record:
            raise DatasetError(
                f"{path}:{line_no}: expected an object with an '_id' field, got {line[:80]!r}."
            )
        yield line_no, record


def _check_duplicate(seen: dict[str, int], key: str, path: Path, line_no: int) -> None:
    if key in seen:
        raise DatasetError(
            f"{path}:{line_no}: duplicate id {key!r} (first at line {seen[key]}); ids must be unique."
        )
    seen[key] = line_no


def _read_tsv_pairs(path: Path) -> Iterator[tuple[int, list[str]]]:
    reader = csv.reader((line for _, line in read_utf8_lines(path)), delimiter="\t")
    for line_no, row in enumerate(reader, start=1):
        if not row or (line_no == 1 and row[0].strip().lower() in {"query-id", "query_id", "qid"}):
            continue
        yield line_no, row


def load_beir(
    path: str | Path,
    split: str = "test",
    *,
    empty_documents: Literal["raise", "drop"] = "raise",
    exclusions: str | None = "source_docs.tsv",
) -> RetrievalDataset:
    """Load a BEIR folder: ``corpus.jsonl``, ``queries.jsonl`` and ``qrels/<split>.tsv``.

    Args:
        path: the dataset folder.
        split: which qrels file to read (``train``, ``test``, ...). Only queries judged in that split are kept.
        empty_documents: ``"raise"`` (default) stops on documents without title and text; ``"drop"`` removes
            them and any judgment that names them, with a warning.
        exclusions: a TSV in the folder (``query-id``, ``corpus-id``) of documents that must never be negatives
            for a query; read when present (Cranfield ships ``source_docs.tsv``). ``None`` to ignore.

    Returns:
        The dataset, named after the folder and split.

    Raises:
        DatasetError: missing files, malformed lines (reported as ``file:line``), duplicate ids, judgments naming
            unknown ids, empty texts.

    Example:
        >>> ds = load_beir("../shared/data/cranfield", split="train", empty_documents="drop")  # doctest: +SKIP
    """
    root = Path(path)
    if not root.is_dir():
        raise DatasetError(f"BEIR folder {root} does not exist; pass the folder holding corpus.jsonl.")
    name = f"{root.name}:{split}"

    corpus: dict[str, tuple[str, str]] = {}
    seen: dict[str, int] = {}
    corpus_path = root / "corpus.jsonl"
    for line_no, rec in _read_jsonl(corpus_path):
        doc_id = str(rec["_id"])
        _check_duplicate(seen, doc_id, corpus_path, line_no)
        corpus[doc_id] = (str(rec.get("title") or ""), str(rec.get("text") or ""))

    queries: dict[str, str] = {}
    seen = {}
    queries_path = root / "queries.jsonl"
    for line_no, rec in _read_jsonl(queries_path):
        qid = str(rec["_id"])
        _check_duplicate(seen, qid, queries_path, line_no)
        queries[qid] = str(rec.get("text") or "")

    qrels_path = root / "qrels" / f"{split}.tsv"
    if not qrels_path.is_file():
        available = (
            sorted(p.stem for p in (root / "qrels").glob("*.tsv")) if (root / "qrels").is_dir() else []
        )
        raise DatasetError(
            f"Missing judgments {qrels_path}; splits available in {root}: {available or 'none'}."
        )
    qrels: dict[str, dict[str, int]] = {}
    for line_no, row in _read_tsv_pairs(qrels_path):
        if len(row) < 3:
            raise DatasetError(
                f"{qrels_path}:{line_no}: expected 'query-id<TAB>corpus-id<TAB>score', got {row!r}."
            )
        try:
            grade = int(float(row[2]))
        except ValueError as exc:
            raise DatasetError(f"{qrels_path}:{line_no}: score {row[2]!r} is not a number.") from exc
        if grade > 0:
            qrels.setdefault(row[0], {})[row[1]] = grade
    if not qrels:
        raise DatasetError(f"{qrels_path} holds no judgment with score > 0; a split needs judged queries.")

    excluded: dict[str, set[str]] = {}
    if exclusions and (root / exclusions).is_file():
        for _, row in _read_tsv_pairs(root / exclusions):
            if len(row) >= 2 and row[0] in qrels:
                excluded.setdefault(row[0], set()).add(row[1])

    if empty_documents == "drop":
        empty = {d for d, (t, x) in corpus.items() if not t.strip() and not x.strip()}
        if empty:
            logger.warning("%s: dropping %d empty document(s): %s", name, len(empty), sorted(empty)[:10])
            corpus = {d: v for d, v in corpus.items() if d not in empty}
            dropped_pairs = [(q, d) for q, rel in qrels.items() for d in rel if d in empty]
            if dropped_pairs:
                logger.warning(
                    "%s: dropping %d judgment(s) of empty documents: %s",
                    name,
                    len(dropped_pairs),
                    dropped_pairs[:10],
                )
            qrels = {q: {d: g for d, g in rel.items() if d not in empty} for q, rel in qrels.items()}
            qrels = {q: rel for q, rel in qrels.items() if rel}
    elif empty_documents != "raise":
        raise DatasetError(f"empty_documents must be 'raise' or 'drop', got {empty_documents!r}.")

    # keep only the queries judged in this split, in queries.jsonl order
    queries = {q: t for q, t in queries.items() if q in qrels}
    return RetrievalDataset(corpus=corpus, queries=queries, qrels=qrels, excluded=excluded, name=name)


def load_llamaindex_qa(path: str | Path | Mapping[str, object], name: str | None = None) -> RetrievalDataset:
    """Load LlamaIndex's QA-pair JSON: ``{"queries": {id: text}, "corpus": {id: text}, "relevant_docs": {...}}``.

    This is the file ``EmbeddingQAFinetuneDataset.save_json`` writes and LlamaIndex users already have.

    Args:
        path: a JSON file path, or the already-parsed dict.
        name: a label for reports (default: the file name).

    Example:
        >>> ds = load_llamaindex_qa({"queries": {"q": "what is a VCN"}, "corpus": {"n1": "A virtual cloud network."},
        ...                          "relevant_docs": {"q": ["n1"]}})
        >>> ds.positive_pairs()
        [('q', 'n1')]
    """
    data: dict[str, Any]
    if isinstance(path, Mapping):
        data = dict(path)
        label = name or "llamaindex-qa"
    else:
        file = Path(path)
        if not file.is_file():
            raise DatasetError(
                f"Missing QA file {file}; pass the JSON written by EmbeddingQAFinetuneDataset.save_json."
            )
        try:
            data = json.loads(_read_utf8_text(file))
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{file}:{exc.lineno}: malformed JSON ({exc.msg}).") from exc
        label = name or file.stem
    missing = [k for k in ("queries", "corpus", "relevant_docs") if k not in data]
    if missing:
        raise DatasetError(
            f"QA JSON {label!r} lacks {missing}; expected keys 'queries', 'corpus' and 'relevant_docs'."
        )
    corpus = {str(k): ("", str(v)) for k, v in dict(data["corpus"]).items()}
    queries = {str(k): str(v) for k, v in dict(data["queries"]).items()}
    qrels: dict[str, dict[str, int]] = {}
    for qid, docs in dict(data["relevant_docs"]).items():
        if isinstance(docs, str):
            docs = [docs]
        qrels[str(qid)] = {str(d): 1 for d in docs}
    return RetrievalDataset(corpus=corpus, queries=queries, qrels=qrels, name=label)
