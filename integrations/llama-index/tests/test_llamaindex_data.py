"""Reading training data from LlamaIndex objects: nodes, indexes, docstores, persisted folders, Qdrant and
QA pairs."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from llama_index.core import StorageContext, VectorStoreIndex
from llama_index.core.schema import ImageNode, MetadataMode, NodeWithScore, TextNode
from llama_index.postprocessor.hn_rerank import (
    HardNegativeFinetuneEngine,
    dataset_from_index,
    dataset_from_nodes,
    nodes_from_index,
)

from hn_plugins.data import DatasetError, RetrievalDataset


def _qa_json(faq_subset: dict[str, Any], nodes: list[TextNode]) -> dict[str, Any]:
    """The EmbeddingQAFinetuneDataset JSON for the subset's QA pairs (what save_json writes)."""
    queries = {f"qa-{i}": question for i, (question, _) in enumerate(faq_subset["qa_pairs"])}
    relevant = {f"qa-{i}": [node_id] for i, (_, node_id) in enumerate(faq_subset["qa_pairs"])}
    corpus = {n.node_id: n.get_content() for n in nodes}
    return {"queries": queries, "corpus": corpus, "relevant_docs": relevant}


def _check_matches_subset(dataset: RetrievalDataset, faq_subset: dict[str, Any]) -> None:
    nodes = faq_subset["nodes"]
    assert set(dataset.corpus) == {n.node_id for n in nodes}
    by_id = {n.node_id: n for n in nodes}
    some = nodes[0].node_id
    # the text a reranker is trained on is the text it will score: content with the embedded metadata
    assert dataset.document_text(some) == by_id[some].get_content(metadata_mode=MetadataMode.EMBED)
    assert dataset.document_text(some).startswith("section: ")
    assert len(dataset.positive_pairs()) == len(faq_subset["qa_pairs"])
    questions = {q for q, _ in faq_subset["qa_pairs"]}
    assert set(dataset.queries.values()) == questions
    for qid, rel in dataset.qrels.items():
        assert all(d in dataset.corpus for d in rel), qid


def test_dataset_from_nodes_with_question_node_id_pairs(faq_subset: dict[str, Any]) -> None:
    dataset = dataset_from_nodes(faq_subset["nodes"], faq_subset["qa_pairs"])
    _check_matches_subset(dataset, faq_subset)


def test_nodes_with_score_and_repeated_questions(faq_subset: dict[str, Any]) -> None:
    nodes = [NodeWithScore(node=n, score=0.5) for n in faq_subset["nodes"]]
    (question, first), (_, second) = faq_subset["qa_pairs"][:2]
    dataset = dataset_from_nodes(
        nodes, [(question, first), (question, second), ("another question", [second])]
    )
    assert len(dataset.queries) == 2  # the same question twice is one query with two positives
    assert dataset.positives("q0") == {first, second} and dataset.positives("q1") == {second}


def test_dataset_from_an_in_memory_index_and_the_qa_json_file(
    tmp_path: Path, memory_index: VectorStoreIndex, faq_subset: dict[str, Any]
) -> None:
    path = tmp_path / "qa_pairs.json"
    path.write_text(json.dumps(_qa_json(faq_subset, faq_subset["nodes"])), encoding="utf-8")
    dataset = dataset_from_index(memory_index, path)
    _check_matches_subset(dataset, faq_subset)
    assert dataset.name == memory_index.index_id


def test_qa_as_dict_or_embedding_qa_dataset_object(
    memory_index: VectorStoreIndex, faq_subset: dict[str, Any]
) -> None:
    qa = _qa_json(faq_subset, faq_subset["nodes"])
    from_dict = dataset_from_index(memory_index, qa)
    # an EmbeddingQAFinetuneDataset (llama-index-finetuning) has these three attributes
    from_object = dataset_from_index(memory_index, SimpleNamespace(**qa))
    assert from_dict.qrels == from_object.qrels and from_dict.corpus == from_object.corpus


def test_dataset_from_a_docstore(memory_index: VectorStoreIndex, faq_subset: dict[str, Any]) -> None:
    _check_matches_subset(dataset_from_index(memory_index.docstore, faq_subset["qa_pairs"]), faq_subset)


def test_dataset_from_a_persisted_storage_folder(
    tmp_path: Path, memory_index: VectorStoreIndex, faq_subset: dict[str, Any]
) -> None:
    memory_index.storage_context.persist(persist_dir=str(tmp_path / "storage"))
    from_folder = dataset_from_index(tmp_path / "storage", faq_subset["qa_pairs"])
    _check_matches_subset(from_folder, faq_subset)
    assert from_folder.name == "storage"
    context = StorageContext.from_defaults(persist_dir=str(tmp_path / "storage"))
    assert dataset_from_index(context, faq_subset["qa_pairs"]).corpus == from_folder.corpus


def test_nodes_of_a_qdrant_index_are_read_from_the_vector_store(
    qdrant_index: Any, faq_subset: dict[str, Any]
) -> None:
    assert not qdrant_index.docstore.docs  # Qdrant keeps the text, LlamaIndex's docstore stays empty
    nodes = nodes_from_index(qdrant_index)
    assert len(nodes) == len(faq_subset["nodes"])
    assert {n.metadata["source_id"] for n in nodes} == set(faq_subset["doc_ids"])
    _check_matches_subset(dataset_from_index(qdrant_index, faq_subset["qa_pairs"]), faq_subset)
    # the vector store alone works too
    assert len(nodes_from_index(qdrant_index.vector_store)) == len(nodes)


def test_a_storage_folder_without_nodes_says_what_to_pass(tmp_path: Path, qdrant_index: Any) -> None:
    qdrant_index.storage_context.persist(persist_dir=str(tmp_path / "storage"))
    with pytest.raises(DatasetError, match=r"holds no nodes in its docstore.*external vector store"):
        nodes_from_index(tmp_path / "storage")


def test_a_vector_store_without_text_is_a_clear_error(memory_index: VectorStoreIndex) -> None:
    with pytest.raises(DatasetError, match="keeps only vectors"):
        nodes_from_index(memory_index.vector_store)


def test_a_missing_storage_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="does not exist"):
        nodes_from_index(tmp_path / "nowhere")


def test_qa_pairs_naming_unknown_node_ids(memory_index: VectorStoreIndex, faq_subset: dict[str, Any]) -> None:
    pairs = [*faq_subset["qa_pairs"], ("What is a list?", "not-a-node-of-this-index")]
    with pytest.raises(
        DatasetError, match=r"1 QA pair\(s\) name 1 node id\(s\) that are not in the index.*not-a-node"
    ):
        dataset_from_index(memory_index, pairs)


def test_qa_json_made_from_other_nodes_says_so(
    memory_index: VectorStoreIndex, faq_subset: dict[str, Any]
) -> None:
    other = TextNode(id_="chunk-from-an-older-index", text="Lists are dynamic arrays.")
    qa = _qa_json(faq_subset, [*faq_subset["nodes"], other])
    qa["queries"]["extra"] = "How are lists implemented?"
    qa["relevant_docs"]["extra"] = [other.node_id]
    with pytest.raises(DatasetError, match="generated from other nodes"):
        dataset_from_index(memory_index, qa)


def test_nodes_without_text_are_a_clear_error(faq_subset: dict[str, Any]) -> None:
    nodes = [*faq_subset["nodes"][:5], ImageNode(id_="scan-1", image_url="http://example.invalid/p1.png")]
    pairs = [(faq_subset["qa_pairs"][0][0], faq_subset["nodes"][0].node_id)]
    with pytest.raises(DatasetError, match=r"1 node\(s\) have no text.*scan-1.*empty_nodes='drop'"):
        dataset_from_nodes(nodes, [(q, faq_subset["nodes"][0].node_id) for q, _ in pairs])


def test_empty_nodes_drop_skips_them_and_their_pairs(faq_subset: dict[str, Any], caplog: Any) -> None:
    blank = TextNode(id_="blank", text=" ")
    keep = faq_subset["nodes"][0]
    with caplog.at_level(logging.WARNING):
        dataset = dataset_from_nodes(
            [keep, faq_subset["nodes"][1], blank],
            [("q about keep", keep.node_id), ("q about blank", "blank")],
            empty_nodes="drop",
        )
    assert "blank" not in dataset.corpus and list(dataset.queries.values()) == ["q about keep"]
    assert "dropping 1 node(s) without text" in caplog.text


@pytest.mark.parametrize(
    ("qa", "message"),
    [
        ([], "No QA pairs"),
        ([("only a question",)], "expected \\(question, node_id\\)"),
        ([("", "n1")], "non-empty string"),
        ([("a question", 7)], "node id string"),
        ({"queries": {}}, "lacks"),
    ],
)
def test_malformed_qa_input(qa: Any, message: str) -> None:
    with pytest.raises(DatasetError, match=message):
        dataset_from_nodes([TextNode(id_="n1", text="A virtual cloud network.")], qa)


def test_two_different_nodes_with_one_id_are_rejected() -> None:
    nodes = [TextNode(id_="n1", text="first text"), TextNode(id_="n1", text="other text")]
    with pytest.raises(DatasetError, match="share the id 'n1'"):
        dataset_from_nodes(nodes, [("q", "n1")])


def test_finetune_engine_checks_its_input_and_its_order_of_calls(
    memory_index: VectorStoreIndex, faq_subset: dict[str, Any]
) -> None:
    engine = HardNegativeFinetuneEngine.from_index(memory_index, faq_subset["qa_pairs"], kind="bi")
    assert engine.retriever is not None  # validation uses the index's own retriever
    with pytest.raises(RuntimeError, match=r"call finetune\(\) before"):
        engine.get_finetuned_model()
    with pytest.raises(TypeError, match="expects a RetrievalDataset"):
        HardNegativeFinetuneEngine(faq_subset["nodes"])  # type: ignore[arg-type]


def test_finetune_engine_mines_what_we_ship_with_selector_default(
    memory_index: VectorStoreIndex, faq_subset: dict[str, Any], tmp_path: Path
) -> None:
    engine = HardNegativeFinetuneEngine.from_index(
        memory_index, faq_subset["qa_pairs"], kind="bi", selector="default", cache_dir=tmp_path / "cache"
    )
    result = engine.mine()
    assert len(result.records) == len(faq_subset["qa_pairs"])
    assert {r.selector for r in result.records} == {"default"}
    for record in result.records:  # one hard negative (the paper's, else the fallback's) and one random
        assert len(record.negative_ids) == 2 and record.d_q_neg[0] is not None and record.d_q_neg[1] is None
        assert record.positive_id not in record.negative_ids
        assert all(n in engine.dataset.corpus for n in record.negative_ids)
    diagnostics = result.diagnostics
    assert diagnostics["pairs_from_primary"] + diagnostics["pairs_from_fallback"] == len(result.records)
