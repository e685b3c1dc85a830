"""SciFact as the benchmark reads it: the test-unseen split and BM25 against the numbers in its SOURCE.md.

The expected values are the independent BM25 reference that ../shared/data/scifact/SOURCE.md publishes (bm25s
lucene, k1=1.5, b=0.75, English stop words, Snowball stemmer, title + text, top-100), not numbers of ours.
"""

from __future__ import annotations

import pytest

from hn_evaluation.first_stage import BM25Retriever
from hn_evaluation.metrics import evaluate_run
from hn_plugins.data import DatasetError, load_beir

SOURCE_MD_BM25 = {  # split: (queries, MRR@10, Recall@100), SOURCE.md's BM25 table
    "test": (300, 0.649, 0.913),
    "test-unseen": (104, 0.643, 0.897),
}


@pytest.fixture(scope="module")
def scifact_dir(eval_data_dir):
    path = eval_data_dir / "scifact"
    if not (path / "qrels" / "test-unseen.tsv").is_file():
        pytest.skip(f"{path} with qrels/test-unseen.tsv not found")
    return path


def test_test_unseen_is_the_test_claims_without_a_train_positive(scifact_dir):
    train = load_beir(scifact_dir, split="train")
    test = load_beir(scifact_dir, split="test")
    unseen = load_beir(scifact_dir, split="test-unseen")
    assert unseen.name == "scifact:test-unseen"
    assert set(unseen.queries) < set(test.queries)
    train_positives = {d for docs in train.qrels.values() for d, g in docs.items() if g > 0}
    unseen_positives = {d for docs in unseen.qrels.values() for d, g in docs.items() if g > 0}
    assert unseen_positives and not unseen_positives & train_positives
    shared = [q for q in test.queries if q not in unseen.queries]
    assert all(
        {d for d, g in test.qrels[q].items() if g > 0} & train_positives for q in shared if q in test.qrels
    )


@pytest.mark.parametrize("split", sorted(SOURCE_MD_BM25))
def test_bm25_reproduces_source_md(scifact_dir, split):
    dataset = load_beir(scifact_dir, split=split)
    run = BM25Retriever(dataset).retrieve(dataset.queries, top_k=100)
    means, _ = evaluate_run(run, dataset.qrels, ["mrr@10", "recall@100"])
    n, mrr, recall = SOURCE_MD_BM25[split]
    assert len(run) == n
    assert means["mrr@10"] == pytest.approx(mrr, abs=0.001)
    assert means["recall@100"] == pytest.approx(recall, abs=0.001)


def test_a_split_without_qrels_names_the_file(scifact_dir):
    with pytest.raises(DatasetError, match="test-unknown"):
        load_beir(scifact_dir, split="test-unknown")
