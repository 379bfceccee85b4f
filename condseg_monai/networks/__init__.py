# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""ConDSeg networks, building blocks, encoder and weight loading utilities."""

from __future__ import annotations

from condseg_monai.networks.blocks import (
    AuxiliaryHead,
    CDFAPreprocess,
    ChannelAttention,
    ContrastDrivenFeatureAggregation,
    ConvBNAct,
    DilatedConvBlock,
    FusionHead,
    SemanticInformationDecoupling,
    SizeAwareDecoderBlock,
    SpatialAttention,
    outlook_aggregate,
    outlook_attention,
)
from condseg_monai.networks.encoder import ResNet50Encoder, load_pretrained_resnet50
from condseg_monai.networks.handover import load_stage1_encoder
from condseg_monai.networks.nets import ConDSeg, ConDSegOutput, ConDSegStage1, Stage1Head, condseg_mask
from condseg_monai.networks.official import convert_official_state_dict

__all__ = [
    "AuxiliaryHead",
    "CDFAPreprocess",
    "ChannelAttention",
    "ConDSeg",
    "ConDSegOutput",
    "ConDSegStage1",
    "ContrastDrivenFeatureAggregation",
    "ConvBNAct",
    "DilatedConvBlock",
    "FusionHead",
    "ResNet50Encoder",
    "SemanticInformationDecoupling",
    "SizeAwareDecoderBlock",
    "SpatialAttention",
    "Stage1Head",
    "condseg_mask",
    "convert_official_state_dict",
    "load_pretrained_resnet50",
    "load_stage1_encoder",
    "outlook_aggregate",
    "outlook_attention",
]
