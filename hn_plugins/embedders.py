"""An ensemble of bi-encoders: each member L2-normalised, then concatenated (the paper's step 1).

Members are sentence-transformers names or local paths, :class:`OnnxEncoder` objects, or any object with an
``encode(texts) -> array`` method. Document embeddings are cached per member by (fingerprint, id, content hash).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
from tqdm.auto import tqdm

from hn_plugins.cache import EmbeddingCache, content_hash
from hn_plugins.encoders.engines import resolve_engine
from hn_plugins.encoders.loading import load_encoder
from hn_plugins.encoding import encode_texts, is_sentence_transformer
from hn_plugins.models import resolve_model_path
from hn_plugins.ray_backend import ray_encode

logger = logging.getLogger(__name__)

__all__ = ["EmbedderEnsemble", "EmbeddingError", "Encoder", "OnnxEncoder", "encode_texts", "l2_normalize"]


class EmbeddingError(ValueError):
    """Raised when a member returns unusable vectors (NaN, wrong shape, different dimensions)."""


@runtime_checkable
class Encoder(Protocol):
    """Anything that turns texts into a 2-D array of vectors."""

    def encode(self, sentences: list[str], **kwargs: Any) -> Any: ...


def l2_normalize(vectors: np.ndarray) -> np.ndarray:
    """Row-wise L2 normalisation (zero rows stay zero)."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


class OnnxEncoder:
    """A bi-encoder exported to ONNX, run with onnxruntime and a Hugging Face ``tokenizers`` tokenizer.

    Args:
        model_path: the ``.onnx`` file.
        tokenizer: a ``tokenizer.json`` path, or a folder holding one (e.g. a sentence-transformers model folder).
        output: the output to read, by name (``"last_hidden_state"``) or index.
        pooling: ``"mean"`` mean-pools token vectors with the attention mask; ``"none"`` when the output is
            already one vector per text.
        max_length: truncation length in tokens.
        name: a label (default: the file name).

    Example:
        >>> enc = OnnxEncoder("model.onnx", tokenizer="tokenizer.json")  # doctest: +SKIP
        >>> enc.encode(["a query"]).shape  # doctest: +SKIP
        (1, 384)
    """

    def __init__(
        self,
        model_path: str | os.PathLike[str],
        tokenizer: str | os.PathLike[str],
        output: str | int = "last_hidden_state",
        pooling: str = "mean",
        max_length: int = 256,
        name: str | None = None,
    ) -> None:
        try:
            import onnxruntime as ort
            from tokenizers import Tokenizer
        except ImportError as exc:  # pragma: no cover
            raise ImportError('OnnxEncoder needs the onnx extra: pip install "hn-plugins[onnx]"') from exc
        self.model_path = Path(model_path)
        if not self.model_path.is_file():
            raise FileNotFoundError(f"OnnxEncoder: no ONNX file at {self.model_path}.")
        tok_path = Path(tokenizer)
        if tok_path.is_dir():
            tok_path = tok_path / "tokenizer.json"
        if not tok_path.is_file():
            raise FileNotFoundError(f"OnnxEncoder: no tokenizer.json at {tok_path}.")
        if pooling not in {"mean", "none"}:
            raise ValueError(f"OnnxEncoder: pooling must be 'mean' or 'none', got {pooling!r}.")
        options = ort.SessionOptions()
        options.intra_op_num_threads = max(1, os.cpu_count() or 1)
        self.session = ort.InferenceSession(str(self.model_path), options, providers=["CPUExecutionProvider"])
        self.tokenizer = Tokenizer.from_file(str(tok_path))
        self.tokenizer.enable_truncation(max_length)
        self.tokenizer.enable_padding()
        self.output = output
        self.pooling = pooling
        self.name = name or self.model_path.name
        self._input_names = {i.name for i in self.session.get_inputs()}
        digest = hashlib.blake2b(digest_size=16)
        with self.model_path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        digest.update(f"{output}|{pooling}|{max_length}|{tok_path.read_bytes()!r}".encode())
        self.fingerprint = f"onnx-{digest.hexdigest()}"

    def encode(self, sentences: list[str], batch_size: int = 32, **_: Any) -> np.ndarray:
        outs = []
        for start in range(0, len(sentences), batch_size):
            batch = self.tokenizer.encode_batch(list(sentences[start : start + batch_size]))
            ids = np.asarray([b.ids for b in batch], dtype=np.int64)
            mask = np.asarray([b.attention_mask for b in batch], dtype=np.int64)
            feeds = {"input_ids": ids, "attention_mask": mask}
            if "token_type_ids" in self._input_names:
                feeds["token_type_ids"] = np.zeros_like(ids)
            feeds = {k: v for k, v in feeds.items() if k in self._input_names}
            if isinstance(self.output, int):
                result = self.session.run(None, feeds)[self.output]
            else:
                result = self.session.run([self.output], feeds)[0]
            if self.pooling == "mean":
                weights = mask[..., None].astype(np.float32)
                result = (result * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
            outs.append(np.asarray(result, dtype=np.float32))
        return np.concatenate(outs) if outs else np.zeros((0, 0), dtype=np.float32)


@dataclass
class _Member:
    name: str
    encoder: Any
    fingerprint: str
    query_prompt: str | None
    document_prompt: str | None
    spec: Any = None  # what Ray actors rebuild the encoder from: the name/path given, else the encoder itself


def _fingerprint_sentence_transformer(model: Any, name: str) -> str:
    digest = hashlib.blake2b(digest_size=16)
    digest.update(name.encode())
    digest.update(str(getattr(model, "max_seq_length", "")).encode())
    digest.update(repr(model).encode())
    for key, tensor in sorted(model.state_dict().items()):
        digest.update(key.encode())
        digest.update(tensor.detach().cpu().contiguous().view(-1).numpy().tobytes())
    return f"st-{digest.hexdigest()}"


class EmbedderEnsemble:
    """Concatenation of L2-normalised embeddings from several bi-encoders, with a per-member document cache.

    Args:
        models: sentence-transformers hub names or local folders, :class:`OnnxEncoder` objects, or any object with
            an ``encode`` method. Hub names whose weights an installed package carries load from it (offline).
        cache_dir: where document embeddings are cached (per member, by id and content hash); ``None`` disables
            the cache.
        batch_size: encoding batch size.
        query_prompts: per-member prompts prepended to queries (``None`` entries for none), e.g.
            ``"Represent this sentence for searching relevant passages: "`` for bge.
        document_prompts: per-member prompts prepended to documents.
        device: torch device for sentence-transformers members.
        show_progress_bar: show a progress bar while encoding documents.
        trust_remote_code: passed to sentence-transformers; off unless you turn it on.
        backend: ``local`` (this process) or ``ray``: uncached documents are embedded by a pool of Ray Data actors
            (:mod:`hn_plugins.ray_backend`, ``pip install "hn-plugins[ray]"``); queries stay local.
        ray_workers: actors per member with ``backend="ray"`` (``None``: one per CPU of the cluster).
        ray_address: the Ray cluster to connect to if Ray is not initialised yet (``None``: a local one).
        engine: how members given by name run (:mod:`hn_plugins.encoders`): ``auto`` (default: ONNX Runtime for
            transformers and numpy for static models on a CPU, PyTorch on a GPU), ``torch``, ``onnx`` (fp32) or
            ``onnx-int8``. Each engine has its own cache entries; a member the fast path cannot run falls back to
            PyTorch with a warning.

    Example:
        >>> import numpy as np
        >>> class Toy:
        ...     fingerprint = "toy-v1"
        ...     def encode(self, sentences, **kw):
        ...         return np.array([[len(s), 1.0] for s in sentences])
        >>> ens = EmbedderEnsemble([Toy(), Toy()])
        >>> ens.encode_queries(["ab", "abcd"]).shape
        (2, 4)
    """

    def __init__(
        self,
        models: Sequence[str | os.PathLike[str] | Encoder],
        cache_dir: str | os.PathLike[str] | None = None,
        batch_size: int = 64,
        query_prompts: Sequence[str | None] | None = None,
        document_prompts: Sequence[str | None] | None = None,
        device: str | None = None,
        show_progress_bar: bool = False,
        trust_remote_code: bool = False,
        backend: str = "local",
        ray_workers: int | None = None,
        ray_address: str | None = None,
        engine: str = "auto",
    ) -> None:
        self.engine = resolve_engine(engine, device)
        if backend not in ("local", "ray"):
            raise ValueError(f"EmbedderEnsemble: backend must be 'local' or 'ray', got {backend!r}.")
        if ray_workers is not None and ray_workers < 1:
            raise ValueError(f"EmbedderEnsemble: ray_workers must be >= 1, got {ray_workers}.")
        if isinstance(models, (str, os.PathLike)) or not isinstance(models, Sequence) or len(models) == 0:
            raise ValueError("EmbedderEnsemble needs a non-empty list of models, e.g. ['all-MiniLM-L6-v2'].")
        for label, prompts in (("query_prompts", query_prompts), ("document_prompts", document_prompts)):
            if prompts is not None and len(prompts) != len(models):
                raise ValueError(
                    f"EmbedderEnsemble: {label} has {len(prompts)} entries for {len(models)} models; "
                    "give one per model (None for no prompt)."
                )
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.batch_size = batch_size
        self.show_progress_bar = show_progress_bar
        self.backend = backend
        self.ray_workers = ray_workers
        self.ray_address = ray_address
        self.trust_remote_code = trust_remote_code
        self.members: list[_Member] = []
        self.encode_calls = 0  # texts sent to members' encode(); a cache hit costs nothing
        #: per member name: documents embedded and documents read from the cache, over every encode_documents call
        self.document_counts: dict[str, dict[str, int]] = {}
        for i, spec in enumerate(models):
            qp = query_prompts[i] if query_prompts else None
            dp = document_prompts[i] if document_prompts else None
            self.members.append(self._make_member(spec, qp, dp, device, trust_remote_code, self.engine))
        self._caches: dict[str, EmbeddingCache] = {}
        self._dims: list[int | None] = [None] * len(self.members)

    @staticmethod
    def _make_member(
        spec: Any,
        query_prompt: str | None,
        document_prompt: str | None,
        device: str | None,
        trust_remote_code: bool,
        engine: str,
    ) -> _Member:
        if isinstance(spec, (str, os.PathLike)):
            name = str(spec)
            encoder = load_encoder(name, engine, device=device, trust_remote_code=trust_remote_code)
            if is_sentence_transformer(encoder):
                fingerprint = _fingerprint_sentence_transformer(encoder, resolve_model_path(name))
            else:
                fingerprint = str(encoder.fingerprint)
        elif hasattr(spec, "encode"):
            name = (
                getattr(spec, "name", None)
                or (
                    getattr(spec, "model_card_data", None)
                    and getattr(spec.model_card_data, "base_model", None)
                )
                or type(spec).__name__
            )
            if is_sentence_transformer(spec):
                fingerprint = _fingerprint_sentence_transformer(spec, str(name))
            else:
                declared = getattr(spec, "fingerprint", None)
                if declared is None:
                    fingerprint = f"obj-{type(spec).__module__}.{type(spec).__qualname__}"
                    logger.warning(
                        "Encoder %r has no 'fingerprint' attribute; its cache entries are keyed by its class "
                        "name, so changing its weights needs a new cache_dir.",
                        name,
                    )
                else:
                    fingerprint = declared
            encoder = spec
        else:
            raise TypeError(
                f"EmbedderEnsemble: member {spec!r} is neither a model name/path nor has an encode method."
            )
        salt = json.dumps([query_prompt, document_prompt])
        fingerprint = hashlib.blake2b(f"{fingerprint}|{salt}".encode(), digest_size=12).hexdigest()
        spec_for_workers = str(spec) if isinstance(spec, (str, os.PathLike)) else encoder
        return _Member(str(name), encoder, fingerprint, query_prompt, document_prompt, spec_for_workers)

    @property
    def names(self) -> list[str]:
        """Member names, in order."""
        return [m.name for m in self.members]

    @property
    def fingerprint(self) -> str:
        """Identifies the whole ensemble (members and prompts, in order)."""
        return hashlib.blake2b(
            "|".join(m.fingerprint for m in self.members).encode(), digest_size=12
        ).hexdigest()

    # ------------------------------------------------------------------ encoding
    def _encode_member(
        self, index: int, texts: list[str], prompt: str | None, remote: bool = False
    ) -> np.ndarray:
        member = self.members[index]
        if not texts:
            return np.zeros((0, self._dims[index] or 0), dtype=np.float32)
        self.encode_calls += len(texts)
        if remote:
            vectors = ray_encode(
                member.spec,
                texts,
                prompt,
                batch_size=self.batch_size,
                workers=self.ray_workers,
                ray_address=self.ray_address,
                trust_remote_code=self.trust_remote_code,
                engine=self.engine,
            )
        else:
            vectors = encode_texts(member.encoder, texts, prompt, self.batch_size)
        if vectors.ndim != 2 or vectors.shape[0] != len(texts):
            raise EmbeddingError(
                f"Member {member.name!r} returned shape {vectors.shape} for {len(texts)} texts; "
                "encode() must return one row per text."
            )
        bad = ~np.isfinite(vectors).all(axis=1)
        if bad.any():
            first = int(np.flatnonzero(bad)[0])
            raise EmbeddingError(
                f"Member {member.name!r} returned NaN/inf vectors for {int(bad.sum())} text(s) (first: "
                f"{texts[first][:60]!r}). Check the model (fp16 overflow?) or remove those texts."
            )
        if self._dims[index] is not None and vectors.shape[1] != self._dims[index]:
            raise EmbeddingError(
                f"Member {member.name!r} changed dimension from {self._dims[index]} to {vectors.shape[1]}."
            )
        self._dims[index] = int(vectors.shape[1])
        return l2_normalize(vectors)

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        """Embed queries (not cached: queries are few and cheap) -> ``(n, sum of member dims)``."""
        texts = list(texts)
        parts = [self._encode_member(i, texts, m.query_prompt) for i, m in enumerate(self.members)]
        return np.concatenate(parts, axis=1)

    def _cache(self, member: _Member) -> EmbeddingCache | None:
        if self.cache_dir is None:
            return None
        if member.fingerprint not in self._caches:
            self._caches[member.fingerprint] = EmbeddingCache(self.cache_dir, member.fingerprint)
        return self._caches[member.fingerprint]

    def encode_documents(
        self, ids: Sequence[str], texts: Sequence[str], chunk_size: int = 4096
    ) -> np.ndarray:
        """Embed documents, reusing cached vectors keyed by (member fingerprint, id, content hash).

        New vectors are written to the cache every ``chunk_size`` documents, so an interrupted run keeps what it
        had computed.
        """
        ids, texts = [str(i) for i in ids], list(texts)
        if len(ids) != len(texts):
            raise ValueError(f"encode_documents(): {len(ids)} ids but {len(texts)} texts.")
        hashes = [content_hash(t) for t in texts]
        parts = []
        for i, member in enumerate(self.members):
            cache = self._cache(member)
            found = np.zeros(len(ids), dtype=bool)
            out: np.ndarray | None = None
            if cache is not None:
                found, out = cache.get(ids, hashes)
                if out is not None:
                    self._dims[i] = out.shape[1]
            todo = np.flatnonzero(~found)
            counts = self.document_counts.setdefault(member.name, {"embedded": 0, "cached": 0})
            counts["embedded"] += len(todo)
            counts["cached"] += len(ids) - len(todo)
            if len(todo):
                logger.info(
                    "%s: embedding %d of %d documents (%d cached)",
                    member.name,
                    len(todo),
                    len(ids),
                    len(ids) - len(todo),
                )
            bar = tqdm(
                total=len(todo),
                desc=f"embed {member.name}",
                unit="doc",
                disable=not self.show_progress_bar or not len(todo),
            )
            for start in range(0, len(todo), chunk_size):
                rows = todo[start : start + chunk_size]
                vectors = self._encode_member(
                    i, [texts[r] for r in rows], member.document_prompt, remote=self.backend == "ray"
                )
                if out is None:
                    out = np.zeros((len(ids), vectors.shape[1]), dtype=np.float32)
                elif out.shape[1] != vectors.shape[1]:
                    raise EmbeddingError(
                        f"Member {member.name!r}: cached vectors have dimension {out.shape[1]} "
                        f"but the model gives {vectors.shape[1]}; use a new cache_dir."
                    )
                out[rows] = vectors
                if cache is not None:
                    cache.put([ids[r] for r in rows], [hashes[r] for r in rows], vectors)
                bar.update(len(rows))
            bar.close()
            assert out is not None
            parts.append(out)
        return np.concatenate(parts, axis=1)

    def member_slices(self) -> list[slice]:
        """Column ranges of each member in the concatenated vectors (known after the first encode)."""
        if any(d is None for d in self._dims):
            raise RuntimeError("member_slices() is known after the first encode call.")
        bounds = np.cumsum([0, *[int(d) for d in self._dims if d is not None]])
        return [slice(int(a), int(b)) for a, b in itertools.pairwise(bounds)]

    def __repr__(self) -> str:
        return f"EmbedderEnsemble(models={self.names}, cache_dir={self.cache_dir})"
