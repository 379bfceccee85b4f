# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""Training engines and their workflow plumbing: trainers, batch preparation, the stage runner, settings."""

from __future__ import annotations

from .prepare_batch import StrongViewPrepareBatch
from .schedules import IterationStateScheduler, MeanTeacherMomentum, UnsupervisedWeightRampup, rampup_iterations
from .semi_supervised import SemiSupervisedTrainer, load_unlabeled, make_trainer, unlabeled_batch_size
from .settings import TrainingSettings, check_training_settings, config_settings, settings_from_config
from .stages import run_stages
from .utils import (
    encoder_param_groups,
    init_from_stage1,
    resume_checkpoint_path,
    scored_prediction,
    training_state,
)
from .workflow import (
    checked_datalist,
    ema_model,
    evaluation_network,
    finetunes_from,
    is_main_rank,
    memory_format,
    run_defaults,
    train_handlers,
    training_datalist,
    uses_amp,
    uses_demo_data,
    uses_mixing,
    uses_teacher,
)

__all__ = [
    "IterationStateScheduler",
    "MeanTeacherMomentum",
    "SemiSupervisedTrainer",
    "StrongViewPrepareBatch",
    "TrainingSettings",
    "UnsupervisedWeightRampup",
    "check_training_settings",
    "checked_datalist",
    "config_settings",
    "ema_model",
    "encoder_param_groups",
    "evaluation_network",
    "finetunes_from",
    "init_from_stage1",
    "is_main_rank",
    "load_unlabeled",
    "make_trainer",
    "memory_format",
    "rampup_iterations",
    "resume_checkpoint_path",
    "run_defaults",
    "run_stages",
    "scored_prediction",
    "settings_from_config",
    "train_handlers",
    "training_datalist",
    "training_state",
    "unlabeled_batch_size",
    "uses_amp",
    "uses_mixing",
    "uses_demo_data",
    "uses_teacher",
]
