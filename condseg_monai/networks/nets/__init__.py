# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""ConDSeg networks: the full model (Stage 2) and the Stage-1 consistency network."""

from __future__ import annotations

from condseg_monai.networks.nets.condseg import ConDSeg, ConDSegOutput, condseg_mask
from condseg_monai.networks.nets.condseg_stage1 import ConDSegStage1, Stage1Head

__all__ = ["ConDSeg", "ConDSegOutput", "ConDSegStage1", "Stage1Head", "condseg_mask"]
