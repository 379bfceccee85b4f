# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""Tests for ConDSegInferer: probabilities, the stacked auxiliary output and flip-TTA equivariance."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from condseg_monai.inferers import DEFAULT_TTA_FLIPS, ConDSegInferer
from condseg_monai.networks import ConDSeg


def _asymmetric_net() -> nn.Module:
    """A 3x3 convolution with a random (not flip-symmetric) kernel: its output is not flip-equivariant."""
    torch.manual_seed(0)
    return nn.Conv2d(3, 1, 3, padding=1).eval()


def test_without_tta_returns_sigmoid_of_network_output() -> None:
    net = _asymmetric_net()
    x = torch.rand(2, 3, 16, 24)
    with torch.no_grad():
        out = ConDSegInferer()(x, net)
        expected = torch.sigmoid(net(x))
    assert out.shape == (2, 1, 16, 24)
    torch.testing.assert_close(out, expected)


def test_tta_is_mean_of_flipped_probabilities() -> None:
    net = _asymmetric_net()
    x = torch.rand(1, 3, 16, 24)
    with torch.no_grad():
        out = ConDSegInferer(tta=True)(x, net)
        manual = sum(torch.flip(torch.sigmoid(net(torch.flip(x, d))), d) for d in DEFAULT_TTA_FLIPS) / 4
        manual_identity = torch.sigmoid(net(x))
    torch.testing.assert_close(out, manual)
    assert not torch.allclose(out, manual_identity), "TTA must change the output of a non-symmetric network"


@pytest.mark.parametrize("dims", [(-1,), (-2,), (-2, -1)], ids=["hflip", "vflip", "both"])
def test_tta_is_flip_equivariant(dims: tuple[int, ...]) -> None:
    net = _asymmetric_net()
    x = torch.rand(1, 3, 16, 24)
    with torch.no_grad():
        tta = ConDSegInferer(tta=True)
        torch.testing.assert_close(tta(torch.flip(x, dims), net), torch.flip(tta(x, net), dims))
        plain = ConDSegInferer(tta=False)
        assert not torch.allclose(plain(torch.flip(x, dims), net), torch.flip(plain(x, net), dims), atol=1e-4)


def test_condseg_aux_output_is_kept_and_flip_equivariant() -> None:
    torch.manual_seed(0)
    net = ConDSeg(feature_size=16, num_heads=2, return_aux=True).eval()
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        tta = ConDSegInferer(tta=True)
        out = tta(x, net)
        flipped = tta(torch.flip(x, (-1,)), net)
    assert out.shape == (1, 4, 1, 32, 32)
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    torch.testing.assert_close(flipped, torch.flip(out, (-1,)), atol=1e-5, rtol=1e-4)


def test_bad_arguments_and_non_tensor_output() -> None:
    with pytest.raises(ValueError, match="flips"):
        ConDSegInferer(tta=True, flips=())
    with pytest.raises(ValueError, match="spatial dims"):
        ConDSegInferer(tta=True, flips=((1,),))
    with pytest.raises(TypeError, match="one tensor"):
        ConDSegInferer()(torch.rand(1, 3, 8, 8), lambda x: (x, x))
