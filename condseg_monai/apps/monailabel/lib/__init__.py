# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""The app's MONAI Label tasks: the ``uncertainty``, ``diverse_uncertainty`` and ``foreground_random`` strategies,
the uncertainty scoring method and the semi-supervised fine-tuning task."""

from __future__ import annotations

from condseg_monai.apps.monailabel.lib.scoring import DEFAULT_SCORE, EMBEDDINGS_FILE, SCORE_KEY, UncertaintyScoring
from condseg_monai.apps.monailabel.lib.strategy import DiverseUncertainty, ForegroundRandom, Uncertainty
from condseg_monai.apps.monailabel.lib.trainer import SemiSupervisedBundleTrainTask

__all__ = [
    "DEFAULT_SCORE",
    "EMBEDDINGS_FILE",
    "SCORE_KEY",
    "DiverseUncertainty",
    "ForegroundRandom",
    "SemiSupervisedBundleTrainTask",
    "Uncertainty",
    "UncertaintyScoring",
]
