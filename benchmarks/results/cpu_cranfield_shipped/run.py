import logging, sys, json
logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stdout)
for n in ("httpx", "sentence_transformers", "transformers", "bm25s", "datasets", "hn_plugins.mining.selectors", "hn_plugins.embedders"):
    logging.getLogger(n).setLevel(logging.WARNING)
import transformers; transformers.logging.set_verbosity_error()
from hn_evaluation.benchmark import run_benchmark
r = run_benchmark("../shared/data/cranfield", ["none", "zero-shot", "in-batch", "paper", "default"], [0],
                  "/tmp/exp/cpu_cran", kind="bi", max_length=128, cache_dir="/tmp/exp/cache_cranfield")
for row, v in r["rows"].items():
    print("RESULT", row, {m: round(x["mean"], 4) for m, x in v.items()}, flush=True)
print("BAR", json.dumps(r["quality_bar"]))
