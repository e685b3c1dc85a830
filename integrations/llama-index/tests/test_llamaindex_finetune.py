"""From a LlamaIndex index and QA pairs to a mined, fine-tuned, ready HardNegativeRerank (trains: slow)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from _llamaindex_testdata import FAQ_DIR, faq_nodes, node_id_for
from llama_index.core import VectorStoreIndex
from llama_index.core.llms import MockLLM
from llama_index.postprocessor.hn_rerank import HardNegativeFinetuneEngine, HardNegativeRerank

from hn_plugins.data import RetrievalDataset, load_beir
from hn_plugins.reranker import RERANKER_MARKER

pytestmark = [pytest.mark.slow, pytest.mark.integration]

MINING_MODELS = ["all-MiniLM-L6-v2", "static-model"]


@pytest.fixture(scope="module")
def faq_train() -> dict[str, Any]:
    """20 real train questions of python-docs-faq, their answers and 100 real distractors."""
    if not FAQ_DIR.is_dir():
        pytest.skip(f"real data not found at {FAQ_DIR}")
    train: RetrievalDataset = load_beir(FAQ_DIR, split="train", empty_documents="drop")
    qids = sorted(train.judged_query_ids)[:20]
    positives = sorted({d for q in qids for d in train.positives(q)})
    others = [d for d in train.doc_ids if d not in set(positives)][::19][:100]
    nodes = faq_nodes(train, positives + others)
    pairs = [(train.queries[q], node_id_for(d)) for q in qids for d in sorted(train.positives(q))]
    return {"nodes": nodes, "qa_pairs": pairs}


@pytest.fixture(scope="module")
def train_index(faq_train: dict[str, Any], embed_model: Any) -> VectorStoreIndex:
    return VectorStoreIndex(nodes=[n.model_copy() for n in faq_train["nodes"]], embed_model=embed_model)


def test_finetune_engine_mines_trains_and_returns_a_postprocessor(
    tmp_path: Path, train_index: VectorStoreIndex, faq_train: dict[str, Any]
) -> None:
    engine = HardNegativeFinetuneEngine.from_index(
        train_index,
        faq_train["qa_pairs"],
        output_dir=tmp_path / "reranker",
        base_model="all-MiniLM-L6-v2",
        kind="bi",
        mining_models=MINING_MODELS,
        num_negatives=1,
        epochs=1,
        batch_size=8,
        seed=0,
    )
    result = engine.mine()
    assert len(result.records) == len(faq_train["qa_pairs"])
    for record in result.records:
        assert record.positive_id not in record.negative_ids
        assert all(n in engine.dataset.corpus for n in record.negative_ids)
    assert sum(bool(r.negative_ids) for r in result.records) > 0

    trained = engine.finetune()
    marker = json.loads((Path(trained.path) / RERANKER_MARKER).read_text(encoding="utf-8"))
    assert marker["kind"] == "bi" and marker["negatives"]["selector"] == "paper"
    assert marker["validation"]["first_stage"] == "given"  # validated on the index's own retriever results

    rerank = engine.get_finetuned_model(top_n=3)
    assert isinstance(rerank, HardNegativeRerank) and rerank.kind == "bi" and rerank.top_n == 3
    engine_qe = train_index.as_query_engine(similarity_top_k=20, node_postprocessors=[rerank], llm=MockLLM())
    sources = engine_qe.query(faq_train["qa_pairs"][0][0]).source_nodes
    assert len(sources) == 3 and all(type(n.score) is float for n in sources)


def test_from_index_on_a_reopened_qdrant_store(
    tmp_path: Path, qdrant_index: VectorStoreIndex, faq_subset: dict[str, Any]
) -> None:
    rerank = HardNegativeRerank.from_index(
        qdrant_index,
        faq_subset["qa_pairs"],
        tmp_path / "reranker",
        base_model="all-MiniLM-L6-v2",
        kind="bi",
        mining_models=MINING_MODELS,
        epochs=1,
        batch_size=8,
        top_n=5,
    )
    assert rerank.kind == "bi" and Path(rerank.model) == (tmp_path / "reranker").resolve()
    engine = qdrant_index.as_query_engine(similarity_top_k=20, node_postprocessors=[rerank], llm=MockLLM())
    sources = engine.query(faq_subset["qa_pairs"][0][0]).source_nodes
    assert len(sources) == 5
