"""Model folders written by the trainer and by bootstrap: base-model checks, the marker file, the model card, and
the atomic swap that keeps a previous model folder intact until the new one is complete."""

from __future__ import annotations

import ctypes
import errno
import json
import logging
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Literal

from hn_plugins.models import hub_offline_setting, resolve_model_path
from hn_plugins.rerankers.base import RERANKER_MARKER
from hn_plugins.rerankers.cross_encoder import transformer_of

logger = logging.getLogger(__name__)

__all__ = [
    "TrainingError",
    "exchange_paths",
    "honour_umask",
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
                "%s is not a cross-encoder: its one-logit head starts untrained, so fine-tuning "
                "on small data starts from random scores; warm-start it first with `hn bootstrap` (or train kind='bi').",
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
    honour_umask(staging)
    return staging


def _process_umask() -> int:
    try:
        with open("/proc/self/status", encoding="ascii") as status:  # Linux: read without changing it
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # elsewhere: set and restore (not thread-safe for that instant)
    os.umask(mask)
    return mask


def honour_umask(folder: Path) -> None:
    """Give every file under ``folder`` the mode a newly created file gets under the process umask
    (``0o666 & ~umask``, e.g. 0644 under umask 022).

    Libraries that write weights through a private temporary file leave them at 0600 whatever the umask, so a
    serving account that may read the rest of the folder could not read ``model.safetensors``.
    """
    mode = 0o666 & ~_process_umask()
    for path in folder.rglob("*"):
        if path.is_file() and not path.is_symlink():
            os.chmod(path, mode)


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


def exchange_paths(first: Path, second: Path) -> bool:
    """Swap two existing paths in one atomic step (Linux ``renameat2(RENAME_EXCHANGE)``, macOS
    ``renamex_np(RENAME_SWAP)``); ``False`` where the system or the file system cannot, and nothing was changed.

    Raises:
        OSError: the swap failed for another reason (e.g. a path does not exist).
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if sys.platform.startswith("linux"):
            function = libc.renameat2
            function.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
            at_fdcwd, rename_exchange = -100, 2
            result = function(at_fdcwd, os.fsencode(first), at_fdcwd, os.fsencode(second), rename_exchange)
        elif sys.platform == "darwin":
            function = libc.renamex_np
            function.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_uint]
            result = function(os.fsencode(first), os.fsencode(second), 2)  # RENAME_SWAP
        else:
            return False
    except (OSError, AttributeError):  # no such C function here
        return False
    if result == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
        return False
    raise OSError(code, os.strerror(code), str(first), None, str(second))


def _restore_interrupted_swap(output_dir: Path) -> None:
    """Put back a previous model folder left at ``.NAME.old-*`` by a swap interrupted between its two renames."""
    if output_dir.exists():
        return
    aside = sorted(output_dir.parent.glob(f".{output_dir.name}.old-*"))
    if aside:
        os.replace(aside[-1], output_dir)
        logger.warning("Restored %s from %s, left by an interrupted model swap.", output_dir, aside[-1])


def install_folder(new_folder: Path, output_dir: Path) -> Path:
    """Move a complete model folder into ``output_dir``, replacing a previous one only once the new one is in place.

    Where the system can swap two paths atomically (:func:`exchange_paths`: Linux, macOS), the new and the previous
    folder trade places in one step, so at every instant ``output_dir`` holds one complete model; the previous one
    (now at the staging path) is then removed. Elsewhere the previous folder is renamed aside and the new one
    renamed in; a process killed between the two renames leaves the previous folder at ``.NAME.old-*``, which the
    next call puts back before it installs.
    """
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    _restore_interrupted_swap(output_dir)
    if output_dir.exists() and exchange_paths(new_folder, output_dir):
        shutil.rmtree(new_folder, ignore_errors=True)  # the previous model, now at the staging path
    else:
        if output_dir.exists():
            old = output_dir.parent / f".{output_dir.name}.old-{int(time.time() * 1000)}"
            os.replace(output_dir, old)
        os.replace(new_folder, output_dir)
    for leftover in output_dir.parent.glob(
        f".{output_dir.name}.old-*"
    ):  # this swap's, or an interrupted one's
        shutil.rmtree(leftover, ignore_errors=True)
    return output_dir
