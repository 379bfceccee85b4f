# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""The one upsampling of ConDSeg: bilinear with ``align_corners=True``, as in the official code."""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["upsample"]


def upsample(x: torch.Tensor, scale: float = 2.0) -> torch.Tensor:
    """Bilinear ``scale`` x upsampling of a ``(B, C, H, W)`` feature map with ``align_corners=True``.

    Args:
        x: the feature map.
        scale: the scale factor. Defaults to 2.

    Returns:
        ``(B, C, scale * H, scale * W)``.
    """
    return F.interpolate(x, scale_factor=scale, mode="bilinear", align_corners=True)
