"""The BM25 first stage: one bm25s set-up for mining, training validation, promotion checks and evaluation.

:class:`BM25Index` indexes texts with bm25s's Lucene variant (``k1=1.5``, ``b=0.75``), bm25s's English stop
words and the Snowball English stemmer (PyStemmer), the configuration ``stemmed`` of
``shared/data/bm25_sanity.py``. :meth:`BM25Index.search` returns bm25s's own order; :meth:`BM25Index.retrieve`
returns a run for :func:`hn_plugins.metrics.evaluate_run`: excluded documents removed, ties broken by document id.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping, Sequence
from typing import Any, Literal

from hn_plugins.data import RetrievalDataset
from hn_plugins.metrics import judged_queries

logger = logging.getLogger(__name__)

__all__ = [
    "BM25_B",
    "BM25_K1",
    "BM25Index",
    "RetrievedRun",
    "TextFormat",
    "bm25_run",
    "dataset_texts",
    "rank_pairs",
]

#: Term-frequency saturation of every BM25 set-up in the package.
BM25_K1 = 1.5
#: Length normalisation of every BM25 set-up in the package.
BM25_B = 0.75

RetrievedRun = dict[str, list[tuple[str, float]]]
TextFormat = Literal["title_text", "document_text"]


def dataset_texts(dataset: RetrievalDataset, text_format: TextFormat = "title_text") -> list[str]:
    """The text of every document of ``dataset``, in ``dataset.doc_ids`` order.

    Args:
        dataset: the corpus.
        text_format: ``"title_text"``: ``(title + " " + text).strip()`` (the BEIR/bm25s convention);
            ``"document_text"``: :meth:`RetrievalDataset.document_text` (what the rerankers see).

    Raises:
        ValueError: an unknown ``text_format``.

    Example:
        >>> ds = RetrievalDataset({"d1": ("Wing", "Wing flutter.")}, {}, {})
        >>> dataset_texts(ds), dataset_texts(ds, "document_text")
        (['Wing Wing flutter.'], ['Wing flutter.'])
    """
    if text_format == "title_text":
        return [f"{title or ''} {text or ''}".strip() for title, text in dataset.corpus.values()]
    if text_format == "document_text":
        return [dataset.document_text(d) for d in dataset.corpus]
    raise ValueError(f"text_format must be 'title_text' or 'document_text', got {text_format!r}.")


def rank_pairs(
    pairs: Sequence[tuple[str, float]], top_k: int, skip: Collection[str] = ()
) -> list[tuple[str, float]]:
    """The best ``top_k`` of ``(doc_id, score)`` pairs: highest score first, ties by document id, ``skip`` left out.

    Example:
        >>> rank_pairs([("b", 1.0), ("a", 1.0), ("c", 2.0)], top_k=2)
        [('c', 2.0), ('a', 1.0)]
    """
    ranked = sorted(((d, s) for d, s in pairs if d not in skip), key=lambda pair: (-pair[1], pair[0]))
    return ranked[:top_k]


def _stemmer(language: str | None) -> Any:
    if language is None:
        return None
    try:
        import Stemmer
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            'BM25 stemming needs PyStemmer: pip install "hn-plugins[bm25]" (or pass stemmer=None).'
        ) from exc
    try:
        return Stemmer.Stemmer(language)
    except KeyError as exc:
        raise ValueError(
            f"Unknown stemmer language {language!r}; use one of Stemmer.algorithms(), or None."
        ) from exc


class BM25Index:
    """BM25 (bm25s) over a list of texts.

    Args:
        texts: the documents' texts.
        doc_ids: their ids (default: ``"0"``, ``"1"``, ... by position).
        k1: term-frequency saturation.
        b: length normalisation.
        method: the bm25s scoring variant (``"lucene"``, ``"robertson"``, ``"atire"``, ``"bm25l"``, ``"bm25+"``).
        stemmer: a PyStemmer language (``"english"``) or ``None`` for no stemming.
        stopwords: a bm25s stop-word language (``"en"``), a list of words, or ``None``.

    Raises:
        ImportError: bm25s (or PyStemmer, when stemming) is missing: ``pip install "hn-plugins[bm25]"``.
        ValueError: no texts, ids and texts of different lengths, repeated ids, or an unknown stemmer language.

    Example:
        >>> index = BM25Index(["A virtual cloud network.", "A virtual NIC card."], ["d1", "d2"])
        >>> [doc_id for doc_id, _ in index.search(["cloud networks"], k=1)[0]]
        ['d1']
    """

    def __init__(
        self,
        texts: Sequence[str],
        doc_ids: Sequence[str] | None = None,
        *,
        k1: float = BM25_K1,
        b: float = BM25_B,
        method: str = "lucene",
        stemmer: str | None = "english",
        stopwords: str | Sequence[str] | None = "en",
    ) -> None:
        try:
            import bm25s
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError('BM25 needs bm25s: pip install "hn-plugins[bm25]"') from exc
        if not texts:
            raise ValueError("BM25Index needs at least one document text.")
        ids = [str(i) for i in range(len(texts))] if doc_ids is None else [str(d) for d in doc_ids]
        if len(ids) != len(texts):
            raise ValueError(
                f"BM25Index: {len(texts)} texts but {len(ids)} document ids; give one id per text."
            )
        if len(set(ids)) != len(ids):
            raise ValueError("BM25Index: a document id appears twice; give each document one id.")
        self.doc_ids = ids
        self.k1, self.b, self.method, self.stopwords = k1, b, method, stopwords
        self.stemmer_language = stemmer
        self._stemmer = _stemmer(stemmer)
        self._bm25 = bm25s.BM25(method=method, k1=k1, b=b)
        tokens = bm25s.tokenize(list(texts), stopwords=stopwords, stemmer=self._stemmer, show_progress=False)
        self._bm25.index(tokens, show_progress=False)
        logger.debug("BM25 index: %d documents, %d terms", len(ids), len(tokens.vocab))

    @classmethod
    def from_dataset(
        cls,
        dataset: RetrievalDataset,
        text_format: TextFormat = "title_text",
        **settings: Any,
    ) -> BM25Index:
        """Index the corpus of ``dataset`` (texts from :func:`dataset_texts`); ``settings`` go to ``__init__``."""
        return cls(dataset_texts(dataset, text_format), dataset.doc_ids, **settings)

    def search(self, queries: Sequence[str], k: int) -> list[list[tuple[str, float]]]:
        """The ``k`` best documents of each query (at most the corpus size) as bm25s ranks them.

        Args:
            queries: query texts.
            k: documents per query.

        Returns:
            One ``[(doc_id, score), ...]`` list per query, best first.

        Raises:
            ValueError: ``k < 1``.
        """
        import bm25s

        if k < 1:
            raise ValueError(f"k must be a positive integer, got {k!r}.")
        if not queries:
            return []
        tokens = bm25s.tokenize(
            list(queries), stopwords=self.stopwords, stemmer=self._stemmer, show_progress=False
        )
        rows, scores = self._bm25.retrieve(
            tokens, k=min(k, len(self.doc_ids)), show_progress=False, n_threads=1
        )
        return [
            [(self.doc_ids[int(j)], float(s)) for j, s in zip(rows[i], scores[i], strict=True)]
            for i in range(len(queries))
        ]

    def retrieve(
        self,
        queries: Mapping[str, str],
        top_k: int = 100,
        *,
        exclude: Mapping[str, Collection[str]] | None = None,
    ) -> RetrievedRun:
        """A run: the ``top_k`` best documents of each query, highest score first, ties by document id.

        Args:
            queries: ``{query_id: text}``.
            top_k: documents per query (at most the corpus size).
            exclude: ``{query_id: doc_ids}`` removed from that query's ranking before the cut-off, e.g.
                ``dataset.excluded`` (Cranfield's source papers).

        Returns:
            ``{query_id: [(doc_id, score), ...]}``.
        """
        exclude = exclude or {}
        qids = list(queries)
        extra = max((len(exclude.get(q, ())) for q in qids), default=0)
        found = self.search([queries[q] for q in qids], top_k + extra)
        return {
            qid: rank_pairs(pairs, top_k, exclude.get(qid, ()))
            for qid, pairs in zip(qids, found, strict=True)
        }


def bm25_run(dataset: RetrievalDataset, top_k: int = 100) -> RetrievedRun:
    """BM25's ``top_k`` documents for every judged query of ``dataset``, its excluded documents removed.

    The first stage that ``hn eval`` and ``hn retrain`` rerank: :class:`BM25Index` over ``title + " " + text``,
    ranked by score, ties by document id.

    Args:
        dataset: a split with relevance judgments.
        top_k: documents per query (at most the corpus size).

    Raises:
        EvaluationError: the split has no judged query.

    Example:
        >>> ds = RetrievalDataset({"d1": ("", "cloud network"), "d2": ("", "pasta")}, {"q": "network"},
        ...                       {"q": {"d1": 1}})
        >>> bm25_run(ds, top_k=1)["q"][0][0]
        'd1'
    """
    qids = [q for q in judged_queries(dataset.qrels) if q in dataset.queries]
    queries = {q: dataset.queries[q] for q in qids}
    k = min(top_k, len(dataset.corpus))
    return BM25Index.from_dataset(dataset).retrieve(queries, top_k=k, exclude=dataset.excluded)
