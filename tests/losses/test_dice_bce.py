# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""Tests for DiceBCELoss: hand-computed values, the official double-sigmoid quirk and MONAI equivalence."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from monai.losses import DiceLoss

from condseg_monai.losses import DiceBCELoss, dice_bce


def official_dice_bce_np(p: np.ndarray, t: np.ndarray) -> float:
    """The official DiceBCE on the model's *probability* output p: sigmoid, torch-style clamped BCE, batch Dice."""
    s = 1.0 / (1.0 + np.exp(-p))
    bce = -(t * np.maximum(np.log(s), -100) + (1 - t) * np.maximum(np.log(1 - s), -100)).mean()
    dice = 1.0 - (2.0 * (s * t).sum() + 1.0) / (s.sum() + t.sum() + 1.0)
    return float(bce + dice)


def test_hand_computed_zero_logits():
    # s = 0.5 everywhere: BCE = ln 2; 2 positives of 4 pixels: Dice = 1 - (2*1 + 1) / (2 + 2 + 1) = 0.4
    logits = torch.zeros(1, 1, 2, 2)
    target = torch.tensor([[[[1.0, 0.0], [1.0, 0.0]]]])
    assert DiceBCELoss()(logits, target).item() == pytest.approx(math.log(2) + 0.4, abs=1e-6)


def test_matches_formula_on_random_soft_targets():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 1, 8, 8, generator=g, dtype=torch.float64) * 3
    t = torch.rand(3, 1, 8, 8, generator=g, dtype=torch.float64)  # soft targets, never binarised
    # single sigmoid: the official formula applied as if x were its input
    assert DiceBCELoss()(x, t).item() == pytest.approx(official_dice_bce_np(x.numpy(), t.numpy()), abs=1e-10)


def test_double_sigmoid_equals_official_on_probabilities():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 1, 8, 8, generator=g, dtype=torch.float64) * 4
    t = (torch.rand(2, 1, 8, 8, generator=g) > 0.6).double()
    official = official_dice_bce_np(torch.sigmoid(x).numpy(), t.numpy())  # official model outputs sigmoid(x)
    assert DiceBCELoss(double_sigmoid=True)(x, t).item() == pytest.approx(official, abs=1e-10)


def test_double_sigmoid_floor():
    # s = sigmoid(sigmoid(x)) <= sigmoid(1): perfect positives still cost -log(sigmoid(1)) = 0.3133 BCE
    x = torch.full((1, 1, 4, 4), 50.0)
    t = torch.ones(1, 1, 4, 4)
    s = 1 / (1 + math.exp(-1))
    expected = -math.log(s) + 1 - (2 * 16 * s + 1) / (16 * s + 16 + 1)
    assert DiceBCELoss(double_sigmoid=True)(x, t).item() == pytest.approx(expected, abs=1e-5)
    assert DiceBCELoss()(x, t).item() < 1e-6


def test_equals_monai_dice_plus_bce():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(4, 1, 16, 16, generator=g)
    t = (torch.rand(4, 1, 16, 16, generator=g) > 0.5).float()
    monai_dice = DiceLoss(batch=True, smooth_nr=1.0, smooth_dr=1.0, sigmoid=True)(x, t)
    expected = monai_dice + F.binary_cross_entropy_with_logits(x, t)
    assert DiceBCELoss()(x, t).item() == pytest.approx(expected.item(), abs=1e-5)


def test_per_sample_mode_matches_single_image_batches():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(3, 1, 8, 8, generator=g)
    t = (torch.rand(3, 1, 8, 8, generator=g) > 0.5).float()
    per_sample = DiceBCELoss(batch=False, reduction="none")(x, t)
    singles = torch.stack([DiceBCELoss()(x[i : i + 1], t[i : i + 1]) for i in range(3)])
    assert per_sample.shape == (3,)
    torch.testing.assert_close(per_sample, singles)
    assert DiceBCELoss(batch=False)(x, t).item() == pytest.approx(singles.mean().item(), abs=1e-6)
    assert DiceBCELoss(batch=False, reduction="sum")(x, t).item() == pytest.approx(singles.sum().item(), abs=1e-5)
    # batch Dice differs from the mean of per-image Dice
    assert abs(dice_bce(x, t).item() - singles.mean().item()) > 1e-4


def test_half_and_integer_inputs_are_promoted():
    x = torch.randn(2, 1, 8, 8)
    t = (torch.rand(2, 1, 8, 8) > 0.5).to(torch.uint8)
    out = DiceBCELoss()(x.half(), t)
    assert out.dtype == torch.float32
    assert out.item() == pytest.approx(DiceBCELoss()(x.half().float(), t.float()).item(), abs=1e-6)


def test_gradient_flows_to_logits():
    x = torch.randn(2, 1, 8, 8, requires_grad=True)
    DiceBCELoss(double_sigmoid=True)(x, torch.ones(2, 1, 8, 8)).backward()
    assert x.grad is not None and (x.grad < 0).all()  # raising every logit lowers the loss for all-ones targets


def test_errors():
    with pytest.raises(ValueError, match=r"\(2, 1, 8, 8\).*\(2, 1, 4, 4\)"):
        DiceBCELoss()(torch.zeros(2, 1, 8, 8), torch.zeros(2, 1, 4, 4))
    with pytest.raises(ValueError, match="smooth"):
        DiceBCELoss(smooth=-1)
    with pytest.raises(ValueError):
        DiceBCELoss(reduction="bogus")
    with pytest.raises(TypeError, match="logits"):
        DiceBCELoss()(np.zeros((1, 1, 2, 2)), torch.zeros(1, 1, 2, 2))
