# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""Tests for the Stage-1 consistency loss and the full Stage-1 loss."""

from __future__ import annotations

import math

import pytest
import torch

from condseg_monai.losses import ConsistencyLoss, DiceBCELoss, Stage1Loss


def _sig(v: float) -> float:
    return 1.0 / (1.0 + math.exp(-v))


def test_hand_computed_value():
    a = torch.tensor([2.0, -1.0]).view(1, 1, 1, 2)
    b = torch.tensor([1.0, 3.0]).view(1, 1, 1, 2)
    # hard(b) = [1, 1], hard(a) = [1, 0]
    bce_a = (-math.log(_sig(2.0)) - math.log(_sig(-1.0))) / 2
    bce_b = (-math.log(_sig(1.0)) - math.log(1 - _sig(3.0))) / 2
    assert ConsistencyLoss()(a, b).item() == pytest.approx(bce_a + bce_b, abs=1e-6)


def test_hard_targets_are_detached():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(2, 1, 4, 4, generator=g, requires_grad=True)
    b = torch.randn(2, 1, 4, 4, generator=g, requires_grad=True)
    ConsistencyLoss()(a, b).backward()
    n = a.numel()
    # only BCE(p_a, 1[b > 0]) depends on a: dL/da = (sigmoid(a) - 1[b > 0]) / N
    torch.testing.assert_close(a.grad, (torch.sigmoid(a) - (b > 0).float()).detach() / n)
    torch.testing.assert_close(b.grad, (torch.sigmoid(b) - (a > 0).float()).detach() / n)


def test_symmetric_and_shape_check():
    a, b = torch.randn(1, 1, 4, 4), torch.randn(1, 1, 4, 4)
    assert ConsistencyLoss()(a, b).item() == pytest.approx(ConsistencyLoss()(b, a).item())
    with pytest.raises(ValueError, match="logits_a and logits_b"):
        ConsistencyLoss()(a, torch.randn(1, 1, 4, 5))


def test_stage1_composition_and_terms():
    g = torch.Generator().manual_seed(1)
    clean, strong = torch.randn(2, 1, 8, 8, generator=g), torch.randn(2, 1, 8, 8, generator=g)
    y = (torch.rand(2, 1, 8, 8, generator=g) > 0.5).float()
    loss = Stage1Loss(double_sigmoid=True, weight_clean=0.5, weight_strong=2.0, weight_consistency=3.0)
    value = loss(clean, strong, y)
    dbce = DiceBCELoss(double_sigmoid=True)
    terms = {
        "dicebce_clean": dbce(clean, y),
        "dicebce_strong": dbce(strong, y),
        "consistency": ConsistencyLoss()(clean, strong),
    }
    assert set(loss.last_terms) == set(terms)
    for k, v in terms.items():
        assert loss.last_terms[k].item() == pytest.approx(v.item(), abs=1e-6)
        assert not loss.last_terms[k].requires_grad
    expected = 0.5 * terms["dicebce_clean"] + 2.0 * terms["dicebce_strong"] + 3.0 * terms["consistency"]
    assert value.item() == pytest.approx(expected.item(), abs=1e-5)
    with pytest.raises(ValueError, match="logits_clean and target"):
        loss(clean, strong, y[:, :, :4])


def test_stage1_loss_decreases_under_optimisation():
    torch.manual_seed(0)
    y = torch.zeros(2, 1, 8, 8)
    y[:, :, 2:6, 2:6] = 1
    logits = torch.nn.Parameter(torch.randn(2, 1, 8, 8))
    opt = torch.optim.Adam([logits], lr=0.1)
    loss_fn = Stage1Loss()
    noise = torch.randn(2, 1, 8, 8)
    values = []
    for _ in range(25):
        opt.zero_grad()
        loss = loss_fn(logits, logits + noise, y)  # the "strong" view is a perturbed copy
        loss.backward()
        opt.step()
        values.append(loss.item())
    assert values[-1] < 0.5 * values[0]


def test_stage1_two_argument_forms():
    g = torch.Generator().manual_seed(2)
    clean, strong = torch.randn(2, 1, 8, 8, generator=g), torch.randn(2, 1, 8, 8, generator=g)
    y = (torch.rand(2, 1, 8, 8, generator=g) > 0.5).float()
    loss = Stage1Loss()
    expected = loss(clean, strong, y).item()
    # the SupervisedTrainer form with ConsistencyInferer's stacked (B, 2, C, H, W) output, or a pair
    assert loss(torch.stack([clean, strong], dim=1), y).item() == pytest.approx(expected, abs=1e-7)
    assert loss((clean, strong), y).item() == pytest.approx(expected, abs=1e-7)
    # a single view (validation): only the clean DiceBCE term
    assert loss(clean, y).item() == pytest.approx(DiceBCELoss()(clean, y).item(), abs=1e-7)
    assert list(loss.last_terms) == ["dicebce_clean"]
    with pytest.raises(ValueError, match=r"\(B, 2, C, H, W\)"):
        loss(torch.stack([clean, strong, clean], dim=1), y)
    with pytest.raises(ValueError, match="2 tensors"):
        loss([clean], y)
