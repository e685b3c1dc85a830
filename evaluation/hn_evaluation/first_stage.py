"""First-stage retrievers for the candidates a reranker re-scores: BM25 (bm25s) and exact dense search.

Both take a :class:`hn_plugins.data.RetrievalDataset` (or a bare corpus ``{doc_id: (title, text)}`` /
``{doc_id: text}``) and return, from :meth:`retrieve`, ``{query_id: [(doc_id, score), ...]}`` ranked by score
(highest first, ties by document id), which :func:`hn_evaluation.metrics.evaluate_run` and
:func:`hn_evaluation.rerank.evaluate_reranking` accept as they are.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Collection, Mapping, Sequence
from typing import Any, Literal

import numpy as np

from hn_plugins.data import RetrievalDataset
from hn_plugins.embedders import l2_normalize

from .metrics import EvaluationError

logger = logging.getLogger(__name__)

__all__ = ["BM25Retriever", "DenseRetriever", "RetrievedRun", "corpus_texts"]

RetrievedRun = dict[str, list[tuple[str, float]]]
CorpusLike = RetrievalDataset | Mapping[str, tuple[str, str]] | Mapping[str, str]
TextFormat = Literal["title_text", "document_text"]


def corpus_texts(
    dataset_or_corpus: CorpusLike, text_format: TextFormat = "title_text"
) -> tuple[list[str], list[str]]:
    """Document ids and the texts a retriever indexes, in corpus order.

    Args:
        dataset_or_corpus: a ``RetrievalDataset``, ``{doc_id: (title, text)}`` or ``{doc_id: text}``.
        text_format: ``"title_text"``: ``(title + " " + text).strip()`` (the BEIR/bm25s convention, and what
            ``/work/shared/data/bm25_sanity.py`` indexes); ``"document_text"``:
            ``RetrievalDataset.document_text`` (``"title. text"``, the title dropped when the text repeats it;
            what the rerankers see).

    Raises:
        EvaluationError: an empty corpus or an unknown ``text_format``.
    """
    if text_format not in ("title_text", "document_text"):
        raise EvaluationError(f"text_format must be 'title_text' or 'document_text', got {text_format!r}.")
    if isinstance(dataset_or_corpus, RetrievalDataset):
        dataset = dataset_or_corpus
    elif isinstance(dataset_or_corpus, Mapping):
        if not dataset_or_corpus:
            raise EvaluationError("The corpus is empty; give at least one document {doc_id: (title, text)}.")
        first = next(iter(dataset_or_corpus.values()))
        if isinstance(first, str):
            corpus = {str(d): ("", str(t)) for d, t in dataset_or_corpus.items()}
        else:
            corpus = {str(d): (str(v[0] or ""), str(v[1] or "")) for d, v in dataset_or_corpus.items()}
        ids = list(corpus)
        if text_format == "title_text":
            return ids, [f"{corpus[d][0]} {corpus[d][1]}".strip() for d in ids]
        dataset = RetrievalDataset(corpus=corpus, queries={}, qrels={}, name="corpus")
    else:
        raise EvaluationError(
            "Expected a RetrievalDataset or a corpus mapping {doc_id: (title, text)}, got "
            f"{type(dataset_or_corpus)}."
        )
    ids = list(dataset.corpus)
    if text_format == "title_text":
        return ids, [f"{dataset.corpus[d][0] or ''} {dataset.corpus[d][1] or ''}".strip() for d in ids]
    return ids, [dataset.document_text(d) for d in ids]


def _check_queries(queries: Mapping[str, str], top_k: int) -> None:
    if not isinstance(queries, Mapping):
        raise EvaluationError(f"queries must be a mapping {{query_id: text}}, got {type(queries)}.")
    if not queries:
        raise EvaluationError("No queries to retrieve for; pass {query_id: text}, e.g. dataset.queries.")
    if not isinstance(top_k, (int, np.integer)) or top_k < 1:
        raise EvaluationError(f"top_k must be a positive integer, got {top_k!r}.")
    empty = [q for q, text in queries.items() if not isinstance(text, str) or not text.strip()]
    if empty:
        raise EvaluationError(
            f"{len(empty)} query(ies) have no text (first: {empty[:5]}); give every query a text."
        )


def _ranked(
    ids: Sequence[str], rows: np.ndarray, scores: np.ndarray, skip: Collection[str], top_k: int
) -> list:
    pairs = [
        (ids[int(j)], float(s))
        for j, s in zip(rows, scores, strict=True)
        if int(j) >= 0 and ids[int(j)] not in skip
    ]
    pairs.sort(key=lambda pair: (-pair[1], pair[0]))
    return pairs[:top_k]


class BM25Retriever:
    """BM25 over a corpus with bm25s (Lucene variant), English stopwords and the Snowball English stemmer.

    The defaults reproduce ``/work/shared/data/bm25_sanity.py`` (config ``stemmed``): ``method="lucene"``,
    ``k1=1.5``, ``b=0.75``, bm25s's English stopword list, ``title + " " + text`` indexed.

    Args:
        dataset_or_corpus: a ``RetrievalDataset`` or a corpus ``{doc_id: (title, text)}`` or
            ``{doc_id: text}``.
        k1: term-frequency saturation.
        b: length normalisation.
        method: the bm25s scoring variant (``"lucene"``, ``"robertson"``, ``"atire"``, ``"bm25l"``,
            ``"bm25+"``).
        stemmer: a PyStemmer language (``"english"``) or ``None`` for no stemming.
        stopwords: a bm25s stopword language (``"en"``), a list of words, or ``None``.
        text_format: what is indexed, see :func:`corpus_texts`.

    Example:
        >>> corpus = {"d1": ("VCN", "A virtual cloud network."), "d2": ("VNIC", "A virtual NIC card.")}
        >>> bm25 = BM25Retriever(corpus)
        >>> [doc_id for doc_id, _ in bm25.retrieve({"q1": "cloud networks"}, top_k=1)["q1"]]
        ['d1']
    """

    def __init__(
        self,
        dataset_or_corpus: CorpusLike,
        k1: float = 1.5,
        b: float = 0.75,
        *,
        method: str = "lucene",
        stemmer: str | None = "english",
        stopwords: str | Sequence[str] | None = "en",
        text_format: TextFormat = "title_text",
    ) -> None:
        import bm25s

        self.k1, self.b, self.method = k1, b, method
        self.stemmer_language, self.stopwords, self.text_format = stemmer, stopwords, text_format
        self.doc_ids_, texts = corpus_texts(dataset_or_corpus, text_format)
        self._stemmer = self._make_stemmer(stemmer)
        self._bm25 = bm25s.BM25(method=method, k1=k1, b=b)
        tokens = bm25s.tokenize(texts, stopwords=stopwords, stemmer=self._stemmer, show_progress=False)
        self._bm25.index(tokens, show_progress=False)
        logger.info("BM25 index: %d documents, %d terms", len(self.doc_ids_), len(tokens.vocab))

    @staticmethod
    def _make_stemmer(language: str | None) -> Any:
        if language is None:
            return None
        try:
            import Stemmer
        except ImportError as exc:  # pragma: no cover - PyStemmer is a dependency
            raise ImportError(
                "Stemming needs PyStemmer: pip install PyStemmer (or pass stemmer=None)."
            ) from exc
        try:
            return Stemmer.Stemmer(language)
        except KeyError as exc:
            raise EvaluationError(
                f"Unknown stemmer language {language!r}; use one of Stemmer.algorithms(), or None."
            ) from exc

    def retrieve(
        self,
        queries: Mapping[str, str],
        top_k: int = 100,
        *,
        exclude: Mapping[str, Collection[str]] | None = None,
    ) -> RetrievedRun:
        """The ``top_k`` best documents of each query.

        Args:
            queries: ``{query_id: text}``, e.g. ``dataset.queries``.
            top_k: documents per query (at most the corpus size).
            exclude: ``{query_id: doc_ids}`` removed from that query's ranking before the cut-off, e.g.
                ``dataset.excluded`` (Cranfield's source papers).

        Returns:
            ``{query_id: [(doc_id, score), ...]}``, highest score first, ties by document id.
        """
        import bm25s

        _check_queries(queries, top_k)
        exclude = exclude or {}
        qids = list(queries)
        extra = max((len(exclude.get(q, ())) for q in qids), default=0)
        k = min(top_k + extra, len(self.doc_ids_))
        tokens = bm25s.tokenize(
            [queries[q] for q in qids], stopwords=self.stopwords, stemmer=self._stemmer, show_progress=False
        )
        rows, scores = self._bm25.retrieve(tokens, k=k, show_progress=False)
        return {
            qid: _ranked(self.doc_ids_, rows[i], scores[i], exclude.get(qid, ()), top_k)
            for i, qid in enumerate(qids)
        }


def encode_texts(model: Any, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
    """Encode texts with any object that has ``encode(list[str])`` and L2-normalise the rows.

    ``batch_size`` and ``show_progress_bar=False`` are passed when ``encode`` accepts them
    (sentence-transformers).

    Raises:
        EvaluationError: the model has no ``encode`` or returns an array of the wrong shape.
    """
    encode = getattr(model, "encode", None)
    if not callable(encode):
        raise EvaluationError(
            f"DenseRetriever needs a model with an encode(texts) method, got {type(model)}."
        )
    kwargs: dict[str, Any] = {}
    try:
        params = inspect.signature(encode).parameters
        takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
        for name, value in (
            ("batch_size", batch_size),
            ("show_progress_bar", False),
            ("convert_to_numpy", True),
        ):
            if name in params or takes_any:
                kwargs[name] = value
    except (TypeError, ValueError):  # builtins without a signature
        pass
    vectors = encode(list(texts), **kwargs)
    if hasattr(vectors, "detach"):
        vectors = vectors.detach().cpu().numpy()
    array = np.asarray(vectors, dtype=np.float32)
    if array.ndim != 2 or array.shape[0] != len(texts):
        raise EvaluationError(
            f"{type(model).__name__}.encode returned shape {array.shape} for {len(texts)} texts; expected "
            "(n_texts, dim)."
        )
    return l2_normalize(array)


class DenseRetriever:
    """Exact nearest-neighbour search by cosine similarity (inner product of normalised vectors).

    Documents are encoded once at construction; FAISS ``IndexFlatIP`` is used when installed, numpy otherwise
    (both exact).

    Args:
        model: a ``SentenceTransformer`` or anything with ``encode(list[str]) -> array``.
        dataset_or_corpus: a ``RetrievalDataset`` or a corpus mapping.
        batch_size: encoding batch size (when the model accepts one).
        text_format: document text, see :func:`corpus_texts`; ``"document_text"`` by default (what bi-encoders
            were trained on: title and body without the repeated title).
        query_prefix: prepended to every query (instruction models, e.g. ``"query: "``).
        document_prefix: prepended to every document (e.g. ``"passage: "``).

    Example:
        >>> class Letters:  # any object with encode() works; usually a SentenceTransformer
        ...     def encode(self, texts):
        ...         return [[t.count("a"), t.count("b"), 1.0] for t in texts]
        >>> dense = DenseRetriever(Letters(), {"d1": "aaaa", "d2": "bbbb"})
        >>> dense.retrieve({"q": "aa"}, top_k=1)["q"][0][0]
        'd1'
    """

    def __init__(
        self,
        model: Any,
        dataset_or_corpus: CorpusLike,
        *,
        batch_size: int = 32,
        text_format: TextFormat = "document_text",
        query_prefix: str = "",
        document_prefix: str = "",
    ) -> None:
        self.model, self.batch_size = model, batch_size
        self.query_prefix, self.document_prefix = query_prefix, document_prefix
        self.doc_ids_, texts = corpus_texts(dataset_or_corpus, text_format)
        self.embeddings_ = encode_texts(model, [document_prefix + t for t in texts], batch_size)
        self._index: Any = None
        try:
            import faiss

            self._index = faiss.IndexFlatIP(self.embeddings_.shape[1])
            self._index.add(self.embeddings_)
        except ImportError:
            logger.info("faiss is not installed; DenseRetriever searches with numpy (exact, slower).")

    def retrieve(
        self,
        queries: Mapping[str, str],
        top_k: int = 100,
        *,
        exclude: Mapping[str, Collection[str]] | None = None,
    ) -> RetrievedRun:
        """The ``top_k`` most similar documents of each query; same contract as BM25Retriever.retrieve."""
        _check_queries(queries, top_k)
        exclude = exclude or {}
        qids = list(queries)
        query_vectors = encode_texts(
            self.model, [self.query_prefix + queries[q] for q in qids], self.batch_size
        )
        if query_vectors.shape[1] != self.embeddings_.shape[1]:
            raise EvaluationError(
                f"Query vectors have {query_vectors.shape[1]} dimensions, documents "
                f"{self.embeddings_.shape[1]}; encode both with the same model."
            )
        extra = max((len(exclude.get(q, ())) for q in qids), default=0)
        k = min(top_k + extra, len(self.doc_ids_))
        if self._index is not None:
            scores, rows = self._index.search(np.ascontiguousarray(query_vectors), k)
        else:
            sims = query_vectors @ self.embeddings_.T
            rows = np.argsort(-sims, axis=1, kind="stable")[:, :k]
            scores = np.take_along_axis(sims, rows, axis=1)
        return {
            qid: _ranked(self.doc_ids_, rows[i], scores[i], exclude.get(qid, ()), top_k)
            for i, qid in enumerate(qids)
        }
