# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""Tests of the ResNet-50 (stem + layer1..3) encoder."""

from __future__ import annotations

import pytest
import torch
from network_test_utils import parse_official_keys

from condseg_monai.networks import ResNet50Encoder


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_encoder_features_channels_and_strides():
    enc = ResNet50Encoder().eval()
    with torch.no_grad():
        feats = enc(torch.rand(2, 3, 64, 96))
    assert [tuple(f.shape) for f in feats] == [(2, 64, 32, 48), (2, 256, 16, 24), (2, 512, 8, 12), (2, 1024, 4, 6)]


def test_encoder_parameter_count_and_torchvision_keys():
    with torch.device("meta"):
        enc = ResNet50Encoder()
    assert _count(enc) == 8_543_296
    keys = list(enc.state_dict())
    assert keys[:2] == ["conv1.weight", "bn1.weight"]
    assert "layer1.0.downsample.0.weight" in keys and "layer1.0.downsample.1.running_var" in keys
    assert "layer1.0.downsample.0.bias" not in keys  # bias-free shortcut like torchvision
    assert not any(k.startswith(("layer4", "fc")) for k in keys)
    # same tensors, in the same order, as the official encoder (layer0.0 = conv1, layer1.1 = layer1, ...)
    official = [(k, s) for k, s in parse_official_keys()["ConDSeg"] if k.startswith("layer")]
    assert [tuple(v.shape) for v in enc.state_dict().values()] == [s for _, s in official]


@pytest.mark.parametrize("in_channels", [1, 4])
def test_encoder_other_input_channels(in_channels):
    enc = ResNet50Encoder(in_channels=in_channels)
    assert enc.conv1.weight.shape == (64, in_channels, 7, 7)
    assert enc(torch.rand(1, in_channels, 32, 32))[3].shape == (1, 1024, 2, 2)
    with pytest.raises(ValueError, match="in_channels"):
        ResNet50Encoder(in_channels=0)
