"""Embedding documents across Ray workers (``EmbedderEnsemble(..., backend="ray")``, ``hn mine --backend ray``).

Only the embedding step is distributed; caching, PCA, the index and mining stay in the calling process. Each Ray
actor loads the member model once (by name or path on every node, or a copy of an in-memory encoder) and encodes
batches of texts with the same call the local path uses, so the vectors match the local ones up to float rounding.
The calling process keeps the cache: only uncached documents are sent, and their vectors come back in order.

Ray is optional: ``pip install "hn-plugins[ray]"``. Without a running cluster, a local one is started with
``ray.init()``; to use a cluster, call ``ray.init(address=...)`` first (or pass ``ray_address``). Note: on machines
without internet access, ``ray.init()`` first probes the cloud-metadata address 169.254.169.254 unless
``~/ray_bootstrap_config.yaml`` holds ``provider: {type: local}``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from hn_plugins.encoders.loading import load_encoder
from hn_plugins.encoding import encode_texts

logger = logging.getLogger(__name__)

__all__ = ["ray_encode"]


class _EncodeActor:
    """A Ray Data actor: loads one member model once, then encodes the batches it is given."""

    def __init__(
        self, spec: Any, prompt: str | None, batch_size: int, trust_remote_code: bool, engine: str
    ) -> None:
        if isinstance(spec, str):
            self.encoder = load_encoder(spec, engine, trust_remote_code=trust_remote_code)
        else:
            self.encoder = spec
        self.prompt = prompt
        self.batch_size = batch_size

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        vectors = encode_texts(self.encoder, [str(t) for t in batch["text"]], self.prompt, self.batch_size)
        return {"row": np.asarray(batch["row"]), "vector": vectors}


def _ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise ImportError(
            "backend='ray' needs Ray Data: pip install \"hn-plugins[ray]\" (or use the default local backend)."
        ) from exc
    return ray


def ray_encode(
    spec: Any,
    texts: Sequence[str],
    prompt: str | None = None,
    batch_size: int = 64,
    workers: int | None = None,
    ray_address: str | None = None,
    trust_remote_code: bool = False,
    engine: str = "auto",
) -> np.ndarray:
    """Encode ``texts`` on a pool of Ray actors; rows come back in the order of ``texts``.

    Args:
        spec: a model name or path (each actor loads it) or an encoder object (each actor gets a copy).
        texts: the texts.
        prompt: prepended to every text (sentence-transformers ``prompt=``).
        batch_size: texts per actor call.
        workers: actors in the pool (``None``: one per CPU of the cluster, at most one per batch).
        ray_address: cluster to connect to when Ray is not initialised yet (``None``: a local one).
        trust_remote_code: passed to sentence-transformers when an actor loads ``spec`` by name.
        engine: how an actor runs a model it loads by name (:func:`hn_plugins.encoders.load_encoder`): each actor
            uses the same fast path as the local process, exporting to its node's cache on first use.

    Returns:
        ``(len(texts), dim)`` raw float32 vectors.
    """
    ray = _ray()
    if not texts:
        return np.zeros((0, 0), dtype=np.float32)
    if workers is not None and workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}.")
    if not ray.is_initialized():
        ray.init(address=ray_address, include_dashboard=False, log_to_driver=False)
    batches = -(-len(texts) // batch_size)
    size = workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
    size = min(size, batches)
    logger.info("Ray: embedding %d texts on %d actor(s), %d per batch", len(texts), size, batch_size)
    dataset = ray.data.from_items([{"row": i, "text": t} for i, t in enumerate(texts)])
    encoded = dataset.map_batches(
        _EncodeActor,
        fn_constructor_kwargs={
            "spec": spec,
            "prompt": prompt,
            "batch_size": batch_size,
            "trust_remote_code": trust_remote_code,
            "engine": engine,
        },
        batch_size=batch_size,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=size),
        num_cpus=1,
    )
    out: np.ndarray | None = None
    seen = 0
    for batch in encoded.iter_batches(batch_format="numpy", batch_size=None):
        vectors = np.asarray(batch["vector"], dtype=np.float32)
        if out is None:
            out = np.zeros((len(texts), vectors.shape[1]), dtype=np.float32)
        out[np.asarray(batch["row"], dtype=np.int64)] = vectors
        seen += len(vectors)
    if out is None or seen != len(texts):
        raise RuntimeError(f"Ray returned {seen} vectors for {len(texts)} texts.")
    return out
