#!/usr/bin/env bash
# Run tools/run_device_benchmark.py on the GPU machine of the `device` tool (no registry there).
# Needs the git-ignored .whl/ folder carried along: .whl/payload.tar.gz (the six datasets of ../shared/data,
# all-MiniLM-L6-v2 as fp16 safetensors, the static model, a numpy shim of faiss' IndexFlatIP) and .whl/wheels/
# (bm25s, datasets, model2vec, PyStemmer, sentence-transformers 6.2 and their small dependencies); build it with
# `python tools/build_device_payload.py --data ../shared/data --out .whl` (`--datasets cisi,python-docs-faq`
# carries only the datasets a run uses: with the tracked tree at about 12 MiB, all six leave under 1 MiB of the 64).
# Usage (env vars as in run_device_benchmark.py): BUDGET_S=480 MAX_PROCS=6 bash tools/device_run.sh main
set -euo pipefail
mkdir -p /tmp/payload /tmp/site /tmp/bench
tar xzf .whl/payload.tar.gz -C /tmp/payload
cp -r /tmp/payload/site/. /tmp/site/
# wheels are zip files: unpack them (no pip and no index on the device)
for w in .whl/wheels/*.whl; do python3 -m zipfile -e "$w" /tmp/site/; done
export PYTHONPATH="/tmp/site:$PWD:$PWD/evaluation" HF_HUB_OFFLINE=1 JAX_PLATFORMS=cpu XLA_PYTHON_CLIENT_PREALLOCATE=false
export OUT="${OUT:-/tmp/out}"
mkdir -p "$OUT"
python3 tools/run_device_benchmark.py "${1:-main}" 2>&1 | tee /tmp/bench/driver.log
cp /tmp/bench/driver.log "$OUT/" || true
