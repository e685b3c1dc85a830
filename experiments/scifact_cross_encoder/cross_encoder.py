"""A cross-encoder trained on SciFact's train claims, scored alone, fused and as the slow stage of a cascade.

Issue 24 asks for the best cross-encoder that 809 judged questions can train offline, reported beside the
bi-encoder rows. No pretrained cross-encoder can be installed here, so the student starts from all-MiniLM-L6-v2
with an untrained one-logit head (:func:`hn_plugins.training.model_folder.load_base_model`). It learns by
listwise distillation (:class:`~hn_plugins.training.losses.CrossEncoderListwiseDistillationLoss`) from the
benchmark's ``zero-shot+fusion`` row (the untuned bi-encoder fused with BM25, weight chosen on the train claims):

1. BM25 retrieves the top 100 of every train and test claim (:func:`first_stage_run`, as ``hn benchmark`` does).
2. The bi-encoder embeds each candidate once; the teacher's score of a candidate is the z-score fusion of its
   cosine and its BM25 score (:func:`hn_plugins.fusion.fuse_scores`).
3. A seeded share of the train claims is held out (validation); every (claim, positive) pair of the rest gives a
   training list: the positive and the teacher's ``list_size - 1`` best non-positive candidates (hard negatives),
   labelled with the teacher's scores, the positive lifted ``positive_lift`` above the best negative (the
   judgment overrides the teacher where they disagree).
4. Training keeps the epoch with the best MRR@10 on the validation claims, reranking the teacher's top
   ``validation_k``.
5. Optional second stages (``--triplets NAME=FILE``): the distilled student fine-tuned with the paper's triplet
   margin loss (:class:`~hn_plugins.training.losses.CrossEncoderTripletMarginLoss`) on the negatives of an
   ``hn mine`` output, restricted to the training claims.

The student best on the validation claims (``--score-students all``: every student) then scores each claim's
BM25 top 100 once; the rows are orders of those scores (the student alone; fused with BM25; fused with the
teacher; as a cascade that re-orders the teacher's top ``k``), the fusion weights chosen on the validation claims. MRR@10 per test claim, means on ``test`` and on ``test-unseen``, and
paired permutation p-values against ``zero-shot+fusion`` (and against a benchmark report's row, e.g. the
reduced run's ``default``, with ``--compare-report``) go to ``--out``::

    hn mine ../shared/data/scifact --selector paper --out triplets/paper.jsonl --cache CACHE
    hn mine ../shared/data/scifact --selector default --out triplets/default.jsonl --cache CACHE
    python experiments/scifact_cross_encoder/cross_encoder.py --data ../shared/data/scifact --max-length 128 \
        --epochs 3 --triplets paper=triplets/paper.jsonl --triplets default=triplets/default.jsonl \
        --compare-report benchmarks/results/scifact_cpu_reduced/benchmark_scifact/report.json \
        --out experiments/scifact_cross_encoder/results/cpu_reduced.json
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import random
import shutil
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hn_evaluation.benchmark.scoring import first_stage_run, load_bi_encoder
from hn_evaluation.significance import paired_permutation_test
from hn_plugins.data import DatasetError, RetrievalDataset, load_beir
from hn_plugins.fusion import (
    FUSION_WEIGHTS,
    best_fusion_weight,
    choose_fusion_weight,
    fuse_scores,
    normalize_scores,
)
from hn_plugins.metrics import mrr_at_k_of_order
from hn_plugins.scoring import encode_normalized
from hn_plugins.training.arguments import EpochSchedule, best_epoch_arguments

logger = logging.getLogger("scifact_cross_encoder")

Run = Mapping[str, Sequence[tuple[str, float]]]


@dataclass(frozen=True)
class StudentSettings:
    """How the cross-encoder student is trained.

    Args:
        base_model: the transformer the student starts from (its one-logit head starts untrained).
        max_length: tokens per (claim, abstract) pair; also the bi-encoder's limit per text.
        list_size: documents per training list (the positive and ``list_size - 1`` hard negatives).
        positive_lift: how far the positive's label sits above the best negative's (teacher score units).
        teacher_temperature: sharpness of the teacher's softmax in the distillation loss.
        epochs: maximum distillation epochs (the best on the validation claims is kept).
        lr: learning rate of the transformer.
        head_lr: learning rate of the untrained head.
        batch_size: lists per step.
        validation_fraction: share of the train claims held out for model and weight choice.
        validation_k: candidates per validation claim (the teacher's top ``k``).
        triplet_epochs: epochs of each triplet-margin second stage.
        triplet_margin: margin of the triplet loss, in logits.
        seed: seeds the split, initialisation and data order.
    """

    base_model: str = "all-MiniLM-L6-v2"
    max_length: int = 128
    list_size: int = 8
    positive_lift: float = 1.0
    teacher_temperature: float = 0.5
    epochs: int = 2
    lr: float = 3e-5
    head_lr: float = 1e-3
    batch_size: int = 8
    validation_fraction: float = 0.2
    validation_k: int = 20
    triplet_epochs: int = 1
    triplet_margin: float = 1.0
    seed: int = 0


@dataclass
class Candidates:
    """One split's first-stage candidates and the scores every row is built from.

    Attributes:
        ids: ``{claim id: [doc id, ...]}``, BM25's order.
        bm25: ``{claim id: BM25 scores}`` aligned with ``ids``.
        cosine: ``{claim id: bi-encoder cosines}`` aligned with ``ids``.
        relevant: ``{claim id: bool flags}`` aligned with ``ids``.
    """

    ids: dict[str, list[str]]
    bm25: dict[str, np.ndarray]
    cosine: dict[str, np.ndarray] = field(default_factory=dict)
    relevant: dict[str, np.ndarray] = field(default_factory=dict)

    @classmethod
    def from_run(cls, dataset: RetrievalDataset, run: Run) -> Candidates:
        """The candidates of ``run``, relevance flags from ``dataset``'s judgments."""
        ids = {q: [d for d, _ in ranked] for q, ranked in run.items()}
        bm25 = {q: np.array([s for _, s in ranked], dtype=np.float64) for q, ranked in run.items()}
        relevant = {q: np.array([d in dataset.positives(q) for d in ids[q]], dtype=bool) for q in ids}
        return cls(ids=ids, bm25=bm25, relevant=relevant)

    def subset(self, query_ids: Sequence[str]) -> Candidates:
        """The same candidates for ``query_ids`` only."""
        return Candidates(
            ids={q: self.ids[q] for q in query_ids},
            bm25={q: self.bm25[q] for q in query_ids},
            cosine={q: self.cosine[q] for q in query_ids if q in self.cosine},
            relevant={q: self.relevant[q] for q in query_ids},
        )


def teacher_scores(cands: Candidates, weight: float) -> dict[str, np.ndarray]:
    """The ``zero-shot+fusion`` score of every candidate: z-scored cosine and BM25 mixed by ``weight``.

    Example:
        >>> c = Candidates(ids={"q": ["a", "b"]}, bm25={"q": np.array([2.0, 1.0])},
        ...                cosine={"q": np.array([0.1, 0.9])}, relevant={"q": np.array([False, True])})
        >>> teacher_scores(c, 1.0)["q"].tolist()
        [-1.0, 1.0]
    """
    return {q: fuse_scores(cands.cosine[q], cands.bm25[q], weight) for q in cands.ids}


def training_lists(
    dataset: RetrievalDataset,
    cands: Candidates,
    teacher: Mapping[str, np.ndarray],
    list_size: int,
    positive_lift: float,
) -> list[dict[str, Any]]:
    """One distillation row per (claim, positive): the positive, then the teacher's best non-positives.

    The labels are the teacher's scores of the negatives; the positive's label is the larger of its own teacher
    score (when BM25 retrieved it) and the best negative's plus ``positive_lift``. Claims with fewer than
    ``list_size - 1`` non-positive candidates are skipped.

    Args:
        dataset: the split whose judgments and texts are used.
        cands: that split's candidates.
        teacher: :func:`teacher_scores` of ``cands``.
        list_size: documents per row.
        positive_lift: the positive's minimum lead over the best negative.

    Returns:
        rows ``{"query", "document_1", ..., "document_<list_size>", "label"}`` (document_1 is the positive).

    Example:
        >>> ds = RetrievalDataset({"a": ("", "A"), "b": ("", "B"), "c": ("", "C")}, {"q": "Q"}, {"q": {"a": 1}})
        >>> c = Candidates(ids={"q": ["b", "c", "a"]}, bm25={"q": np.zeros(3)}, relevant={"q": np.array([0, 0, 1], bool)})
        >>> row = training_lists(ds, c, {"q": np.array([0.5, 0.2, 0.9])}, 3, 1.0)[0]
        >>> [row["document_1"], row["document_2"], row["document_3"]], row["label"]
        (['A', 'B', 'C'], [1.5, 0.5, 0.2])
    """
    if list_size < 2:
        raise ValueError(f"list_size must be >= 2 (a positive and a negative), got {list_size}.")
    rows: list[dict[str, Any]] = []
    for qid, doc_ids in cands.ids.items():
        scores = np.asarray(teacher[qid], dtype=np.float64)
        order = np.argsort(-scores, kind="stable")
        negatives = [int(j) for j in order if not cands.relevant[qid][j]][: list_size - 1]
        if len(negatives) < list_size - 1:
            continue
        neg_labels = [float(scores[j]) for j in negatives]
        own = {doc_ids[j]: float(scores[j]) for j in np.flatnonzero(cands.relevant[qid])}
        for pos in sorted(dataset.positives(qid)):
            label = max(own.get(pos, -np.inf), neg_labels[0] + positive_lift)
            row: dict[str, Any] = {"query": dataset.queries[qid], "document_1": dataset.document_text(pos)}
            for i, j in enumerate(negatives):
                row[f"document_{i + 2}"] = dataset.document_text(doc_ids[j])
            row["label"] = [label, *neg_labels]
            rows.append(row)
    return rows


def triplet_rows(
    dataset: RetrievalDataset, triplets_path: Path, query_ids: Sequence[str]
) -> list[dict[str, str]]:
    """(claim, positive, negative) rows of an ``hn mine`` output, for the claims in ``query_ids`` only.

    Raises:
        DatasetError: the file names a document the corpus lacks.
    """
    keep = set(query_ids)
    rows = []
    with triplets_path.open(encoding="utf-8") as fh:
        for line_no, line in enumerate(fh, 1):
            record = json.loads(line)
            if record["query_id"] not in keep:
                continue
            for neg in record.get("negative_ids") or []:
                for doc in (record["positive_id"], neg):
                    if doc not in dataset.corpus:
                        raise DatasetError(
                            f"{triplets_path}:{line_no} names document {doc!r}, which {dataset.name} lacks; "
                            "mine the same dataset folder."
                        )
                rows.append(
                    {
                        "query": dataset.queries[record["query_id"]],
                        "positive": dataset.document_text(record["positive_id"]),
                        "negative": dataset.document_text(neg),
                    }
                )
    return rows


def cascade_order(fast: np.ndarray, slow: np.ndarray, k: int) -> np.ndarray:
    """Candidate positions ordered by ``fast``, its top ``k`` re-ordered by ``slow`` (ties keep ``fast``'s order).

    Example:
        >>> cascade_order(np.array([3.0, 2.0, 1.0, 0.0]), np.array([0.0, 1.0, 5.0, 9.0]), 3).tolist()
        [2, 1, 0, 3]
    """
    order = np.argsort(-fast, kind="stable")
    head = order[:k]
    head = head[np.argsort(-slow[head], kind="stable")]
    return np.concatenate([head, order[k:]])


def reciprocal_ranks(
    cands: Candidates, order_of: Mapping[str, np.ndarray], query_ids: Sequence[str]
) -> np.ndarray:
    """MRR@10 of each claim in ``query_ids`` under the candidate orders ``order_of``."""
    return np.array([mrr_at_k_of_order(order_of[q], cands.relevant[q], 10) for q in query_ids])


def by_score(scores: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Each claim's candidate positions, best score first (ties: first-stage order)."""
    return {q: np.argsort(-np.asarray(s), kind="stable") for q, s in scores.items()}


def choose_weight(
    cands: Candidates, reranker: Mapping[str, np.ndarray], first: Mapping[str, np.ndarray]
) -> tuple[float, dict[float, float]]:
    """The fusion weight of ``reranker`` with ``first`` that maximises MRR@10 on ``cands``' claims."""
    queries = [(reranker[q], first[q], cands.relevant[q]) for q in cands.ids]
    return choose_fusion_weight(queries, weights=FUSION_WEIGHTS)


def choose_cascade_weight(
    cands: Candidates, slow: Mapping[str, np.ndarray], fast: Mapping[str, np.ndarray], k: int
) -> tuple[float, dict[float, float]]:
    """The weight of ``slow`` fused with ``fast`` inside the fast stage's top ``k`` that maximises MRR@10."""
    curve = {}
    for w in FUSION_WEIGHTS:
        orders = {q: fused_cascade_order(fast[q], slow[q], k, w) for q in cands.ids}
        curve[float(w)] = float(np.mean(reciprocal_ranks(cands, orders, list(cands.ids))))
    return best_fusion_weight(curve), curve


def fused_cascade_order(fast: np.ndarray, slow: np.ndarray, k: int, weight: float) -> np.ndarray:
    """Cascade order whose slow stage is ``slow`` fused with ``fast``, normalised over the top ``k`` only."""
    order = np.argsort(-fast, kind="stable")
    head = order[:k]
    mixed = weight * normalize_scores(slow[head]) + (1 - weight) * normalize_scores(fast[head])
    return np.concatenate([head[np.argsort(-mixed, kind="stable")], order[k:]])


def embed_candidates(model: Any, splits: Sequence[tuple[RetrievalDataset, Candidates]]) -> None:
    """Fill each split's ``cosine`` with the bi-encoder's cosine of claim and candidate (each text encoded once).

    Args:
        model: the bi-encoder.
        splits: ``(dataset, candidates)`` pairs over one corpus.
    """
    dataset = splits[0][0]
    doc_ids = list(dict.fromkeys(d for _, c in splits for ids in c.ids.values() for d in ids))
    started = time.perf_counter()
    vectors = encode_normalized(model, [dataset.document_text(d) for d in doc_ids], batch_size=64)
    row = {d: i for i, d in enumerate(doc_ids)}
    logger.info("Bi-encoder: %d candidate documents in %.0f s.", len(doc_ids), time.perf_counter() - started)
    for split, c in splits:
        qids = list(c.ids)
        q_vecs = encode_normalized(model, [split.queries[q] for q in qids], batch_size=64)
        for q, qv in zip(qids, q_vecs, strict=True):
            c.cosine[q] = vectors[[row[d] for d in c.ids[q]]] @ qv


def score_pairs(model: Any, dataset: RetrievalDataset, cands: Candidates) -> dict[str, np.ndarray]:
    """The cross-encoder's logit for every (claim, candidate) of ``cands``."""
    out = {}
    for q, ids in cands.ids.items():
        pairs = [(dataset.queries[q], dataset.document_text(d)) for d in ids]
        out[q] = np.asarray(model.predict(pairs, batch_size=64, show_progress_bar=False), dtype=np.float64)
    return out


def _summary(values: np.ndarray, query_ids: Sequence[str], subset: Sequence[str]) -> dict[str, float | None]:
    index = {q: i for i, q in enumerate(query_ids)}
    sub = [index[q] for q in subset]
    return {"mrr@10": float(values.mean()), "mrr@10_unseen": float(values[sub].mean()) if sub else None}


def train_stage(
    model: Any,
    rows: list[dict[str, Any]],
    loss: Any,
    evaluator: Any,
    work: Path,
    settings: StudentSettings,
    epochs: int,
    head: bool,
) -> dict[str, Any]:
    """Train ``model`` on ``rows``; keep the epoch best on ``evaluator``; return its history and seconds."""
    from datasets import Dataset
    from sentence_transformers.cross_encoder import CrossEncoderTrainer, CrossEncoderTrainingArguments

    schedule = EpochSchedule(
        epochs=epochs,
        batch_size=settings.batch_size,
        lr=settings.lr,
        seed=settings.seed,
        head_lr=settings.head_lr if head else None,
    )
    if work.exists():
        shutil.rmtree(work)
    trainer = CrossEncoderTrainer(
        model=model,
        args=CrossEncoderTrainingArguments(**best_epoch_arguments(work, schedule, len(rows), evaluator.name)),
        train_dataset=Dataset.from_list(rows),
        loss=loss,
        evaluator=evaluator,
    )
    started = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - started
    history = [
        {"epoch": float(h.get("epoch", 0.0)), "mrr@10": float(h["eval_validation_mrr@10"])}
        for h in trainer.state.log_history
        if "eval_validation_mrr@10" in h
    ]
    shutil.rmtree(work, ignore_errors=True)
    documents = sum(
        len(r) - 1 - ("label" in r) for r in rows
    )  # document columns: all keys but query and label
    epochs_run = max(h["epoch"] for h in history)
    return {
        "rows": len(rows),
        "history": history,
        "train_s": round(seconds, 1),  # validation included
        "pairs_per_s": round(documents * epochs_run / seconds, 2),
    }


def best_validation(stage: Mapping[str, Any]) -> float:
    """A stage's validation MRR@10 of the model it kept (its best trained epoch).

    Example:
        >>> best_validation({"history": [{"epoch": 0.0, "mrr@10": 0.9}, {"epoch": 1.0, "mrr@10": 0.4}]})
        0.4
    """
    trained = [h["mrr@10"] for h in stage["history"] if h["epoch"] > 0] or [
        h["mrr@10"] for h in stage["history"]
    ]
    return float(max(trained))


def choose_students(stages: Mapping[str, Mapping[str, Any]], which: str) -> list[str]:
    """The students scored on the test claims: ``all``, or (``best``) the one best on the validation claims.

    Example:
        >>> stages = {"a": {"history": [{"epoch": 1.0, "mrr@10": 0.5}]}, "b": {"history": [{"epoch": 1.0, "mrr@10": 0.6}]}}
        >>> choose_students(stages, "best"), choose_students(stages, "all")
        (['b'], ['a', 'b'])
    """
    if which == "all":
        return list(stages)
    if which != "best":
        raise ValueError(f"--score-students must be 'best' or 'all', got {which!r}.")
    return [max(stages, key=lambda n: best_validation(stages[n]))]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="the SciFact BEIR folder")
    p.add_argument("--out", required=True, help="results JSON")
    p.add_argument(
        "--models-dir", default="models/scifact_cross_encoder", help="where the students are saved"
    )
    p.add_argument(
        "--subset-split", default="test-unseen", help="qrels file of the test subset also reported"
    )
    p.add_argument(
        "--compare-report", help="a benchmark report.json of the same data: its rows are compared too"
    )
    p.add_argument("--compare-rows", default="default,zero-shot+fusion", help="rows of --compare-report")
    p.add_argument(
        "--triplets",
        action="append",
        default=[],
        metavar="NAME=FILE",
        help="a triplet-margin second stage on the negatives of an `hn mine` output (repeatable)",
    )
    p.add_argument(
        "--score-students",
        default="best",
        choices=["best", "all"],
        help="score every student on the test claims, or only the one best on validation (default)",
    )
    p.add_argument("--cascade-k", default="10,20,30", help="cascade depths")
    p.add_argument("--max-train-queries", type=int, help="use only this many train claims (smoke runs)")
    p.add_argument("--max-test-queries", type=int, help="use only this many test claims (smoke runs)")
    for f in StudentSettings.__dataclass_fields__.values():
        p.add_argument(f"--{f.name.replace('_', '-')}", type=type(f.default), default=f.default)
    return p.parse_args(argv)


def _sample(ids: list[str], n: int | None, seed: int) -> list[str]:
    if n is None or n >= len(ids):
        return ids
    return sorted(random.Random(seed).sample(ids, n), key=ids.index)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    settings = StudentSettings(**{k: getattr(args, k) for k in StudentSettings.__dataclass_fields__})
    started = time.perf_counter()
    timings: dict[str, float] = {}
    train, test = load_beir(args.data, split="train"), load_beir(args.data, split="test")
    subset_ids = set(load_beir(args.data, split=args.subset_split).qrels)
    train = train.subset(_sample(sorted(train.qrels, key=_numeric), args.max_train_queries, settings.seed))
    test = test.subset(_sample(sorted(test.qrels, key=_numeric), args.max_test_queries, settings.seed))

    t0 = time.perf_counter()
    train_c = Candidates.from_run(train, first_stage_run(train, "bm25", 100))
    test_c = Candidates.from_run(test, first_stage_run(test, "bm25", 100))
    timings["bm25_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    embed_candidates(
        load_bi_encoder(settings.base_model, settings.max_length), [(train, train_c), (test, test_c)]
    )
    timings["bi_encoder_s"] = time.perf_counter() - t0

    teacher_w, _ = choose_weight(train_c, train_c.cosine, train_c.bm25)
    teacher_train, teacher_test = teacher_scores(train_c, teacher_w), teacher_scores(test_c, teacher_w)
    qids = list(train_c.ids)
    rng = random.Random(settings.seed)
    shuffled = qids[:]
    rng.shuffle(shuffled)
    n_val = max(1, round(settings.validation_fraction * len(qids)))
    val_ids, fit_ids = sorted(shuffled[:n_val], key=_numeric), sorted(shuffled[n_val:], key=_numeric)
    val_c, fit_c = train_c.subset(val_ids), train_c.subset(fit_ids)
    rows = training_lists(train, fit_c, teacher_train, settings.list_size, settings.positive_lift)

    from hn_plugins.training.evaluator import RerankingMRREvaluator
    from hn_plugins.training.fit import seed_everything
    from hn_plugins.training.losses import CrossEncoderListwiseDistillationLoss, CrossEncoderTripletMarginLoss
    from hn_plugins.training.model_folder import load_base_model

    val_candidates = {
        q: [val_c.ids[q][j] for j in np.argsort(-teacher_train[q], kind="stable")[: settings.validation_k]]
        for q in val_ids
    }
    evaluator = RerankingMRREvaluator(
        train.subset(val_ids), candidates=val_candidates, name="validation", batch_size=64, write_csv=False
    )
    seed_everything(settings.seed)
    model, _ = load_base_model(settings.base_model, "cross", max_length=settings.max_length)
    models_dir = Path(args.models_dir)
    stages: dict[str, dict[str, Any]] = {}
    loss = CrossEncoderListwiseDistillationLoss(model, teacher_temperature=settings.teacher_temperature)
    stages["distilled"] = train_stage(
        model, rows, loss, evaluator, models_dir / "work", settings, settings.epochs, head=True
    )
    model.save(str(models_dir / "distilled"))
    students = {"distilled": models_dir / "distilled"}
    for spec in args.triplets:
        name, _, path = spec.partition("=")
        seed_everything(settings.seed)
        student, _ = load_base_model(str(models_dir / "distilled"), "cross", max_length=settings.max_length)
        t_rows = triplet_rows(train, Path(path), fit_ids)
        loss_t = CrossEncoderTripletMarginLoss(student, margin=settings.triplet_margin)
        stages[name] = train_stage(
            student,
            t_rows,
            loss_t,
            evaluator,
            models_dir / "work",
            settings,
            settings.triplet_epochs,
            head=False,
        )
        student.save(str(models_dir / name))
        students[name] = models_dir / name

    chosen = choose_students(stages, args.score_students)
    logger.info(
        "Scoring %s on the test claims (validation MRR@10: %s).",
        chosen,
        {n: best_validation(st) for n, st in stages.items()},
    )
    test_ids = list(test_c.ids)
    unseen = [q for q in test_ids if q in subset_ids]
    orders: dict[str, dict[str, np.ndarray]] = {
        "none": {q: np.arange(len(test_c.ids[q])) for q in test_ids},
        "zero-shot": by_score(test_c.cosine),
        "zero-shot+fusion": by_score(teacher_test),
    }
    weights: dict[str, Any] = {"zero-shot+fusion": teacher_w}
    from sentence_transformers.cross_encoder import CrossEncoder

    for name in chosen:
        ce = CrossEncoder(str(students[name]), max_length=settings.max_length)
        t0 = time.perf_counter()
        val_scores, test_scores = score_pairs(ce, train, val_c), score_pairs(ce, test, test_c)
        timings[f"score_{name}_s"] = time.perf_counter() - t0
        orders[f"ce-{name}"] = by_score(test_scores)
        w_b, _ = choose_weight(val_c, val_scores, val_c.bm25)
        orders[f"ce-{name}+bm25"] = by_score(
            {q: fuse_scores(test_scores[q], test_c.bm25[q], w_b) for q in test_ids}
        )
        w_t, _ = choose_weight(val_c, val_scores, teacher_train)
        orders[f"ce-{name}+teacher"] = by_score(
            {q: fuse_scores(test_scores[q], teacher_test[q], w_t) for q in test_ids}
        )
        weights[f"ce-{name}+bm25"], weights[f"ce-{name}+teacher"] = w_b, w_t
        for k in (int(x) for x in args.cascade_k.split(",")):
            orders[f"cascade@{k}-{name}"] = {
                q: cascade_order(teacher_test[q], test_scores[q], k) for q in test_ids
            }
            w_c, _ = choose_cascade_weight(val_c, val_scores, teacher_train, k)
            orders[f"cascade@{k}+fusion-{name}"] = {
                q: fused_cascade_order(teacher_test[q], test_scores[q], k, w_c) for q in test_ids
            }
            weights[f"cascade@{k}+fusion-{name}"] = w_c

    values = {row: reciprocal_ranks(test_c, o, test_ids) for row, o in orders.items()}
    external = _external_rows(args, test_ids, values["none"]) if args.compare_report else {}
    values.update(external)
    results = _results(values, test_ids, unseen, list(external))
    timings["total_s"] = time.perf_counter() - started
    report = {
        "dataset": Path(args.data).name,
        "command": " ".join([Path(sys.argv[0]).as_posix(), *(argv if argv is not None else sys.argv[1:])]),
        "settings": asdict(settings),
        "train_claims": len(fit_ids),
        "validation_claims": len(val_ids),
        "test_claims": len(test_ids),
        "subset_claims": len(unseen),
        "training_lists": len(rows),
        "fusion_weights": weights,
        "stages": stages,
        "scored_students": chosen,
        "rows": results,
        "per_query": {
            row: dict(zip(test_ids, v.round(6).tolist(), strict=True)) for row, v in values.items()
        },
        "timings_s": {k: round(v, 1) for k, v in timings.items()},
        "machine": {"platform": platform.platform(), "processor": platform.processor()},
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=1), encoding="utf-8")
    logger.info("Wrote %s.", args.out)
    return report


def _numeric(qid: str) -> tuple[int, str]:
    return (int(qid), qid) if qid.isdigit() else (10**12, qid)


def _external_rows(args: argparse.Namespace, test_ids: list[str], none: np.ndarray) -> dict[str, np.ndarray]:
    """Rows of ``--compare-report`` (seed mean per claim), after checking its ``none`` row equals this run's."""
    report = json.loads(Path(args.compare_report).read_text(encoding="utf-8"))
    per_seed = report["per_query"]["per_seed"]
    theirs = np.array([np.mean([s[q] for s in per_seed["none"]]) for q in test_ids])
    if not np.allclose(theirs, none, atol=1e-9):
        raise SystemExit(
            f"{args.compare_report}'s none row differs from this run's BM25 on "
            f"{int((~np.isclose(theirs, none)).sum())} claims: not the same candidates, so not comparable."
        )
    out = {}
    for row in args.compare_rows.split(","):
        out[f"report:{row}"] = np.array([np.mean([s[q] for s in per_seed[row]]) for q in test_ids])
    return out


def _results(
    values: Mapping[str, np.ndarray], test_ids: list[str], unseen: list[str], external: list[str]
) -> dict[str, dict[str, Any]]:
    """Means on test and the subset, with p-values against zero-shot+fusion and the external rows."""
    index = {q: i for i, q in enumerate(test_ids)}
    sub = [index[q] for q in unseen]
    refs = ["zero-shot+fusion", *external]
    out: dict[str, dict[str, Any]] = {}
    for row, v in values.items():
        entry: dict[str, Any] = _summary(v, test_ids, unseen)
        for ref in refs:
            if ref == row:
                continue
            r = values[ref]
            entry[f"vs {ref}"] = {"diff": float(v.mean() - r.mean()), "p": paired_permutation_test(v, r)}
            if sub:
                entry[f"vs {ref}"]["diff_unseen"] = float(v[sub].mean() - r[sub].mean())
                entry[f"vs {ref}"]["p_unseen"] = paired_permutation_test(v[sub], r[sub])
        out[row] = entry
    return out


if __name__ == "__main__":
    main()
