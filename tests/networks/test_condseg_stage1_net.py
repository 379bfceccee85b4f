# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""Tests of the Stage-1 network."""

from __future__ import annotations

import pytest
import torch
from network_test_utils import parse_official_keys

from condseg_monai.networks import ConDSeg, ConDSegStage1


def test_stage1_shapes_and_logits():
    torch.manual_seed(0)
    net = ConDSegStage1(out_channels=2)
    x = torch.rand(2, 3, 32, 48)
    assert net.train()(x).shape == (2, 2, 32, 48)
    with torch.no_grad():
        out = net.eval()(x)
    assert out.shape == (2, 2, 32, 48)
    with pytest.raises(ValueError, match="multiples of 16"):
        net(torch.rand(1, 3, 32, 20))
    with pytest.raises(ValueError, match="spatial_dims"):
        ConDSegStage1(spatial_dims=3)


def test_stage1_parameter_count_and_keys():
    with torch.device("meta"):
        net = ConDSegStage1()
        full = ConDSeg()
    assert sum(p.numel() for p in net.parameters()) == 8_662_848
    assert sum(p.numel() for p in net.head.parameters()) == 8_662_848 - 8_543_296
    official = parse_official_keys()["ConDSegStage1"]
    assert [tuple(v.shape) for v in net.state_dict().values()] == [s for _, s in official]
    # the encoders of both networks have identical keys, so Stage 1 hands over directly
    enc1 = [k for k in net.state_dict() if k.startswith("encoder.")]
    enc2 = [k for k in full.state_dict() if k.startswith("encoder.")]
    assert enc1 == enc2 and len(enc1) == 258


def test_stage1_head_commutes_conv_and_upsampling():
    """Convolving before upsampling equals the official upsample-then-convolve order (train-mode BN included)."""
    torch.manual_seed(0)
    net = ConDSegStage1().train()
    feats = net.encoder(torch.rand(2, 3, 32, 32))
    up = [
        torch.nn.functional.interpolate(f, scale_factor=s, mode="bilinear", align_corners=True)
        for f, s in zip(feats, (2, 4, 8, 16), strict=True)
    ]
    head = net.head
    official_order = head.conv_fuse(
        torch.cat([head.conv1(up[0]), head.conv2(up[1]), head.conv3(up[2]), head.conv4(up[3])], 1)
    )
    torch.testing.assert_close(head(*feats), official_order, atol=1e-4, rtol=1e-4)


def test_stage1_trace_and_script():
    net = ConDSegStage1().eval()
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        expected = net(x)
        torch.testing.assert_close(torch.jit.trace(net, x)(x), expected)
        torch.testing.assert_close(torch.jit.script(net)(x), expected)
