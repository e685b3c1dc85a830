"""A sentence-transformers ``CrossEncoder`` as a reranker, and the transformers model inside one."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from hn_plugins.models import resolve_model_path
from hn_plugins.rerankers.base import FusionMixin

__all__ = ["CrossEncoderReranker", "transformer_of"]


class CrossEncoderReranker(FusionMixin):
    """A sentence-transformers ``CrossEncoder`` scoring (query, document) pairs.

    Example:
        >>> rr = CrossEncoderReranker("cross-encoder/ms-marco-MiniLM-L6-v2")  # doctest: +SKIP
        >>> rr.score("what is a VCN", ["A virtual cloud network.", "A NIC."])  # doctest: +SKIP
        array([ 7.1, -3.2], dtype=float32)
    """

    kind: Literal["cross"] = "cross"

    def __init__(
        self,
        model: str | os.PathLike[str] | Any,
        device: str | None = None,
        batch_size: int = 32,
        max_length: int | None = None,
        trust_remote_code: bool = False,
    ) -> None:
        from sentence_transformers import CrossEncoder

        if isinstance(model, CrossEncoder):
            self.model = model
            self.name = str(getattr(model, "name_or_path", "cross-encoder"))
        else:
            self.name = str(model)
            self.model = CrossEncoder(
                resolve_model_path(str(model)),
                device=device,
                max_length=max_length,
                trust_remote_code=trust_remote_code,
            )
        self.batch_size = batch_size
        self.documents_scored = 0
        self.seconds = 0.0

    def score(self, query: str, documents: Sequence[str]) -> np.ndarray:
        if not documents:
            return np.zeros(0, dtype=np.float32)
        start = time.perf_counter()
        scores = self.model.predict(
            [(query, d) for d in documents],
            batch_size=self.batch_size,
            show_progress_bar=False,
            convert_to_numpy=True,
        )
        self.seconds += time.perf_counter() - start
        self.documents_scored += len(documents)
        return np.asarray(scores, dtype=np.float32).reshape(len(documents))


def transformer_of(cross_encoder: Any) -> Any:
    """The transformers model inside a sentence-transformers ``CrossEncoder`` (``.model`` in sentence-transformers
    5+, the first module's ``auto_model`` in the module-based layout)."""
    import torch

    inner = getattr(cross_encoder, "model", None)
    return inner if isinstance(inner, torch.nn.Module) else cross_encoder[0].auto_model
