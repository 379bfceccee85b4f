# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""Ignite/MONAI handlers for ConDSeg training: atomic checkpoints, early stopping, scalars, previews."""

from __future__ import annotations

from .checkpoint import AtomicCheckpointSaver, AtomicDiskSaver, ResumeCheckpointLoader, atomic_torch_save
from .early_stopping import EarlyStopping
from .evaluation_report import EvaluationReport
from .failures import InputFailureHandler
from .paper_metric import PaperMetricHandler
from .previews import SegmentationPreviewHandler
from .progress import ProgressBar
from .training_scalars import TrainingScalarsHandler

__all__ = [
    "AtomicCheckpointSaver",
    "AtomicDiskSaver",
    "EarlyStopping",
    "EvaluationReport",
    "InputFailureHandler",
    "PaperMetricHandler",
    "ProgressBar",
    "ResumeCheckpointLoader",
    "SegmentationPreviewHandler",
    "TrainingScalarsHandler",
    "atomic_torch_save",
]
