# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""Tests of the plain-torch colour operations (torchvision ColorJitter semantics)."""

from __future__ import annotations

import colorsys

import numpy as np
import pytest
import torch

from condseg_monai.transforms.functional import (
    adjust_brightness,
    adjust_contrast,
    adjust_hue,
    adjust_saturation,
    hsv_to_rgb,
    rgb_to_grayscale,
    rgb_to_hsv,
)


@pytest.fixture
def batch() -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.rand(3, 3, 9, 11, generator=g)


def test_grayscale_weights_by_hand() -> None:
    # pure red, green, blue and white pixels: luma = the ITU-R 601-2 weight of each channel
    img = torch.zeros(3, 1, 4)
    img[0, 0, 0] = img[1, 0, 1] = img[2, 0, 2] = 1.0
    img[:, 0, 3] = 1.0
    gray = rgb_to_grayscale(img)
    assert gray.shape == (1, 1, 4)
    torch.testing.assert_close(gray[0, 0], torch.tensor([0.299, 0.587, 0.114, 1.0]))
    gray3 = rgb_to_grayscale(img, num_output_channels=3)
    assert gray3.shape == img.shape
    assert torch.equal(gray3[0], gray3[1]) and torch.equal(gray3[1], gray3[2])


def test_brightness(batch: torch.Tensor) -> None:
    assert torch.equal(adjust_brightness(batch, 1.0), batch)
    assert torch.equal(adjust_brightness(batch, 0.0), torch.zeros_like(batch))
    out = adjust_brightness(batch, 1.3)
    torch.testing.assert_close(out, (batch * 1.3).clamp(0, 1))
    assert out.max() <= 1.0


def test_contrast(batch: torch.Tensor) -> None:
    torch.testing.assert_close(adjust_contrast(batch, 1.0), batch)
    flat = adjust_contrast(batch, 0.0)
    # factor 0: every pixel of each image becomes that image's mean luma
    means = rgb_to_grayscale(batch).mean(dim=(-3, -2, -1))
    for i in range(batch.shape[0]):
        torch.testing.assert_close(flat[i], torch.full_like(flat[i], float(means[i])))


def test_saturation(batch: torch.Tensor) -> None:
    torch.testing.assert_close(adjust_saturation(batch, 1.0), batch)
    gray = adjust_saturation(batch, 0.0)
    torch.testing.assert_close(gray, rgb_to_grayscale(batch, 3))
    assert adjust_saturation(batch, 1.3).min() >= 0.0


def test_hsv_matches_colorsys(batch: torch.Tensor) -> None:
    img = batch[0].clone()
    img[:, 0, 0] = 0.5  # grey pixel: hue and saturation 0
    img[:, 0, 1] = torch.tensor([0.9, 0.9, 0.2])  # tie between R and G
    img[:, 0, 2] = 0.0  # black
    hsv = rgb_to_hsv(img)
    for y in range(img.shape[1]):
        for x in range(img.shape[2]):
            ref = colorsys.rgb_to_hsv(*img[:, y, x].tolist())
            np.testing.assert_allclose(hsv[:, y, x].numpy(), ref, atol=1e-6)
    torch.testing.assert_close(hsv_to_rgb(hsv), img, atol=2e-6, rtol=0)


def test_hue_shift(batch: torch.Tensor) -> None:
    torch.testing.assert_close(adjust_hue(batch, 0.0), batch, atol=2e-6, rtol=0)
    out = adjust_hue(batch[1], 0.25)
    for y in range(0, 9, 2):
        for x in range(0, 11, 3):
            h, s, v = colorsys.rgb_to_hsv(*batch[1, :, y, x].tolist())
            ref = colorsys.hsv_to_rgb((h + 0.25) % 1.0, s, v)
            np.testing.assert_allclose(out[:, y, x].numpy(), ref, atol=2e-6)
    # shifting by a full half turn twice is the identity
    torch.testing.assert_close(adjust_hue(adjust_hue(batch, 0.5), -0.5), batch, atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    "op,factors",
    [
        (adjust_brightness, (0.7, 1.0, 1.3)),
        (adjust_contrast, (0.7, 1.0, 1.3)),
        (adjust_saturation, (0.7, 1.0, 1.3)),
        (adjust_hue, (-0.1, 0.0, 0.1)),
    ],
)
def test_per_image_factors_equal_single_application(op, factors, batch: torch.Tensor) -> None:
    out = op(batch, torch.tensor(factors))
    for i, f in enumerate(factors):
        torch.testing.assert_close(out[i], op(batch[i], f), atol=1e-6, rtol=0)


def test_bad_inputs(batch: torch.Tensor) -> None:
    with pytest.raises(ValueError, match="shape"):
        adjust_brightness(torch.rand(4, 8, 8), 1.0)
    with pytest.raises(TypeError, match="floating"):
        adjust_contrast((batch * 255).to(torch.uint8), 1.0)
    with pytest.raises(ValueError, match="shift"):
        adjust_hue(batch, 0.7)
    with pytest.raises(ValueError, match="per-image factor"):
        adjust_saturation(batch, torch.ones(2))
    with pytest.raises(ValueError, match="num_output_channels"):
        rgb_to_grayscale(batch, 2)
