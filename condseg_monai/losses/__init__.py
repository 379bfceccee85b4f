# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""ConDSeg losses on raw logits: DiceBCE, Stage-1 consistency, complementarity and the Stage-2 loss."""

from __future__ import annotations

from condseg_monai.losses.complementarity import ComplementarityLoss
from condseg_monai.losses.condseg_loss import BETA_MODES, ConDSegLoss, aux_beta
from condseg_monai.losses.consistency import ConsistencyLoss, Stage1Loss
from condseg_monai.losses.dice_bce import DiceBCELoss, dice_bce

__all__ = [
    "BETA_MODES",
    "ComplementarityLoss",
    "ConDSegLoss",
    "ConsistencyLoss",
    "DiceBCELoss",
    "Stage1Loss",
    "aux_beta",
    "dice_bce",
]
