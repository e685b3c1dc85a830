from __future__ import annotations

import json
from pathlib import Path

import pytest

from hn_plugins.data import DatasetError, RetrievalDataset, load_beir, load_llamaindex_qa


def _write_beir(
    root: Path,
    corpus: list[dict],
    queries: list[dict],
    qrels: list[tuple[str, str, int]],
    split: str = "train",
) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in corpus))
    (root / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in queries))
    (root / "qrels").mkdir(exist_ok=True)
    (root / "qrels" / f"{split}.tsv").write_text(
        "query-id\tcorpus-id\tscore\n" + "".join(f"{q}\t{d}\t{s}\n" for q, d, s in qrels)
    )
    return root


def test_load_beir_cranfield_counts_and_exclusions(shared_data):
    ds = load_beir(shared_data / "cranfield", split="train", empty_documents="drop")
    stats = json.loads((shared_data / "stats.json").read_text())["cranfield"]
    assert len(ds.judged_query_ids) == stats["train_queries"]
    assert "471" not in ds.corpus and "995" not in ds.corpus
    assert len(ds.corpus) == 1400 - 2
    # source_docs.tsv: every train query has its source paper excluded, and it is not a positive
    assert set(ds.excluded) == set(ds.judged_query_ids)
    assert ds.excluded["q2"] == {"486"} and "486" not in ds.positives("q2")
    assert "486" in ds.never_negative("q2")
    pairs = ds.positive_pairs()
    assert len(pairs) == sum(len(ds.positives(q)) for q in ds.judged_query_ids)
    assert pairs[0][0] == ds.judged_query_ids[0]


def test_cranfield_empty_documents_raise_by_default(shared_data):
    with pytest.raises(DatasetError, match=r"empty.*empty_documents='drop'"):
        load_beir(shared_data / "cranfield", split="train")


def test_python_docs_faq_multiple_positives(shared_data):
    ds = load_beir(shared_data / "python-docs-faq", split="test")
    assert len(ds.judged_query_ids) == 101
    assert max(len(ds.positives(q)) for q in ds.judged_query_ids) >= 1


def test_malformed_json_line_is_reported_with_file_and_line(tmp_path):
    root = _write_beir(
        tmp_path / "ds", [{"_id": "d1", "text": "a"}], [{"_id": "q1", "text": "x"}], [("q1", "d1", 1)]
    )
    with (root / "corpus.jsonl").open("a") as f:
        f.write('{"_id": "d2", "text": \n')
    with pytest.raises(DatasetError, match=r"corpus.jsonl:2: malformed JSON"):
        load_beir(root, split="train")


def test_missing_files_and_splits(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        load_beir(tmp_path / "nope")
    root = _write_beir(
        tmp_path / "ds", [{"_id": "d1", "text": "a"}], [{"_id": "q1", "text": "x"}], [("q1", "d1", 1)]
    )
    with pytest.raises(DatasetError, match=r"splits available.*\['train'\]"):
        load_beir(root, split="test")


@pytest.mark.parametrize(
    ("corpus", "queries", "qrels", "message"),
    [
        (
            [{"_id": "d1", "text": "a"}, {"_id": "d1", "text": "b"}],
            [{"_id": "q1", "text": "x"}],
            [("q1", "d1", 1)],
            "duplicate id 'd1'",
        ),
        ([{"_id": "d1", "text": "a"}], [{"_id": "q1", "text": "x"}], [("q1", "d9", 1)], "not in the corpus"),
        (
            [{"_id": "d1", "text": "   "}],
            [{"_id": "q1", "text": "x"}],
            [("q1", "d1", 1)],
            "empty or whitespace",
        ),
        ([{"_id": "d1", "text": "a"}], [{"_id": "q1", "text": " "}], [("q1", "d1", 1)], "empty text"),
    ],
)
def test_bad_input_names_the_problem(tmp_path, corpus, queries, qrels, message):
    root = _write_beir(tmp_path / "ds", corpus, queries, qrels)
    with pytest.raises(DatasetError, match=message):
        load_beir(root, split="train")


def test_empty_corpus_and_unknown_query():
    with pytest.raises(DatasetError, match="empty corpus"):
        RetrievalDataset(corpus={}, queries={"q": "x"}, qrels={})
    with pytest.raises(DatasetError, match="query id"):
        RetrievalDataset(corpus={"d": ("", "t")}, queries={}, qrels={"q": {"d": 1}})


def test_llamaindex_qa_json_round_trip(tmp_path, cranfield_train):
    small = cranfield_train.subset(cranfield_train.judged_query_ids[:5])
    path = tmp_path / "qa.json"
    path.write_text(json.dumps(small.to_llamaindex_qa()))
    loaded = load_llamaindex_qa(path)
    assert set(loaded.queries) == set(small.queries)
    assert {q: loaded.positives(q) for q in loaded.queries} == {q: small.positives(q) for q in small.queries}
    assert loaded.document_text("486") == small.document_text("486")
    with pytest.raises(DatasetError, match="relevant_docs"):
        load_llamaindex_qa({"queries": {}, "corpus": {}})


def test_split_is_seeded_and_disjoint(cranfield_train):
    a1, b1 = cranfield_train.split(0.2, seed=3)
    a2, b2 = cranfield_train.split(0.2, seed=3)
    _, b3 = cranfield_train.split(0.2, seed=4)
    assert set(b1.queries) == set(b2.queries) and set(a1.queries) == set(a2.queries)
    assert not set(a1.queries) & set(b1.queries)
    assert len(b1.queries) == round(0.2 * len(cranfield_train.judged_query_ids))
    assert set(b3.queries) != set(b1.queries)
