"""Reading training data from a Haystack DocumentStore: QA pairs, evaluation data, filters and bad input."""

from __future__ import annotations

from typing import Any

import pytest
from haystack import Document
from haystack.document_stores.in_memory import InMemoryDocumentStore
from haystack_integrations.components.rankers.hn import (
    dataset_from_document_store,
    qa_pairs_from_evaluation_data,
)

from hn_plugins.data import DatasetError, RetrievalDataset

DOCS = [
    Document(id="vcn", content="A virtual cloud network.", meta={"title": "VCN", "lang": "en"}),
    Document(id="vnic", content="A virtual network interface card.", meta={"title": "VNIC", "lang": "en"}),
    Document(id="gw", content="Ein Internet-Gateway.", meta={"title": "Gateway", "lang": "de"}),
]


class RecordingStore:
    """A DocumentStore stand-in that records what the adapter asks for (the protocol is all it may use)."""

    def __init__(self, documents: list[Document]) -> None:
        self.inner = InMemoryDocumentStore()
        self.inner.write_documents(documents)
        self.calls: list[Any] = []

    def filter_documents(self, filters: dict[str, Any] | None = None) -> list[Document]:
        self.calls.append(filters)
        return self.inner.filter_documents(filters=filters)


@pytest.fixture()
def store() -> InMemoryDocumentStore:
    document_store = InMemoryDocumentStore()
    document_store.write_documents(DOCS)
    return document_store


def test_qa_pairs_by_id(store: InMemoryDocumentStore) -> None:
    ds = dataset_from_document_store(
        store, [("what is a VCN", "vcn"), ("what is a VNIC?", "vnic"), ("what is a VCN", "gw")], name="cloud"
    )
    assert isinstance(ds, RetrievalDataset) and ds.name == "cloud"
    assert ds.queries == {"q0": "what is a VCN", "q1": "what is a VNIC?"}
    assert ds.qrels == {"q0": {"vcn": 1, "gw": 1}, "q1": {"vnic": 1}}  # one query, two positives
    assert set(ds.corpus) == {"vcn", "vnic", "gw"}
    assert ds.document_text("vcn") == "A virtual cloud network."


def test_meta_fields_make_the_text_the_ranker_scores(store: InMemoryDocumentStore) -> None:
    ds = dataset_from_document_store(
        store, [("q", "vcn")], meta_fields_to_embed=["title"], embedding_separator=": "
    )
    assert ds.document_text("vcn") == "VCN: A virtual cloud network."


def test_only_filter_documents_is_used_and_filters_are_passed() -> None:
    recording = RecordingStore(DOCS)
    filters = {"field": "meta.lang", "operator": "==", "value": "en"}
    ds = dataset_from_document_store(recording, [("what is a VCN", "vcn")], filters=filters)
    assert recording.calls == [filters]
    assert set(ds.corpus) == {"vcn", "vnic"}


def test_id_outside_the_filters_is_unknown(store: InMemoryDocumentStore) -> None:
    filters = {"field": "meta.lang", "operator": "==", "value": "en"}
    with pytest.raises(
        DatasetError, match=r"QA pair 0 names document id 'gw', which is not among the 2 documents"
    ):
        dataset_from_document_store(store, [("gateway?", "gw")], filters=filters)


def test_unknown_id_is_a_clear_error(store: InMemoryDocumentStore) -> None:
    with pytest.raises(DatasetError, match=r"QA pair 1 names document id 'nope'.*Use Document.id values"):
        dataset_from_document_store(store, [("a", "vcn"), ("b", "nope")])


def test_evaluation_data_like_document_mrr_evaluator(store: InMemoryDocumentStore) -> None:
    questions = ["what is a VCN", "what is a VNIC"]
    ground_truth = [
        [Document(content="A virtual cloud network.")],  # other id (no meta): matched by content
        [DOCS[1], DOCS[2]],
    ]
    ds = dataset_from_document_store(store, questions=questions, ground_truth_documents=ground_truth)
    assert ds.qrels == {"q0": {"vcn": 1}, "q1": {"vnic": 1, "gw": 1}}


def test_ground_truth_document_matching_nothing(store: InMemoryDocumentStore) -> None:
    with pytest.raises(
        DatasetError, match=r"ground-truth Document .* matches no document of InMemoryDocumentStore"
    ):
        dataset_from_document_store(
            store, questions=["q"], ground_truth_documents=[[Document(content="unknown")]]
        )


def test_evaluation_data_shape_errors(store: InMemoryDocumentStore) -> None:
    with pytest.raises(DatasetError, match="2 questions but 1 ground-truth lists"):
        qa_pairs_from_evaluation_data(["a", "b"], [[DOCS[0]]])
    with pytest.raises(DatasetError, match=r"ground_truth_documents\[0\] must be a list of Documents"):
        qa_pairs_from_evaluation_data(["a"], [DOCS[0]])  # type: ignore[list-item]
    with pytest.raises(DatasetError, match="either qa_pairs or questions"):
        dataset_from_document_store(
            store, [("a", "vcn")], questions=["a"], ground_truth_documents=[[DOCS[0]]]
        )
    with pytest.raises(DatasetError, match="No training questions"):
        dataset_from_document_store(store)


def test_documents_without_content_raise_or_drop() -> None:
    document_store = InMemoryDocumentStore()
    document_store.write_documents(
        [*DOCS, Document(id="img", content=None, meta={"kind": "image"}), Document(id="blank", content="   ")]
    )
    with pytest.raises(
        DatasetError, match=r"2 of 5 documents have no text content .*'img'.*empty_documents='drop'"
    ):
        dataset_from_document_store(document_store, [("q", "vcn")])
    ds = dataset_from_document_store(document_store, [("q", "vcn")], empty_documents="drop")
    assert set(ds.corpus) == {"vcn", "vnic", "gw"}
    with pytest.raises(DatasetError, match="names document 'img', which has no text content"):
        dataset_from_document_store(document_store, [("q", "img")], empty_documents="drop")


def test_bad_pairs_and_stores(store: InMemoryDocumentStore) -> None:
    with pytest.raises(DatasetError, match="QA pair 0 is 'just a string'"):
        dataset_from_document_store(store, ["just a string"])  # type: ignore[list-item]
    with pytest.raises(DatasetError, match="QA pair 0: the question must be a non-empty string"):
        dataset_from_document_store(store, [("  ", "vcn")])
    with pytest.raises(DatasetError, match="must be a document id"):
        dataset_from_document_store(store, [("q", 3)])  # type: ignore[list-item]
    with pytest.raises(DatasetError, match="No QA pairs given"):
        dataset_from_document_store(store, [])
    with pytest.raises(TypeError, match="not a Haystack DocumentStore"):
        dataset_from_document_store(object(), [("q", "vcn")])
    with pytest.raises(DatasetError, match="returned no documents"):
        dataset_from_document_store(InMemoryDocumentStore(), [("q", "vcn")])
