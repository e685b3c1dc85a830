"""Strategy benchmark: mine negatives on the train split with each strategy, fine-tune one reranker per strategy and
seed under identical settings, evaluate every reranker on the test split (first stage -> rerank), write a report.

Rows of the report:

- ``none``: the first stage alone (BM25 top-k by default);
- ``zero-shot``: the starting reranker, not fine-tuned (for ``kind="bi"``: the base bi-encoder scoring by cosine);
- ``random``, ``bm25``, ``dense-topk``, ``positive-aware``, ``st``: mined baselines (the dense ones in the space of
  the first ensemble member alone, as those tools run: one embedding model, no PCA);
- ``in-batch``: no mined negative, loss ``in-batch`` on the positive pairs (other pairs' positives are the
  negatives);
- ``paper``: the paper's exact method: ensemble + PCA (95% variance) + Eq. 5 and Eq. 6, triplet loss;
- ``default``: the configuration we ship, :data:`~hn_plugins.mining.default_recipe.DEFAULT_STRATEGY`;
- ablation rows (``paper@pca0.7``, ``paper@single-model``, ``default@train0.25``, ...) when asked for;
- ``default+verify`` (ablation, ``ablation_verifier=True``): ``default`` with a false-negative verifier
  (:class:`~hn_plugins.mining.verifier.FalseNegativeVerifier`) applied to the paper's and the fallback's negatives
  before they are combined; the teacher is the zero-shot base model fused with BM25 on the train split
  (:func:`zero_shot_fusion_teacher`). Pairs whose hard negatives were all dropped fall back to positive-aware, then
  to the random negative alone.
- ``default+adapt`` (ablation, ``ablation_adapt=True``, ``kind="bi"``): ``hn bootstrap --kind bi`` then ``default``:
  the base model is adapted to the train corpus without labels
  (:func:`~hn_plugins.training.corpus_adaptation.adapt_bi_encoder`, one adaptation per seed) and ``default`` is
  fine-tuned from the adapted model if adapting raised the fused MRR@10 of the judged train queries, else from the
  base model.

Everything else (base model, loss, epochs, learning rate, batch size, number of negatives, validation) is the same
for every row (:class:`BenchmarkSettings`), so the rows differ only by their negatives.

Modules: :mod:`.settings` (the run's settings), :mod:`.data` (splits, test sample, train subsets),
:mod:`.strategies` (each row's negatives), :mod:`.miners`, :mod:`.teacher` (zero-shot fusion and the verifier's
teacher), :mod:`.training` (a trained row's fine-tune), :mod:`.scoring` (first stage and scorers),
:mod:`.results`, :mod:`.runner` (the driver), :mod:`.report` and :mod:`.markdown` (the report).
"""

from __future__ import annotations

from hn_plugins.mining.default_recipe import (
    DEFAULT_STRATEGY,
    combine_default_negatives,
    combine_verified_default_negatives,
)

from .data import BenchmarkData, TrainSplits, check_split, load_benchmark_data, load_split
from .markdown import format_benchmark_markdown
from .merge import join_benchmark_rows, merge_benchmark_reports, settings_differences
from .miners import Miners, mining_summary, positive_pairs_result
from .report import assemble_report, benchmark_config, pca_picture, quality_bar
from .results import RowResults
from .runner import run_benchmark
from .scoring import (
    EmbeddedBiEncoderScorer,
    FusedScorer,
    TestCandidates,
    benchmark_metrics,
    candidate_texts,
    first_stage_run,
    first_stage_scores_by_text,
    load_bi_encoder,
)
from .settings import BenchmarkSettings, parse_models
from .strategies import (
    ALL_STRATEGIES,
    StrategyNegatives,
    StrategyRow,
    build_rows,
    check_strategies,
)
from .teacher import VERIFIER_TEACHER_TOP_K, ZeroShotFusions, zero_shot_fusion, zero_shot_fusion_teacher

__all__ = [
    "ALL_STRATEGIES",
    "DEFAULT_STRATEGY",
    "VERIFIER_TEACHER_TOP_K",
    "BenchmarkData",
    "BenchmarkSettings",
    "EmbeddedBiEncoderScorer",
    "FusedScorer",
    "Miners",
    "RowResults",
    "StrategyNegatives",
    "StrategyRow",
    "TestCandidates",
    "TrainSplits",
    "ZeroShotFusions",
    "assemble_report",
    "benchmark_config",
    "benchmark_metrics",
    "build_rows",
    "candidate_texts",
    "check_split",
    "check_strategies",
    "combine_default_negatives",
    "combine_verified_default_negatives",
    "first_stage_run",
    "first_stage_scores_by_text",
    "format_benchmark_markdown",
    "join_benchmark_rows",
    "load_benchmark_data",
    "load_bi_encoder",
    "load_split",
    "merge_benchmark_reports",
    "mining_summary",
    "parse_models",
    "pca_picture",
    "positive_pairs_result",
    "quality_bar",
    "run_benchmark",
    "settings_differences",
    "zero_shot_fusion",
    "zero_shot_fusion_teacher",
]

# Names of the single-module benchmark, kept for scripts written against it; use the public names instead.
_load_split = load_split
_Miners = Miners
_zero_shot_fusion = zero_shot_fusion
_mining_summary = mining_summary
_candidate_texts = candidate_texts
