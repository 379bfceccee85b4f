# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""Every loss on batches of empty masks (declared negatives) and mixed batches: finite values and gradients, and
the β cap of ConDSegLoss (``beta_max``) that keeps the Stage-2 weights bounded when the foreground head predicts
nothing."""

from __future__ import annotations

import math

import pytest
import torch

from condseg_monai.losses import (
    ConDSegLoss,
    ConfidentPseudoLabelLoss,
    DiceBCELoss,
    Stage1Loss,
    UnlabeledConsistencyLoss,
    aux_beta,
)

B, H, W = 3, 16, 16


def _target(kind: str) -> torch.Tensor:
    """``empty``: all-background masks; ``mixed``: image 0 empty, the others with a square of foreground."""
    y = torch.zeros(B, 1, H, W)
    if kind == "mixed":
        y[1:, :, 4:12, 4:12] = 1.0
    return y


def _logits(*shape: int, scale: float = 2.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return (torch.randn(*shape, generator=g) * scale).requires_grad_(True)


def _finite(loss: torch.Tensor, *inputs: torch.Tensor) -> None:
    assert loss.ndim == 0 and torch.isfinite(loss), f"loss {loss}"
    loss.backward()
    for x in inputs:
        assert x.grad is not None and torch.isfinite(x.grad).all(), "non-finite gradient"
        assert x.grad.abs().sum() > 0, "no gradient reached the prediction"


@pytest.mark.parametrize("kind", ["empty", "mixed"])
@pytest.mark.parametrize("double_sigmoid", [False, True])
def test_dice_bce_and_stage1(kind: str, double_sigmoid: bool) -> None:
    x = _logits(B, 1, H, W)
    _finite(DiceBCELoss(double_sigmoid=double_sigmoid)(x, _target(kind)), x)
    pred = _logits(B, 2, 1, H, W)  # ConsistencyInferer's (clean, strong) stack
    _finite(Stage1Loss(double_sigmoid=double_sigmoid)(pred, _target(kind)), pred)


@pytest.mark.parametrize("kind", ["empty", "mixed"])
@pytest.mark.parametrize("beta_mode", ["batch", "sample", "none"])
@pytest.mark.parametrize("beta_max", [10.0, None])
def test_condseg_loss(kind: str, beta_mode: str, beta_max: float | None) -> None:
    pred = _logits(B, 4, 1, H, W)
    loss_fn = ConDSegLoss(beta_mode=beta_mode, beta_max=beta_max)
    _finite(loss_fn(pred, _target(kind)), pred)
    assert all(torch.isfinite(v).all() for v in loss_fn.last_terms.values())


@pytest.mark.parametrize("beta_mode", ["batch", "sample"])
def test_condseg_loss_finite_when_the_foreground_head_predicts_nothing(beta_mode: str) -> None:
    """The worst case for β: an all-negative batch and a foreground head that has learned to predict nothing."""
    pred = _logits(B, 4, 1, H, W).detach()
    pred[:, 1] = -30.0  # foreground logits: sigmoid ~ 9.4e-14
    pred.requires_grad_(True)
    loss_fn = ConDSegLoss(beta_mode=beta_mode)
    _finite(loss_fn(pred, _target("empty")), pred)
    assert loss_fn.last_terms["beta_fg"].item() == pytest.approx(10.0)


@pytest.mark.parametrize("kind", ["empty", "mixed"])
def test_semi_supervised_losses(kind: str) -> None:
    # the teacher sure there is nothing (an all-negative batch) or mostly so
    teacher = torch.full((B, 1, H, W), -8.0)
    if kind == "mixed":
        teacher[1:, :, 4:12, 4:12] = 8.0
    for student_shape in ((B, 1, H, W), (B, 4, 1, H, W)):
        student = _logits(*student_shape)
        _finite(ConfidentPseudoLabelLoss(threshold=0.95)(student, teacher), student)
        student = _logits(*student_shape)
        region = torch.zeros(B, 1, H, W)
        region[:, :, :8] = 1.0  # copy-paste: ground truth (empty or mixed) in the top half
        _finite(ConfidentPseudoLabelLoss()(student, teacher, _target(kind), region), student)
    a, b = _logits(B, 1, H, W), _logits(B, 1, H, W, scale=3.0)
    _finite(UnlabeledConsistencyLoss(threshold=0.9)(a, b), a, b)


def test_beta_blows_up_without_the_cap_and_is_bounded_with_it() -> None:
    """On an all-negative batch a foreground head predicting nothing makes the official β ~ pixels / sum(P)."""
    p = torch.full((4, 1, 32, 32), 1e-6)  # sigmoid of about -13.8
    # batch mode: tanh(sum P / (H W)) = tanh(4 * 1e-6) ~ 4e-6, so beta ~ 2.5e5; sample: tanh(1e-6) -> 1e6
    batch = aux_beta(p, "batch").item()
    sample = aux_beta(p, "sample")
    assert batch == pytest.approx(1 / math.tanh(4e-6), rel=1e-4) and batch > 2e5
    torch.testing.assert_close(sample, torch.full((4,), 1 / math.tanh(1e-6)), rtol=1e-4, atol=0)
    assert aux_beta(p, "batch", beta_max=10.0).item() == 10.0
    torch.testing.assert_close(aux_beta(p, "sample", beta_max=10.0), torch.full((4,), 10.0))
    # where it grows without bound: exactly zero predictions give 1 / eps
    assert aux_beta(torch.zeros(2, 1, 8, 8), "batch").item() == pytest.approx(1e15, rel=1e-6)
    assert aux_beta(torch.zeros(2, 1, 8, 8), "batch", beta_max=10.0).item() == 10.0


def test_beta_cap_changes_nothing_on_polyp_batches() -> None:
    """Batch mode on a typical polyp batch: beta ~1-2, far below the cap, so capped and official losses agree."""
    g = torch.Generator().manual_seed(1)
    y = torch.zeros(12, 1, 32, 32)
    y[:, :, 8:20, 10:22] = 1.0  # 14 % foreground per image
    pred = torch.randn(12, 4, 1, 32, 32, generator=g, dtype=torch.float64)
    pred[:, 1] += 6.0 * y - 3.0  # a foreground head that has learned something
    capped, official = ConDSegLoss(beta_max=10.0), ConDSegLoss(beta_max=None)
    assert capped(pred, y).item() == official(pred, y).item()
    assert 1.0 <= official.last_terms["beta_fg"].item() <= 2.0
    # per image (sample mode) the same batch stays below the cap too: mean P_fg per image ~0.2 -> beta ~5
    assert (aux_beta(torch.sigmoid(pred[:, 1]), "sample") < 10.0).all()


def test_beta_cap_in_sample_mode_is_per_image() -> None:
    p = torch.full((2, 1, 4, 4), 0.5)
    p[0] = 1e-4  # an image whose foreground head predicts nothing
    beta = aux_beta(p, "sample", beta_max=10.0)
    assert beta[0].item() == 10.0
    assert beta[1].item() == pytest.approx(1 / math.tanh(0.5), abs=1e-6)


@pytest.mark.parametrize("bad", [0.0, -1.0, "ten", True])
def test_bad_beta_max(bad: object) -> None:
    with pytest.raises(ValueError, match="beta_max"):
        ConDSegLoss(beta_max=bad)
    with pytest.raises(ValueError, match="beta_max"):
        aux_beta(torch.full((1, 1, 2, 2), 0.5), "batch", beta_max=bad)
