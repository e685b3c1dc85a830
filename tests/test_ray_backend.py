"""``backend="ray"``: documents embedded by Ray Data actors match the local vectors (real models, real text).

Ray starts a local cluster here. As design.md requires, no traffic may leave loopback: the cluster runs with a
temporary HOME whose ``ray_bootstrap_config.yaml`` says ``provider: {type: local}``, usage stats off and no
dashboard (the process that probes the cloud-metadata address).
"""

from __future__ import annotations

import numpy as np
import pytest

from hn_plugins.cli import main
from hn_plugins.embedders import EmbedderEnsemble

ray = pytest.importorskip("ray", reason='backend="ray" needs pip install "hn-plugins[ray]"')


@pytest.fixture(scope="module")
def local_ray(tmp_path_factory):
    home = tmp_path_factory.mktemp("home")
    config = home / "ray_bootstrap_config.yaml"
    config.write_text("provider:\n  type: local\n")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HOME", str(home))
        patch.setenv("RAY_USAGE_STATS_ENABLED", "0")
        assert config.read_text().startswith("provider:\n  type: local")
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        try:
            yield
        finally:
            ray.shutdown()


@pytest.fixture(scope="module")
def texts(cranfield_train):
    ids = cranfield_train.doc_ids[:120]
    return ids, [cranfield_train.document_text(d) for d in ids]


def test_ray_vectors_equal_local_ones_in_order(local_ray, texts, minilm):
    ids, docs = texts
    members = [minilm, "static-model"]  # an in-memory model (copied to the actors) and a name (loaded there)
    local = EmbedderEnsemble(members).encode_documents(ids, docs)
    remote = EmbedderEnsemble(members, backend="ray", ray_workers=2, batch_size=16).encode_documents(
        ids, docs
    )
    assert remote.shape == local.shape == (120, 384 + 64)
    np.testing.assert_allclose(remote, local, atol=2e-5)


def test_ray_embeds_only_what_the_cache_lacks(local_ray, texts, tmp_path):
    ids, docs = texts
    first = EmbedderEnsemble(["static-model"], cache_dir=tmp_path, backend="ray", ray_workers=2)
    first.encode_documents(ids, docs)
    assert first.document_counts == {"static-model": {"embedded": 120, "cached": 0}}
    edited = [f"{t} revised" if i < 3 else t for i, t in enumerate(docs)]
    second = EmbedderEnsemble(["static-model"], cache_dir=tmp_path, backend="ray", ray_workers=2)
    vectors = second.encode_documents(ids, edited)
    assert second.document_counts == {"static-model": {"embedded": 3, "cached": 117}}
    np.testing.assert_allclose(
        vectors, EmbedderEnsemble(["static-model"]).encode_documents(ids, edited), atol=2e-5
    )


def test_ray_actors_run_members_with_the_local_engine(local_ray, texts):
    ids, docs = texts[0][:40], texts[1][:40]
    int8 = EmbedderEnsemble(["all-MiniLM-L6-v2"], engine="onnx-int8")
    remote = EmbedderEnsemble(["all-MiniLM-L6-v2"], engine="onnx-int8", backend="ray", ray_workers=2)
    local_vectors = int8.encode_documents(ids, docs)
    np.testing.assert_allclose(remote.encode_documents(ids, docs), local_vectors, atol=2e-5)
    # int8 vectors are not PyTorch's: equal ones above mean the actors ran the int8 engine too
    torch_vectors = EmbedderEnsemble(["all-MiniLM-L6-v2"], engine="torch").encode_documents(ids, docs)
    assert np.abs(local_vectors - torch_vectors).max() > 1e-3


def test_hn_mine_backend_ray_writes_the_local_triplets(local_ray, shared_data, tmp_path):
    paths = {}
    for backend in ("local", "ray"):
        paths[backend] = tmp_path / f"{backend}.jsonl"
        args = ["mine", str(shared_data / "medline"), "--models", "static-model", "--selector", "paper"]
        assert main([*args, "--backend", backend, "--ray-workers", "2", "--out", str(paths[backend])]) == 0
    local = [line.split('"d_q_pos"')[0] for line in paths["local"].read_text().splitlines()]
    remote = [line.split('"d_q_pos"')[0] for line in paths["ray"].read_text().splitlines()]
    assert remote == local and len(local) == 274  # same pairs, same negatives in the same order


def test_bad_backend_settings_are_refused():
    with pytest.raises(ValueError, match="backend must be 'local' or 'ray'"):
        EmbedderEnsemble(["static-model"], backend="spark")
    with pytest.raises(ValueError, match="ray_workers must be >= 1"):
        EmbedderEnsemble(["static-model"], backend="ray", ray_workers=0)
