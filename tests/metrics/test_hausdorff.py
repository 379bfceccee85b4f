# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""Tests for the pure-torch HD95 (known distances, empty-mask conventions, MONAI cross-check)."""

from __future__ import annotations

import importlib.util
import math

import pytest
import torch

from condseg_monai.metrics import binary_segmentation_metrics, hausdorff_distance, mask_edges


def _mask(size: tuple[int, int], *points: tuple[int, int]) -> torch.Tensor:
    m = torch.zeros(1, 1, *size, dtype=torch.bool)
    for r, c in points:
        m[0, 0, r, c] = True
    return m


def test_mask_edges_square_and_border():
    m = torch.zeros(6, 6, dtype=torch.bool)
    m[1:5, 1:5] = True  # 4x4 square: 12 boundary pixels, 4 interior
    edges = mask_edges(m)
    assert edges.sum().item() == 12 and not edges[2:4, 2:4].any()
    # a full image: only pixels on the image border are edges (zero outside, like scipy's border_value=0)
    full = mask_edges(torch.ones(4, 4, dtype=torch.bool))
    assert full.sum().item() == 12 and not full[1:3, 1:3].any()
    with pytest.raises(ValueError, match="spatial dims"):
        mask_edges(torch.ones(4, dtype=torch.bool))


def test_known_distances():
    single = hausdorff_distance(_mask((12, 12), (5, 5)), _mask((12, 12), (5, 9)))
    assert single.item() == pytest.approx(4.0)
    diag = hausdorff_distance(_mask((12, 12), (1, 1)), _mask((12, 12), (4, 5)))
    assert diag.item() == pytest.approx(5.0)  # 3-4-5 triangle
    line_a = torch.zeros(1, 1, 12, 12)
    line_a[..., 5, 2:11] = 1
    line_b = torch.zeros(1, 1, 12, 12)
    line_b[..., 8, 2:11] = 1
    assert hausdorff_distance(line_a, line_b).item() == pytest.approx(3.0)
    assert hausdorff_distance(line_a, line_a).item() == 0.0


def test_percentile_ignores_a_single_outlier():
    a = torch.zeros(1, 1, 40, 40)
    a[..., 0, :30] = 1  # 30 edge pixels
    b = a.clone()
    b[..., 30, 10] = 1  # one isolated outlier pixel 30 px away from the line
    # b->a distances: 30 zeros and one 30; the 95th percentile (linear, index 28.5) is 0; the max is 30
    assert hausdorff_distance(b, a).item() == 0.0
    assert hausdorff_distance(b, a, percentile=None).item() == pytest.approx(30.0)


def test_empty_conventions_and_mean_excludes_nan():
    z = torch.zeros(1, 1, 8, 8)
    one = z.clone()
    one[..., 3, 3] = 1
    hd = hausdorff_distance(torch.cat([z, z, one]), torch.cat([z, one, z]))
    assert hd[0].item() == 0.0 and math.isnan(hd[1].item()) and math.isnan(hd[2].item())
    out = binary_segmentation_metrics(torch.cat([one, z]), torch.cat([one, one]), include_hd95=True)
    assert out["hd95"][0].item() == 0.0 and math.isnan(out["hd95"][1].item())
    assert out["hd95"].nanmean().item() == 0.0


def test_errors():
    with pytest.raises(ValueError, match="same shape"):
        hausdorff_distance(torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 4, 5))
    with pytest.raises(ValueError, match="percentile"):
        hausdorff_distance(torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 4, 4), percentile=101)


@pytest.mark.skipif(importlib.util.find_spec("scipy") is None, reason="MONAI's Hausdorff distance needs scipy")
def test_matches_monai():
    from monai.metrics import compute_hausdorff_distance

    g = torch.Generator().manual_seed(0)
    smooth = torch.nn.functional.avg_pool2d
    a = (smooth(torch.rand(4, 1, 40, 48, generator=g), 5, 1, 2) > 0.55).float()
    b = (smooth(torch.rand(4, 1, 40, 48, generator=g), 7, 1, 3) > 0.52).float()
    for percentile in (95, None):
        ref = compute_hausdorff_distance(a, b, include_background=True, percentile=percentile)[:, 0].double()
        torch.testing.assert_close(hausdorff_distance(a, b, percentile=percentile), ref, atol=1e-4, rtol=1e-5)
