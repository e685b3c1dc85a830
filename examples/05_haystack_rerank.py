"""Recipe 05: add a ranker fine-tuned on hard negatives to an existing Haystack pipeline, and measure it.

A Haystack user has documents in a DocumentStore, a BM25 retrieval pipeline, and QA pairs (question, id of the
document that answers it). One call mines hard negatives among the store's own documents and fine-tunes a
reranker on them with the shipped ``default`` recipe (the paper's negatives in an embedding ensemble + PCA space,
the positive-aware fallback, one random negative per pair, in-batch loss, epochs and fusion weight chosen by
cross-fitting), and returns a ``HardNegativeRanker`` component; it
goes into the pipeline after the retriever. MRR@10 on the held-out test questions is measured for BM25 alone,
for BM25 -> the starting model (not fine-tuned) and for BM25 -> the fine-tuned ``HardNegativeRanker``. With
``--llm smollm2`` (or a causal LM's hub name or folder) two RAG pipelines (retriever [-> ranker] -> PromptBuilder ->
a local generator component over ``hn_evaluation``'s ``TransformersGenerator``) also answer the test questions from
their best ``--rag-contexts`` documents, and ``hn_evaluation.rag.score_rag_answers`` scores the answers (context
recall/precision, answer F1 and ROUGE-L against the judged positive): downstream RAG quality.

Runs offline on CPU (``HF_HUB_OFFLINE=1``): no pretrained cross-encoder is packaged, so the reranker starts
from the packaged all-MiniLM-L6-v2 bi-encoder (``kind="bi"``). With internet, pass
``--base-model cross-encoder/ms-marco-MiniLM-L6-v2 --kind cross``.

Usage::

    HF_HUB_OFFLINE=1 HAYSTACK_TELEMETRY_ENABLED=False python examples/05_haystack_rerank.py   # ./hn-demo/data
    HF_HUB_OFFLINE=1 python examples/05_haystack_rerank.py --data my-beir-folder --top-k 100
    HF_HUB_OFFLINE=1 python examples/05_haystack_rerank.py --llm smollm2 --rag-queries 30

``--data`` is a BEIR folder with train and test qrels; by default the demo set ``hn demo`` writes to
``hn-demo/data`` (or ``hn demo --export DIR``), written there on first use.

Needs: ``pip install -e integrations/haystack`` (and ``-e evaluation`` for the metrics; without it the recipe
computes MRR@10 itself).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HAYSTACK_TELEMETRY_ENABLED", "False")

from haystack import Document, Pipeline, component
from haystack.components.builders import PromptBuilder
from haystack.components.retrievers.in_memory import InMemoryBM25Retriever
from haystack.document_stores.in_memory import InMemoryDocumentStore
from haystack_integrations.components.rankers.hn import HardNegativeRanker

from hn_plugins.data import load_beir
from hn_plugins.demo_data import export_demo_dataset
from hn_plugins.models import resolve_model_path

logger = logging.getLogger("05_haystack_rerank")

#: Where the embedded demo set goes when no --data is given.
DEMO_DATA = Path("hn-demo/data")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data",
        type=Path,
        default=DEMO_DATA,
        help="BEIR folder with train and test qrels (default: the demo set)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path(tempfile.gettempdir()) / "hn-examples" / "05_haystack_rerank",
        help="output folder (reranker, embedding cache, pipeline.yml, results.json)",
    )
    parser.add_argument("--max-train", type=int, default=None, help="use at most this many train questions")
    parser.add_argument(
        "--max-test", type=int, default=None, help="evaluate at most this many test questions"
    )
    parser.add_argument("--base-model", default="all-MiniLM-L6-v2", help="reranker to fine-tune")
    parser.add_argument("--kind", choices=["bi", "cross"], default="bi", help="kind of --base-model")
    parser.add_argument("--mining-models", nargs="+", default=["all-MiniLM-L6-v2", "static-model"])
    parser.add_argument("--selector", default="default", help="negative selector (default: the shipped one)")
    parser.add_argument(
        "--num-negatives", type=int, default=1, help="hard negatives per (question, answer) pair"
    )
    parser.add_argument(
        "--loss", default="in-batch", help="training loss (default: in-batch, as default ships)"
    )
    parser.add_argument(
        "--selection",
        choices=["cross-fit", "holdout"],
        default="cross-fit",
        help="choose epochs and fusion weight by cross-fitting over 5 folds (default) or on a 20%% hold-out",
    )
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--top-k", type=int, default=20, help="documents BM25 hands to the ranker")
    parser.add_argument(
        "--llm", default=None, help="answer the test questions with this LLM too (smollm2, or a causal LM)"
    )
    parser.add_argument("--rag-contexts", type=int, default=3, help="documents each answer is written from")
    parser.add_argument("--rag-queries", type=int, default=30, help="test questions answered by --llm")
    return parser.parse_args()


#: The RAG prompt (each document cut to 900 characters, about 150 words, to keep a small CPU model fast).
RAG_TEMPLATE = """Context:
{% for document in documents %}{{ document.content | truncate(900) }}

{% endfor %}Using only the context above, answer in one or two sentences.
Question: {{ question }}"""


@component
class LocalGenerator:
    """A Haystack generator over ``hn_evaluation.generators.TransformersGenerator`` (local, greedy, offline)."""

    def __init__(self, generator: Any) -> None:
        self._generator = generator

    @component.output_types(replies=list[str])
    def run(self, prompt: str) -> dict[str, list[str]]:
        return {"replies": [self._generator.complete(prompt)]}


def rag_pipeline(
    store: InMemoryDocumentStore, args: argparse.Namespace, generator: Any, ranker: Any
) -> Pipeline:
    """retriever [-> ranker] -> prompt builder -> generator; the last ranking stage hands over --rag-contexts."""
    pipeline = Pipeline()
    top_k = args.top_k if ranker is not None else args.rag_contexts
    pipeline.add_component("retriever", InMemoryBM25Retriever(document_store=store, top_k=top_k))
    pipeline.add_component("prompt_builder", PromptBuilder(template=RAG_TEMPLATE))
    pipeline.add_component("llm", LocalGenerator(generator))
    last = "retriever"
    if ranker is not None:
        pipeline.add_component("ranker", ranker)
        pipeline.connect("retriever.documents", "ranker.documents")
        last = "ranker"
    pipeline.connect(f"{last}.documents", "prompt_builder.documents")
    pipeline.connect("prompt_builder.prompt", "llm.prompt")
    return pipeline


def answer_with_llm(args: argparse.Namespace, store: InMemoryDocumentStore, model: str, test: Any) -> str:
    """BM25 alone and BM25 -> HardNegativeRanker answer ``--rag-queries`` test questions with ``--llm``."""
    from hn_evaluation.generators import load_generator
    from hn_evaluation.rag import score_rag_answers

    generator = load_generator(args.llm)
    if not hasattr(generator, "complete"):
        raise SystemExit(f"--llm needs a language model (smollm2 or a causal LM), got {args.llm!r}.")
    pipelines = {
        "BM25 alone": rag_pipeline(store, args, generator, None),
        "BM25 -> HardNegativeRanker": rag_pipeline(
            store, args, generator, HardNegativeRanker(model=model, top_k=args.rag_contexts)
        ),
    }
    qids = test.judged_query_ids[: args.rag_queries]
    answers: dict[str, dict[str, dict[str, Any]]] = {name: {} for name in pipelines}
    t = time.perf_counter()
    for qid in qids:
        question = test.queries[qid]
        for name, pipeline in pipelines.items():
            inputs: dict[str, Any] = {
                "retriever": {"query": question},
                "prompt_builder": {"question": question},
            }
            last = "ranker" if "ranker" in pipeline.graph.nodes else "retriever"
            if last == "ranker":
                inputs["ranker"] = {"query": question}
            result = pipeline.run(inputs, include_outputs_from={last})
            answers[name][qid] = {
                "context_ids": [d.id for d in result[last]["documents"]],
                "response": result["llm"]["replies"][0],
            }
    logger.info(
        "%s answered %d questions twice in %.0f s", generator.name, len(qids), time.perf_counter() - t
    )
    report = score_rag_answers(test, answers, generator=generator.name, contexts=args.rag_contexts)
    lines = [
        f"RAG: {len(qids)} test questions answered by {generator.name} from {args.rag_contexts} documents; "
        "reference answer = the judged positive",
        report.format_table("pipeline", baseline="BM25 alone"),
    ]
    return "\n".join(lines)


def mrr_at_10(run: dict[str, list[str]], qrels: dict[str, dict[str, int]]) -> dict[str, float]:
    """MRR@10 when hn_evaluation is not installed (same definition: 1/rank of the first relevant, else 0)."""
    per_query = {}
    for qid, ranked in run.items():
        relevant = {d for d, g in qrels.get(qid, {}).items() if g > 0}
        per_query[qid] = next((1.0 / r for r, d in enumerate(ranked[:10], start=1) if d in relevant), 0.0)
    return {"mrr@10": sum(per_query.values()) / max(len(per_query), 1)}


def evaluate(run: dict[str, list[str]], qrels: dict[str, dict[str, int]]) -> dict[str, float]:
    try:
        from hn_evaluation.metrics import evaluate_run
    except ImportError:
        logger.warning("hn_evaluation is not installed (pip install -e evaluation); computing MRR@10 here.")
        return mrr_at_10(run, qrels)
    means, _ = evaluate_run(run, qrels, metrics=("mrr@10", "ndcg@10", "recall@10"))
    return dict(means)


def starting_model(base_model: str, kind: str, out: Path) -> str:
    """The base model as a ranker without fine-tuning: a cross-encoder loads as is; a bi-encoder gets the
    ``hn_reranker.json`` marker the trainer writes (``{"kind": "bi"}``), in a copy."""
    if kind == "cross":
        return base_model
    folder = out / "starting-model"
    if not (folder / "hn_reranker.json").is_file():
        shutil.copytree(resolve_model_path(base_model), folder, dirs_exist_ok=True)
        (folder / "hn_reranker.json").write_text(json.dumps({"kind": "bi"}), encoding="utf-8")
    return str(folder)


def bm25_pipeline(store: InMemoryDocumentStore, top_k: int, ranker: HardNegativeRanker | None) -> Pipeline:
    pipeline = Pipeline()
    pipeline.add_component("retriever", InMemoryBM25Retriever(document_store=store, top_k=top_k))
    if ranker is not None:
        pipeline.add_component("ranker", ranker)
        pipeline.connect("retriever.documents", "ranker.documents")
    return pipeline


def run_pipeline(pipeline: Pipeline, question: str) -> list[str]:
    inputs = {"retriever": {"query": question}}
    if "ranker" in pipeline.graph.nodes:
        inputs["ranker"] = {"query": question}
    result = pipeline.run(inputs)
    return [d.id for d in next(iter(result.values()))["documents"]]


def main() -> None:
    args = parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()

    # 1. load the data: documents, train questions (to fine-tune on) and test questions (to measure)
    if args.data == DEMO_DATA and not DEMO_DATA.exists():
        export_demo_dataset(DEMO_DATA)  # what `hn demo` writes there
    train = load_beir(args.data, split="train", empty_documents="drop")
    test = load_beir(args.data, split="test", empty_documents="drop")
    if args.max_train:
        train = train.subset(train.judged_query_ids[: args.max_train])
    if args.max_test:
        test = test.subset(test.judged_query_ids[: args.max_test])
    logger.info(
        "%s: %d documents, %d train and %d test questions",
        args.data.name,
        len(train.corpus),
        len(train.judged_query_ids),
        len(test.judged_query_ids),
    )

    # 2. the user's DocumentStore and existing pipeline: BM25 over the documents (id = BEIR id, title as
    #    meta); a named index, so that a pipeline loaded from YAML in this process finds the same documents
    store = InMemoryDocumentStore(index=f"hn-example-{args.data.name}")
    store.write_documents(
        [
            Document(id=d, content=text, meta={"title": title})
            for d, (title, text) in train.corpus.items()
            if text.strip()
        ]
    )

    # 3. the QA pairs a Haystack user has: (question, id of the document that answers it), train split only
    qa_pairs = [(train.queries[q], d) for q, d in train.positive_pairs()]

    # 4. one call: mine hard negatives among the store's documents, fine-tune, get a ready component
    t = time.perf_counter()
    ranker = HardNegativeRanker.from_document_store(
        store,
        qa_pairs,
        output_dir=args.out / "reranker",
        base_model=args.base_model,
        kind=args.kind,
        models=args.mining_models,
        selector=args.selector,
        num_negatives=args.num_negatives,
        loss=args.loss,
        epochs=args.epochs,
        seed=args.seed,
        trainer_kwargs={"selection": args.selection},
        cache_dir=args.out / "embedding-cache",
        top_k=10,
    )
    finetune_s = time.perf_counter() - t
    logger.info("Mined and fine-tuned in %.0f s: %s", finetune_s, ranker.model)

    # 5. three pipelines over the same store: BM25 alone, BM25 -> starting model, BM25 -> HardNegativeRanker;
    #    the fine-tuned one is saved as YAML and loaded back, as a deployment would
    tuned = bm25_pipeline(store, args.top_k, ranker)
    (args.out / "pipeline.yml").write_text(tuned.dumps(), encoding="utf-8")
    tuned = Pipeline.loads((args.out / "pipeline.yml").read_text(encoding="utf-8"))
    pipelines = {
        "bm25": bm25_pipeline(store, args.top_k, None),
        "start": bm25_pipeline(
            store,
            args.top_k,
            HardNegativeRanker(model=starting_model(args.base_model, args.kind, args.out), top_k=10),
        ),
        "tuned": tuned,
    }

    # 6. measure MRR@10 on the test questions (the reranker never saw them)
    runs: dict[str, dict[str, list[str]]] = {name: {} for name in pipelines}
    t = time.perf_counter()
    for qid in test.judged_query_ids:
        for name, pipeline in pipelines.items():
            runs[name][qid] = run_pipeline(pipeline, test.queries[qid])
    logger.info(
        "Answered %d test questions with %d pipelines in %.0f s",
        len(test.judged_query_ids),
        len(pipelines),
        time.perf_counter() - t,
    )
    qrels = {q: test.qrels[q] for q in test.judged_query_ids}
    results = {name: evaluate(run, qrels) for name, run in runs.items()}
    (args.out / "results.json").write_text(json.dumps(results, indent=1), encoding="utf-8")

    # 7. the table
    names = sorted(results["bm25"])
    labels = {
        "bm25": f"BM25 top-{args.top_k} alone",
        "start": f"BM25 -> {args.base_model} (not tuned)",
        "tuned": "BM25 -> HardNegativeRanker",
    }
    rows = [
        f"{args.data.name}: {len(test.judged_query_ids)} test questions, {len(train.corpus)} documents, "
        f"InMemoryBM25Retriever top-{args.top_k}, reranker {args.base_model} ({args.kind}) fine-tuned on "
        f"{len(train.judged_query_ids)} train questions, {args.selector} negatives x{args.num_negatives}, "
        f"{args.loss} loss, {args.selection} selection, {args.epochs} epoch(s), seed {args.seed}",
        f"{'pipeline':<44}" + "".join(f"{m:>11}" for m in names),
        *(f"{labels[n]:<44}" + "".join(f"{results[n][m]:>11.4f}" for m in names) for n in pipelines),
    ]
    if args.llm is not None:
        # 8. downstream: BM25 alone and BM25 -> the fine-tuned ranker feed a local LLM; are the answers better?
        rows.append(answer_with_llm(args, store, ranker.model, test))
    rows.append(f"total {time.perf_counter() - started:.0f} s (mine + fine-tune {finetune_s:.0f} s)")
    sys.stdout.write("\n".join(rows) + "\n")


if __name__ == "__main__":
    main()
