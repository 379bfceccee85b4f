# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""Percentile (95 %) Hausdorff distance between binary masks, in pure torch.

MONAI's ``compute_hausdorff_distance`` needs SciPy (binary erosion, KD-tree / distance transform) on CPU,
which this project does not depend on. This module reproduces MONAI's definition exactly with torch ops
(runs on any device): edges are ``mask XOR erosion(mask)`` with the cross-shaped structuring element and
zero outside the image (SciPy's ``binary_erosion`` defaults), distances are Euclidean between edge-pixel
centres in pixel units, each direction's distances are reduced with ``torch.quantile`` (linear
interpolation) and the symmetric distance is the larger of the two directions.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["hausdorff_distance", "mask_edges"]

_CHUNK = 4096  # rows of the pairwise-distance matrix computed at once (bounds memory on large edge sets)


def mask_edges(mask: torch.Tensor) -> torch.Tensor:
    """Boundary pixels of a binary mask: ``mask & ~erode(mask)`` with a cross (4/6-connected) element.

    Args:
        mask: boolean mask with 2 or 3 spatial dims, shape (H, W) or (D, H, W).

    Returns:
        Boolean tensor of the same shape; pixels on the image border count as edges (zero outside).

    Raises:
        ValueError: when ``mask`` is not 2-D or 3-D.
    """
    nd = mask.ndim
    if nd not in (2, 3):
        raise ValueError(f"mask must have 2 or 3 spatial dims, got shape {tuple(mask.shape)}.")
    kernel = torch.zeros((3,) * nd, dtype=torch.float32, device=mask.device)
    centre = (1,) * nd
    kernel[centre] = 1.0
    for axis in range(nd):
        for offset in (0, 2):
            idx = list(centre)
            idx[axis] = offset
            kernel[tuple(idx)] = 1.0
    conv = F.conv2d if nd == 2 else F.conv3d
    hits = conv(mask[None, None].float(), kernel[None, None], padding=1)[0, 0]
    interior = hits > (2 * nd + 1) - 0.5  # all 2*nd+1 pixels of the cross are inside the mask
    return mask & ~interior


def _directed_distances(src: torch.Tensor, dst: torch.Tensor) -> torch.Tensor:
    """Distance from every point of ``src`` (N, d) to its nearest point of ``dst`` (M, d), shape (N,)."""
    return torch.cat([torch.cdist(chunk, dst).amin(dim=1) for chunk in src.split(_CHUNK)])


def hausdorff_distance(y_pred: torch.Tensor, y: torch.Tensor, percentile: float | None = 95.0) -> torch.Tensor:
    """Symmetric (percentile) Hausdorff distance per image between binary masks, in pixels.

    Conventions for empty masks (ours; MONAI returns NaN or inf there): both masks empty -> 0 (perfect
    agreement, consistent with IoU = Dice = 1); exactly one empty -> NaN (undefined; excluded from
    means by :class:`~condseg_monai.metrics.PaperMetrics`).

    Args:
        y_pred: binary prediction (B, 1, H, W) or (B, 1, D, H, W), bool or {0, 1}.
        y: binary ground truth of the same shape.
        percentile: percentile in [0, 100] of each directed distance set; ``None`` gives the maximum.

    Returns:
        float64 tensor of shape (B,).

    Raises:
        ValueError: when the shapes differ, there is more than one channel or ``percentile`` is out of range.
    """
    if y_pred.shape != y.shape:
        raise ValueError(f"y_pred and y must have the same shape, got {tuple(y_pred.shape)} and {tuple(y.shape)}.")
    if y_pred.ndim not in (4, 5) or y_pred.shape[1] != 1:
        raise ValueError(f"expected a (B, 1, H, W[, D]) binary mask, got shape {tuple(y_pred.shape)}.")
    if percentile is not None and not 0 <= percentile <= 100:
        raise ValueError(f"percentile must be in [0, 100] or None, got {percentile}.")
    out = torch.empty(y_pred.shape[0], dtype=torch.float64, device=y_pred.device)
    for b in range(y_pred.shape[0]):
        p, g = y_pred[b, 0].bool(), y[b, 0].bool()
        if not p.any() and not g.any():
            out[b] = 0.0
            continue
        if not p.any() or not g.any():
            out[b] = float("nan")
            continue
        pts_p = mask_edges(p).nonzero().double()
        pts_g = mask_edges(g).nonzero().double()
        dists = (_directed_distances(pts_p, pts_g), _directed_distances(pts_g, pts_p))
        if percentile is None:
            out[b] = torch.stack([d.max() for d in dists]).max()
        else:
            out[b] = torch.stack([torch.quantile(d, percentile / 100.0) for d in dists]).max()
    return out
