# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""Tests of the Stage-1 illumination/contrast augmentation (array and dictionary versions)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.transforms import Compose
from monai.utils import set_determinism

from condseg_monai.transforms import (
    RandIlluminationContrastAugment,
    RandIlluminationContrastAugmentd,
    adjust_brightness,
    adjust_contrast,
    adjust_hue,
    adjust_saturation,
    gaussian_blur_1d,
    rgb_to_grayscale,
)

OPS = (adjust_brightness, adjust_contrast, adjust_saturation, adjust_hue)
NAMES = ("brightness", "contrast", "saturation", "hue")


@pytest.fixture
def images() -> torch.Tensor:
    return torch.rand(6, 3, 24, 20, generator=torch.Generator().manual_seed(0))


def _reference(img: torch.Tensor, p: dict, i: int, blur_axis: int = -2) -> torch.Tensor:
    """Apply the drawn parameters of image ``i`` step by step with the functional ops."""
    out = img
    for op_id in p["order"][i]:
        out = OPS[op_id](out, float(p[NAMES[op_id]][i]))
    if p["grayscale"][i]:
        out = rgb_to_grayscale(out, 3)
    if p["blur"][i]:
        out = gaussian_blur_1d(out, float(p["sigma"][i]), 7, axis=blur_axis)
    return out


def test_output_range_shape_dtype(images: torch.Tensor) -> None:
    aug = RandIlluminationContrastAugment().set_random_state(0)
    out = aug(images)
    assert out.shape == images.shape and out.dtype == images.dtype
    assert out.min() >= 0.0 and out.max() <= 1.0
    assert not torch.allclose(out, images)
    single = aug(images[0])
    assert single.shape == images[0].shape


def test_parameter_ranges() -> None:
    aug = RandIlluminationContrastAugment().set_random_state(3)
    aug.randomize(2000)
    p = aug.params
    for name in ("brightness", "contrast", "saturation"):
        assert p[name].min() >= 0.7 and p[name].max() <= 1.3
    assert p["hue"].min() >= -0.1 and p["hue"].max() <= 0.1
    assert p["sigma"].min() >= 0.1 and p["sigma"].max() <= 3.0
    assert p["blur"].all()  # the official blur is always applied
    assert 0.45 < p["grayscale"].mean() < 0.55
    assert all(sorted(o) == [0, 1, 2, 3] for o in p["order"])
    assert len({tuple(o) for o in p["order"]}) == 24  # every order occurs


def test_batch_equals_per_image_application(images: torch.Tensor) -> None:
    aug = RandIlluminationContrastAugment().set_random_state(5)
    out = aug(images)
    for i in range(images.shape[0]):
        torch.testing.assert_close(out[i], _reference(images[i], aug.params, i), atol=1e-5, rtol=0)


def test_shared_draw_matches_per_image_application(images: torch.Tensor) -> None:
    aug = RandIlluminationContrastAugment(per_batch=True).set_random_state(7)
    out = aug(images)
    p = aug.params
    for key in p:  # one draw repeated over the batch
        assert all(np.array_equal(p[key][0], p[key][i]) for i in range(images.shape[0]))
    for i in range(images.shape[0]):
        torch.testing.assert_close(out[i], _reference(images[i], p, 0), atol=1e-5, rtol=0)


def test_per_sample_vs_shared(images: torch.Tensor) -> None:
    same = images[:1].expand(6, -1, -1, -1).contiguous()
    shared = RandIlluminationContrastAugment(per_batch=True).set_random_state(1)(same)
    assert all(torch.equal(shared[0], shared[i]) for i in range(6))
    per_sample = RandIlluminationContrastAugment(per_batch=False).set_random_state(1)(same)
    assert not torch.allclose(per_sample[0], per_sample[1])


def test_identity_and_forced_grayscale(images: torch.Tensor) -> None:
    ident = RandIlluminationContrastAugment(0, 0, 0, 0, grayscale_prob=0.0, blur_prob=0.0).set_random_state(0)
    torch.testing.assert_close(ident(images), images, atol=2e-6, rtol=0)
    gray = RandIlluminationContrastAugment(grayscale_prob=1.0).set_random_state(0)(images)
    assert torch.allclose(gray[:, 0], gray[:, 1]) and torch.allclose(gray[:, 1], gray[:, 2])


def test_blur_axis_is_vertical_by_default() -> None:
    # an image constant along H (vertical stripes) is unchanged by the vertical blur (no jitter, no grayscale)
    stripes = torch.rand(1, 3, 1, 16).expand(2, 3, 12, 16).contiguous()
    aug = RandIlluminationContrastAugment(0, 0, 0, 0, grayscale_prob=0.0).set_random_state(0)
    torch.testing.assert_close(aug(stripes), stripes, atol=1e-6, rtol=0)
    horizontal = RandIlluminationContrastAugment(0, 0, 0, 0, grayscale_prob=0.0, blur_axis=-1).set_random_state(0)
    assert not torch.allclose(horizontal(stripes), stripes, atol=1e-3)


def test_reproducible_with_seed_and_set_determinism(images: torch.Tensor) -> None:
    a = RandIlluminationContrastAugment().set_random_state(42)(images)
    b = RandIlluminationContrastAugment().set_random_state(42)(images)
    assert torch.equal(a, b)
    c = RandIlluminationContrastAugment().set_random_state(43)(images)
    assert not torch.equal(a, c)
    try:
        set_determinism(seed=11)
        x = RandIlluminationContrastAugment()(images)
        set_determinism(seed=11)
        y = RandIlluminationContrastAugment()(images)
        set_determinism(seed=11)
        z = Compose([RandIlluminationContrastAugmentd(keys="image")])({"image": images})["image"]
        set_determinism(seed=11)
        w = Compose([RandIlluminationContrastAugmentd(keys="image")])({"image": images})["image"]
    finally:
        set_determinism(seed=None)
    assert torch.equal(x, y)
    assert torch.equal(z, w)


def test_dict_version_shares_the_draw(images: torch.Tensor) -> None:
    aug = RandIlluminationContrastAugmentd(keys=("image", "copy"), per_batch=False).set_random_state(9)
    out = aug({"image": images, "copy": images.clone(), "label": "untouched"})
    assert torch.equal(out["image"], out["copy"])
    assert out["label"] == "untouched"
    ref = RandIlluminationContrastAugment().set_random_state(9)(images)
    torch.testing.assert_close(out["image"], ref)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_gpu_matches_cpu(images: torch.Tensor) -> None:
    cpu = RandIlluminationContrastAugment().set_random_state(2)(images)
    gpu = RandIlluminationContrastAugment().set_random_state(2)(images.cuda())
    assert gpu.device.type == "cuda"
    torch.testing.assert_close(gpu.cpu(), cpu, atol=1e-5, rtol=0)


def test_bad_arguments(images: torch.Tensor) -> None:
    with pytest.raises(ValueError, match="hue"):
        RandIlluminationContrastAugment(hue=0.7)
    with pytest.raises(ValueError, match="brightness"):
        RandIlluminationContrastAugment(brightness=-1)
    with pytest.raises(ValueError, match="grayscale_prob"):
        RandIlluminationContrastAugment(grayscale_prob=2)
    with pytest.raises(ValueError, match="blur_sigma"):
        RandIlluminationContrastAugment(blur_sigma=(0.0, 1.0))
    with pytest.raises(ValueError, match=r"\(3, H, W\)"):
        RandIlluminationContrastAugment()(torch.rand(2, 1, 8, 8))
    with pytest.raises(TypeError):
        RandIlluminationContrastAugment()(np.zeros((3, 8, 8)))
    aug = RandIlluminationContrastAugment().set_random_state(0)
    aug(images)
    with pytest.raises(ValueError, match="same batch size"):
        aug(images[:2], randomize=False)
