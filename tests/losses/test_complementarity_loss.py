# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""Tests for the complementarity loss (official softmax-of-probabilities form and the logit variant)."""

from __future__ import annotations

import math

import pytest
import torch

from condseg_monai.losses import ComplementarityLoss

# one map at probability 1, two at 0, softmaxed: p = (e, 1, 1) / (e + 2)
_P1, _P0 = math.e / (math.e + 2), 1 / (math.e + 2)
FAITHFUL_MIN = 2 * _P1 * _P0 + _P0 * _P0  # 0.28912


def test_equal_maps_give_one_third():
    z = torch.zeros(1, 1, 4, 4)
    for faithful in (True, False):
        assert ComplementarityLoss(faithful)(z, z, z).item() == pytest.approx(1 / 3, abs=1e-7)


def test_saturated_maps_hit_the_faithful_minimum():
    big = torch.full((1, 1, 2, 2), 40.0)
    assert pytest.approx(0.28912, abs=1e-5) == FAITHFUL_MIN
    assert ComplementarityLoss()(big, -big, -big).item() == pytest.approx(FAITHFUL_MIN, abs=1e-6)
    assert ComplementarityLoss(faithful=False)(big, -big, -big).item() < 1e-12


def test_hand_computed_mixed_pixels():
    fg = torch.tensor([0.0, 1.0]).view(1, 1, 1, 2)
    bg = torch.tensor([2.0, -1.0]).view(1, 1, 1, 2)
    uc = torch.tensor([-3.0, 0.5]).view(1, 1, 1, 2)
    expected = []
    for f, b, u in zip(fg.flatten().tolist(), bg.flatten().tolist(), uc.flatten().tolist(), strict=True):
        sig = [1 / (1 + math.exp(-v)) for v in (f, b, u)]
        ex = [math.exp(s) for s in sig]
        p = [e / sum(ex) for e in ex]
        expected.append(p[0] * p[1] + p[0] * p[2] + p[1] * p[2])
    assert ComplementarityLoss()(fg, bg, uc).item() == pytest.approx(sum(expected) / 2, abs=1e-7)


def test_faithful_range_on_random_logits():
    g = torch.Generator().manual_seed(0)
    maps = [torch.randn(4, 1, 16, 16, generator=g) * 10 for _ in range(3)]
    value = ComplementarityLoss()(*maps).item()
    assert FAITHFUL_MIN - 1e-6 <= value <= 1 / 3 + 1e-6
    per_pixel = ComplementarityLoss()(*[m[:1, :, :1, :1] for m in maps]).item()
    assert FAITHFUL_MIN - 1e-6 <= per_pixel <= 1 / 3 + 1e-6


def test_trains_the_uncertainty_map_and_logit_variant_is_stronger():
    g = torch.Generator().manual_seed(1)
    grads = {}
    for faithful in (True, False):
        maps = [torch.randn(2, 1, 8, 8, generator=g).requires_grad_() for _ in range(3)]
        ComplementarityLoss(faithful)(*maps).backward()
        assert maps[2].grad is not None and maps[2].grad.abs().sum() > 0
        grads[faithful] = sum(m.grad.abs().sum().item() for m in maps)
    assert grads[False] > grads[True]


def test_shape_mismatch():
    with pytest.raises(ValueError, match="logits_fg and logits_uc"):
        ComplementarityLoss()(torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 2, 4))
