"""``HardNegativeFinetuneEngine``: index + QA pairs -> mined hard negatives -> fine-tuned reranker ->
postprocessor.

Mirrors the engine API of ``llama-index-finetuning`` (``finetune()``, then ``get_finetuned_model(top_n=...)``):
the mining and training are :class:`~llama_index.postprocessor.hn_rerank.engine.BaseHardNegativeFinetuneEngine`'s,
this class adds the postprocessor.
"""

from __future__ import annotations

from typing import Any

from llama_index.postprocessor.hn_rerank.base import HardNegativeRerank
from llama_index.postprocessor.hn_rerank.engine import DEFAULT_MINING_MODELS, BaseHardNegativeFinetuneEngine

__all__ = ["DEFAULT_MINING_MODELS", "HardNegativeFinetuneEngine"]


class HardNegativeFinetuneEngine(BaseHardNegativeFinetuneEngine):
    """Mine hard negatives for QA pairs over an index's nodes, fine-tune a reranker on them, and hand it over as a
    :class:`~llama_index.postprocessor.hn_rerank.HardNegativeRerank`.

    The arguments are :class:`~llama_index.postprocessor.hn_rerank.engine.BaseHardNegativeFinetuneEngine`'s.

    Example:
        >>> engine = HardNegativeFinetuneEngine.from_index(  # doctest: +SKIP
        ...     index, "qa_pairs.json", output_dir="models/reranker", base_model="all-MiniLM-L6-v2",
        ...     kind="bi")
        >>> engine.finetune()  # doctest: +SKIP
        >>> rerank = engine.get_finetuned_model(top_n=5)  # doctest: +SKIP
        >>> query_engine = index.as_query_engine(  # doctest: +SKIP
        ...     similarity_top_k=20, node_postprocessors=[rerank])
    """

    def get_finetuned_model(self, top_n: int = 2, **kwargs: Any) -> HardNegativeRerank:
        """The fine-tuned reranker as a LlamaIndex postprocessor.

        Args:
            top_n: number of nodes the postprocessor returns.
            **kwargs: other :class:`HardNegativeRerank` arguments (``device``, ``batch_size``,
                ``keep_retrieval_score``).

        Raises:
            RuntimeError: :meth:`finetune` has not run.
        """
        if self.trained_ is None:
            raise RuntimeError(f"{self.__class__.__name__}: call finetune() before get_finetuned_model().")
        kwargs.setdefault("metadata_mode", self.metadata_mode)
        if kwargs.get("device") is None:
            kwargs["device"] = self.device
        return HardNegativeRerank(
            model=str(getattr(self.trained_, "path", self.output_dir)), top_n=top_n, **kwargs
        )
