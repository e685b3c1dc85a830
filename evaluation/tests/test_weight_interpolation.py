"""experiments/weight_interpolation/weight_interpolation.py: the weight-space mixture of the start and the fine-tuned model, by hand."""

import pytest
import torch


@pytest.fixture
def wi(repo_script):
    return repo_script("experiments.weight_interpolation.weight_interpolation")


def test_interpolated_weights_by_hand(wi):
    start = {"w": torch.tensor([0.0, 2.0]), "ids": torch.tensor([1, 2])}
    tuned = {"w": torch.tensor([1.0, 4.0]), "ids": torch.tensor([3, 4])}
    assert wi.interpolate_state(start, tuned, 0.0)["w"].tolist() == [0.0, 2.0]
    assert wi.interpolate_state(start, tuned, 1.0)["w"].tolist() == [1.0, 4.0]
    assert wi.interpolate_state(start, tuned, 0.25)["w"].tolist() == [0.25, 2.5]
    assert wi.interpolate_state(start, tuned, 2.0)["w"].tolist() == [2.0, 6.0]  # past the fine-tuned model
    assert wi.interpolate_state(start, tuned, 0.5)["ids"].tolist() == [
        3,
        4,
    ]  # integer buffers: the tuned ones


def test_interpolating_a_real_model_with_itself_changes_nothing(wi, minilm):
    state = minilm.state_dict()
    mixed = wi.interpolate_state(state, state, 0.3)
    assert mixed.keys() == state.keys()
    assert all(torch.allclose(mixed[k].float(), state[k].float(), atol=1e-6) for k in state)
