# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""Tests of the one-axis Gaussian blur (the official vertical 7x1 Stage-1 blur)."""

from __future__ import annotations

import math

import pytest
import torch

from condseg_monai.transforms.functional import gaussian_blur_1d, gaussian_kernel1d


def test_kernel_by_hand() -> None:
    k = gaussian_kernel1d(1.0, 7, dtype=torch.float64)
    ref = torch.tensor([math.exp(-0.5 * x * x) for x in range(-3, 4)], dtype=torch.float64)
    torch.testing.assert_close(k, ref / ref.sum())
    ks = gaussian_kernel1d(torch.tensor([0.1, 3.0]), 7)
    assert ks.shape == (2, 7)
    torch.testing.assert_close(ks.sum(-1), torch.ones(2))
    assert ks[0, 3] > 0.99  # tiny sigma: (almost) the identity
    torch.testing.assert_close(ks, ks.flip(-1))  # symmetric


def test_constant_image_is_preserved() -> None:
    img = torch.full((2, 3, 10, 12), 0.37)
    out = gaussian_blur_1d(img, torch.tensor([0.5, 3.0]))
    torch.testing.assert_close(out, img)


def test_mixes_only_along_h() -> None:
    img = torch.zeros(1, 12, 9)
    img[0, 6, 4] = 1.0
    out = gaussian_blur_1d(img, 2.0, axis=-2)
    # energy stays in column 4 and spreads over rows 3..9 (7 taps)
    assert torch.count_nonzero(out[0, :, [0, 1, 2, 3, 5, 6, 7, 8]]) == 0
    assert torch.count_nonzero(out[0, :, 4]) == 7
    torch.testing.assert_close(out.sum(), torch.tensor(1.0))
    # rows identical along H (vertical stripes) are unchanged by a vertical blur
    stripes = torch.rand(1, 1, 9).expand(3, 12, 9).contiguous()
    torch.testing.assert_close(gaussian_blur_1d(stripes, 3.0, axis=-2), stripes)
    # axis=-1 blurs along W instead
    out_w = gaussian_blur_1d(img, 2.0, axis=-1)
    assert torch.count_nonzero(out_w[0, 6]) == 7 and torch.count_nonzero(out_w[0, :6]) == 0


def test_reflect_padding_by_hand() -> None:
    # column [a, b, c, d, ...]: "reflect" mirrors without repeating the edge, so row 0 sees [d, c, b, a, b, c, d]
    col = torch.arange(8, dtype=torch.float64).view(1, 8, 1)
    k = gaussian_kernel1d(1.5, 7, dtype=torch.float64)
    out = gaussian_blur_1d(col, 1.5)
    expected0 = (k * torch.tensor([3, 2, 1, 0, 1, 2, 3], dtype=torch.float64)).sum()
    torch.testing.assert_close(out[0, 0, 0], expected0)


def test_per_image_sigma_equals_single_application() -> None:
    g = torch.Generator().manual_seed(1)
    img = torch.rand(3, 3, 16, 10, generator=g)
    sigmas = torch.tensor([0.3, 1.0, 2.5])
    out = gaussian_blur_1d(img, sigmas)
    for i in range(3):
        torch.testing.assert_close(out[i], gaussian_blur_1d(img[i], float(sigmas[i])))


def test_errors() -> None:
    with pytest.raises(ValueError, match="odd"):
        gaussian_kernel1d(1.0, 6)
    with pytest.raises(ValueError, match="positive"):
        gaussian_kernel1d(0.0, 7)
    with pytest.raises(ValueError, match="axis"):
        gaussian_blur_1d(torch.rand(3, 8, 8), 1.0, axis=0)
    with pytest.raises(ValueError, match="more than 3 pixels"):
        gaussian_blur_1d(torch.rand(3, 3, 8), 1.0)
    with pytest.raises(ValueError, match="sigma"):
        gaussian_blur_1d(torch.rand(2, 3, 8, 8), torch.ones(3))
