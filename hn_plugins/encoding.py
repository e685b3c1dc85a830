"""The one encoding call: texts to raw vectors with a sentence-transformers model or any ``encode`` object.

:mod:`hn_plugins.embedders` (local) and :mod:`hn_plugins.ray_backend` (Ray actors) both encode with it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["encode_texts", "is_sentence_transformer"]


def is_sentence_transformer(encoder: Any) -> bool:
    """Whether ``encoder`` is a sentence-transformers model (it tokenises and has PyTorch weights).

    Example:
        >>> is_sentence_transformer(object())
        False
    """
    return hasattr(encoder, "tokenize") and hasattr(encoder, "state_dict")


def encode_texts(encoder: Any, texts: Sequence[str], prompt: str | None, batch_size: int) -> np.ndarray:
    """Raw (not normalised) float32 vectors of ``texts`` from a sentence-transformers model or any ``encode`` object.

    The one encoding call of the library: :class:`~hn_plugins.embedders.EmbedderEnsemble` uses it locally and every
    Ray actor (:mod:`hn_plugins.ray_backend`) uses it remotely.

    Example:
        >>> class Toy:
        ...     def encode(self, sentences, **kw):
        ...         return [[len(s), 1.0] for s in sentences]
        >>> encode_texts(Toy(), ["ab", "abcd"], prompt="q: ", batch_size=8).tolist()
        [[5.0, 1.0], [7.0, 1.0]]
    """
    kwargs: dict[str, Any] = {"batch_size": batch_size}
    if is_sentence_transformer(encoder):
        kwargs.update(convert_to_numpy=True, show_progress_bar=False, normalize_embeddings=False)
        if prompt:
            kwargs["prompt"] = prompt
        inputs = list(texts)
    else:
        inputs = [f"{prompt}{t}" for t in texts] if prompt else list(texts)
    try:
        vectors = encoder.encode(inputs, **kwargs)
    except TypeError:
        vectors = encoder.encode(inputs)
    if hasattr(vectors, "detach"):
        vectors = vectors.detach().cpu().numpy()
    return np.asarray(vectors, dtype=np.float32)
