"""First-stage retrievers for the candidates a reranker re-scores: BM25 and exact dense search.

Both take a :class:`hn_plugins.data.RetrievalDataset` (or a bare corpus ``{doc_id: (title, text)}`` /
``{doc_id: text}``) and return, from :meth:`retrieve`, ``{query_id: [(doc_id, score), ...]}`` ranked by score
(highest first, ties by document id), which :func:`hn_evaluation.metrics.evaluate_run` and
:func:`hn_evaluation.rerank.evaluate_reranking` accept as they are. BM25 is :class:`hn_plugins.bm25.BM25Index`,
the set-up the miner and the trainer use.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import numpy as np

from hn_plugins.bm25 import BM25Index, RetrievedRun, TextFormat, dataset_texts, rank_pairs
from hn_plugins.data import RetrievalDataset
from hn_plugins.scoring import encode_normalized

from .metrics import EvaluationError

logger = logging.getLogger(__name__)

__all__ = ["BM25Retriever", "DenseRetriever", "RetrievedRun", "corpus_texts", "encode_texts"]

CorpusLike = RetrievalDataset | Mapping[str, tuple[str, str]] | Mapping[str, str]
#: Old name of :func:`hn_plugins.scoring.encode_normalized`.
encode_texts = encode_normalized


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
    return dataset.doc_ids, dataset_texts(dataset, text_format)


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


class BM25Retriever:
    """BM25 over a corpus: :class:`hn_plugins.bm25.BM25Index` (bm25s, Lucene variant, English stop words, the
    Snowball English stemmer) with the evaluation harness's input checks.

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
        self.k1, self.b, self.method = k1, b, method
        self.stemmer_language, self.stopwords, self.text_format = stemmer, stopwords, text_format
        self.doc_ids_, texts = corpus_texts(dataset_or_corpus, text_format)
        try:
            self.index_ = BM25Index(
                texts, self.doc_ids_, k1=k1, b=b, method=method, stemmer=stemmer, stopwords=stopwords
            )
        except ValueError as exc:
            raise EvaluationError(str(exc)) from exc

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
        _check_queries(queries, top_k)
        return self.index_.retrieve(queries, top_k, exclude=exclude)


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
            qid: rank_pairs(
                [
                    (self.doc_ids_[int(j)], float(s))
                    for j, s in zip(rows[i], scores[i], strict=True)
                    if j >= 0
                ],
                top_k,
                exclude.get(qid, ()),
            )
            for i, qid in enumerate(qids)
        }
