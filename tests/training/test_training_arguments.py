"""The best-epoch trainer arguments shared by the bootstrap and the experiment scripts."""

from __future__ import annotations

import pytest

from hn_plugins.training.arguments import EpochSchedule, best_epoch_arguments


def test_best_epoch_arguments_build_real_trainer_arguments(tmp_path):
    from sentence_transformers.cross_encoder import CrossEncoderTrainingArguments

    schedule = EpochSchedule(epochs=3, batch_size=8, lr=2e-5, seed=7, warmup_ratio=0.1)
    args = CrossEncoderTrainingArguments(**best_epoch_arguments(tmp_path, schedule, 81, "validation"))
    # 81 rows / 8 per step = 11 steps per epoch (the last one partial); 10% of 33 steps warm up
    assert args.warmup_steps == 3
    assert args.logging_steps == 11
    assert args.num_train_epochs == 3 and args.per_device_train_batch_size == 8 and args.learning_rate == 2e-5
    assert args.seed == 7 and args.data_seed == 7
    assert args.metric_for_best_model == "eval_validation_mrr@10" and args.greater_is_better
    assert args.load_best_model_at_end and args.eval_on_start
    assert args.eval_strategy.value == args.save_strategy.value == "epoch"
    assert args.learning_rate_mapping in (None, {})


def test_head_learning_rate_only_when_asked(tmp_path):
    plain = best_epoch_arguments(tmp_path, EpochSchedule(epochs=1, batch_size=4, lr=1e-5), 4, "v")
    assert "learning_rate_mapping" not in plain
    head = best_epoch_arguments(
        tmp_path, EpochSchedule(epochs=1, batch_size=4, lr=1e-5, head_lr=1e-3), 4, "v"
    )
    assert head["learning_rate_mapping"] == {r"classifier\.": 1e-3}
    assert head["logging_steps"] == 1 and head["warmup_steps"] == 0


def test_bad_schedules_and_rows_are_named():
    with pytest.raises(ValueError, match="epochs >= 1"):
        EpochSchedule(epochs=0, batch_size=8, lr=1e-5)
    with pytest.raises(ValueError, match="warmup_ratio"):
        EpochSchedule(epochs=1, batch_size=8, lr=1e-5, warmup_ratio=1.5)
    with pytest.raises(ValueError, match="at least one training row"):
        best_epoch_arguments("w", EpochSchedule(epochs=1, batch_size=8, lr=1e-5), 0, "v")
