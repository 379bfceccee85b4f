# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""ConDSeg losses on raw logits: DiceBCE, consistency, complementarity, Stage-2 and semi-supervised terms."""

from __future__ import annotations

from condseg_monai.losses.complementarity import ComplementarityLoss
from condseg_monai.losses.condseg_loss import BETA_MODES, ConDSegLoss, aux_beta
from condseg_monai.losses.consistency import ConsistencyLoss, Stage1Loss
from condseg_monai.losses.dice_bce import DiceBCELoss, dice_bce
from condseg_monai.losses.semi_supervised import (
    ConfidentPseudoLabelLoss,
    UnlabeledConsistencyLoss,
    mask_logits,
    pseudo_label,
    sigmoid_rampup,
)

__all__ = [
    "BETA_MODES",
    "ComplementarityLoss",
    "ConfidentPseudoLabelLoss",
    "ConDSegLoss",
    "ConsistencyLoss",
    "DiceBCELoss",
    "Stage1Loss",
    "UnlabeledConsistencyLoss",
    "aux_beta",
    "dice_bce",
    "mask_logits",
    "pseudo_label",
    "sigmoid_rampup",
]
