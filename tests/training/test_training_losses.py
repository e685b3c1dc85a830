"""Losses against hand computation on a real cross-encoder / bi-encoder and real Cranfield texts."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from hn_plugins.training.losses import (
    BiEncoderTripletLoss,
    CrossEncoderListwiseDistillationLoss,
    CrossEncoderListwiseSoftmaxLoss,
    CrossEncoderTripletMarginLoss,
    build_loss,
)


@pytest.fixture(scope="module")
def base_cross_encoder():
    """A real cross-encoder: all-MiniLM-L6-v2's transformer with a seeded, untrained one-logit head."""
    from sentence_transformers.cross_encoder import CrossEncoder

    from hn_plugins.models import resolve_model_path

    torch.manual_seed(0)
    return CrossEncoder(resolve_model_path("all-MiniLM-L6-v2"), num_labels=1, max_length=96)


@pytest.fixture()
def cross_encoder(base_cross_encoder):
    model = copy.deepcopy(base_cross_encoder)
    model.eval()  # no dropout: the loss must equal the hand computation exactly
    return model


@pytest.fixture(scope="module")
def texts(cranfield_train):
    """Four real (query, positive, negative_1, negative_2) rows from Cranfield train."""
    rows = []
    for qid in cranfield_train.judged_query_ids[:4]:
        pos = sorted(cranfield_train.positives(qid))[0]
        negs = [d for d in cranfield_train.doc_ids if d not in cranfield_train.never_negative(qid)][:2]
        rows.append(
            (
                cranfield_train.queries[qid],
                cranfield_train.document_text(pos),
                cranfield_train.document_text(negs[0]),
                cranfield_train.document_text(negs[1]),
            )
        )
    return rows


def _logits(model, pairs):
    return model.predict(
        pairs, activation_fn=torch.nn.Identity(), convert_to_numpy=True, show_progress_bar=False
    )


def _columns(texts, negatives=1):
    return [
        [r[0] for r in texts],
        [r[1] for r in texts],
        *[[r[2 + i] for r in texts] for i in range(negatives)],
    ]


@pytest.mark.parametrize("margin", [0.0, 0.05, 1.0])
def test_cross_triplet_loss_equals_hand_computation(cross_encoder, texts, margin):
    loss = CrossEncoderTripletMarginLoss(cross_encoder, margin=margin)
    value = loss(_columns(texts, 1), None).item()
    sp = _logits(cross_encoder, [(r[0], r[1]) for r in texts])
    sn = _logits(cross_encoder, [(r[0], r[2]) for r in texts])
    expected = float(np.mean(np.maximum(0.0, margin - sp + sn)))
    assert value == pytest.approx(expected, abs=1e-5)


def test_cross_triplet_loss_averages_over_negatives(cross_encoder, texts):
    loss = CrossEncoderTripletMarginLoss(cross_encoder, margin=1.0)
    value = loss(_columns(texts, 2), None).item()
    sp = _logits(cross_encoder, [(r[0], r[1]) for r in texts])
    sn1 = _logits(cross_encoder, [(r[0], r[2]) for r in texts])
    sn2 = _logits(cross_encoder, [(r[0], r[3]) for r in texts])
    expected = float(np.mean(np.concatenate([np.maximum(0, 1 - sp + sn1), np.maximum(0, 1 - sp + sn2)])))
    assert value == pytest.approx(expected, abs=1e-5)


def test_listwise_loss_equals_cross_entropy_by_hand(cross_encoder, texts):
    loss = CrossEncoderListwiseSoftmaxLoss(cross_encoder, temperature=0.5)
    value = loss(_columns(texts, 2), None).item()
    scores = (
        np.stack([_logits(cross_encoder, [(r[0], r[j]) for r in texts]) for j in (1, 2, 3)], axis=1) / 0.5
    )
    log_softmax = scores - np.log(np.exp(scores).sum(axis=1, keepdims=True))
    assert value == pytest.approx(float(-log_softmax[:, 0].mean()), abs=1e-5)


def test_distillation_loss_equals_kl_by_hand(cross_encoder, texts):
    loss = CrossEncoderListwiseDistillationLoss(cross_encoder, teacher_temperature=0.1)
    teacher = torch.tensor([[0.6, 0.3, 0.1]] * len(texts))
    value = loss(_columns(texts, 2), teacher).item()
    s = np.stack([_logits(cross_encoder, [(r[0], r[j]) for r in texts]) for j in (1, 2, 3)], axis=1)
    log_p = s - np.log(np.exp(s).sum(axis=1, keepdims=True))
    q = np.exp(teacher.numpy() / 0.1)
    q /= q.sum(axis=1, keepdims=True)
    expected = float((q * (np.log(q) - log_p)).sum(axis=1).mean())
    assert value == pytest.approx(expected, abs=1e-5)
    with pytest.raises(ValueError, match="labels have shape"):
        loss(_columns(texts, 2), torch.zeros(len(texts), 2))


def test_cross_triplet_loss_gradient_reaches_head_and_encoder(cross_encoder, texts):
    cross_encoder.train()
    loss = CrossEncoderTripletMarginLoss(cross_encoder, margin=1.0)
    value = loss(_columns(texts, 1), None)
    value.backward()
    grads = {n: p.grad for n, p in cross_encoder.named_parameters() if p.grad is not None}
    assert any("classifier" in n and g.abs().sum() > 0 for n, g in grads.items())
    assert any("encoder.layer.0." in n and g.abs().sum() > 0 for n, g in grads.items())


def test_bi_triplet_loss_equals_hand_computation_and_st_triplet(minilm, texts):
    from sentence_transformers.sentence_transformer.losses import TripletDistanceMetric, TripletLoss

    model = copy.deepcopy(minilm)
    model.eval()
    loss = BiEncoderTripletLoss(model, margin=0.3)
    features = [model.tokenize(col) for col in _columns(texts, 2)]
    value = loss(features, None).item()
    q, p, n1, n2 = (
        model.encode(col, convert_to_numpy=True, normalize_embeddings=True) for col in _columns(texts, 2)
    )
    d_pos = 1 - (q * p).sum(1)
    d1, d2 = 1 - (q * n1).sum(1), 1 - (q * n2).sum(1)
    expected = float(
        np.mean(np.concatenate([np.maximum(0, 0.3 + d_pos - d1), np.maximum(0, 0.3 + d_pos - d2)]))
    )
    assert value == pytest.approx(expected, abs=1e-4)
    # with one negative it is sentence-transformers' TripletLoss with cosine distance
    st = TripletLoss(model, distance_metric=TripletDistanceMetric.COSINE, triplet_margin=0.3)
    three = [model.tokenize(col) for col in _columns(texts, 1)]
    assert loss(three, None).item() == pytest.approx(st(three, None).item(), abs=1e-5)


def test_type_checks_name_the_loss_and_the_model(minilm, cross_encoder):
    from sentence_transformers.cross_encoder import CrossEncoder

    from hn_plugins.models import resolve_model_path

    with pytest.raises(
        ValueError, match="CrossEncoderTripletMarginLoss expects a model of type CrossEncoder, but got"
    ):
        CrossEncoderTripletMarginLoss(minilm)
    with pytest.raises(
        ValueError, match="CrossEncoderListwiseSoftmaxLoss expects a model of type CrossEncoder"
    ):
        CrossEncoderListwiseSoftmaxLoss(minilm)
    with pytest.raises(ValueError, match="BiEncoderTripletLoss expects a model of type SentenceTransformer"):
        BiEncoderTripletLoss(cross_encoder)
    two_labels = CrossEncoder(resolve_model_path("all-MiniLM-L6-v2"), num_labels=2, max_length=32)
    with pytest.raises(ValueError, match="1 output label"):
        CrossEncoderTripletMarginLoss(two_labels)
    with pytest.raises(ValueError, match="margin must be >= 0"):
        CrossEncoderTripletMarginLoss(cross_encoder, margin=-1)


def test_too_few_columns_is_a_clear_error(cross_encoder, texts):
    loss = CrossEncoderTripletMarginLoss(cross_encoder)
    with pytest.raises(ValueError, match=r"expects \(anchor, positive, negative_1, \.\.\.\) columns"):
        loss([[r[0] for r in texts], [r[1] for r in texts]], None)


def test_config_dicts(cross_encoder, minilm):
    assert CrossEncoderTripletMarginLoss(cross_encoder, margin=0.5).get_config_dict() == {
        "margin": 0.5,
        "activation_fn": "torch.nn.modules.linear.Identity",
    }
    assert CrossEncoderListwiseSoftmaxLoss(cross_encoder).get_config_dict()["temperature"] == 1.0
    assert BiEncoderTripletLoss(minilm, margin=0.1).get_config_dict() == {
        "distance_metric": "1 - cosine",
        "margin": 0.1,
    }


def test_build_loss_maps_names_and_refuses_mismatches(cross_encoder, minilm):
    from sentence_transformers.cross_encoder.losses import BinaryCrossEntropyLoss
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    assert isinstance(build_loss(cross_encoder, "cross", "triplet")[0], CrossEncoderTripletMarginLoss)
    assert build_loss(cross_encoder, "cross", "triplet")[0].margin == 1.0
    assert build_loss(cross_encoder, "cross", "listwise")[1] == "n-tuple"
    assert isinstance(build_loss(cross_encoder, "cross", "bce")[0], BinaryCrossEntropyLoss)
    assert isinstance(build_loss(minilm, "bi", "in-batch")[0], MultipleNegativesRankingLoss)
    assert build_loss(minilm, "bi", "triplet")[0].margin == 0.2
    with pytest.raises(ValueError, match="for cross-encoders"):
        build_loss(minilm, "bi", "bce")
    with pytest.raises(ValueError, match="Unknown loss 'hinge'"):
        build_loss(minilm, "bi", "hinge")
