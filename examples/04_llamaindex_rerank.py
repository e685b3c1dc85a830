"""Recipe 04: add a reranker fine-tuned on hard negatives to a LlamaIndex query engine, and measure it.

A LlamaIndex user has an index and QA pairs (the ``EmbeddingQAFinetuneDataset`` JSON). One call mines hard
negatives among the index's own nodes and fine-tunes a reranker on them with the shipped ``default`` recipe (the
paper's negatives in an embedding ensemble + PCA space, the positive-aware fallback, one random negative per pair,
in-batch loss, epochs and fusion weight chosen by cross-fitting), and returns a ``HardNegativeRerank`` postprocessor; the query engine then retrieves 20 nodes and keeps
the reranked best. Retrieval MRR@10 on the held-out test questions is measured without and with the reranker.
With ``--llm smollm2`` (or a causal LM's hub name or folder) the two query engines also *answer* the test
questions with that LLM (a LlamaIndex ``CustomLLM`` over ``hn_evaluation``'s ``TransformersGenerator``), each from
its best ``--rag-contexts`` nodes, and the answers are scored (context recall/precision, answer F1 and ROUGE-L
against the judged positive) with ``hn_evaluation.rag.score_rag_answers``: downstream RAG quality.

Runs offline on CPU (``HF_HUB_OFFLINE=1``): the embedding model is the packaged all-MiniLM-L6-v2, and since
no pretrained cross-encoder is packaged, the reranker starts from that bi-encoder (``kind="bi"``). With
internet, pass ``--base-model cross-encoder/ms-marco-MiniLM-L6-v2 --kind cross``.

Usage::

    HF_HUB_OFFLINE=1 python examples/04_llamaindex_rerank.py                  # the demo set (./hn-demo/data)
    HF_HUB_OFFLINE=1 python examples/04_llamaindex_rerank.py --data my-beir-folder --max-docs 800
    HF_HUB_OFFLINE=1 python examples/04_llamaindex_rerank.py --llm smollm2 --rag-queries 30

``--data`` is a BEIR folder with train and test qrels; by default the demo set ``hn demo`` writes to
``hn-demo/data`` (or ``hn demo --export DIR``), written there on first use.

Needs: ``pip install -e integrations/llama-index llama-index-embeddings-huggingface`` (and ``-e evaluation``
for the metrics; without it the recipe computes MRR@10 itself).
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from llama_index.core import VectorStoreIndex
from llama_index.core.llms import CompletionResponse, CompletionResponseGen, CustomLLM, LLMMetadata, MockLLM
from llama_index.core.llms.callbacks import llm_completion_callback
from llama_index.core.response_synthesizers.no_text import NoText
from llama_index.core.schema import TextNode
from llama_index.embeddings.huggingface import HuggingFaceEmbedding
from llama_index.postprocessor.hn_rerank import HardNegativeRerank

from hn_plugins.data import RetrievalDataset, load_beir
from hn_plugins.demo_data import export_demo_dataset
from hn_plugins.models import resolve_model_path

logger = logging.getLogger("04_llamaindex_rerank")

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
        default=Path(tempfile.gettempdir()) / "hn-examples" / "04_llamaindex_rerank",
        help="output folder (QA JSON, reranker, embedding cache, results.json)",
    )
    parser.add_argument(
        "--max-docs",
        type=int,
        default=None,
        help="index only the judged documents plus random others up to this many (faster)",
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
    parser.add_argument("--top-k", type=int, default=20, help="nodes the retriever hands to the reranker")
    parser.add_argument(
        "--llm", default=None, help="answer the test questions with this LLM too (smollm2, or a causal LM)"
    )
    parser.add_argument("--rag-contexts", type=int, default=3, help="nodes each answer is written from")
    parser.add_argument("--rag-queries", type=int, default=30, help="test questions answered by --llm")
    return parser.parse_args()


class TransformersLLM(CustomLLM):
    """A LlamaIndex LLM over ``hn_evaluation.generators.TransformersGenerator`` (greedy, local, offline)."""

    context_window: int = 2048
    num_output: int = 64
    model_name: str = "transformers"

    def __init__(self, generator: Any, **kwargs: Any) -> None:
        super().__init__(num_output=generator.max_new_tokens, model_name=generator.name, **kwargs)
        self._generator = generator

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(
            context_window=self.context_window, num_output=self.num_output, model_name=self.model_name
        )

    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        return CompletionResponse(text=self._generator.complete(prompt))

    @llm_completion_callback()
    def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponseGen:
        text = self._generator.complete(prompt)
        yield CompletionResponse(text=text, delta=text)


def answer_with_llm(args: argparse.Namespace, index: Any, model_folder: Any, test: RetrievalDataset) -> str:
    """Both query engines answer ``--rag-queries`` test questions with ``--llm``; the scored table as text."""
    from hn_evaluation.generators import load_generator
    from hn_evaluation.rag import score_rag_answers

    generator = load_generator(args.llm)
    if not hasattr(generator, "complete"):
        raise SystemExit(f"--llm needs a language model (smollm2 or a causal LM), got {args.llm!r}.")
    llm = TransformersLLM(generator)
    # each engine's LLM reads its best --rag-contexts nodes, in one call (simple_summarize cuts them to fit)
    engine_kwargs = {"llm": llm, "response_mode": "simple_summarize"}
    engines = {
        "retrieval only": index.as_query_engine(similarity_top_k=args.rag_contexts, **engine_kwargs),
        "retrieval + HardNegativeRerank": index.as_query_engine(
            similarity_top_k=args.top_k,
            node_postprocessors=[HardNegativeRerank(model=str(model_folder), top_n=args.rag_contexts)],
            **engine_kwargs,
        ),
    }
    qids = test.judged_query_ids[: args.rag_queries]
    answers: dict[str, dict[str, dict[str, Any]]] = {name: {} for name in engines}
    t = time.perf_counter()
    for qid in qids:
        for name, engine in engines.items():
            response = engine.query(test.queries[qid])
            answers[name][qid] = {
                "context_ids": [n.node.node_id for n in response.source_nodes],
                "response": str(response.response or ""),
            }
    logger.info(
        "%s answered %d questions twice in %.0f s", generator.name, len(qids), time.perf_counter() - t
    )
    report = score_rag_answers(test, answers, generator=generator.name, contexts=args.rag_contexts)
    lines = [
        f"RAG: {len(qids)} test questions answered by {generator.name} from {args.rag_contexts} nodes; "
        "reference answer = the judged positive",
        report.format_table("query engine", baseline="retrieval only"),
    ]
    return "\n".join(lines)


def mrr_at_10(run: dict[str, list[str]], qrels: dict[str, dict[str, int]]) -> tuple[dict[str, float], dict]:
    """MRR@10 when hn_evaluation is not installed (same definition: 1/rank of the first relevant, else 0)."""
    per_query = {}
    for qid, ranked in run.items():
        relevant = {d for d, g in qrels.get(qid, {}).items() if g > 0}
        per_query[qid] = next((1.0 / r for r, d in enumerate(ranked[:10], start=1) if d in relevant), 0.0)
    return {"mrr@10": sum(per_query.values()) / max(len(per_query), 1)}, per_query


def evaluate(run: dict[str, list[str]], qrels: dict[str, dict[str, int]]) -> dict[str, float]:
    try:
        from hn_evaluation.metrics import evaluate_run
    except ImportError:
        logger.warning("hn_evaluation is not installed (pip install -e evaluation); computing MRR@10 here.")
        return mrr_at_10(run, qrels)[0]
    means, _ = evaluate_run(run, qrels, metrics=("mrr@10", "ndcg@10", "recall@10"))
    return dict(means)


def subset_documents(
    train: RetrievalDataset, test: RetrievalDataset, max_docs: int | None, seed: int
) -> list[str]:
    """Every judged document, plus random others up to ``max_docs`` (all documents when ``None``)."""
    if max_docs is None or max_docs >= len(train.corpus):
        return train.doc_ids
    judged = {d for ds in (train, test) for q in ds.judged_query_ids for d in ds.positives(q)}
    others = [d for d in train.doc_ids if d not in judged]
    random.Random(seed).shuffle(others)
    keep = judged | set(others[: max(0, max_docs - len(judged))])
    return [d for d in train.doc_ids if d in keep]


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
    doc_ids = subset_documents(train, test, args.max_docs, args.seed)
    logger.info(
        "%s: %d documents, %d train and %d test questions",
        args.data.name,
        len(doc_ids),
        len(train.judged_query_ids),
        len(test.judged_query_ids),
    )

    # 2. build the LlamaIndex index: one node per document (id = document id, title as metadata),
    #    embedded with an offline embedding model
    nodes = [
        TextNode(id_=d, text=train.corpus[d][1], metadata={"title": train.corpus[d][0]}) for d in doc_ids
    ]
    embed_model = HuggingFaceEmbedding(
        model_name=resolve_model_path("all-MiniLM-L6-v2"), embed_batch_size=64, device="cpu"
    )
    t = time.perf_counter()
    index = VectorStoreIndex(nodes=nodes, embed_model=embed_model)
    logger.info("Indexed %d nodes in %.0f s", len(nodes), time.perf_counter() - t)

    # 3. the QA pairs a LlamaIndex user has on disk: EmbeddingQAFinetuneDataset's JSON (train questions only)
    keep = set(doc_ids)
    qa = train.to_llamaindex_qa()
    qa["corpus"] = {d: text for d, text in qa["corpus"].items() if d in keep}
    qa_path = args.out / "train_qa_pairs.json"
    qa_path.write_text(json.dumps(qa), encoding="utf-8")

    # 4. one call: mine hard negatives among the index's nodes, fine-tune, get a ready postprocessor
    t = time.perf_counter()
    rerank = HardNegativeRerank.from_index(
        index,
        qa_path,
        args.out / "reranker",
        base_model=args.base_model,
        kind=args.kind,
        mining_models=args.mining_models,
        selector=args.selector,
        num_negatives=args.num_negatives,
        loss=args.loss,
        epochs=args.epochs,
        seed=args.seed,
        train_kwargs={"selection": args.selection},
        top_n=10,
        cache_dir=args.out / "embedding-cache",
    )
    finetune_s = time.perf_counter() - t
    logger.info("Mined and fine-tuned in %.0f s: %s", finetune_s, rerank.model)

    # 5. two query engines over the same index: retrieval alone, and retrieval + HardNegativeRerank
    #    (retrieval is what is measured, so no answer text is written; MockLLM stands in for your LLM)
    llm = MockLLM()
    engine_kwargs = {"similarity_top_k": args.top_k, "llm": llm, "response_synthesizer": NoText(llm=llm)}
    plain = index.as_query_engine(**engine_kwargs)
    reranked = index.as_query_engine(node_postprocessors=[rerank], **engine_kwargs)

    # 6. measure retrieval MRR@10 on the test questions (the reranker never saw them)
    runs: dict[str, dict[str, list[str]]] = {"without": {}, "with": {}}
    t = time.perf_counter()
    for qid in test.judged_query_ids:
        question = test.queries[qid]
        runs["without"][qid] = [n.node.node_id for n in plain.query(question).source_nodes]
        runs["with"][qid] = [n.node.node_id for n in reranked.query(question).source_nodes]
    logger.info(
        "Answered %d test questions twice in %.0f s", len(test.judged_query_ids), time.perf_counter() - t
    )
    qrels = {q: test.qrels[q] for q in test.judged_query_ids}
    results = {name: evaluate(run, qrels) for name, run in runs.items()}
    (args.out / "results.json").write_text(json.dumps(results, indent=1), encoding="utf-8")

    # 7. the table
    names = sorted(results["without"])
    rows = [
        f"{args.data.name}: {len(test.judged_query_ids)} test questions, {len(doc_ids)} nodes, retriever top-"
        f"{args.top_k} (all-MiniLM-L6-v2), reranker {args.base_model} ({args.kind}) fine-tuned on "
        f"{len(train.judged_query_ids)} train questions, {args.selector} negatives x{args.num_negatives}, "
        f"{args.loss} loss, {args.selection} selection, {args.epochs} epoch(s), seed {args.seed}",
        f"{'query engine':<36}" + "".join(f"{m:>11}" for m in names),
        f"{'retrieval only':<36}" + "".join(f"{results['without'][m]:>11.4f}" for m in names),
        f"{'retrieval + HardNegativeRerank':<36}" + "".join(f"{results['with'][m]:>11.4f}" for m in names),
    ]
    if args.llm is not None:
        # 8. downstream: the same two engines answer with a real LLM; are the answers better?
        rows.append(answer_with_llm(args, index, rerank.model, test))
    rows.append(f"total {time.perf_counter() - started:.0f} s (mine + fine-tune {finetune_s:.0f} s)")
    sys.stdout.write("\n".join(rows) + "\n")


if __name__ == "__main__":
    main()
