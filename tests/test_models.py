"""Offline mode is read as huggingface_hub reads it, and every loader names the setting that refused a hub name."""

from __future__ import annotations

import os

import pytest

from hn_plugins.models import hub_offline_setting, load_sentence_transformer
from hn_plugins.reranker import RerankerLoadError, load_reranker
from hn_plugins.training.model_folder import describe_base_model

# (environment, the setting the error must name); huggingface_hub: the first non-empty variable decides
OFFLINE = [
    ({"HF_HUB_OFFLINE": "1"}, "HF_HUB_OFFLINE=1"),
    ({"HF_HUB_OFFLINE": "true"}, "HF_HUB_OFFLINE=true"),
    ({"HF_HUB_OFFLINE": "Yes"}, "HF_HUB_OFFLINE=Yes"),
    ({"HF_HUB_OFFLINE": "", "TRANSFORMERS_OFFLINE": "on"}, "TRANSFORMERS_OFFLINE=on"),
]


def _set(monkeypatch, env):
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)


@pytest.mark.parametrize(("env", "setting"), OFFLINE)
def test_every_loader_names_the_offline_setting(monkeypatch, env, setting):
    _set(monkeypatch, env)
    assert hub_offline_setting() == setting
    with pytest.raises(FileNotFoundError, match=setting):
        load_sentence_transformer("some-org/no-such-bi-encoder")
    with pytest.raises(RerankerLoadError, match=setting):
        load_reranker("some-org/no-such-reranker")
    with pytest.raises(FileNotFoundError, match=setting):
        describe_base_model("some-org/no-such-base-model")


ONLINE = [
    {},
    {"HF_HUB_OFFLINE": "0"},
    {"HF_HUB_OFFLINE": "false", "TRANSFORMERS_OFFLINE": "1"},
    {"HF_HUB_OFFLINE": "no"},
]


@pytest.mark.parametrize("env", ONLINE)
def test_online_settings(monkeypatch, env):
    _set(monkeypatch, env)
    assert hub_offline_setting() is None


def test_setting_agrees_with_huggingface_hub(monkeypatch):
    from huggingface_hub import constants

    for env in [e for e, _ in OFFLINE] + ONLINE:
        _set(monkeypatch, env)
        # the expression huggingface_hub evaluates when it is imported
        offline = constants._is_true(
            os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE")
        )
        assert offline is (hub_offline_setting() is not None), env
