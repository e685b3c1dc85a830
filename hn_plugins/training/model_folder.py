"""Model folders written by the trainer and by bootstrap: base-model checks, the marker file, the model card, and
the atomic swap that keeps a previous model folder intact until the new one is complete."""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any, Literal

from hn_plugins.models import hub_offline_setting, resolve_model_path
from hn_plugins.rerankers.base import RERANKER_MARKER
from hn_plugins.rerankers.cross_encoder import transformer_of

logger = logging.getLogger(__name__)

__all__ = [
    "TrainingError",
    "install_folder",
    "keep_bottom_layers",
    "load_base_model",
    "work_dir_for",
    "write_marker_and_card",
]

#: The validation curve next to the model.
CURVE_FILE = "validation_curve.json"


class TrainingError(ValueError):
    """Raised for unusable training inputs (base model, triplets, settings); the message names the fix."""


def _read_config(folder: Path) -> dict[str, Any]:
    try:
        return json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _looks_like_path(text: str) -> bool:
    return text.startswith((".", "/", "~")) or os.path.isabs(text) or text.count("/") > 1 or "\\" in text


def describe_base_model(base_model: str | os.PathLike[str]) -> dict[str, Any]:
    """Where a base model comes from and what it is: ``{"source": "local"|"hub", "path", "architecture",
    "has_reranker_head", "is_sentence_transformer", "marker_kind"}``.

    Raises:
        FileNotFoundError: a path that does not exist, or a hub name while the hub is offline
            (:func:`~hn_plugins.models.hub_offline_setting`).
        TrainingError: a folder that holds no model.
    """
    text = str(base_model)
    resolved = resolve_model_path(text)
    folder = Path(resolved).expanduser()
    if not folder.exists():
        if _looks_like_path(text):
            raise FileNotFoundError(
                f"Base model folder {text} does not exist; pass a model folder or a hub name."
            )
        offline = hub_offline_setting()
        if offline:
            raise FileNotFoundError(
                f"Base model {text!r} is not a local folder or a packaged model, and {offline} forbids the "
                "hub. Pass a local folder (e.g. one written by `hn bootstrap`) or all-MiniLM-L6-v2."
            )
        return {
            "source": "hub",
            "path": text,
            "architecture": None,
            "has_reranker_head": None,
            "is_cross_encoder": None,
            "is_sentence_transformer": None,
            "marker_kind": None,
        }
    if not folder.is_dir():
        raise TrainingError(f"Base model {folder} is a file; pass the model folder.")
    config = _read_config(folder)
    has_modules = (folder / "modules.json").is_file()
    if not config and not has_modules:
        raise TrainingError(
            f"{folder} is not a model folder (no config.json, no modules.json). Pass a sentence-transformers or "
            "cross-encoder folder, a folder written by `hn train`/`hn bootstrap`, or a hub name."
        )
    architectures = config.get("architectures") or []
    marker_kind = None
    if (folder / RERANKER_MARKER).is_file():
        try:
            marker_kind = json.loads((folder / RERANKER_MARKER).read_text(encoding="utf-8")).get("kind")
        except (OSError, ValueError):
            marker_kind = None
    st_type = None
    if (folder / "config_sentence_transformers.json").is_file():
        try:
            st_config = json.loads((folder / "config_sentence_transformers.json").read_text(encoding="utf-8"))
            st_type = st_config.get("model_type")
        except (OSError, ValueError):
            st_type = None
    has_head = any("SequenceClassification" in a for a in architectures)
    is_cross = has_head or st_type == "CrossEncoder" or marker_kind == "cross"
    return {
        "source": "local",
        "path": str(folder),
        "architecture": architectures[0] if architectures else None,
        "has_reranker_head": has_head,
        "is_cross_encoder": is_cross,
        "is_sentence_transformer": has_modules and not is_cross,
        "marker_kind": marker_kind,
    }


def load_base_model(
    base_model: str | os.PathLike[str],
    kind: Literal["cross", "bi"],
    max_length: int | None = None,
    device: str | None = None,
    trust_remote_code: bool = False,
) -> tuple[Any, dict[str, Any]]:
    """Load the starting model for fine-tuning and say what it is.

    - ``kind="cross"``: a cross-encoder folder or hub name loads with its head; a bi-encoder folder (e.g.
      all-MiniLM-L6-v2) becomes a cross-encoder whose one-logit head starts untrained (a warning says so: start from
      ``hn bootstrap`` instead).
    - ``kind="bi"``: a sentence-transformers folder or name; a cross-encoder folder is refused.

    A checkpoint stored in float16 or bfloat16 is cast to float32 (a log line says so): training half-precision
    weights directly diverges.

    Returns:
        ``(model, description)`` with the description of :func:`describe_base_model` plus ``"head": "pretrained" |
        "untrained" | None`` and ``"loaded_dtype"`` (the dtype its weights loaded in, e.g. ``"float16"``).
    """
    info = describe_base_model(base_model)
    path = info["path"]
    if kind == "cross":
        from sentence_transformers.cross_encoder import CrossEncoder

        if info["source"] == "local" and not (Path(path) / "config.json").is_file():
            raise TrainingError(
                f"{path} has no transformer config.json (a static-embedding model?); a cross-encoder needs a "
                "transformer. Pass all-MiniLM-L6-v2 or a cross-encoder folder."
            )
        headless = info["source"] == "local" and not info["has_reranker_head"]
        if headless:
            logger.warning(
                "%s is not a cross-encoder: its one-logit head starts untrained. Measured here, such a start fine-tuned "
                "on small data ends below BM25; warm-start it first with `hn bootstrap` (or train kind='bi').",
                path,
            )
        model = CrossEncoder(
            path, num_labels=1, max_length=max_length, device=device, trust_remote_code=trust_remote_code
        )
        if model.num_labels != 1:
            raise TrainingError(f"{path} is a classifier with {model.num_labels} labels; a reranker needs 1.")
        info["head"] = "untrained" if headless else "pretrained"
        info["loaded_dtype"] = _train_in_float32(model, path)
        return model, info
    if kind != "bi":
        raise TrainingError(f"kind must be 'cross' or 'bi', got {kind!r}.")
    if info["source"] == "local" and info["is_cross_encoder"]:
        raise TrainingError(
            f"{path} holds a cross-encoder (architecture {info['architecture']}), not a bi-encoder: train it with "
            "kind='cross' (`hn train --kind cross`), or pass a sentence-transformers model for kind='bi'."
        )
    from hn_plugins.models import load_sentence_transformer

    model = load_sentence_transformer(path, device=device, trust_remote_code=trust_remote_code)
    if max_length is not None:
        model.max_seq_length = max_length
    info["head"] = None
    info["loaded_dtype"] = _train_in_float32(model, path)
    return model, info


def _train_in_float32(model: Any, path: str) -> str:
    """Cast ``model`` to float32 in place if its weights load in half precision; return the dtype they loaded in.

    Checkpoints saved in float16 or bfloat16 load in that dtype (transformers' ``dtype="auto"``), and optimizer steps
    on half-precision weights diverge (measured on a GPU: all-MiniLM-L6-v2 stored in float16 scored every document
    NaN after one epoch of ``default``'s fine-tune). Mixed precision belongs to the trainer (``fp16``/``bf16``
    arguments over float32 master weights), not to the weights themselves.
    """
    import torch

    dtypes = sorted({str(p.dtype).removeprefix("torch.") for p in model.parameters()})
    loaded = "/".join(dtypes)
    if any(getattr(torch, d) in (torch.float16, torch.bfloat16) for d in dtypes):
        logger.info("%s loads in %s; training it in float32.", path, loaded)
        model.float()
    return loaded


def keep_bottom_layers(cross_encoder: Any, num_layers: int) -> int:
    """Cut a cross-encoder's transformer to its first ``num_layers`` layers, in place; return the depth it had.

    A shallower student costs proportionally less per pair (a 3-layer MiniLM does about half the work of the
    6-layer one). The bottom layers are kept: dropping the top layers before fine-tuning loses the least
    (Sajjad et al., 2023, *On the effect of dropping layers of pre-trained transformer models*). Works for
    BERT-style encoders (``<base>.encoder.layer``: BERT, MiniLM, RoBERTa, XLM-R, ELECTRA).

    Raises:
        TrainingError: ``num_layers`` outside ``1..depth``, or a model whose layers are not found.

    Example:
        >>> from sentence_transformers.cross_encoder import CrossEncoder  # doctest: +SKIP
        >>> model = CrossEncoder("all-MiniLM-L6-v2", num_labels=1)  # doctest: +SKIP
        >>> keep_bottom_layers(model, 3), model.model.config.num_hidden_layers  # doctest: +SKIP
        (6, 3)
    """
    import torch

    hf_model = transformer_of(cross_encoder)
    base = getattr(hf_model, getattr(hf_model, "base_model_prefix", ""), hf_model)
    layers = getattr(getattr(base, "encoder", None), "layer", None)
    depth = getattr(hf_model.config, "num_hidden_layers", None)
    if not isinstance(layers, torch.nn.ModuleList) or depth != len(layers):
        raise TrainingError(
            f"Cannot find the transformer layers of {type(hf_model).__name__} (expected <base>.encoder.layer, as in "
            "BERT or RoBERTa); train it at full depth (num_layers=None)."
        )
    if not 1 <= int(num_layers) <= depth:
        raise TrainingError(f"num_layers must be between 1 and the model's {depth} layers, got {num_layers}.")
    base.encoder.layer = torch.nn.ModuleList(list(layers)[: int(num_layers)])
    hf_model.config.num_hidden_layers = int(num_layers)
    return int(depth)


def work_dir_for(output_dir: Path) -> Path:
    """The trainer's scratch folder (checkpoints) next to ``output_dir``; kept after an interruption for resume."""
    return output_dir.parent / f".{output_dir.name}.training"


def save_staged(model: Any, output_dir: Path) -> Path:
    """Save ``model`` (safetensors) into a fresh staging folder next to ``output_dir``, for :func:`install_folder`."""
    staging = output_dir.parent / f".{output_dir.name}.new"
    if staging.exists():
        shutil.rmtree(staging)
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(staging), safe_serialization=True)
    return staging


def write_marker_and_card(
    folder: Path, marker: dict[str, Any], card_title: str, card_lines: list[str]
) -> None:
    """Write ``hn_reranker.json`` and put our section at the top of the model card (README.md)."""
    (folder / RERANKER_MARKER).write_text(json.dumps(marker, indent=2, default=str), encoding="utf-8")
    readme = folder / "README.md"
    generated = readme.read_text(encoding="utf-8") if readme.is_file() else ""
    body = generated
    front = ""
    if generated.startswith("---"):  # keep the generated YAML front matter first
        end = generated.find("\n---", 3)
        if end != -1:
            front, body = generated[: end + 4] + "\n\n", generated[end + 4 :]
    ours = "\n".join([f"# {card_title}", "", *card_lines, ""])
    readme.write_text(
        front + ours + ("\n## Generated by sentence-transformers\n" + body if body.strip() else ""),
        encoding="utf-8",
    )


def install_folder(new_folder: Path, output_dir: Path) -> Path:
    """Move a complete model folder into ``output_dir``, replacing a previous one only once the new one is in place.

    The previous folder is renamed aside, the new one renamed in, then the old one removed, so at every moment
    either the old or the new model sits complete at its own path.
    """
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    old = None
    if output_dir.exists():
        old = output_dir.parent / f".{output_dir.name}.old-{int(time.time() * 1000)}"
        os.replace(output_dir, old)
    os.replace(new_folder, output_dir)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return output_dir
