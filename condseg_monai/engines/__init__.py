# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""Training-workflow pieces referenced from the bundle configs."""

from __future__ import annotations

from .inferers import ConsistencyInferer
from .semi_supervised import (
    BidirectionalCopyPaste,
    SemiSupervisedTrainer,
    load_unlabeled,
    make_trainer,
    training_state,
)
from .settings import TrainingSettings, check_training_settings
from .stages import run_stages
from .utils import encoder_param_groups, init_from_stage1, resume_checkpoint_path, scored_prediction

__all__ = [
    "BidirectionalCopyPaste",
    "ConsistencyInferer",
    "SemiSupervisedTrainer",
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
