"""A model2vec static embedding model run with numpy: the mean of per-token vectors, without PyTorch.

It computes what sentence-transformers' ``StaticEmbedding.from_model2vec`` computes (the model's token mapping and
per-token weights folded into one row per token id, special tokens left out, the mean over a text's tokens), so
the vectors equal the PyTorch path's up to float rounding, but it needs neither torch nor sentence-transformers and
encodes in large batches.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["StaticEncoder", "is_model2vec_folder"]


def is_model2vec_folder(folder: str | os.PathLike[str]) -> bool:
    """Whether ``folder`` holds a model2vec model (``model.safetensors``, ``tokenizer.json``, no ``modules.json``).

    Example:
        >>> is_model2vec_folder("/no/such/folder")
        False
    """
    path = Path(folder)
    return (
        path.is_dir()
        and (path / "model.safetensors").is_file()
        and (path / "tokenizer.json").is_file()
        and not (path / "modules.json").is_file()
    )


class StaticEncoder:
    """Encode texts with a model2vec folder: numpy embedding-bag means, in large batches.

    Args:
        folder: a model2vec model folder (``config.json``, ``model.safetensors``, ``tokenizer.json``).
        batch_size: texts tokenised per call (default 8,192: static models are memory-light).
        name: a label (default: the folder name).

    Example:
        >>> from hn_plugins.models import resolve_model_path
        >>> encoder = StaticEncoder(resolve_model_path("static-model"))  # doctest: +SKIP
        >>> encoder.encode(["boundary layer transition"]).shape  # doctest: +SKIP
        (1, 64)
    """

    def __init__(
        self, folder: str | os.PathLike[str], batch_size: int = 8192, name: str | None = None
    ) -> None:
        try:
            from model2vec import StaticModel
        except ImportError as exc:  # pragma: no cover - the demo extra installs it
            raise ImportError('StaticEncoder needs model2vec: pip install "hn-plugins[demo]"') from exc
        if not is_model2vec_folder(folder):
            raise FileNotFoundError(
                f"StaticEncoder: {folder} is not a model2vec folder (model.safetensors + tokenizer.json)."
            )
        if batch_size < 1:
            raise ValueError(f"StaticEncoder: batch_size must be >= 1, got {batch_size}.")
        model = StaticModel.from_pretrained(str(folder))
        table = np.asarray(model.embedding)
        mapping = getattr(model, "token_mapping", None)
        if mapping is not None:
            table = table[np.asarray(mapping, dtype=np.int64)]
        weights = getattr(model, "weights", None)
        table = table.astype(np.float32)
        if weights is not None:
            table = table * np.asarray(weights, dtype=np.float32)[:, None]
        self.table = np.ascontiguousarray(table, dtype=np.float32)
        self.tokenizer = model.tokenizer
        self.tokenizer.no_padding()
        self.tokenizer.no_truncation()
        self.batch_size = batch_size
        self.name = name or Path(folder).name
        digest = hashlib.blake2b(digest_size=16)
        digest.update(self.table.tobytes())
        digest.update(self.tokenizer.to_str().encode())
        self.fingerprint = f"static-{digest.hexdigest()}"

    @property
    def dimension(self) -> int:
        """Vector size."""
        return int(self.table.shape[1])

    def encode(self, sentences: list[str], **_: Any) -> np.ndarray:
        """Mean token vector of each text (zeros for a text without tokens); ``batch_size`` arguments are ignored."""
        out = np.zeros((len(sentences), self.dimension), dtype=np.float32)
        for start in range(0, len(sentences), self.batch_size):
            batch = self.tokenizer.encode_batch(
                list(sentences[start : start + self.batch_size]), add_special_tokens=False
            )
            lengths = np.fromiter((len(e.ids) for e in batch), dtype=np.int64, count=len(batch))
            if not lengths.sum():
                continue
            ids = np.fromiter((i for e in batch for i in e.ids), dtype=np.int64, count=int(lengths.sum()))
            rows = np.flatnonzero(lengths)
            offsets = np.concatenate(([0], np.cumsum(lengths)[:-1]))[rows]
            sums = np.add.reduceat(self.table[ids], offsets, axis=0)
            out[start + rows] = sums / lengths[rows, None].astype(np.float32)
        return out
