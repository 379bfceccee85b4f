# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""Tests for the Stage-2 ConDSegLoss: fidelity to the official formula, beta modes, layouts and gradients."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from condseg_monai.losses import ComplementarityLoss, ConDSegLoss, DiceBCELoss, aux_beta


def _dice_bce_np(z: np.ndarray, t: np.ndarray) -> float:
    s = 1.0 / (1.0 + np.exp(-z))
    bce = -(t * np.maximum(np.log(s), -100) + (1 - t) * np.maximum(np.log(1 - s), -100)).mean()
    return float(bce + 1.0 - (2.0 * (s * t).sum() + 1.0) / (s.sum() + t.sum() + 1.0))


def official_stage2_np(x: np.ndarray, y: np.ndarray, double_sigmoid: bool) -> float:
    """The official Stage-2 loss written out term by term on the official (sigmoid) outputs of logits x (B,4,1,H,W)."""
    probs = 1.0 / (1.0 + np.exp(-x))
    m, fg, bg, uc = (probs[:, i] for i in range(4))
    # the official DiceBCE applies one more sigmoid to the probabilities; single-sigmoid mode feeds the logits
    dbce_in = [probs[:, i] if double_sigmoid else x[:, i] for i in range(3)]
    hw = y.shape[-2] * y.shape[-1]
    beta1 = 1.0 / (np.tanh(fg.sum() / hw) + 1e-15)
    beta2 = 1.0 / (np.tanh(bg.sum() / hw) + 1e-15)
    e = np.exp(np.stack([fg, bg, uc]))
    p = e / e.sum(axis=0)
    compl = (p[0] * p[1] + p[0] * p[2] + p[1] * p[2]).mean()
    return (
        _dice_bce_np(dbce_in[0], y)
        + beta1 * _dice_bce_np(dbce_in[1], y)
        + beta2 * _dice_bce_np(dbce_in[2], 1 - y)
        + float(compl)
    )


def _data(b: int = 2, size: int = 8, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, 4, 1, size, size, generator=g, dtype=torch.float64) * 2
    y = torch.rand(b, 1, size, size, generator=g, dtype=torch.float64)  # soft targets
    return x, y


@pytest.mark.parametrize("double_sigmoid", [True, False])
def test_matches_official_formula(double_sigmoid):
    x, y = _data()
    ours = ConDSegLoss(double_sigmoid=double_sigmoid)(x, y).item()
    assert ours == pytest.approx(official_stage2_np(x.numpy(), y.numpy(), double_sigmoid), abs=1e-9)


def test_hand_computed_beta():
    p = torch.full((2, 1, 2, 2), 0.5)
    # batch: sum = 2*4*0.5 = 4 over H*W = 4 -> 1/tanh(1); sample: 1/tanh(0.5) per image
    assert aux_beta(p, "batch").item() == pytest.approx(1 / math.tanh(1.0), abs=1e-6)
    torch.testing.assert_close(aux_beta(p, "sample"), torch.full((2,), 1 / math.tanh(0.5)))
    assert aux_beta(p, "none").item() == 1.0
    with pytest.raises(ValueError, match="beta_mode"):
        aux_beta(p, "bogus")


def test_terms_and_total():
    x, y = _data(seed=1)
    loss = ConDSegLoss(fg_weight=2.0, complementarity_weight=0.5)
    total = loss(x, y)
    t = loss.last_terms
    assert list(t) == ["dicebce_mask", "dicebce_fg", "dicebce_bg", "complementarity", "beta_fg", "beta_bg"]
    assert all(v.ndim == 0 and not v.requires_grad for v in t.values())
    dbce = DiceBCELoss()
    assert t["dicebce_bg"].item() == pytest.approx(dbce(x[:, 2], 1 - y).item(), abs=1e-9)
    assert t["beta_fg"].item() == pytest.approx(aux_beta(torch.sigmoid(x[:, 1])).item(), abs=1e-9)
    assert t["complementarity"].item() == pytest.approx(ComplementarityLoss()(x[:, 1], x[:, 2], x[:, 3]).item())
    expected = (
        t["dicebce_mask"]
        + 2.0 * t["beta_fg"] * t["dicebce_fg"]
        + t["beta_bg"] * t["dicebce_bg"]
        + 0.5 * t["complementarity"]
    )
    assert total.item() == pytest.approx(expected.item(), abs=1e-9)


def test_input_layouts():
    x, y = _data(seed=2)
    loss = ConDSegLoss()
    stacked = loss(x, y).item()
    assert loss(list(x.unbind(1)), y).item() == pytest.approx(stacked, abs=1e-12)
    assert loss(tuple(x.unbind(1)), y).item() == pytest.approx(stacked, abs=1e-12)
    # evaluation-mode output: mask logits only -> the mask DiceBCE term only
    assert loss(x[:, 0], y).item() == pytest.approx(DiceBCELoss()(x[:, 0], y).item(), abs=1e-12)
    assert list(loss.last_terms) == ["dicebce_mask"]


def test_errors():
    x, y = _data()
    loss = ConDSegLoss()
    with pytest.raises(ValueError, match=r"\(B, 4, C, H, W\)"):
        loss(x[:, :3], y)
    with pytest.raises(ValueError, match="4 tensors"):
        loss(list(x.unbind(1))[:3], y)
    with pytest.raises(ValueError, match=r"pred mask and target.*\(2, 1, 8, 8\).*\(2, 1, 4, 8\)"):
        loss(x, y[:, :, :4])
    with pytest.raises(ValueError, match="pred must have shape"):
        loss(x[:, 0, 0], y)
    with pytest.raises(ValueError, match="beta_mode"):
        ConDSegLoss(beta_mode="per-image")


def test_batch_beta_depends_on_batch_size_sample_beta_does_not():
    x, y = _data(b=1, seed=3)
    x2, y2 = torch.cat([x, x]), torch.cat([y, y])
    betas = {}
    for mode in ("batch", "sample"):
        loss = ConDSegLoss(beta_mode=mode)
        loss(x, y)
        single = loss.last_terms["beta_fg"].item()
        loss(x2, y2)
        betas[mode] = (single, loss.last_terms["beta_fg"].item())
    mean_fg = torch.sigmoid(x[:, 1]).mean().item()
    assert betas["batch"][0] == pytest.approx(1 / math.tanh(mean_fg))
    assert betas["batch"][1] == pytest.approx(1 / math.tanh(2 * mean_fg))  # doubles the tanh argument
    assert betas["sample"][0] == pytest.approx(betas["sample"][1])


def test_sample_mode_weights_each_image():
    x, y = _data(b=3, seed=4)
    loss = ConDSegLoss(beta_mode="sample", mask_weight=0.0, bg_weight=0.0, complementarity_weight=0.0)
    value = loss(x, y).item()
    beta = aux_beta(torch.sigmoid(x[:, 1]), "sample")
    per_image = DiceBCELoss(batch=False, reduction="none")(x[:, 1], y)
    assert value == pytest.approx((beta * per_image).mean().item(), abs=1e-9)
    assert loss.last_terms["beta_fg"].item() == pytest.approx(beta.mean().item())


def test_beta_none_is_plain_sum():
    x, y = _data(seed=5)
    loss = ConDSegLoss(beta_mode="none")
    total = loss(x, y).item()
    t = loss.last_terms
    assert t["beta_fg"].item() == 1.0
    expected = t["dicebce_mask"] + t["dicebce_fg"] + t["dicebce_bg"] + t["complementarity"]
    assert total == pytest.approx(expected.item(), abs=1e-9)


def test_gradient_flows_through_beta_unless_detached():
    x, y = _data(seed=6)
    grads, values = {}, {}
    for detach in (False, True):
        xi = x.clone().requires_grad_()
        loss = ConDSegLoss(detach_beta=detach)(xi, y)
        loss.backward()
        grads[detach], values[detach] = xi.grad, loss.item()
    assert values[False] == pytest.approx(values[True])
    assert torch.allclose(grads[False][:, 0], grads[True][:, 0])  # mask head: beta is not involved
    assert not torch.allclose(grads[False][:, 1], grads[True][:, 1])  # fg head: extra path through beta
    assert grads[True][:, 3].abs().sum() > 0  # uncertainty head trained by complementarity only


def test_loss_decreases_under_optimisation():
    torch.manual_seed(0)
    y = torch.zeros(2, 1, 8, 8)
    y[:, :, 2:6, 3:7] = 1
    for kwargs in ({}, {"double_sigmoid": True, "beta_mode": "sample"}):
        logits = torch.nn.Parameter(torch.randn(2, 4, 1, 8, 8))
        opt = torch.optim.Adam([logits], lr=0.1)
        loss_fn = ConDSegLoss(**kwargs)
        values = []
        for _ in range(25):
            opt.zero_grad()
            loss = loss_fn(logits, y)
            loss.backward()
            opt.step()
            values.append(loss.item())
        assert values[-1] < 0.8 * values[0], kwargs
