"""Cross-encoder reranking on CPU: PyTorch vs ONNX fp32 vs ONNX int8, speed and ranking quality.

Writes ``benchmarks/results/onnx_int8_<data>.json``:

- speed: seconds to rerank BM25's top-100 of one test query (median over ``--speed-queries`` timed queries, the first
  query untimed; the backends take turns query by query) at each ``--max-lengths`` value, for ``torch``
  (sentence-transformers ``CrossEncoder.predict``), ``onnx`` (fp32) and ``onnx-int8`` (the export's int8 copy:
  per-channel, 7-bit range); with ``--compare-attention`` also an export of the model's own attention
  (``export_onnx(attention="model")``, transformers' scaled-dot-product attention) beside the default eager one;
- quality: MRR@10 / nDCG@10 / Recall@10 on the test split (BM25 top-100 reranked, the model's own maximum length) for
  ``torch``, ``onnx-int8`` and, as the ablation behind the choice, a per-tensor int8 copy (onnxruntime's default).

Needs a trained cross-encoder folder (the int8 copy's quality only means something for a trained head), e.g. the
student of ``experiments/cross_encoder_bootstrap/results/bootstrap_cranfield_cpu`` (its README has the command). Run on a quiet machine::

    python experiments/onnx_int8/bench_onnx_reranker.py --model /tmp/boot/model --data ../shared/data/cranfield --threads 2 \
        --speed-queries 16
    python experiments/onnx_int8/bench_onnx_reranker.py --model /tmp/boot/model --data ../shared/data/cranfield --threads 2 \
        --speed-queries 16 --max-lengths 128 --compare-attention --max-test-queries 5 \
        --out experiments/onnx_int8/results/onnx_attention_cranfield.json

``--baseline-model DIR`` times a second folder (e.g. the full-depth student beside a ``hn bootstrap --num-layers 3``
one) in the same turns, with PyTorch and int8.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

logger = logging.getLogger("bench_onnx_reranker")


def _per_tensor_copy(folder: Path, work: Path) -> Path:
    """A copy of ``folder`` whose int8 file is quantised per tensor (the ablation)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    copy = work / "per-tensor"
    shutil.copytree(folder, copy, ignore=shutil.ignore_patterns("checkpoints", "*.pt"))
    quantize_dynamic(
        str(copy / "onnx" / "model.onnx"),
        str(copy / "onnx" / "model_qint8.onnx"),
        weight_type=QuantType.QInt8,
    )
    return copy


def start_cpu_run(threads: int) -> list[float]:
    """INFO logging with the libraries' chatter at WARNING, torch on ``threads`` threads; returns the load average
    before the run (recorded beside the timings)."""
    load_before = list(os.getloadavg())
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    for name in ("sentence_transformers", "transformers", "bm25s", "httpx", "urllib3", "faiss"):
        logging.getLogger(name).setLevel(logging.WARNING)
    import torch

    torch.set_num_threads(threads)
    return load_before


def cpu_description() -> dict:
    """The CPU's model name and the vector extensions that decide int8 speed (from ``/proc/cpuinfo``, Linux only)."""
    try:
        info = Path("/proc/cpuinfo").read_text(encoding="utf-8")
    except OSError:
        return {}
    fields = dict(line.split(":", 1) for line in info.splitlines() if ":" in line)
    fields = {k.strip(): v.strip() for k, v in fields.items()}
    flags = set(fields.get("flags", "").split())
    wanted = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8")
    return {"cpu_model": fields.get("model name"), "cpu_flags": [f for f in wanted if f in flags]}


def exported_copy(model: Path, folder: Path) -> dict:
    """Copy the cross-encoder folder ``model`` to ``folder`` (without checkpoints or an earlier export) and export
    the copy with ``hn_plugins.onnx_backend.export_onnx``; returns the export's info."""
    from hn_plugins.onnx_backend import export_onnx

    shutil.copytree(model, folder, ignore=shutil.ignore_patterns("checkpoints", "onnx"))
    return export_onnx(folder)


def model_training(folder: Path) -> dict:
    """Base model, data, loss and creation time from a trained folder's ``hn_reranker.json`` (``None`` each when the
    folder has none)."""
    marker = folder / "hn_reranker.json"
    meta = json.loads(marker.read_text()) if marker.is_file() else {}
    return {k: meta.get(k) for k in ("base_model", "data", "loss", "created")}


def round_robin_times(rerankers: dict, test, candidates: dict, queries: list[str]) -> dict[str, list[float]]:
    """Seconds each reranker takes to score each query's candidates, the rerankers taking turns query by query
    (round robin), so a slower or busier stretch of the machine falls on all of them alike; the first query warms
    every reranker up and is not timed."""
    times: dict[str, list[float]] = {name: [] for name in rerankers}
    for i, qid in enumerate(queries):
        docs = [test.document_text(d) for d in candidates[qid]]
        for name, reranker in rerankers.items():
            start = time.perf_counter()
            reranker.score(test.queries[qid], docs)
            if i:
                times[name].append(time.perf_counter() - start)
    return times


def _speed(rerankers: dict, test, candidates: dict, queries: list[str], max_length: int) -> dict:
    """Median seconds per query of each reranker at ``max_length`` (:func:`round_robin_times`)."""
    for reranker in rerankers.values():
        if hasattr(reranker, "max_length"):
            reranker.max_length = max_length
        else:
            reranker.model.max_length = max_length
    times = round_robin_times(rerankers, test, candidates, queries)
    out = {}
    for name, values in times.items():
        median = statistics.median(values)
        out[name] = {
            "seconds_per_query": median,
            "documents_per_second": len(candidates[queries[0]]) / median,
        }
        logger.info("max_length %d %s: %.2f s/query", max_length, name, median)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="trained cross-encoder folder")
    parser.add_argument("--data", type=Path, default=Path("../shared/data/cranfield"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--top-k", type=int, default=100)
    parser.add_argument("--speed-queries", type=int, default=8, help="timed queries (+1 untimed warm-up)")
    parser.add_argument("--max-lengths", default="128,256", help="token limits of the speed rows")
    parser.add_argument(
        "--max-test-queries", type=int, default=None, help="quality on a sample (default: all)"
    )
    parser.add_argument(
        "--compare-attention",
        action="store_true",
        help="also time an export of the model's own attention (export_onnx(attention='model')) beside the eager one",
    )
    parser.add_argument(
        "--baseline-model",
        type=Path,
        default=None,
        help="another cross-encoder folder (e.g. the full-depth one) timed in the same turns (torch and int8)",
    )
    parser.add_argument(
        "--speed-only",
        action="store_true",
        help="time only, no quality rows (e.g. for a cross-encoder with an untrained head: same speed, no ranking)",
    )
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    load_before = start_cpu_run(args.threads)
    import torch

    from hn_evaluation.benchmark import benchmark_metrics, first_stage_run
    from hn_evaluation.rerank import evaluate_reranking
    from hn_plugins.data import load_beir
    from hn_plugins.onnx_backend import OnnxCrossEncoderReranker, export_onnx
    from hn_plugins.reranker import CrossEncoderReranker

    work = Path(tempfile.mkdtemp(prefix="bench-onnx-"))
    try:
        folder = work / "model"
        export = exported_copy(args.model, folder)
        own_attention = None
        if args.compare_attention:
            own_attention = work / "model-own-attention"
            shutil.copytree(folder, own_attention, ignore=shutil.ignore_patterns("onnx"))
            own_export = export_onnx(own_attention, attention="model")
        baseline = None
        if args.baseline_model is not None:
            baseline = work / "baseline"
            exported_copy(args.baseline_model, baseline)
        per_tensor = _per_tensor_copy(folder, work)
        test = load_beir(args.data, split="test", empty_documents="drop")
        run = first_stage_run(test, "bm25", args.top_k)
        candidates = {q: [d for d, _ in ranked[: args.top_k]] for q, ranked in run.items()}

        def rerankers() -> dict:
            out = {
                "torch": CrossEncoderReranker(folder, batch_size=32),
                "onnx": OnnxCrossEncoderReranker(folder, "fp32", threads=args.threads),
                "onnx-int8": OnnxCrossEncoderReranker(folder, "int8", threads=args.threads),
            }
            if own_attention is not None:
                tag = f"{own_export['attention']}-attention"
                out[f"onnx-{tag}"] = OnnxCrossEncoderReranker(own_attention, "fp32", threads=args.threads)
                out[f"onnx-int8-{tag}"] = OnnxCrossEncoderReranker(
                    own_attention, "int8", threads=args.threads
                )
            if baseline is not None:
                out["baseline-torch"] = CrossEncoderReranker(baseline, batch_size=32)
                out["baseline-onnx-int8"] = OnnxCrossEncoderReranker(baseline, "int8", threads=args.threads)
            return out

        speed_queries = list(candidates)[: args.speed_queries + 1]
        speed = {
            int(n): _speed(rerankers(), test, candidates, speed_queries, int(n))
            for n in args.max_lengths.split(",")
        }
        quality_test = test
        if args.speed_only:
            run = {}
        elif args.max_test_queries:
            keep = list(candidates)[: args.max_test_queries]
            quality_test = test.subset(keep, name=f"{test.name}[{len(keep)}q]")
            run = {q: run[q] for q in keep}
        rows = {
            "bm25": None,
            "torch": CrossEncoderReranker(folder, batch_size=32),
            "onnx-int8": OnnxCrossEncoderReranker(folder, "int8", threads=args.threads),
            "onnx-int8-per-tensor": OnnxCrossEncoderReranker(per_tensor, "int8", threads=args.threads),
        }
        report = (
            None
            if args.speed_only
            else evaluate_reranking(
                quality_test, run, rows, top_k=args.top_k, metrics=benchmark_metrics(args.top_k)
            )
        )
        result = {
            "data": args.data.name,
            "model": str(args.model),
            "model_max_length": export["max_length"],
            "model_training": model_training(folder),
            "model_layers": json.loads((folder / "config.json").read_text())["num_hidden_layers"],
            "baseline_model": str(args.baseline_model) if args.baseline_model else None,
            "baseline_layers": json.loads((baseline / "config.json").read_text())["num_hidden_layers"]
            if baseline is not None
            else None,
            "machine": {
                "cpu": platform.processor() or platform.machine(),
                **cpu_description(),
                "threads": args.threads,
                "cores_available": len(os.sched_getaffinity(0)),
                "load_average_before": load_before,
                "torch": torch.__version__,
            },
            "export": {k: export.get(k) for k in ("attention", "check", "quantization", "seconds")},
            "speed_top_k": args.top_k,
            "speed_queries": args.speed_queries,
            "speed": speed,
            "quality_queries": len(run),
            "quality": report.rows if report is not None else None,
            "significance_vs_torch": report.compare(baseline="torch", metric="mrr@10")
            if report is not None
            else None,
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)
    out = args.out or Path(__file__).parent / "results" / f"onnx_int8_{args.data.name}.json"
    out.write_text(json.dumps(result, indent=1), encoding="utf-8")
    sys.stdout.write(json.dumps({"speed": speed, "quality": result["quality"]}, indent=1) + f"\n-> {out}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
