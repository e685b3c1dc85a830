"""``hn_plugins.bm25``: the documented bm25s set-up, shared by the miner, the training evaluator and the harness."""

from __future__ import annotations

import pytest

from hn_plugins.bm25 import BM25Index, bm25_run, dataset_texts, rank_pairs
from hn_plugins.data import RetrievalDataset, load_beir

bm25s = pytest.importorskip("bm25s")
Stemmer = pytest.importorskip("Stemmer")


@pytest.fixture(scope="module")
def cisi(shared_data):
    return load_beir(shared_data / "cisi", split="test")


def test_the_index_is_bm25s_lucene_with_english_stop_words_and_snowball(cisi):
    """Reference: bm25s called directly with the settings of shared/data/bm25_sanity.py (config stemmed)."""
    qids = cisi.judged_query_ids
    texts = [f"{t} {x}".strip() for t, x in (cisi.corpus[d] for d in cisi.doc_ids)]
    stemmer = Stemmer.Stemmer("english")
    reference = bm25s.BM25(method="lucene", k1=1.5, b=0.75)
    reference.index(
        bm25s.tokenize(texts, stopwords="en", stemmer=stemmer, show_progress=False), show_progress=False
    )
    tokens = bm25s.tokenize(
        [cisi.queries[q] for q in qids], stopwords="en", stemmer=stemmer, show_progress=False
    )
    rows, scores = reference.retrieve(tokens, k=100, show_progress=False)

    found = BM25Index.from_dataset(cisi).search([cisi.queries[q] for q in qids], 100)
    for i, pairs in enumerate(found):
        assert [d for d, _ in pairs] == [cisi.doc_ids[int(j)] for j in rows[i]]
        assert [s for _, s in pairs] == pytest.approx([float(s) for s in scores[i]], abs=1e-6)


def test_the_training_evaluator_and_the_harness_use_the_same_first_stage(cisi):
    from hn_evaluation.first_stage import BM25Retriever
    from hn_plugins.training.evaluator import bm25_scored_candidates

    index = BM25Index.from_dataset(cisi)
    qids = cisi.judged_query_ids
    queries = {q: cisi.queries[q] for q in qids}
    run = BM25Retriever(cisi).retrieve(queries, top_k=50, exclude=cisi.excluded)
    assert run == index.retrieve(queries, 50, exclude=cisi.excluded) == bm25_run(cisi, 50)
    # validation lists are the test first stage's lists (same order, ties by document id), not bm25s's raw order
    assert bm25_scored_candidates(cisi, qids, top_k=50) == run
    raw = dict(zip(qids, index.search([cisi.queries[q] for q in qids], 50), strict=True))
    assert any([d for d, _ in raw[q]] != [d for d, _ in run[q]] for q in qids)  # cisi has tied scores
    for qid, ranked in run.items():  # a run: best first, ties by document id
        assert ranked == sorted(ranked, key=lambda pair: (-pair[1], pair[0])), qid


def test_the_bm25_selector_takes_the_index_top_non_positives(shared_data):
    from hn_plugins.mining.selectors import BM25Selector, SelectionContext

    train = load_beir(shared_data / "medline", split="train")
    context = SelectionContext(dataset=train, doc_ids=train.doc_ids, num_negatives=3, candidates=20)
    records = BM25Selector().select(context)
    index = BM25Index([train.document_text(d) for d in train.doc_ids], train.doc_ids)
    qids = train.judged_query_ids
    found = dict(zip(qids, index.search([train.queries[q] for q in qids], 20), strict=True))
    assert records
    for record in records:
        blocked = train.never_negative(record.query_id)
        expected = [d for d, _ in found[record.query_id] if d not in blocked][:3]
        assert record.negative_ids == expected, record.query_id


def test_exclusions_are_removed_before_the_cut_off():
    corpus = {f"d{i}": ("", "wing flutter " * (i + 1)) for i in range(5)}
    dataset = RetrievalDataset(corpus, {"q": "flutter"}, {"q": {"d4": 1}}, excluded={"q": {"d0", "d1"}})
    ranked = bm25_run(dataset, top_k=3)["q"]
    assert len(ranked) == 3 and {"d0", "d1"}.isdisjoint(d for d, _ in ranked)


def test_text_formats_and_ranking_helpers():
    dataset = RetrievalDataset({"d1": ("Wing", "Wing flutter.")}, {}, {})
    assert dataset_texts(dataset) == ["Wing Wing flutter."]
    assert dataset_texts(dataset, "document_text") == ["Wing flutter."]
    assert rank_pairs([("b", 1.0), ("a", 1.0), ("c", 2.0), ("d", 3.0)], 3, skip={"d"}) == [
        ("c", 2.0),
        ("a", 1.0),
        ("b", 1.0),
    ]


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: BM25Index([]), "at least one document"),
        (lambda: BM25Index(["a", "b"], ["d1"]), "2 texts but 1 document ids"),
        (lambda: BM25Index(["a", "b"], ["d1", "d1"]), "appears twice"),
        (lambda: BM25Index(["wing"], stemmer="klingon"), "Unknown stemmer language"),
        (lambda: BM25Index(["wing"]).search(["wing"], 0), "k must be a positive integer"),
        (lambda: dataset_texts(RetrievalDataset({"d": ("", "x")}, {}, {}), "title"), "text_format"),
    ],
)
def test_bad_input_names_the_problem(build, message):
    with pytest.raises(ValueError, match=message):
        build()
