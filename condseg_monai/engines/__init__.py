# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""Training engines and their workflow plumbing: trainers, batch preparation, the stage runner, settings."""

from __future__ import annotations

from .prepare_batch import StrongViewPrepareBatch
from .semi_supervised import SemiSupervisedTrainer, load_unlabeled, make_trainer
from .settings import TrainingSettings, check_training_settings
from .stages import run_stages
from .utils import (
    encoder_param_groups,
    init_from_stage1,
    resume_checkpoint_path,
    scored_prediction,
    training_state,
)

__all__ = [
    "SemiSupervisedTrainer",
    "StrongViewPrepareBatch",
    "TrainingSettings",
    "check_training_settings",
    "encoder_param_groups",
    "init_from_stage1",
    "load_unlabeled",
    "make_trainer",
    "resume_checkpoint_path",
    "run_stages",
    "scored_prediction",
    "training_state",
]
