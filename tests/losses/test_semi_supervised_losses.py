# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""Tests for the semi-supervised losses: confident pseudo-labels, unlabeled consistency and the weight ramp."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from condseg_monai.losses import (
    ConfidentPseudoLabelLoss,
    ConsistencyLoss,
    UnlabeledConsistencyLoss,
    dice_bce,
    mask_logits,
    pseudo_label,
    sigmoid_rampup,
)
from condseg_monai.networks import ConDSegOutput


def _stack(mask: torch.Tensor, fg: torch.Tensor, bg: torch.Tensor, uc: torch.Tensor) -> torch.Tensor:
    maps = [None] * len(ConDSegOutput)
    maps[ConDSegOutput.MASK], maps[ConDSegOutput.FOREGROUND] = mask, fg
    maps[ConDSegOutput.BACKGROUND], maps[ConDSegOutput.UNCERTAINTY] = bg, uc
    return torch.stack(maps, dim=1)


def test_sigmoid_rampup() -> None:
    assert sigmoid_rampup(0, 10) == pytest.approx(math.exp(-5))
    assert sigmoid_rampup(5, 10) == pytest.approx(math.exp(-5 * 0.25))
    assert sigmoid_rampup(10, 10) == 1.0 and sigmoid_rampup(50, 10) == 1.0
    assert sigmoid_rampup(-3, 10) == pytest.approx(math.exp(-5))
    assert sigmoid_rampup(0, 0) == 1.0
    values = [sigmoid_rampup(i, 20) for i in range(21)]
    assert values == sorted(values)


def test_pseudo_label_and_confidence() -> None:
    logits = torch.tensor([3.0, -3.0, 0.5, -0.5]).view(1, 1, 1, 4)  # p = .95, .05, .62, .38
    target, confident = pseudo_label(logits, 0.9)
    assert target.flatten().tolist() == [1.0, 0.0, 1.0, 0.0]
    assert confident.flatten().tolist() == [1.0, 1.0, 0.0, 0.0]
    assert pseudo_label(logits, 0.5)[1].all()


def test_class_balanced_fraction_gives_each_class_its_most_confident_share() -> None:
    """Teacher confident only on the foreground: the quota adds the most confident background pixels."""
    # p = .99, .98 (foreground, over 0.95); .9, .8, .7, .6 background-confident 1 - p ... all below 0.95
    logits = torch.tensor([4.6, 3.9, -2.2, -1.4, -0.85, -0.41]).view(1, 1, 1, 6)
    target, threshold_only = pseudo_label(logits, 0.95)
    assert threshold_only.flatten().tolist() == [1, 1, 0, 0, 0, 0]  # the over-marking case: no background target
    _, balanced = pseudo_label(logits, 0.95, class_balanced_fraction=0.5)
    # ceil(0.5 x 4) = 2 most confident background pixels; the foreground already passes the threshold
    assert balanced.flatten().tolist() == [1, 1, 1, 1, 0, 0]
    assert torch.equal(pseudo_label(logits, 0.95, 0.5)[0], target), "the quota never changes the pseudo-label"
    _, one = pseudo_label(logits, 0.95, class_balanced_fraction=0.1)  # ceil(0.4) = 1: at least one per class
    assert one.flatten().tolist() == [1, 1, 1, 0, 0, 0]
    assert pseudo_label(logits, 0.95, class_balanced_fraction=1.0)[1].all()


def test_class_balanced_fraction_counts_per_channel_over_the_batch() -> None:
    g = torch.Generator().manual_seed(0)
    logits = 4.0 * torch.randn(3, 2, 8, 8, generator=g)
    target, confident = pseudo_label(logits, 1.0, class_balanced_fraction=0.25)  # threshold 1: the quota alone
    score = torch.maximum(torch.sigmoid(logits), torch.sigmoid(-logits))
    for c in range(2):
        for k in (0.0, 1.0):
            member = target[:, c] == k
            n = int(member.sum())
            chosen = confident[:, c][member]
            assert int(chosen.sum()) == math.ceil(0.25 * n)  # continuous scores: no ties
            assert score[:, c][member][chosen > 0].min() >= score[:, c][member][chosen == 0].max()
    # an absent class (every pixel foreground) selects nothing of it and does not fail
    _, only_fg = pseudo_label(torch.full((1, 1, 2, 2), 2.0), 1.0, class_balanced_fraction=0.5)
    assert only_fg.all()  # four tied foreground scores: ties are included


def test_background_fraction_adds_background_targets_only() -> None:
    """The background quota never admits an unsure foreground pixel (the class-balanced quota does)."""
    # p = .99 (foreground, over 0.95); .7, .6 unsure foreground; background 1 - p = .9, .8, .7, .6
    logits = torch.tensor([4.6, 0.85, 0.41, -2.2, -1.4, -0.85, -0.41]).view(1, 1, 1, 7)
    target, confident = pseudo_label(logits, 0.95, background_fraction=0.5)
    # ceil(0.5 x 4) = 2 most confident background pixels; the unsure foreground stays without a target
    assert confident.flatten().tolist() == [1, 0, 0, 1, 1, 0, 0]
    assert torch.equal(target, pseudo_label(logits, 0.95)[0]), "the quota never changes the pseudo-label"
    _, balanced = pseudo_label(logits, 0.95, class_balanced_fraction=0.5)
    assert balanced.flatten().tolist() == [1, 1, 0, 1, 1, 0, 0]  # ceil(0.5 x 3) = 2 foreground: one unsure
    _, every_bg = pseudo_label(logits, 1.0, background_fraction=1.0)  # threshold 1: the quota alone
    assert every_bg.flatten().tolist() == [0, 0, 0, 1, 1, 1, 1]
    # no background pixel at all: nothing selected, no failure
    assert not pseudo_label(torch.full((1, 1, 2, 2), 2.0), 1.0, background_fraction=0.5)[1].any()


@pytest.mark.parametrize("name", ["class_balanced_fraction", "background_fraction"])
@pytest.mark.parametrize("fraction", [0.0, -0.1, 1.5])
def test_bad_fraction(name: str, fraction: float) -> None:
    with pytest.raises(ValueError, match=name):
        ConfidentPseudoLabelLoss(**{name: fraction})
    with pytest.raises(ValueError, match=name):
        pseudo_label(torch.zeros(1, 1, 2, 2), 0.9, **{name: fraction})


# one foreground pixel past the threshold, two unsure foreground and four background pixels below it: the quota
# of 0.5 uses ceil(1.5) = 2 foreground (the sure one and the surer unsure one) and ceil(2) = 2 background pixels;
# the background quota the sure foreground pixel (threshold) and the same 2 background pixels
@pytest.mark.parametrize("name, used", [("class_balanced_fraction", 4), ("background_fraction", 3)])
def test_loss_uses_the_quota_pixels(name: str, used: int) -> None:
    teacher = torch.tensor([4.6, 0.85, 0.41, -2.2, -1.4, -0.85, -0.41]).view(1, 1, 1, 7)
    student = torch.zeros(1, 1, 1, 7)
    loss = ConfidentPseudoLabelLoss(threshold=0.95, **{name: 0.5})
    assert loss(student, teacher).item() == pytest.approx(used * math.log(2) / 7, rel=1e-6)  # BCE at p=.5
    assert loss.confident_fraction.item() == pytest.approx(used / 7)


def test_pseudo_label_loss_hand_computed() -> None:
    teacher = torch.tensor([3.0, -3.0, 0.5, -0.5]).view(1, 1, 1, 4)
    student = torch.tensor([1.0, 2.0, -1.0, 4.0]).view(1, 1, 1, 4)
    loss = ConfidentPseudoLabelLoss(threshold=0.9)  # the default: masked BCE only (dice_weight 0)
    # confident pixels 0 and 1 (targets 1, 0); BCE normalised by all 4 pixels
    expected = (
        -math.log(torch.sigmoid(torch.tensor(1.0)).item()) - math.log(1 - torch.sigmoid(torch.tensor(2.0)).item())
    ) / 4
    assert loss(student, teacher).item() == pytest.approx(expected, rel=1e-5)
    assert loss.confident_fraction.item() == pytest.approx(0.5)
    # with the Dice part: Dice over the confident pixels only
    s = torch.sigmoid(student).flatten()[:2]
    dice = 1 - (2 * s[0] + 1) / (s.sum() + 1 + 1)
    full = ConfidentPseudoLabelLoss(threshold=0.9, dice_weight=1.0)(student, teacher)
    assert full.item() == pytest.approx(expected + dice.item(), rel=1e-5)
    with pytest.raises(ValueError, match="dice_weight"):
        ConfidentPseudoLabelLoss(dice_weight=-1.0)


def test_threshold_half_is_dice_bce_on_hard_pseudo_labels() -> None:
    g = torch.Generator().manual_seed(0)
    teacher, student = torch.randn(2, 1, 8, 8, generator=g), torch.randn(2, 1, 8, 8, generator=g)
    value = ConfidentPseudoLabelLoss(threshold=0.5, dice_weight=1.0)(student, teacher)
    torch.testing.assert_close(value, dice_bce(student, (teacher > 0).float()))


def test_no_confident_pixel_gives_zero_loss_and_gradient() -> None:
    teacher = torch.zeros(1, 1, 4, 4)  # p = 0.5 everywhere
    student = torch.randn(1, 1, 4, 4, requires_grad=True)
    value = ConfidentPseudoLabelLoss(threshold=0.9)(student, teacher)
    value.backward()
    assert value.item() == 0.0 and torch.count_nonzero(student.grad) == 0


def test_teacher_gets_no_gradient() -> None:
    teacher = torch.randn(1, 1, 4, 4, requires_grad=True)
    student = torch.randn(1, 1, 4, 4, requires_grad=True)
    ConfidentPseudoLabelLoss(threshold=0.5)(student, teacher).backward()
    assert teacher.grad is None and student.grad is not None


def test_condseg_heads_get_consistent_targets() -> None:
    """FOREGROUND is trained towards the pseudo-label, BACKGROUND towards its complement, UNCERTAINTY not at all."""
    g = torch.Generator().manual_seed(1)
    teacher = 6.0 * torch.randn(2, 1, 8, 8, generator=g)
    y = (teacher > 0).float()
    mask, fg, bg, uc = (torch.randn(2, 1, 8, 8, generator=g) for _ in range(4))
    pred = _stack(mask, fg, bg, uc).requires_grad_(True)
    loss = ConfidentPseudoLabelLoss(threshold=0.9, dice_weight=1.0)
    value = loss(pred, teacher)
    _, confident = pseudo_label(teacher, 0.9)
    expected = sum(
        F.binary_cross_entropy_with_logits(m, t, reduction="none").mul(confident).mean()
        + 1
        - (2 * (torch.sigmoid(m) * confident * t * confident).sum() + 1)
        / ((torch.sigmoid(m) * confident).sum() + (t * confident).sum() + 1)
        for m, t in ((mask, y), (fg, y), (bg, 1 - y))
    )
    torch.testing.assert_close(value, expected)
    assert set(loss.last_terms) >= {"mask", "fg", "bg"}
    value.backward()
    assert torch.count_nonzero(pred.grad[:, ConDSegOutput.UNCERTAINTY]) == 0
    # a background head that already equals the complement beats one that copies the foreground
    good = _stack(10 * (2 * y - 1), 10 * (2 * y - 1), -10 * (2 * y - 1), uc)
    bad = _stack(10 * (2 * y - 1), 10 * (2 * y - 1), 10 * (2 * y - 1), uc)
    assert loss(good, teacher) < loss(bad, teacher)


def test_complementarity_weight_adds_the_label_free_term() -> None:
    pred = torch.randn(1, 4, 1, 4, 4)
    teacher = torch.randn(1, 1, 4, 4)
    base = ConfidentPseudoLabelLoss(threshold=0.5)(pred, teacher)
    loss = ConfidentPseudoLabelLoss(threshold=0.5, complementarity_weight=2.0)
    with_compl = loss(pred, teacher)
    torch.testing.assert_close(with_compl, base + 2.0 * loss.last_terms["complementarity"])


def test_bcp_region_uses_ground_truth() -> None:
    g = torch.Generator().manual_seed(2)
    teacher, student = torch.randn(2, 1, 8, 8, generator=g), torch.randn(2, 1, 8, 8, generator=g)
    gt = (torch.rand(2, 1, 8, 8, generator=g) > 0.5).float()
    loss = ConfidentPseudoLabelLoss(threshold=0.99, dice_weight=1.0)
    # region everywhere: plain supervised DiceBCE against the ground truth, all pixels confident
    torch.testing.assert_close(loss(student, teacher, target=gt, region=torch.ones(2, 1, 8, 8)), dice_bce(student, gt))
    # region nowhere: the pseudo-label loss
    torch.testing.assert_close(
        loss(student, teacher, target=gt, region=torch.zeros(2, 1, 8, 8)), loss(student, teacher)
    )
    with pytest.raises(ValueError, match="together"):
        loss(student, teacher, target=gt)


def test_pseudo_label_loss_bad_arguments() -> None:
    with pytest.raises(ValueError, match="threshold"):
        ConfidentPseudoLabelLoss(threshold=0.3)
    with pytest.raises(ValueError, match="same shape"):
        ConfidentPseudoLabelLoss()(torch.randn(1, 1, 4, 4), torch.randn(1, 1, 8, 8))
    with pytest.raises(ValueError, match="stacked"):
        ConfidentPseudoLabelLoss()(torch.randn(1, 3, 1, 4, 4), torch.randn(1, 1, 4, 4))


def test_unlabeled_consistency_is_the_stage1_term() -> None:
    g = torch.Generator().manual_seed(3)
    a, b = torch.randn(2, 1, 8, 8, generator=g), torch.randn(2, 1, 8, 8, generator=g)
    loss = UnlabeledConsistencyLoss()
    torch.testing.assert_close(loss(a, b), ConsistencyLoss()(a, b))
    assert loss.confident_fraction.item() == 1.0
    agreement = ((a > 0) == (b > 0)).float().mean()
    torch.testing.assert_close(loss.last_terms["agreement"], agreement)
    # a ConDSeg stacked output is reduced to its mask map
    stacked_a = _stack(a, torch.randn_like(a), torch.randn_like(a), torch.randn_like(a))
    torch.testing.assert_close(loss(stacked_a, b), ConsistencyLoss()(a, b))
    torch.testing.assert_close(mask_logits(stacked_a), a)


def test_unlabeled_consistency_with_threshold() -> None:
    a = torch.tensor([4.0, 0.1]).view(1, 1, 1, 2)
    b = torch.tensor([-4.0, 0.2]).view(1, 1, 1, 2)
    loss = UnlabeledConsistencyLoss(threshold=0.9)
    value = loss(a, b)
    # only pixel 0 is confident in both views; each view is pulled towards the other's decision there
    expected = (F.binary_cross_entropy_with_logits(a[..., 0], torch.zeros(1, 1, 1)) * 2) / 2
    assert value.item() == pytest.approx(expected.item(), rel=1e-5)
    assert loss.confident_fraction.item() == pytest.approx(0.5)
