# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""Per-image uncertainty scores (condseg_monai.metrics.uncertainty_scores)."""

from __future__ import annotations

import math

import pytest
import torch

from condseg_monai.metrics import (
    SCORE_NAMES,
    UNCERTAINTY_MAPS,
    binary_entropy,
    boundary_band,
    boundary_entropy_score,
    check_uncertainty_map,
    flip_dice_disagreement_score,
    flip_disagreement_map,
    flip_disagreement_score,
    mask_probability,
    sid_uncertainty_map,
    sid_uncertainty_score,
    uncertainty_scores,
)
from condseg_monai.networks import ConDSegOutput

D = torch.float64


def _stacked(mask: torch.Tensor, uncertainty: torch.Tensor) -> torch.Tensor:
    """``(B, 4, C, H, W)`` with the given mask and uncertainty maps (fg/bg filled with 0.5)."""
    maps = [torch.full_like(mask, 0.5) for _ in ConDSegOutput]
    maps[ConDSegOutput.MASK] = mask
    maps[ConDSegOutput.UNCERTAINTY] = uncertainty
    return torch.stack(maps, dim=1)


def test_binary_entropy_exact_values() -> None:
    p = torch.tensor([0.0, 1.0, 0.5, 0.25], dtype=D)
    h = binary_entropy(p)
    expected = -(0.25 * math.log2(0.25) + 0.75 * math.log2(0.75))
    torch.testing.assert_close(h, torch.tensor([0.0, 0.0, 1.0, expected], dtype=D))


def test_sid_score_is_the_mean_of_the_uncertainty_map_not_of_the_mask() -> None:
    mask = torch.ones(2, 1, 2, 2, dtype=D)
    unc = torch.tensor([[[[0.0, 1.0], [0.5, 0.5]]], [[[0.1, 0.1], [0.1, 0.1]]]], dtype=D)
    score = sid_uncertainty_score(_stacked(mask, unc))
    torch.testing.assert_close(score, torch.tensor([0.5, 0.1], dtype=D))
    with pytest.raises(ValueError, match="stacked"):
        sid_uncertainty_score(mask)  # plain mask logits have no SID branch


def test_mask_probability_takes_the_mask_of_a_stacked_output() -> None:
    mask, unc = torch.rand(1, 1, 4, 4, dtype=D), torch.rand(1, 1, 4, 4, dtype=D)
    assert torch.equal(mask_probability(_stacked(mask, unc)), mask)
    assert torch.equal(mask_probability(mask), mask)
    with pytest.raises(ValueError):
        mask_probability(torch.rand(4, 4))


def test_boundary_band_of_a_square() -> None:
    mask = torch.zeros(1, 1, 7, 7, dtype=torch.bool)
    mask[..., 2:5, 2:5] = True
    band = boundary_band(mask, radius=1)[0, 0]
    expected = torch.zeros(7, 7, dtype=torch.bool)
    expected[1:6, 1:6] = True
    expected[3, 3] = False  # the centre's 3x3 neighbourhood is all foreground
    assert torch.equal(band, expected)
    assert not boundary_band(torch.zeros(1, 1, 5, 5), radius=1).any()
    assert not boundary_band(torch.ones(1, 1, 5, 5), radius=1).any(), "the image border is not a boundary"
    with pytest.raises(ValueError):
        boundary_band(mask, radius=0)


def test_boundary_entropy_confident_scores_lower_than_uncertain() -> None:
    base = torch.zeros(1, 1, 8, 8, dtype=D)
    base[..., 2:6, 2:6] = 1.0
    confident = base * 0.98 + 0.01  # 0.99 inside, 0.01 outside
    hesitant = base * 0.2 + 0.4  # 0.6 inside, 0.4 outside: same mask, unsure everywhere
    scores = boundary_entropy_score(torch.cat([confident, hesitant]), radius=1)
    assert scores[0] < scores[1]
    # every band pixel of `confident` has p in {0.01, 0.99}: the score is exactly their entropy
    torch.testing.assert_close(scores[0], binary_entropy(torch.tensor(0.01, dtype=D)))
    torch.testing.assert_close(scores[1], binary_entropy(torch.tensor(0.4, dtype=D)))


def test_boundary_entropy_without_boundary_uses_the_whole_image() -> None:
    prob = torch.full((1, 1, 4, 4), 0.25, dtype=D)  # nothing predicted (all below 0.5)
    prob[..., 0, 0] = 0.0
    expected = binary_entropy(torch.tensor(0.25, dtype=D)) * 15 / 16
    torch.testing.assert_close(boundary_entropy_score(prob), expected.reshape(1))


def test_flip_disagreement_exact_and_zero_for_agreeing_passes() -> None:
    same = torch.rand(1, 2, 1, 3, 3, dtype=D).expand(4, -1, -1, -1, -1)
    torch.testing.assert_close(flip_disagreement_score(same), torch.zeros(2, dtype=D))
    passes = torch.tensor([0.0, 1.0], dtype=D).reshape(2, 1, 1, 1, 1).expand(2, 1, 1, 2, 2)
    torch.testing.assert_close(flip_disagreement_score(passes), torch.tensor([0.5], dtype=D))
    with pytest.raises(ValueError, match="two passes"):
        flip_disagreement_score(passes[:1])


def test_flip_disagreement_map_exact_values() -> None:
    """Twice the population standard deviation over the passes, per pixel (float64, hand-computed)."""
    # 4 passes of a 1 x 1 x 2 x 3 image; pixel by pixel the passes say:
    values = [
        [0.3, 0.3, 0.3, 0.3],  # all agree                      -> 0
        [1.0, 1.0, 0.0, 0.0],  # an even split of confident passes -> 2 * 0.5 = 1
        [1.0, 0.0, 0.0, 0.0],  # one against three              -> 2 * sqrt(3 / 16) = sqrt(3) / 2
        [0.75, 0.25, 0.75, 0.25],  # +-0.25 around 0.5           -> 2 * 0.25 = 0.5
        [0.0, 0.0, 0.0, 0.0],  # all agree on background        -> 0
        [1.0, 1.0, 1.0, 1.0],  # all agree on foreground        -> 0
    ]
    passes = torch.tensor(values, dtype=D).T.reshape(4, 1, 1, 2, 3)
    expected = torch.tensor([0.0, 1.0, math.sqrt(3) / 2, 0.5, 0.0, 0.0], dtype=D).reshape(1, 1, 2, 3)
    disagreement = flip_disagreement_map(passes)
    assert disagreement.shape == (1, 1, 2, 3) and disagreement.dtype == D
    torch.testing.assert_close(disagreement, expected, rtol=0, atol=1e-15)
    assert torch.equal(disagreement[..., 0, 0], torch.zeros(1, 1, dtype=D)), "agreeing passes give exactly 0"
    # one computation: the per-image score is half the image mean of the map, bit for bit
    assert torch.equal(flip_disagreement_score(passes), disagreement.flatten(1).mean(dim=1) / 2)


def test_flip_disagreement_map_shapes_and_stacked_passes() -> None:
    same = torch.rand(1, 2, 3, 5, 4, dtype=D).expand(4, -1, -1, -1, -1)  # (T, B, C, H, W), identical passes
    assert torch.equal(flip_disagreement_map(same), torch.zeros(2, 3, 5, 4, dtype=D))
    mask = torch.tensor([0.0, 1.0], dtype=D).reshape(2, 1, 1, 1, 1).expand(2, 2, 1, 3, 3)  # (T=2, B, C, H, W)
    # ConDSeg's stacked passes (T, B, 4, C, H, W): the mask map is used, never the auxiliary maps
    stacked = torch.stack([_stacked(m, torch.rand_like(m)) for m in mask])
    assert stacked.shape == (2, 2, 4, 1, 3, 3)
    assert torch.equal(flip_disagreement_map(stacked), torch.ones(2, 1, 3, 3, dtype=D))
    assert torch.equal(flip_disagreement_map(stacked), flip_disagreement_map(mask))
    with pytest.raises(ValueError, match="two passes"):
        flip_disagreement_map(mask[:1])


def test_sid_uncertainty_map_is_the_uncertainty_head_and_names_are_checked() -> None:
    mask, unc = torch.rand(2, 1, 3, 3, dtype=D), torch.rand(2, 1, 3, 3, dtype=D)
    assert torch.equal(sid_uncertainty_map(_stacked(mask, unc)), unc)
    with pytest.raises(ValueError, match="stacked"):
        sid_uncertainty_map(mask)
    assert UNCERTAINTY_MAPS == ("flip_disagreement", "sid")
    assert [check_uncertainty_map(n) for n in UNCERTAINTY_MAPS] == list(UNCERTAINTY_MAPS)
    for bad in ("SID", "entropy", None, ["sid"]):
        with pytest.raises(ValueError, match="uncertainty_map"):
            check_uncertainty_map(bad)


class _Symmetric(torch.nn.Module):
    """Flip-equivariant: the logit of each pixel depends on its value and the global mean only."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - x.mean(dim=(-2, -1), keepdim=True)).sum(dim=1, keepdim=True) * 3


class _LeftBiased(torch.nn.Module):
    """Not flip-equivariant: adds a left-to-right ramp to the logits."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ramp = torch.linspace(-4, 4, x.shape[-1], dtype=x.dtype)
        return x.sum(dim=1, keepdim=True) + ramp


class _StackedNet(torch.nn.Module):
    """Returns a ConDSeg-style stacked output with a constant uncertainty logit."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mask = x.sum(dim=1, keepdim=True)
        unc = torch.zeros_like(mask)  # sigmoid(0) = 0.5
        return _stacked(mask, unc)


def test_uncertainty_scores_flip_equivariant_model_has_zero_disagreement() -> None:
    x = torch.rand(2, 3, 8, 8, dtype=D)
    scores = uncertainty_scores(_Symmetric(), x)
    assert list(scores) == ["tta_disagreement", "tta_dice_disagreement", "boundary_entropy"], "no SID for a plain net"
    # the inferer computes in float32 (its sigmoid casts), so compare at that precision
    torch.testing.assert_close(scores["tta_disagreement"], torch.zeros(2))
    assert torch.equal(scores["tta_dice_disagreement"], torch.zeros(2))  # identical masks: full agreement
    biased = uncertainty_scores(_LeftBiased(), x)["tta_disagreement"]
    assert (biased > 0.05).all()
    assert all(s.shape == (2,) for s in scores.values())


def test_uncertainty_scores_reads_sid_from_a_stacked_output() -> None:
    scores = uncertainty_scores(_StackedNet(), torch.rand(1, 3, 8, 8, dtype=D))
    assert tuple(scores) == SCORE_NAMES
    torch.testing.assert_close(scores["sid_uncertainty"], torch.tensor([0.5]))


def test_flip_dice_disagreement_is_one_minus_the_mean_pairwise_dice() -> None:
    a = torch.zeros(1, 1, 4, 4, dtype=D)
    a[..., :2, :] = 0.9  # 8 pixels
    b = torch.zeros(1, 1, 4, 4, dtype=D)
    b[..., :1, :] = 0.9  # 4 pixels, all inside a
    empty = torch.zeros(1, 1, 4, 4, dtype=D)
    # pairs (a, b): 2 * 4 / (8 + 4) = 2/3; (a, a): 1; (b, a): 2/3 -> mean 7/9, score 2/9 (exact in float64)
    score = flip_dice_disagreement_score(torch.stack([a, b, a]))
    assert score.dtype == D and torch.equal(score, 1 - torch.tensor([(2 / 3 + 1 + 2 / 3) / 3], dtype=D))
    assert torch.equal(flip_dice_disagreement_score(torch.stack([empty, empty])), torch.zeros(1, dtype=D))
    assert torch.equal(flip_dice_disagreement_score(torch.stack([a, empty])), torch.ones(1, dtype=D))
    # the threshold is strict, as the bundle's inference: 0.5 is background
    half = torch.full((1, 1, 4, 4), 0.5, dtype=D)
    assert torch.equal(flip_dice_disagreement_score(torch.stack([half, empty])), torch.zeros(1, dtype=D))
    stacked = torch.stack([a, a, a, a], dim=1)  # ConDSeg's (B, 4, C, H, W): the mask map is used
    assert flip_dice_disagreement_score(torch.stack([stacked, torch.stack([b, b, b, b], dim=1)])).shape == (1,)
    with pytest.raises(ValueError, match="two passes"):
        flip_dice_disagreement_score(a[None])
