# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""Building blocks of ConDSeg (one module per paper component)."""

from __future__ import annotations

from condseg_monai.networks.blocks.attention import ChannelAttention, SpatialAttention
from condseg_monai.networks.blocks.cdfa import (
    CDFAPreprocess,
    ContrastDrivenFeatureAggregation,
    outlook_aggregate,
    outlook_attention,
)
from condseg_monai.networks.blocks.conv import ConvBNAct
from condseg_monai.networks.blocks.decoder import FusionHead, SizeAwareDecoderBlock
from condseg_monai.networks.blocks.decoupling import AuxiliaryHead, SemanticInformationDecoupling
from condseg_monai.networks.blocks.dilated import DilatedConvBlock

__all__ = [
    "AuxiliaryHead",
    "CDFAPreprocess",
    "ChannelAttention",
    "ContrastDrivenFeatureAggregation",
    "ConvBNAct",
    "DilatedConvBlock",
    "FusionHead",
    "SemanticInformationDecoupling",
    "SizeAwareDecoderBlock",
    "SpatialAttention",
    "outlook_aggregate",
    "outlook_attention",
]
