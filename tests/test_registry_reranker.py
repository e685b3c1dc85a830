from __future__ import annotations

import json

import numpy as np
import pytest

from hn_plugins.registry import ModelRegistry
from hn_plugins.reranker import BiEncoderReranker, RerankerLoadError, detect_reranker_kind, load_reranker


@pytest.fixture(scope="module")
def bi_folder(minilm, tmp_path_factory):
    """The real all-MiniLM-L6-v2 saved the way the trainer saves a bi-encoder reranker."""
    folder = tmp_path_factory.mktemp("bi")
    minilm.save(str(folder))
    (folder / "hn_reranker.json").write_text(json.dumps({"kind": "bi"}))
    return folder


def test_bi_encoder_folder_loads_and_scores_by_cosine(bi_folder, minilm, cranfield_train):
    reranker = load_reranker(bi_folder)
    assert isinstance(reranker, BiEncoderReranker)
    wins = 0
    qids = cranfield_train.judged_query_ids[:10]
    for qid in qids:
        rel = cranfield_train.qrels[qid]
        best = max(rel, key=lambda d: (rel[d], d))
        docs = [cranfield_train.document_text(d) for d in (best, "1000", "1200", "300")]
        scores = reranker.score(cranfield_train.queries[qid], docs)
        assert scores.dtype == np.float32 and scores.shape == (4,)
        q = minilm.encode([cranfield_train.queries[qid]], normalize_embeddings=True)
        d = minilm.encode(docs, normalize_embeddings=True)
        np.testing.assert_allclose(scores, (d @ q[0]), atol=1e-4)
        wins += int(np.argmax(scores) == 0)
    assert wins >= 7  # the most relevant document beats unrelated ones for most queries
    assert reranker.score("anything", []).shape == (0,)


def test_registry_promote_rollback_and_load(bi_folder, tmp_path):
    registry = ModelRegistry(tmp_path / "registry")
    with pytest.raises(KeyError):
        registry.path()
    v1 = registry.register(bi_folder, metrics={"mrr@10": 0.5}, promote=True)
    v2 = registry.register(bi_folder, metrics={"mrr@10": 0.6}, promote=True)
    assert registry.current == v2 and (registry.path(v1) / "hn_reranker.json").is_file()
    assert detect_reranker_kind(tmp_path / "registry") == "bi"
    assert isinstance(load_reranker(tmp_path / "registry"), BiEncoderReranker)
    assert registry.rollback() == v1 and registry.current == v1
    with pytest.raises(RuntimeError, match="no earlier"):
        registry.rollback()


def test_folders_that_are_not_rerankers_get_clear_errors(minilm, tmp_path):
    plain = tmp_path / "plain-bi"
    minilm.save(str(plain))
    with pytest.raises(RerankerLoadError, match="bi-encoder, not a cross-encoder"):
        load_reranker(plain)
    (tmp_path / "empty").mkdir()
    with pytest.raises(RerankerLoadError, match="not a cross-encoder model folder"):
        load_reranker(tmp_path / "empty")
    with pytest.raises(RerankerLoadError, match="does not exist"):
        load_reranker(str(tmp_path / "missing" / "model"))
    with pytest.raises(RerankerLoadError, match="HF_HUB_OFFLINE"):
        load_reranker("cross-encoder/ms-marco-MiniLM-L6-v2")


def test_zero_shot_spec_loads_an_untuned_bi_encoder(minilm, cranfield_train):
    from hn_evaluation.model_evaluation import ZERO_SHOT_PREFIX as CLI_PREFIX
    from hn_plugins.reranker import ZERO_SHOT_PREFIX

    assert CLI_PREFIX == ZERO_SHOT_PREFIX  # hn eval and load_reranker read the same specs
    reranker = load_reranker("zero-shot:all-MiniLM-L6-v2")
    assert isinstance(reranker, BiEncoderReranker) and reranker.kind == "bi" and reranker.fusion is None
    reranker.model.max_seq_length = minilm.max_seq_length  # the fixture's copy is cut to 128 tokens
    qid = cranfield_train.judged_query_ids[0]
    docs = [cranfield_train.document_text(d) for d in list(cranfield_train.corpus)[:5]]
    q = minilm.encode([cranfield_train.queries[qid]], normalize_embeddings=True)
    d = minilm.encode(docs, normalize_embeddings=True)
    np.testing.assert_allclose(reranker.score(cranfield_train.queries[qid], docs), d @ q[0], atol=1e-4)
    for bad in ("zero-shot:", "zero-shot:  "):
        with pytest.raises(RerankerLoadError, match="zero-shot: takes a sentence-transformers model"):
            load_reranker(bad)
    with pytest.raises(
        RerankerLoadError, match="backend must be one of"
    ):  # onnx backends run it: test_encoders.py
        load_reranker("zero-shot:all-MiniLM-L6-v2", backend="tensorrt")  # type: ignore[arg-type]
