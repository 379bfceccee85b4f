# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""Tests for the deterministic robustness corruptions."""

from __future__ import annotations

import pytest
import torch

from condseg_monai.transforms import CORRUPTIONS, CorruptImaged, corrupt, corruption_parameter


def _image() -> torch.Tensor:
    torch.manual_seed(0)
    return torch.rand(3, 32, 40) * 0.8 + 0.1


@pytest.mark.parametrize("name", sorted(CORRUPTIONS))
def test_deterministic_in_range_and_identity_at_severity_zero(name: str) -> None:
    img = _image()
    for severity in (1, 2, 3):
        a, b = corrupt(img, name, severity), corrupt(img, name, severity)
        assert torch.equal(a, b), "corruptions must not be random"
        assert a.shape == img.shape and a.dtype == img.dtype
        assert float(a.min()) >= 0.0 and float(a.max()) <= 1.0
        assert not torch.equal(a, img)
    assert torch.equal(corrupt(img, name, 0), img)


def test_parameters_match_the_documented_table() -> None:
    img = _image()
    torch.testing.assert_close(corrupt(img, "darken", 2), img * 0.5)
    torch.testing.assert_close(corrupt(img, "brighten", 3), (img * 2.0).clamp(0, 1))
    torch.testing.assert_close(corrupt(img, "gamma", 2), img**2)
    assert corruption_parameter("blur", 3) == 3.0


def test_severity_orders_the_effect() -> None:
    img = _image()
    means = [float(corrupt(img, "darken", s).mean()) for s in (1, 2, 3)]
    assert means[0] > means[1] > means[2]
    stds = [float(corrupt(img, "contrast", s).std()) for s in (1, 2, 3)]
    assert stds[0] > stds[1] > stds[2]
    # blur: smooths (neighbour differences shrink) and keeps a constant image constant
    diffs = [float(corrupt(img, "blur", s).diff(dim=-1).abs().mean()) for s in (1, 2, 3)]
    assert diffs[0] > diffs[1] > diffs[2]
    flat = torch.full((3, 32, 40), 0.4)
    torch.testing.assert_close(corrupt(flat, "blur", 3), flat)


def test_batched_equals_per_image() -> None:
    batch = torch.stack([_image(), _image().flip(-1)])
    for name in CORRUPTIONS:
        torch.testing.assert_close(corrupt(batch, name, 2), torch.stack([corrupt(x, name, 2) for x in batch]))


def test_dict_transform_and_errors() -> None:
    img = _image()
    out = CorruptImaged(keys="image", corruption="contrast", severity=1)({"image": img, "label": 1})
    torch.testing.assert_close(out["image"], corrupt(img, "contrast", 1))
    assert out["label"] == 1
    with pytest.raises(ValueError, match="unknown corruption"):
        corrupt(img, "fog", 1)
    with pytest.raises(ValueError, match="severity"):
        corrupt(img, "blur", 4)
    with pytest.raises(ValueError, match="unknown corruption"):
        CorruptImaged(keys="image", corruption="fog", severity=0)
    clean = CorruptImaged(keys="image", corruption="clean", severity=0)({"image": img})  # the robustness baseline
    assert clean["image"] is img
