"""Training losses for rerankers, written as sentence-transformers losses.

They plug into :class:`~sentence_transformers.cross_encoder.CrossEncoderTrainer` and
:class:`~sentence_transformers.SentenceTransformerTrainer` like the library's own losses: an ``nn.Module`` that
receives the model in ``__init__``, checks its type, tokenises in ``forward(inputs, labels)`` and exposes
``get_config_dict()`` (which feeds the model card).

- :class:`CrossEncoderTripletMarginLoss`: the paper's Eq. 7/9, ``max(0, m + d(q, p) - d(q, n))`` with
  ``d = -s(q, d)``, i.e. ``max(0, m - s(q, p) + s(q, n))`` (sentence-transformers issue #2366 asks for it).
- :class:`BiEncoderTripletLoss`: the paper's Eq. 8 with ``d = 1 - cos``.
- :class:`CrossEncoderListwiseSoftmaxLoss`: softmax cross-entropy over (positive + k negatives), LCE-style.
- :class:`CrossEncoderListwiseDistillationLoss`: KL divergence between a teacher's and the cross-encoder's softmax
  over a list of documents (used by :func:`hn_plugins.training.bootstrap.bootstrap_cross_encoder`).

:func:`build_loss` maps the trainer's loss names (``triplet``, ``listwise``, ``bce``, ``in-batch``) to a loss
module and the row format that loss expects.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
import torch.nn.functional as nnf
from torch import Tensor, nn

from hn_plugins.training.settings import LOSS_NAMES

__all__ = [
    "LOSS_NAMES",
    "BiEncoderTripletLoss",
    "CrossEncoderListwiseDistillationLoss",
    "CrossEncoderListwiseSoftmaxLoss",
    "CrossEncoderTripletMarginLoss",
    "build_loss",
    "default_margin",
]


RowFormat = Literal["triplet", "n-tuple", "labeled-pair", "pair-or-n-tuple"]


def _fullname(obj: Any) -> str:
    cls = obj if isinstance(obj, type) else type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"


def _check_cross_encoder(loss: nn.Module, model: Any) -> None:
    from sentence_transformers.cross_encoder import CrossEncoder

    if not isinstance(model, CrossEncoder):
        raise ValueError(
            f"{loss.__class__.__name__} expects a model of type CrossEncoder, but got a model of type {type(model)}."
        )
    if model.num_labels != 1:
        raise ValueError(
            f"{loss.__class__.__name__} expects a model with 1 output label, but got a model with "
            f"{model.num_labels} output labels. Load it with CrossEncoder(path, num_labels=1)."
        )


def _check_columns(loss: nn.Module, inputs: list[list[str]], minimum: int, what: str) -> None:
    if len(inputs) < minimum:
        raise ValueError(
            f"{loss.__class__.__name__} expects {what} ({minimum} or more text columns), but got a dataset with "
            f"{len(inputs)} column(s)."
        )
    sizes = {len(column) for column in inputs}
    if len(sizes) != 1:
        raise ValueError(
            f"{loss.__class__.__name__}: all columns must have the same length, got sizes {sorted(sizes)}."
        )


class _CrossEncoderListLoss(nn.Module):
    """Shared part: score ``(anchor, column_j)`` for every column in one forward pass -> ``(batch, columns)``."""

    def __init__(self, model: Any, activation_fn: nn.Module | None = None) -> None:
        super().__init__()
        self.model = model
        self.activation_fn = activation_fn if activation_fn is not None else nn.Identity()
        _check_cross_encoder(self, model)

    def score_columns(
        self,
        anchors: list[str],
        candidates: list[list[str]],
        prompt: str | None = None,
        task: str | None = None,
    ) -> Tensor:
        """Scores ``s(anchor_i, candidates[j][i])`` as a ``(batch, len(candidates))`` tensor (raw logits passed
        through ``activation_fn``)."""
        from sentence_transformers.util import batch_to_device

        batch_size = len(anchors)
        pairs = [(anchor, column[i]) for column in candidates for i, anchor in enumerate(anchors)]
        features = self.model.preprocess(pairs, prompt=prompt, task=task)
        features = batch_to_device(features, self.model.device)
        logits = self.model(features)["scores"].view(-1)
        logits = self.activation_fn(logits)
        return logits.view(len(candidates), batch_size).T


class CrossEncoderTripletMarginLoss(_CrossEncoderListLoss):
    def __init__(self, model: Any, margin: float = 1.0, activation_fn: nn.Module | None = None) -> None:
        """Triplet margin loss for a cross-encoder: the paper's Eq. 7/9 with ``d(Q, D) = -s(Q, D)``.

        For each (query, positive, negative) the loss is ``max(0, margin - s(q, p) + s(q, n))``, where ``s`` is the
        cross-encoder's raw score (logit). With several negative columns the loss averages over all
        (row, negative) terms, which equals the paper's sum over triplets up to a constant.

        Args:
            model: a :class:`~sentence_transformers.cross_encoder.CrossEncoder` with ``num_labels=1``.
            margin: the margin ``m`` in score units. Raw logits of MS MARCO rerankers span about -10..10, so the
                default 1.0 asks the positive to beat each negative by one logit.
            activation_fn: applied to the logits before the margin (default identity, i.e. raw scores). Pass
                ``nn.Sigmoid()`` to put the margin on probabilities (then use a margin below 1).

        References:
            - Meghwani et al., *Hard Negative Mining for Domain-Specific Retrieval in Enterprise Systems*,
              ACL 2025 Industry (arXiv 2505.18366), Eq. 7-9.
            - sentence-transformers issue #2366 (triplet loss for cross-encoders).

        Requirements:
            1. A CrossEncoder with ``num_labels = 1``.
            2. (anchor, positive, negative) triplets, or (anchor, positive, negative_1, ..., negative_n) tuples.

        Inputs:
            +-------------------------------------------------+--------+-------------------------------+
            | Inputs                                          | Labels | Number of Model Output Labels |
            +=================================================+========+===============================+
            | (anchor, positive, negative) triplets           | none   | 1                             |
            +-------------------------------------------------+--------+-------------------------------+
            | (anchor, positive, negative_1, ..., negative_n) | none   | 1                             |
            +-------------------------------------------------+--------+-------------------------------+

        Example:
            ::

                from datasets import Dataset
                from sentence_transformers.cross_encoder import CrossEncoder, CrossEncoderTrainer
                from hn_plugins.training.losses import CrossEncoderTripletMarginLoss

                model = CrossEncoder("cross-encoder/ms-marco-MiniLM-L6-v2")
                train_dataset = Dataset.from_dict({
                    "anchor": ["what is a VCN"],
                    "positive": ["A virtual cloud network is a private network in a region."],
                    "negative": ["A VNIC attaches an instance to a subnet."],
                })
                loss = CrossEncoderTripletMarginLoss(model, margin=1.0)
                trainer = CrossEncoderTrainer(model=model, train_dataset=train_dataset, loss=loss)
                trainer.train()
        """
        super().__init__(model, activation_fn)
        if margin < 0:
            raise ValueError(f"{self.__class__.__name__}: margin must be >= 0, got {margin}.")
        self.margin = float(margin)

    def forward(
        self,
        inputs: list[list[str]],
        labels: Tensor | None = None,
        prompt: str | None = None,
        task: str | None = None,
    ) -> Tensor:
        _check_columns(self, inputs, 3, "(anchor, positive, negative_1, ...) columns")
        scores = self.score_columns(inputs[0], inputs[1:], prompt=prompt, task=task)
        return self.compute_loss_from_scores(scores)

    def compute_loss_from_scores(self, scores: Tensor) -> Tensor:
        """``scores``: ``(batch, 1 + k)`` with the positive first -> mean of ``max(0, m - s_p + s_n)``."""
        positive, negatives = scores[:, :1], scores[:, 1:]
        return nnf.relu(self.margin - positive + negatives).mean()

    def get_config_dict(self) -> dict[str, Any]:
        return {"margin": self.margin, "activation_fn": _fullname(self.activation_fn)}

    @property
    def citation(self) -> str:
        return """
@inproceedings{meghwani2025hard,
    title={Hard Negative Mining for Domain-Specific Retrieval in Enterprise Systems},
    author={Meghwani, Hansa and Agarwal, Amit and Pattnayak, Priyaranjan and Patel, Hitesh Laxmichand and Panda, Srikant},
    booktitle={ACL 2025 Industry Track},
    year={2025},
    eprint={2505.18366},
    archivePrefix={arXiv}
}
"""


class CrossEncoderListwiseSoftmaxLoss(_CrossEncoderListLoss):
    def __init__(self, model: Any, temperature: float = 1.0, activation_fn: nn.Module | None = None) -> None:
        """Localized contrastive estimation (LCE): softmax cross-entropy over the positive and its hard negatives.

        For each row the scores ``[s(q, p), s(q, n_1), ..., s(q, n_k)]`` are divided by ``temperature`` and the loss
        is ``-log softmax(scores)[0]``. Unlike in-batch losses every candidate belongs to the row's own query.

        Args:
            model: a :class:`~sentence_transformers.cross_encoder.CrossEncoder` with ``num_labels=1``.
            temperature: divides the logits before the softmax.
            activation_fn: applied to the logits first (default identity).

        References:
            - Gao, Dai, Callan, *Rethink Training of BERT Rerankers in Multi-Stage Retrieval Pipeline*, ECIR 2021
              (arXiv 2101.08751).

        Requirements:
            1. A CrossEncoder with ``num_labels = 1``.
            2. (anchor, positive, negative_1, ..., negative_n) tuples; more negatives per row work better.

        Inputs:
            +-------------------------------------------------+--------+-------------------------------+
            | Inputs                                          | Labels | Number of Model Output Labels |
            +=================================================+========+===============================+
            | (anchor, positive, negative) triplets           | none   | 1                             |
            +-------------------------------------------------+--------+-------------------------------+
            | (anchor, positive, negative_1, ..., negative_n) | none   | 1                             |
            +-------------------------------------------------+--------+-------------------------------+

        Example:
            ::

                from datasets import Dataset
                from sentence_transformers.cross_encoder import CrossEncoder, CrossEncoderTrainer
                from hn_plugins.training.losses import CrossEncoderListwiseSoftmaxLoss

                model = CrossEncoder("cross-encoder/ms-marco-MiniLM-L6-v2")
                train_dataset = Dataset.from_dict({
                    "anchor": ["what is a VCN"],
                    "positive": ["A virtual cloud network is a private network."],
                    "negative_1": ["A VNIC attaches an instance to a subnet."],
                    "negative_2": ["Object storage keeps unstructured data."],
                })
                loss = CrossEncoderListwiseSoftmaxLoss(model)
                trainer = CrossEncoderTrainer(model=model, train_dataset=train_dataset, loss=loss)
                trainer.train()
        """
        super().__init__(model, activation_fn)
        if temperature <= 0:
            raise ValueError(f"{self.__class__.__name__}: temperature must be > 0, got {temperature}.")
        self.temperature = float(temperature)

    def forward(
        self,
        inputs: list[list[str]],
        labels: Tensor | None = None,
        prompt: str | None = None,
        task: str | None = None,
    ) -> Tensor:
        _check_columns(self, inputs, 3, "(anchor, positive, negative_1, ...) columns")
        scores = self.score_columns(inputs[0], inputs[1:], prompt=prompt, task=task)
        return self.compute_loss_from_scores(scores)

    def compute_loss_from_scores(self, scores: Tensor) -> Tensor:
        """``scores``: ``(batch, 1 + k)`` with the positive first -> mean of ``-log softmax(scores / T)[:, 0]``."""
        target = torch.zeros(scores.shape[0], dtype=torch.long, device=scores.device)
        return nnf.cross_entropy(scores / self.temperature, target)

    def get_config_dict(self) -> dict[str, Any]:
        return {"temperature": self.temperature, "activation_fn": _fullname(self.activation_fn)}


class CrossEncoderListwiseDistillationLoss(_CrossEncoderListLoss):
    def __init__(self, model: Any, teacher_temperature: float = 0.05, temperature: float = 1.0) -> None:
        """Distil a teacher's ranking of a document list into a cross-encoder (listwise KL divergence).

        For each row the teacher's scores ``t_j`` (the label, e.g. cosine similarities of an embedding ensemble)
        and the cross-encoder's logits ``s_j`` over the same documents become distributions
        ``softmax(t / teacher_temperature)`` and ``softmax(s / temperature)``; the loss is their KL divergence.
        Only the order and relative gaps of the teacher's scores matter, not their scale.

        Args:
            model: a :class:`~sentence_transformers.cross_encoder.CrossEncoder` with ``num_labels=1``.
            teacher_temperature: sharpness of the teacher's distribution; cosine gaps are small, so 0.05 (as in
                contrastive training of embedders) turns a 0.1 gap into a factor of e^2.
            temperature: divides the student's logits.

        References:
            - Cao et al., *Learning to Rank: From Pairwise Approach to Listwise Approach* (ListNet), ICML 2007.
            - Hofstätter et al., *Improving Efficient Neural Ranking Models with Cross-Architecture Knowledge
              Distillation*, 2020 (arXiv 2010.02666).

        Requirements:
            1. A CrossEncoder with ``num_labels = 1``.
            2. Rows (query, document_1, ..., document_n) with a label list of n teacher scores.

        Inputs:
            +---------------------------------------------+-------------------------+-------------------------------+
            | Inputs                                      | Labels                  | Number of Model Output Labels |
            +=============================================+=========================+===============================+
            | (query, document_1, ..., document_n)        | list of n teacher scores| 1                             |
            +---------------------------------------------+-------------------------+-------------------------------+

        Example:
            ::

                from datasets import Dataset
                from sentence_transformers.cross_encoder import CrossEncoder, CrossEncoderTrainer
                from hn_plugins.training.losses import CrossEncoderListwiseDistillationLoss

                model = CrossEncoder("all-MiniLM-L6-v2-folder", num_labels=1)
                train_dataset = Dataset.from_dict({
                    "query": ["wing flutter"],
                    "document_1": ["Flutter of swept wings at transonic speeds."],
                    "document_2": ["Heat transfer in laminar boundary layers."],
                    "label": [[0.62, 0.11]],
                })
                loss = CrossEncoderListwiseDistillationLoss(model)
                trainer = CrossEncoderTrainer(model=model, train_dataset=train_dataset, loss=loss)
                trainer.train()
        """
        super().__init__(model, None)
        if teacher_temperature <= 0 or temperature <= 0:
            raise ValueError(f"{self.__class__.__name__}: temperatures must be > 0.")
        self.teacher_temperature = float(teacher_temperature)
        self.temperature = float(temperature)

    def forward(
        self,
        inputs: list[list[str]],
        labels: Tensor | list[Tensor] | None,
        prompt: str | None = None,
        task: str | None = None,
    ) -> Tensor:
        _check_columns(self, inputs, 3, "(query, document_1, document_2, ...) columns")
        if labels is None:
            raise ValueError(
                f"{self.__class__.__name__} needs a 'label' column with one teacher score per document."
            )
        teacher = torch.stack([torch.as_tensor(t) for t in labels]) if isinstance(labels, list) else labels
        teacher = teacher.to(self.model.device, dtype=torch.float32)
        if teacher.shape != (len(inputs[0]), len(inputs) - 1):
            raise ValueError(
                f"{self.__class__.__name__}: labels have shape {tuple(teacher.shape)}, expected "
                f"({len(inputs[0])}, {len(inputs) - 1}) (one teacher score per document column)."
            )
        scores = self.score_columns(inputs[0], inputs[1:], prompt=prompt, task=task)
        return self.compute_loss_from_scores(scores, teacher)

    def compute_loss_from_scores(self, scores: Tensor, teacher: Tensor) -> Tensor:
        log_student = nnf.log_softmax(scores / self.temperature, dim=1)
        target = nnf.softmax(teacher / self.teacher_temperature, dim=1)
        return nnf.kl_div(log_student, target, reduction="batchmean")

    def get_config_dict(self) -> dict[str, Any]:
        return {"teacher_temperature": self.teacher_temperature, "temperature": self.temperature}


class BiEncoderTripletLoss(nn.Module):
    def __init__(self, model: Any, margin: float = 0.2) -> None:
        """Triplet loss for a bi-encoder with cosine distance: the paper's Eq. 8 with ``d = 1 - cos``.

        ``loss = max(0, margin + (1 - cos(q, p)) - (1 - cos(q, n)))``, averaged over rows and negative columns.
        With one negative column it equals sentence-transformers' ``TripletLoss`` with
        ``TripletDistanceMetric.COSINE``; unlike that loss it also takes (anchor, positive, negative_1..n) tuples.

        Args:
            model: a :class:`~sentence_transformers.SentenceTransformer`.
            margin: the margin in cosine-distance units (0..2). 0.2 asks the positive to be 0.2 closer.

        References:
            - Meghwani et al., ACL 2025 Industry (arXiv 2505.18366), Eq. 8.
            - Schroff et al., *FaceNet*, CVPR 2015 (the triplet loss).

        Requirements:
            1. A SentenceTransformer model.
            2. (anchor, positive, negative) triplets or (anchor, positive, negative_1, ..., negative_n) tuples.

        Inputs:
            +-------------------------------------------------+--------+
            | Inputs                                          | Labels |
            +=================================================+========+
            | (anchor, positive, negative) triplets           | none   |
            +-------------------------------------------------+--------+
            | (anchor, positive, negative_1, ..., negative_n) | none   |
            +-------------------------------------------------+--------+

        Example:
            ::

                from datasets import Dataset
                from sentence_transformers import SentenceTransformer, SentenceTransformerTrainer
                from hn_plugins.training.losses import BiEncoderTripletLoss

                model = SentenceTransformer("sentence-transformers/all-MiniLM-L6-v2")
                train_dataset = Dataset.from_dict({
                    "anchor": ["what is a VCN"],
                    "positive": ["A virtual cloud network is a private network."],
                    "negative": ["A VNIC attaches an instance to a subnet."],
                })
                loss = BiEncoderTripletLoss(model, margin=0.2)
                trainer = SentenceTransformerTrainer(model=model, train_dataset=train_dataset, loss=loss)
                trainer.train()
        """
        super().__init__()
        from sentence_transformers import SentenceTransformer

        if not isinstance(model, SentenceTransformer):
            raise ValueError(
                f"{self.__class__.__name__} expects a model of type SentenceTransformer, but got a model of type "
                f"{type(model)}."
            )
        if margin < 0:
            raise ValueError(f"{self.__class__.__name__}: margin must be >= 0, got {margin}.")
        self.model = model
        self.margin = float(margin)

    def forward(self, sentence_features: list[dict[str, Tensor]], labels: Tensor | None = None) -> Tensor:
        from sentence_transformers.base.losses.merged_forward import embed_columns

        features = list(sentence_features)
        if len(features) < 3:
            raise ValueError(
                f"{self.__class__.__name__} expects (anchor, positive, negative_1, ...) columns (3 or more), but got "
                f"a dataset with {len(features)} column(s)."
            )
        embeddings = embed_columns(self.model, features)
        return self.compute_loss_from_embeddings(embeddings)

    def compute_loss_from_embeddings(self, embeddings: list[Tensor]) -> Tensor:
        """``embeddings``: [anchor, positive, negative_1, ...], each ``(batch, dim)``."""
        anchor, positive, negatives = embeddings[0], embeddings[1], embeddings[2:]
        d_pos = 1.0 - nnf.cosine_similarity(anchor, positive, dim=-1)
        d_neg = torch.stack([1.0 - nnf.cosine_similarity(anchor, n, dim=-1) for n in negatives], dim=1)
        return nnf.relu(self.margin + d_pos.unsqueeze(1) - d_neg).mean()

    def get_config_dict(self) -> dict[str, Any]:
        return {"distance_metric": "1 - cosine", "margin": self.margin}


def default_margin(kind: Literal["cross", "bi"]) -> float:
    """The margin used when none is given: 1.0 logit for cross-encoders, 0.2 cosine distance for bi-encoders."""
    return 1.0 if kind == "cross" else 0.2


def build_loss(
    model: Any,
    kind: Literal["cross", "bi"],
    loss: str,
    margin: float | None = None,
    in_batch_mini_batch_size: int | None = None,
) -> tuple[nn.Module, RowFormat]:
    """The loss module for a trainer loss name, and the row format it trains on.

    - ``triplet``: :class:`CrossEncoderTripletMarginLoss` / :class:`BiEncoderTripletLoss` on one row per
      (query, positive, negative) triplet;
    - ``listwise``: :class:`CrossEncoderListwiseSoftmaxLoss` on (query, positive, negative_1..k) rows
      (cross-encoders only);
    - ``bce``: sentence-transformers' ``BinaryCrossEntropyLoss`` on labeled pairs (cross-encoders only);
    - ``in-batch``: ``MultipleNegativesRankingLoss`` (bi-encoder; ``CachedMultipleNegativesRankingLoss`` when
      ``in_batch_mini_batch_size`` is set) or the cross-encoder ``MultipleNegativesRankingLoss``, on (query,
      positive) pairs plus mined negatives when every row has one.

    Raises:
        ValueError: an unknown loss name, or a loss that the model kind does not support.
    """
    if loss not in LOSS_NAMES:
        raise ValueError(f"Unknown loss {loss!r}; choose one of {', '.join(LOSS_NAMES)}.")
    if kind not in ("cross", "bi"):
        raise ValueError(f"kind must be 'cross' or 'bi', got {kind!r}.")
    m = default_margin(kind) if margin is None else float(margin)
    if kind == "cross":
        if loss == "triplet":
            return CrossEncoderTripletMarginLoss(model, margin=m), "triplet"
        if loss == "listwise":
            return CrossEncoderListwiseSoftmaxLoss(model), "n-tuple"
        if loss == "bce":
            from sentence_transformers.cross_encoder.losses import BinaryCrossEntropyLoss

            return BinaryCrossEntropyLoss(model), "labeled-pair"
        from sentence_transformers.cross_encoder.losses import (
            MultipleNegativesRankingLoss as CrossEncoderMNRL,
        )

        return CrossEncoderMNRL(model), "pair-or-n-tuple"
    if loss == "triplet":
        return BiEncoderTripletLoss(model, margin=m), "triplet"
    if loss == "in-batch":
        from sentence_transformers.sentence_transformer import losses as st_losses

        if in_batch_mini_batch_size:
            return st_losses.CachedMultipleNegativesRankingLoss(
                model, mini_batch_size=in_batch_mini_batch_size
            ), "pair-or-n-tuple"
        return st_losses.MultipleNegativesRankingLoss(model), "pair-or-n-tuple"
    raise ValueError(
        f"Loss {loss!r} is for cross-encoders; a bi-encoder (kind='bi') trains with 'triplet' or 'in-batch' "
        "('in-batch' also uses the mined negatives as extra candidates, which is the listwise form for bi-encoders)."
    )
