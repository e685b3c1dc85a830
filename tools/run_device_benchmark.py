"""GPU-machine driver of the committed benchmark runs: hn benchmark on the datasets of ../shared/data, one process
per (dataset, seed), merged with merge_benchmark_reports; benchmarks/bench_training_speed.py pinned to 2 CPU cores
(GPU hidden) beside them. Results are tarred into $OUT.

How it was run (the machine has no registry; data, models and wheels travel in a payload unpacked to /tmp/payload
and /tmp/site):

    export PYTHONPATH=/tmp/site:$PWD:$PWD/evaluation HF_HUB_OFFLINE=1 JAX_PLATFORMS=cpu \
        XLA_PYTHON_CLIENT_PREALLOCATE=false BUDGET_S=320 SEEDS=0,1,2 SETTINGS='{}' MAX_PROCS=6
    python3 tools/run_device_benchmark.py main

(``tools/device_run.sh`` unpacks the payload and sets this up.) ``BOOTSTRAP=cranfield`` also runs ``hn bootstrap``
on that corpus beside the benchmark (extra CLI arguments as a JSON list in ``BOOTSTRAP_ARGS``) and ``hn eval`` of the
student and of all-MiniLM-L6-v2 zero-shot on its test split; ``BENCH_THREADS`` sets each process's torch threads;
``SKIP_SPEED=1`` skips the speed benchmark (and frees its two cores). ``SETTINGS`` holds ``run_benchmark`` keyword arguments plus
``strategies``, ``default_loss`` and ``default_folds`` (e.g. ``{"strategies": ["none", "zero-shot", "default"],
"ablation_verifier": true, "default_folds": 3}``: the rows the partial runs lack, with the verifier beside;
``{"rag": "extractive"}`` adds the downstream RAG section);
A dataset named ``NAME@trainN`` (e.g. ``scifact@train200``) runs NAME on a nested seeded subset of N train
questions (``train_size``), reported as its own dataset: a learning curve is ``DATASETS=scifact@train50,...``
followed by ``python benchmarks/learning_curve.py assemble``. ``SUBSET_SPLITS`` (comma-separated, e.g.
``test-unseen``) also writes each merged report restricted to that split's queries (``unseen/report.json``).
``SETTINGS_BY_DATASET`` (JSON, dataset -> settings) replaces ``SETTINGS`` for the datasets it names
(its ``"seeds"`` list, if any, limits which of SEEDS that dataset runs).

JAX_PLATFORMS=cpu matters: without it every process that imports transformers lets JAX pre-allocate 75% of the GPU,
and all but one process die of out-of-memory (what happened to the first run). MAX_PROCS (default 6) caps
the processes running at once; the committed medline run predates it and started all 18 together. Roles: ``main`` (all datasets and
seeds), ``pilot`` / ``auto`` (a validation-only comparison of recipes on seed 0, then ``main`` with the best),
``one DATASET SEED``.
"""

import json
import os
import subprocess
import sys
import tarfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a file: the repository root makes `experiments` and `tools` importable
    sys.path.insert(0, str(ROOT))

from tools.script_logging import quiet_logging  # noqa: E402

START = time.time()
OUT = Path(os.environ.get("OUT", "/tmp/out"))
DATASETS = os.environ.get("DATASETS", "cranfield,python-docs-faq,cisi,medline,cacm,npl,scifact").split(",")
PILOT_DATASETS = os.environ.get("PILOT_DATASETS", "cranfield,python-docs-faq,cisi,cacm,npl").split(",")
SEEDS = [int(s) for s in os.environ.get("SEEDS", "0,1,2").split(",")]
SETTINGS = json.loads(os.environ.get("SETTINGS", "{}"))
# per-dataset settings that replace SETTINGS for that dataset, e.g. {"cisi": {"strategies": [...]}}
SETTINGS_BY_DATASET = json.loads(os.environ.get("SETTINGS_BY_DATASET", "{}"))
ROLE = sys.argv[1] if len(sys.argv) > 1 else "main"
ROLES = ("main", "pilot", "auto", "one", "pilot-one", "bootstrap")
if ROLE not in ROLES:  # -h, --help or a typo: say how to run it instead of starting the queue
    sys.stdout.write(__doc__ + f"\nroles: {', '.join(ROLES)}\n")
    sys.exit(0 if ROLE in ("-h", "--help") else 2)
quiet_logging(driver=True)


def one(name: str, seed: int, tag: str = "", settings: dict | None = None) -> None:
    os.environ["HF_HUB_OFFLINE"] = "1"
    import transformers

    import hn_evaluation.benchmark as hb

    transformers.logging.set_verbosity_error()
    if settings is None:
        settings = SETTINGS_BY_DATASET.get(name, SETTINGS)
    settings = dict(settings)
    settings.pop("seeds", None)  # used by the queue only
    if "default_loss" in settings:
        hb.DEFAULT_STRATEGY["loss"] = settings.pop("default_loss")
    if "default_folds" in settings:  # fewer cross-fitting folds: folds + 1 trainings per default row
        hb.DEFAULT_STRATEGY["folds"] = int(settings.pop("default_folds"))
    strategies = settings.pop("strategies", list(hb.ALL_STRATEGIES))
    dataset, _, size = name.partition("@train")  # scifact@train200: scifact on 200 train questions (nested)
    if size:
        settings["train_size"] = int(size)
    hb.run_benchmark(
        f"/tmp/payload/data/{dataset}",
        strategies,
        [seed],
        f"/tmp/bench/{tag}{name}/seed{seed}",
        kind="bi",
        base_model="all-MiniLM-L6-v2",
        cache_dir=f"/tmp/cache/{tag}{name}-{seed}",
        **settings,
    )


if ROLE == "one":
    one(sys.argv[2], int(sys.argv[3]))
    sys.exit(0)
if ROLE == "pilot-one":
    one(sys.argv[2], 0, sys.argv[3] + "/", json.loads(sys.argv[4]))
    sys.exit(0)
if ROLE == "bootstrap":
    # hn bootstrap on one dataset's corpus (no labels), then hn eval of the student and of its teacher's first member
    # on that dataset's judged test queries (BM25 top-100)
    from hn_plugins.cli import main as hn

    data, folder = f"/tmp/payload/data/{sys.argv[2]}", Path("/tmp/bench/bootstrap")
    folder.mkdir(parents=True, exist_ok=True)
    extra = json.loads(os.environ.get("BOOTSTRAP_ARGS", "[]"))
    rc = hn(
        [
            "-v",
            "bootstrap",
            data,
            "--out",
            str(folder / "model"),
            "--json",
            str(folder / "bootstrap.json"),
            *extra,
        ]
    )
    for label, model in (
        ("student", str(folder / "model")),
        ("teacher_minilm", "zero-shot:all-MiniLM-L6-v2"),
    ):
        hn(
            [
                "eval",
                data,
                "--split",
                "test",
                "--model",
                model,
                "--first-stage",
                "bm25",
                "--top-k",
                "100",
                "--drop-empty",
                "--json",
                str(folder / f"eval_{label}.json"),
            ]
        )
    sys.exit(rc)


def pilot() -> dict:
    configs = json.loads(os.environ["PILOT"])
    procs = {}
    Path("/tmp/bench").mkdir(parents=True, exist_ok=True)
    for tag, cfg in configs.items():
        for name in PILOT_DATASETS:
            log = open(f"/tmp/bench/pilot-{tag}-{name}.log", "w")  # noqa: SIM115
            procs[(tag, name)] = subprocess.Popen(
                [sys.executable, __file__, "pilot-one", name, tag, json.dumps(cfg)],
                env={**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"},
                stdout=log,
                stderr=subprocess.STDOUT,
            )
    deadline = START + float(os.environ.get("PILOT_S", "170"))
    while time.time() < deadline and any(p.poll() is None for p in procs.values()):
        time.sleep(3)
    for key, p in procs.items():
        if p.poll() is None:
            p.kill()
            print("KILL", key, flush=True)
    score = {tag: [] for tag in configs}
    for tag, name in procs:
        f = Path(f"/tmp/bench/{tag}/{name}/seed0/report.json")
        if not f.is_file():
            print("PILOT", tag, name, "no report", flush=True)
            continue
        r = json.loads(f.read_text())
        t = r["strategies"]["default"]["training"][0] if "default" in r["strategies"] else {}
        fu = (t.get("fusion") or {}).get("validation") or {}
        print(
            "PILOT",
            tag,
            name,
            "val_start",
            t.get("validation_mrr@10_start"),
            "val_kept",
            t.get("validation_mrr@10_selected"),
            "val_fused",
            fu.get("mrr@10_fused"),
            "w",
            (t.get("fusion") or {}).get("weight"),
            "kept",
            t.get("selected"),
            "steps",
            t.get("steps"),
            "sec",
            t.get("train_seconds"),
            "TEST",
            {k: round(v["mrr@10"]["mean"], 4) for k, v in r["rows"].items()},
            flush=True,
        )
        if fu.get("mrr@10_fused") is not None:
            score[tag].append(fu["mrr@10_fused"])
    complete = {t: sum(v) / len(v) for t, v in score.items() if len(v) == len(PILOT_DATASETS)}
    chosen = max(complete, key=complete.get) if complete else next(iter(configs))
    print(
        "PILOT validation means (fused default, complete configs only):",
        complete,
        "chosen:",
        chosen,
        flush=True,
    )
    cfg = dict(configs[chosen])
    cfg.pop("strategies", None)
    return {"tag": chosen, **cfg}


if ROLE == "pilot":
    pilot()
    sys.exit(0)
if ROLE == "auto":
    SETTINGS = pilot()
    Path("/tmp/bench/chosen.json").write_text(json.dumps(SETTINGS))
    SETTINGS.pop("tag")
    os.environ["SETTINGS"] = json.dumps(SETTINGS)

Path("/tmp/bench/speed").mkdir(parents=True, exist_ok=True)
import torch  # noqa: E402

print(
    "torch",
    torch.__version__,
    torch.cuda.is_available(),
    torch.cuda.get_device_name(0) if torch.cuda.is_available() else "-",
    flush=True,
)
import sentence_transformers  # noqa: E402
import transformers  # noqa: E402

print(
    "st", sentence_transformers.__version__, "tf", transformers.__version__, "settings", SETTINGS, flush=True
)
ncpu = os.cpu_count() or 16
env = dict(os.environ)
# speed benchmark on cores 0-1, GPU hidden
speed_env = {
    **env,
    "CUDA_VISIBLE_DEVICES": "",
    "OMP_NUM_THREADS": "2",
    "MKL_NUM_THREADS": "2",
    "TOKENIZERS_PARALLELISM": "false",
}
speed = (
    None
    if os.environ.get("SKIP_SPEED")
    else subprocess.Popen(
        [
            "taskset",
            "-c",
            "0,1",
            sys.executable,
            "benchmarks/bench_training_speed.py",
            "--threads",
            "2",
            "--label",
            "h200host_2cores",
            "--data",
            "/tmp/payload/data/cranfield",
            "--out",
            "/tmp/bench/speed",
        ],
        env=speed_env,
        stdout=open("/tmp/bench/speed.log", "w"),  # noqa: SIM115
        stderr=subprocess.STDOUT,
    )
)
procs = {}
bench_env = {
    **env,
    "OMP_NUM_THREADS": os.environ.get("BENCH_THREADS", "1"),
    "TOKENIZERS_PARALLELISM": "false",
}
cores = f"2-{ncpu - 1}" if speed is not None else f"0-{ncpu - 1}"  # cores 0-1 are the speed run's
# at most MAX_PROCS at once (18 at once were too slow to finish any dataset but medline in 320 s)
queue = [
    (name, seed)
    for seed in SEEDS
    for name in DATASETS
    if seed in SETTINGS_BY_DATASET.get(name, {}).get("seeds", SEEDS)
]
max_procs = int(os.environ.get("MAX_PROCS", "6"))
deadline = START + float(os.environ.get("BUDGET_S", "540"))


def launch(name: str, seed: int) -> None:
    log = open(f"/tmp/bench/{name}-seed{seed}.log", "w")  # noqa: SIM115
    pin = ["taskset", "-c", cores] if ncpu >= 4 else []
    procs[(name, seed)] = subprocess.Popen(
        [*pin, sys.executable, __file__, "one", name, str(seed)],
        env=bench_env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


if os.environ.get("BOOTSTRAP"):
    procs[("bootstrap", 0)] = subprocess.Popen(
        [
            *(["taskset", "-c", cores] if ncpu >= 4 else []),
            sys.executable,
            __file__,
            "bootstrap",
            os.environ["BOOTSTRAP"],
        ],
        env=bench_env,
        stdout=open("/tmp/bench/bootstrap.log", "w"),  # noqa: SIM115
        stderr=subprocess.STDOUT,
    )
while time.time() < deadline and (queue or any(p.poll() is None for p in procs.values())):
    while queue and sum(p.poll() is None for k, p in procs.items() if k[0] != "bootstrap") < max_procs:
        launch(*queue.pop(0))
    time.sleep(5)
for key in queue:
    print("NOT STARTED (budget)", key, flush=True)
for key, p in procs.items():
    if p.poll() is None:
        print("KILL (budget)", key, flush=True)
        p.kill()
    else:
        print("EXIT", key, p.returncode, f"{time.time() - START:.0f}s", flush=True)
try:
    if speed is not None:
        speed.wait(timeout=max(1, deadline + 20 - time.time()))
except Exception:
    speed.kill()
from hn_evaluation.benchmark import merge_benchmark_reports  # noqa: E402

for name in DATASETS:
    reports = [
        f"/tmp/bench/{name}/seed{s}/report.json"
        for s in SEEDS
        if Path(f"/tmp/bench/{name}/seed{s}/report.json").is_file()
    ]
    if not reports:
        print("NO REPORT", name, flush=True)
        continue
    try:
        merged = merge_benchmark_reports(reports, f"/tmp/bench/merged/benchmark_{name}")
        for split in filter(None, os.environ.get("SUBSET_SPLITS", "").split(",")):
            from hn_evaluation.cli.benchmark_cmd import subset_queries, write_subsets

            data = Path("/tmp/payload/data", name.partition("@train")[0])
            write_subsets(
                merged, subset_queries(data, "test", [split]), Path(f"/tmp/bench/merged/benchmark_{name}")
            )
        for row, v in merged["rows"].items():
            print(
                f"RESULT {name} {row} "
                + " ".join(f"{m}={x['mean']:.4f}+-{x['std']:.4f}" for m, x in v.items()),
                flush=True,
            )
        print("BAR", name, json.dumps(merged["quality_bar"]), flush=True)
    except Exception:
        traceback.print_exc()
with tarfile.open(OUT / "results.tar.gz", "w:gz") as tar:
    for f in sorted(Path("/tmp/bench").rglob("*")):
        if (
            f.is_file()
            and "models" not in f.parts
            and "cache" not in f.parts
            and f.suffix in {".json", ".md", ".png", ".log"}
        ):
            tar.add(f, arcname=str(f.relative_to("/tmp/bench")))
print(f"TOTAL {time.time() - START:.0f}s", flush=True)
