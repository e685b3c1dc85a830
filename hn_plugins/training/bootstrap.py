"""Warm-start a cross-encoder where no pretrained reranker exists, by distilling an embedding teacher.

No labels are needed: every usable document gives a pseudo-query (its title, or its first sentence) whose
"answer" is the rest of that document. The teacher (an :class:`~hn_plugins.embedders.EmbedderEnsemble`, a
sentence-transformers model, or anything with ``encode``) scores each pseudo-query against the source passage, its
nearest neighbours and random documents; the cross-encoder learns to reproduce the teacher's ranking of each list
(:class:`~hn_plugins.training.losses.CrossEncoderListwiseDistillationLoss`). Held-out pseudo-queries measure both
models on the same candidates (MRR@10 of the source passage), so the result says whether the student ranks at
least as well as its teacher.
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hn_plugins import __version__
from hn_plugins.data import DatasetError, RetrievalDataset, join_title_text
from hn_plugins.models import DEFAULT_ENSEMBLE
from hn_plugins.training.arguments import EpochSchedule, best_epoch_arguments
from hn_plugins.training.evaluator import RerankingMRREvaluator, mrr_at_k
from hn_plugins.training.model_folder import (
    CURVE_FILE,
    TrainingError,
    install_folder,
    keep_bottom_layers,
    load_base_model,
    save_staged,
    work_dir_for,
    write_marker_and_card,
)

logger = logging.getLogger(__name__)

__all__ = [
    "BootstrapResult",
    "PseudoQuery",
    "TeacherScorer",
    "bootstrap_cross_encoder",
    "corpus_of",
    "make_pseudo_queries",
]

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


@dataclass(frozen=True)
class PseudoQuery:
    """A query-like text cut from a document, and the rest of that document (its answer)."""

    doc_id: str
    query: str
    passage: str
    source: str  # "title" or "first-sentence"


def make_pseudo_queries(
    corpus: Mapping[str, tuple[str, str]], min_query_words: int = 3, min_passage_words: int = 10
) -> list[PseudoQuery]:
    """One pseudo-query per document that has one: the title (when the text has more), else the first sentence.

    The passage is the document without the pseudo-query (a text that repeats its title loses the repetition), so
    no answer starts with its own query.

    Example:
        >>> text = "Wing flutter at high speed. Experiments on swept wings show flutter above Mach 0.9 in the tunnel."
        >>> [(p.query, p.passage[:20], p.source) for p in make_pseudo_queries({"d1": ("Wing flutter at high speed", text)})]
        [('Wing flutter at high speed', 'Experiments on swept', 'title')]
    """
    out: list[PseudoQuery] = []
    for doc_id, (title, text) in corpus.items():
        title, text = (title or "").strip(), (text or "").strip()
        if title and text and len(title.rstrip(" .").split()) >= min_query_words:
            head = " ".join(title.split()).rstrip(" .").lower()
            flat = " ".join(text.split())
            passage = flat
            while head and passage.lower().startswith(head):  # some abstracts repeat their title, even twice
                passage = passage[len(head) :].lstrip(" .:-,")
            if len(passage.split()) >= min_passage_words:
                out.append(PseudoQuery(doc_id, title.rstrip(" ."), passage, "title"))
                continue
        parts = _SENTENCE_END.split(text, maxsplit=1)
        if (
            len(parts) == 2
            and len(parts[0].split()) >= min_query_words + 1
            and (len(parts[1].split()) >= min_passage_words)
        ):
            out.append(PseudoQuery(doc_id, parts[0].strip(), parts[1].strip(), "first-sentence"))
    return out


class TeacherScorer:
    """Cosine similarities from an embedding teacher.

    Args:
        teacher: an object with ``encode_queries``/``encode_documents`` (:class:`~hn_plugins.embedders.EmbedderEnsemble`),
            an object with ``encode`` (a sentence-transformers model), or a list of model names (an ensemble is built).
        cache_dir: embedding cache of the ensemble built from names.

    Example:
        >>> import numpy as np
        >>> class Toy:
        ...     def encode(self, texts, **kw):
        ...         return np.array([[1.0, float(len(t))] for t in texts])
        >>> TeacherScorer(Toy()).cosine(["ab"], ["ab", "abcdefgh"]).shape
        (1, 2)
    """

    def __init__(self, teacher: Any, cache_dir: str | os.PathLike[str] | None = None) -> None:
        if isinstance(teacher, (str, os.PathLike)):
            teacher = [teacher]
        if isinstance(teacher, Sequence):
            from hn_plugins.embedders import EmbedderEnsemble

            self.names = [str(t) for t in teacher]
            teacher = EmbedderEnsemble(list(teacher), cache_dir=cache_dir)
        else:
            self.names = list(getattr(teacher, "names", [type(teacher).__name__]))
        if not (hasattr(teacher, "encode_queries") or hasattr(teacher, "encode")):
            raise TypeError(
                f"Teacher {type(teacher)} has neither encode_queries/encode_documents nor encode."
            )
        self.teacher = teacher

    @staticmethod
    def _unit(vectors: Any) -> np.ndarray:
        arr = np.asarray(
            vectors.detach().cpu().numpy() if hasattr(vectors, "detach") else vectors, dtype=np.float32
        )
        norms = np.linalg.norm(arr, axis=1, keepdims=True)
        return arr / np.maximum(norms, 1e-12)

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        if hasattr(self.teacher, "encode_queries"):
            return self._unit(self.teacher.encode_queries(list(texts)))
        return self._unit(self.teacher.encode(list(texts)))

    def encode_documents(self, texts: Sequence[str], ids: Sequence[str] | None = None) -> np.ndarray:
        if hasattr(self.teacher, "encode_documents"):
            ids = list(ids) if ids is not None else [f"text-{i}" for i in range(len(texts))]
            return self._unit(self.teacher.encode_documents(ids, list(texts)))
        return self._unit(self.teacher.encode(list(texts)))

    def cosine(self, queries: Sequence[str], documents: Sequence[str]) -> np.ndarray:
        """``(len(queries), len(documents))`` cosine similarities."""
        return self.encode_queries(queries) @ self.encode_documents(documents).T


@dataclass
class BootstrapResult:
    """What :func:`bootstrap_cross_encoder` produced.

    Args:
        path: the cross-encoder folder (marker kind ``"cross"``).
        teacher_mrr10: teacher's MRR@10 on the held-out pseudo-queries.
        student_mrr10: the saved cross-encoder's MRR@10 on the same candidates.
        history: per evaluation ``{"epoch", "step", "mrr@3", "mrr@10"}`` of the student (step 0 = untrained head).
        metrics: counts, timings, MRR@3 of both.

    Example:
        >>> BootstrapResult(Path("m"), 0.61, 0.64, [], {}).reached_teacher
        True
    """

    path: Path
    teacher_mrr10: float
    student_mrr10: float
    history: list[dict[str, float]] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)

    @property
    def reached_teacher(self) -> bool:
        return self.student_mrr10 >= self.teacher_mrr10


def corpus_of(data: RetrievalDataset | Mapping[str, tuple[str, str]]) -> dict[str, tuple[str, str]]:
    """The corpus ``{doc_id: (title, text)}`` of a dataset, or a corpus mapping with its values as strings.

    Raises:
        TypeError: ``data`` is neither.

    Example:
        >>> corpus_of({1: ("T", None)})
        {'1': ('T', '')}
    """
    if isinstance(data, RetrievalDataset):
        return dict(data.corpus)
    if isinstance(data, Mapping):
        return {str(k): (str(v[0] or ""), str(v[1] or "")) for k, v in data.items()}
    raise TypeError(
        f"Expected a RetrievalDataset or a corpus {{doc_id: (title, text)}}, got {type(data).__name__}."
    )


def bootstrap_cross_encoder(
    data: RetrievalDataset | Mapping[str, tuple[str, str]],
    teacher: Any = DEFAULT_ENSEMBLE,
    *,
    base_model: str | os.PathLike[str] = "all-MiniLM-L6-v2",
    output_dir: str | os.PathLike[str] = "models/bootstrap",
    num_pairs: int = 6000,
    neighbours: int = 7,
    random_documents: int = 4,
    held_out_queries: int = 60,
    eval_top_k: int = 20,
    epochs: int = 3,
    lr: float = 3e-5,
    batch_size: int = 8,
    max_length: int | None = 256,
    num_layers: int | None = None,
    teacher_temperature: float = 0.05,
    head_lr: float | None = 1e-3,
    early_stopping_patience: int | None = 2,
    seed: int = 0,
    cache_dir: str | os.PathLike[str] | None = None,
    device: str | None = None,
) -> BootstrapResult:
    """Warm-start a cross-encoder by distilling an embedding teacher's rankings of unlabeled corpus pairs.

    Args:
        data: a dataset (only its corpus is used; no judgment is read) or a corpus ``{doc_id: (title, text)}``.
        teacher: an :class:`~hn_plugins.embedders.EmbedderEnsemble`, a sentence-transformers model, anything with
            ``encode``, or a list of model names (default: all-MiniLM-L6-v2 + the static model).
        base_model: the transformer the cross-encoder starts from (its one-logit head starts untrained).
        output_dir: the model folder (replaced only once the new one is complete).
        num_pairs: training (pseudo-query, document) pairs; each pseudo-query brings ``1 + neighbours +
            random_documents`` of them.
        neighbours: teacher-nearest documents per pseudo-query (besides its source passage).
        random_documents: random documents per pseudo-query.
        held_out_queries: pseudo-queries kept out of training to compare student and teacher.
        eval_top_k: candidates per held-out pseudo-query (the teacher's top-k, source passage included).
        epochs: maximum epochs (the best one on the held-out pseudo-queries is kept).
        lr: learning rate.
        batch_size: pseudo-queries per step.
        max_length: tokens per (query, document) pair.
        num_layers: keep only the base model's first ``num_layers`` transformer layers (a shallower student that
            reranks faster; see :func:`~hn_plugins.training.model_folder.keep_bottom_layers`). ``None``: all.
        teacher_temperature: sharpness of the teacher's softmax in the distillation loss.
        head_lr: learning rate of the new one-logit head (it starts untrained; the transformer keeps ``lr``).
            ``None`` trains the head with ``lr`` too.
        early_stopping_patience: evaluations without improvement before stopping (``None``: never).
        seed: seeds sampling, initialisation and data order.
        cache_dir: embedding cache for an ensemble built from names.
        device: torch device.

    Returns:
        :class:`BootstrapResult` with both MRR@10 values (``reached_teacher`` says whether the student is at least
        as good).

    Raises:
        DatasetError: too few documents give a pseudo-query.

    Example:
        >>> from hn_plugins import load_beir  # doctest: +SKIP
        >>> ds = load_beir("data/cranfield", split="train", empty_documents="drop")  # doctest: +SKIP
        >>> res = bootstrap_cross_encoder(ds, ["all-MiniLM-L6-v2", "static-model"], output_dir="models/ce0")  # doctest: +SKIP
        >>> res.teacher_mrr10, res.student_mrr10  # doctest: +SKIP
    """
    from hn_plugins.training.fit import seed_everything
    from hn_plugins.training.losses import CrossEncoderListwiseDistillationLoss
    from hn_plugins.training.model_card import format_curve

    started = time.perf_counter()
    corpus = corpus_of(data)
    group = 1 + neighbours + random_documents
    if neighbours < 0 or random_documents < 0 or group < 2:
        raise TrainingError(
            "Each pseudo-query needs at least one other document (neighbours + random_documents >= 1)."
        )
    if len(corpus) < group + 1:
        raise DatasetError(f"The corpus has {len(corpus)} documents; bootstrapping needs more than {group}.")
    pseudo = make_pseudo_queries(corpus)
    if len(pseudo) < held_out_queries + 10:
        raise DatasetError(
            f"Only {len(pseudo)} of {len(corpus)} documents give a pseudo-query (a title of 3+ words, or a first "
            f"sentence followed by 10+ words); need {held_out_queries + 10} or more. Lower held_out_queries."
        )
    rng = random.Random(seed)
    rng.shuffle(pseudo)
    held, rest = pseudo[:held_out_queries], pseudo[held_out_queries:]
    train_pq = rest[: max(1, num_pairs // group)]
    seed_everything(seed)
    # the student first: a wrong base model or depth fails before the teacher's encoding
    model, base_info = load_base_model(base_model, "cross", max_length=max_length, device=device)
    if num_layers is not None:
        depth = keep_bottom_layers(model, num_layers)
        logger.info("Student: the first %d of %s's %d layers.", num_layers, base_model, depth)

    # 1. teacher scores: queries vs the corpus, with each query's source replaced by its passage
    scorer = TeacherScorer(teacher, cache_dir=cache_dir)
    ids = list(corpus)
    index = {d: i for i, d in enumerate(ids)}
    texts = [join_title_text(*corpus[d]) for d in ids]
    t0 = time.perf_counter()
    doc_vecs = scorer.encode_documents(texts, ids)
    used = held + train_pq
    q_vecs = scorer.encode_queries([p.query for p in used])
    passage_vecs = scorer.encode_documents([p.passage for p in used], [f"{p.doc_id}#passage" for p in used])
    teacher_seconds = time.perf_counter() - t0
    sims = q_vecs @ doc_vecs.T
    own = np.einsum("ij,ij->i", q_vecs, passage_vecs)
    for row, p in enumerate(used):
        sims[row, index[p.doc_id]] = own[row]

    # 2. held-out evaluation set: teacher top-k with the source passage as the one relevant document
    eval_corpus = dict(corpus)
    eval_queries, eval_qrels, candidates = {}, {}, {}
    teacher_rr10, teacher_rr3 = [], []
    for row, p in enumerate(held):
        pid, qid = f"{p.doc_id}#passage", f"pq-{p.doc_id}"
        eval_corpus[pid] = ("", p.passage)
        order = np.argsort(-sims[row], kind="stable")[:eval_top_k]
        ranked = [pid if ids[j] == p.doc_id else ids[j] for j in order]
        if pid not in ranked:
            ranked[-1] = pid
        cand_scores = np.array([own[row] if d == pid else sims[row, index[d]] for d in ranked])
        teacher_ranked = [ranked[i] for i in np.argsort(-cand_scores, kind="stable")]
        teacher_rr10.append(mrr_at_k(teacher_ranked, {pid}, 10))
        teacher_rr3.append(mrr_at_k(teacher_ranked, {pid}, 3))
        rng.shuffle(ranked)  # the student must not profit from the teacher's order on ties
        eval_queries[qid], eval_qrels[qid], candidates[qid] = p.query, {pid: 1}, ranked
    eval_ds = RetrievalDataset(
        corpus=eval_corpus, queries=eval_queries, qrels=eval_qrels, name="pseudo-queries"
    )
    evaluator = RerankingMRREvaluator(eval_ds, candidates=candidates, name="validation", batch_size=32)
    teacher_mrr10, teacher_mrr3 = float(np.mean(teacher_rr10)), float(np.mean(teacher_rr3))

    # 3. training rows: (query, source passage, neighbours..., random...) with the teacher's scores as labels
    rows: list[dict[str, Any]] = []
    for offset, p in enumerate(train_pq):
        row_i = len(held) + offset
        src = index[p.doc_id]
        by_score = [j for j in np.argsort(-sims[row_i], kind="stable") if j != src]
        near = by_score[:neighbours]
        far_pool = by_score[neighbours:]
        far = rng.sample(far_pool, min(random_documents, len(far_pool)))
        docs = [p.passage] + [texts[j] for j in near + far]
        labels = [float(own[row_i])] + [float(sims[row_i, j]) for j in near + far]
        train_row: dict[str, Any] = {"query": p.query}
        train_row.update({f"document_{i + 1}": d for i, d in enumerate(docs)})
        train_row["label"] = labels
        rows.append(train_row)

    # 4. train the cross-encoder (best epoch on the held-out pseudo-queries is kept)
    from datasets import Dataset
    from sentence_transformers.cross_encoder import CrossEncoderTrainer, CrossEncoderTrainingArguments
    from transformers import EarlyStoppingCallback, TrainerCallback

    loss = CrossEncoderListwiseDistillationLoss(model, teacher_temperature=teacher_temperature)
    out = Path(output_dir).expanduser().resolve()
    work = work_dir_for(out)
    if work.exists():
        shutil.rmtree(work)
    schedule = EpochSchedule(
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        seed=seed,
        head_lr=head_lr if head_lr and base_info.get("head") == "untrained" else None,
    )
    args = CrossEncoderTrainingArguments(**best_epoch_arguments(work, schedule, len(rows), evaluator.name))
    callbacks: list[TrainerCallback] = (
        [EarlyStoppingCallback(early_stopping_patience)] if early_stopping_patience is not None else []
    )
    trainer = CrossEncoderTrainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_list(rows),
        loss=loss,
        evaluator=evaluator,
        callbacks=callbacks,
    )
    logger.info(
        "Bootstrap: %d training pseudo-queries x %d documents, %d held out (teacher MRR@10 %.4f).",
        len(rows),
        group,
        len(held),
        teacher_mrr10,
    )
    t1 = time.perf_counter()
    trainer.train()
    train_seconds = time.perf_counter() - t1
    history = [
        {
            "epoch": float(h.get("epoch", 0.0)),
            "step": int(h["step"]),
            "mrr@3": float(h["eval_validation_mrr@3"]),
            "mrr@10": float(h["eval_validation_mrr@10"]),
        }
        for h in trainer.state.log_history
        if "eval_validation_mrr@10" in h
    ]
    trained = [h for h in history if h["step"] > 0] or history
    best = max(
        trained, key=lambda h: (h["mrr@10"], -h["step"])
    )  # the checkpoint the trainer loaded at the end
    student_mrr10, student_mrr3 = best["mrr@10"], best["mrr@3"]

    metrics = {
        "teacher": scorer.names,
        "teacher_mrr@10": teacher_mrr10,
        "teacher_mrr@3": teacher_mrr3,
        "student_mrr@10": student_mrr10,
        "student_mrr@3": student_mrr3,
        "reached_teacher": student_mrr10 >= teacher_mrr10,
        "pseudo_queries_available": len(pseudo),
        "pseudo_queries_train": len(rows),
        "pseudo_queries_held_out": len(held),
        "pairs": sum(len(r["label"]) for r in rows),
        "pseudo_query_sources": {
            s: sum(p.source == s for p in train_pq) for s in ("title", "first-sentence")
        },
        "documents_per_query": group,
        "eval_top_k": eval_top_k,
        "steps": int(trainer.state.global_step),
        "teacher_seconds": round(teacher_seconds, 1),
        "train_seconds": round(train_seconds, 1),
    }
    staging = save_staged(trainer.model, out)
    hyper = {
        "num_pairs": num_pairs,
        "neighbours": neighbours,
        "random_documents": random_documents,
        "held_out_queries": held_out_queries,
        "epochs": epochs,
        "lr": lr,
        "batch_size": batch_size,
        "max_length": max_length,
        "num_layers": num_layers,
        "teacher_temperature": teacher_temperature,
        "head_lr": head_lr,
        "seed": seed,
    }
    marker = {
        "kind": "cross",
        "hn_plugins_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "base_model": str(base_model),
        "base_model_head": base_info.get("head"),
        "base_model_dtype": base_info.get("loaded_dtype"),
        "data": getattr(data, "name", "corpus"),
        "loss": "listwise-distillation",
        "loss_config": loss.get_config_dict(),
        "bootstrap": {"teacher": scorer.names, **hyper},
        "hyperparameters": hyper,
        "validation_curve": history,
        "metrics": metrics,
    }
    (staging / CURVE_FILE).write_text(json.dumps(history, indent=1), encoding="utf-8")
    depth_note = f" cut to its first {num_layers} layers" if num_layers is not None else ""
    card = [
        f"A cross-encoder warm-started by hn-plugins {__version__} (`hn bootstrap`): `{base_model}`{depth_note} "
        f"with a new one-logit head, trained to reproduce the rankings of the embedding teacher {scorer.names} on "
        f"{len(rows)} unlabeled pseudo-queries of `{marker['data']}` (titles or first sentences of documents, "
        f"each with its source passage, {neighbours} teacher neighbours and {random_documents} random documents).",
        "",
        f"Held-out pseudo-queries ({len(held)}, teacher top-{eval_top_k} candidates): teacher MRR@10 "
        f"{teacher_mrr10:.4f}, this model {student_mrr10:.4f} "
        f"({'at least teacher level' if student_mrr10 >= teacher_mrr10 else 'below the teacher'}).",
        "",
        "```",
        format_curve(history),
        "```",
        "",
        "Fine-tune it on mined hard negatives with `hn train TRIPLETS --base-model <this folder> --kind cross`.",
    ]
    write_marker_and_card(staging, marker, "hn-plugins bootstrapped cross-encoder", card)
    install_folder(staging, out)
    shutil.rmtree(work, ignore_errors=True)
    metrics["seconds"] = round(time.perf_counter() - started, 1)
    logger.info(
        "Bootstrapped cross-encoder saved to %s: MRR@10 %.4f vs teacher %.4f on %d held-out pseudo-queries.",
        out,
        student_mrr10,
        teacher_mrr10,
        len(held),
    )
    return BootstrapResult(
        path=out, teacher_mrr10=teacher_mrr10, student_mrr10=student_mrr10, history=history, metrics=metrics
    )
