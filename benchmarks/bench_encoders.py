"""Embedding engines for ensemble members (issue 26): whole-process speed against sentence-transformers, and
whether the faster engines mine the same negatives as PyTorch.

Usage (each writes ``benchmarks/results/<name>.json``)::

    python benchmarks/bench_encoders.py process --dataset cranfield --repeats 2
    python benchmarks/bench_encoders.py agreement --datasets cranfield,cisi,medline,npl,cacm,python-docs-faq,scifact

``process`` times whole processes, interleaved on the same machine, each with an empty embedding cache:
sentence-transformers' ``mine_hard_negatives(relative_margin=0.05)`` and ``hn mine --selector positive-aware`` with
every engine (``hn-onnx-cold`` also starts without the ONNX export, so it pays the one-time export).

``agreement`` mines each dataset's train split with the default ensemble and recipe of ``hn mine`` (paper selector,
PCA 95%, one negative per pair) once per engine and counts the (query, positive) pairs whose negatives equal the
PyTorch engine's.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a file: the repository root makes `tools` importable
    sys.path.insert(0, str(ROOT))

from tools.bench_results import save_result  # noqa: E402

logger = logging.getLogger("bench_encoders")
HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
DEFAULT_DATA = HERE.parent.parent / "shared" / "data"
ENGINES = ("torch", "onnx", "onnx-int8")

#: The sentence-transformers side of ``process``: load the model, mine, write nothing.
ST_SCRIPT = """
import json, sys
from datasets import Dataset
from sentence_transformers import SentenceTransformer
from sentence_transformers.util import mine_hard_negatives
from hn_plugins.data import load_beir
from hn_plugins.models import resolve_model_path
data, model_name = sys.argv[1], sys.argv[2]
ds = load_beir(data, split="train", empty_documents="drop")
model = SentenceTransformer(resolve_model_path(model_name), device="cpu")
pairs = ds.positive_pairs()
rows = Dataset.from_dict({"query": [ds.queries[q] for q, _ in pairs], "positive": [ds.document_text(p) for _, p in pairs]})
mine_hard_negatives(rows, model, corpus=[ds.document_text(d) for d in ds.doc_ids], range_max=100, num_negatives=3,
                    relative_margin=0.05, batch_size=32, verbose=False, use_faiss=True)
"""


def _save(name: str, payload: dict) -> Path:
    return save_result(RESULTS, name, payload)


def _timed(command: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return time.perf_counter() - start


def bench_process(args: argparse.Namespace) -> None:
    """Whole processes, interleaved: sentence-transformers against ``hn mine`` with each engine."""
    data = str(args.data / args.dataset)
    work = Path(tempfile.mkdtemp(prefix="bench-encoders-"))
    warm_home = work / "home-with-export"
    base_env = {**os.environ, "HN_PLUGINS_HOME": str(warm_home)}
    hn = [shutil.which("hn") or "hn", "mine", data, "--selector", "positive-aware"]
    hn += ["--models", args.model, "--num-negatives", "3", "--drop-empty"]
    # build the export once, outside the timed runs (hn-onnx-cold measures a run that has to build it)
    subprocess.run(
        [*hn, "--engine", "onnx", "--out", str(work / "warm.jsonl")],
        env=base_env,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    runs: dict[str, list[float]] = {
        "st": [],
        "hn-torch": [],
        "hn-onnx-cold": [],
        "hn-onnx": [],
        "hn-onnx-int8": [],
    }
    for repeat in range(args.repeats):
        for mode in runs:
            out = work / f"{mode}-{repeat}.jsonl"
            cache = work / f"cache-{mode}-{repeat}"  # empty: every run embeds the whole corpus
            env = dict(base_env)
            if mode == "st":
                seconds = _timed([sys.executable, "-c", ST_SCRIPT, data, args.model], env)
            else:
                engine = {
                    "hn-torch": "torch",
                    "hn-onnx-cold": "onnx",
                    "hn-onnx": "onnx",
                    "hn-onnx-int8": "onnx-int8",
                }
                if mode == "hn-onnx-cold":
                    env["HN_PLUGINS_HOME"] = str(work / f"home-empty-{repeat}")
                command = [*hn, "--engine", engine[mode], "--cache", str(cache), "--out", str(out)]
                seconds = _timed(command, env)
            runs[mode].append(seconds)
            logger.info("repeat %d %s: %.1fs", repeat, mode, seconds)
    shutil.rmtree(work, ignore_errors=True)
    best = {mode: min(values) for mode, values in runs.items()}
    _save(
        f"process_vs_st_{args.dataset}",
        {
            "model": args.model,
            "dataset": args.dataset,
            "runs_s": runs,
            "best_s": best,
            "ratio_over_st": {mode: best[mode] / best["st"] for mode in best if mode != "st"},
        },
    )


def bench_agreement(args: argparse.Namespace) -> None:
    """Mine each dataset once per engine; count pairs whose negatives equal the torch engine's."""
    from hn_plugins.data import load_beir
    from hn_plugins.embedders import EmbedderEnsemble
    from hn_plugins.mining.miner import HardNegativeMiner
    from hn_plugins.models import DEFAULT_ENSEMBLE
    from hn_plugins.reduction import PCAReducer

    rows: dict[str, dict] = {}
    for name in args.datasets.split(","):
        ds = load_beir(args.data / name, split="train", empty_documents="drop")
        negatives: dict[str, dict[tuple[str, str], tuple[str, ...]]] = {}
        seconds: dict[str, float] = {}
        for engine in ENGINES:
            ensemble = EmbedderEnsemble(list(DEFAULT_ENSEMBLE), engine=engine)
            miner = HardNegativeMiner(ensemble, PCAReducer(variance=0.95), selector="paper", num_negatives=1)
            start = time.perf_counter()
            result = miner.fit(ds).mine(ds)
            seconds[engine] = time.perf_counter() - start
            negatives[engine] = {(r.query_id, r.positive_id): tuple(r.negative_ids) for r in result.records}
        reference = negatives["torch"]
        rows[name] = {
            "documents": len(ds.corpus),
            "pairs": len(reference),
            "mine_s": seconds,
            "same_negatives": {
                engine: sum(negatives[engine].get(k) == v for k, v in reference.items())
                / max(1, len(reference))
                for engine in ENGINES
                if engine != "torch"
            },
        }
        logger.info("%s: %s", name, rows[name])
        _save(
            "engine_agreement",
            {"ensemble": list(DEFAULT_ENSEMBLE), "recipe": "paper, PCA 0.95, 1 negative", "datasets": rows},
        )


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("process")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--dataset", default="cranfield")
    p.add_argument("--model", default="all-MiniLM-L6-v2")
    p.add_argument("--repeats", type=int, default=2)
    p.set_defaults(func=bench_process)
    p = sub.add_parser("agreement")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--datasets", default="cranfield,cisi,medline,npl,cacm,python-docs-faq,scifact")
    p.set_defaults(func=bench_agreement)
    args = parser.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
