#!/usr/bin/env bash
# hn retrain three times on a copy of medline (the README's "hn retrain" example): a first candidate, then five
# documents edited (only they are embedded again), then nothing changed. Lighter than the default settings
# (hold-out selection, 2 epochs, 128 tokens) so that it runs in minutes on 2 cores.
#
#   bash experiments/incremental_retrain/retrain_medline.sh ../shared/data/medline experiments/incremental_retrain/results/retrain_medline
set -euo pipefail
DATA=${1:?BEIR medline folder}
OUT=${2:?output folder}
export HF_HUB_OFFLINE=1
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
cp -r "$DATA" "$WORK/medline"
mkdir -p "$OUT"
ARGS=(--registry "$WORK/registry" --selection holdout --epochs 2 --max-length 128)
run() {  # run N: hn retrain, its stdout to OUT/runN.txt, its wall time to OUT/runN.seconds
  local start end
  start=$(date +%s.%N)
  hn retrain "$WORK/medline" "${ARGS[@]}" --json "$WORK/run$1.json" > "$OUT/run$1.txt"
  end=$(date +%s.%N)
  python3 -c "print(round($end - $start, 1))" > "$OUT/run$1.seconds"
  if [ -f "$WORK/run$1.json" ]; then cp "$WORK/run$1.json" "$OUT/run$1.json"; fi
}
run 1
python3 - "$WORK/medline/corpus.jsonl" <<'PY'
import json, sys
path = sys.argv[1]
rows = [json.loads(line) for line in open(path, encoding="utf-8")]
for row in rows[:5]:
    row["text"] += " (revised)"
open(path, "w", encoding="utf-8").write("".join(json.dumps(r) + "\n" for r in rows))
PY
run 2
run 3
