# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""Deterministic image corruptions for robustness evaluation: illumination, gamma, contrast and blur.

Each corruption has three severity levels with fixed parameters (no randomness), applied to the ``(C, H, W)`` or
``(B, C, H, W)`` RGB image in ``[0, 1]`` **at the model resolution** (after the resize), so a blur sigma means the
same thing for every dataset:

==============  ==========================================================  ==================
name            operation                                                   severity 1 / 2 / 3
==============  ==========================================================  ==================
``darken``      ``x * f`` (under-exposure)                                  f = 0.7 / 0.5 / 0.3
``brighten``    ``clamp(x * f, 0, 1)`` (over-exposure, saturates)           f = 1.3 / 1.6 / 2.0
``gamma``       ``x ** g`` (darker mid-tones, highlights kept)              g = 1.5 / 2.0 / 3.0
``contrast``    ``m + c (x - m)``, ``m`` = mean grey level of the image     c = 0.7 / 0.5 / 0.3
``blur``        separable Gaussian, reflect padding, 2 ceil(3 s) + 1 taps   s = 1 / 2 / 3 px
==============  ==========================================================  ==================
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping
from typing import Any

import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform

from condseg_monai.transforms.functional import adjust_brightness, adjust_contrast, gaussian_blur_1d

__all__ = ["CORRUPTIONS", "CorruptImaged", "corrupt", "corruption_parameter"]

# name -> (parameter name, parameter per severity 1..3)
CORRUPTIONS: dict[str, tuple[str, tuple[float, float, float]]] = {
    "darken": ("factor", (0.7, 0.5, 0.3)),
    "brighten": ("factor", (1.3, 1.6, 2.0)),
    "gamma": ("gamma", (1.5, 2.0, 3.0)),
    "contrast": ("factor", (0.7, 0.5, 0.3)),
    "blur": ("sigma_px", (1.0, 2.0, 3.0)),
}


def corruption_parameter(name: str, severity: int) -> float:
    """The parameter of corruption ``name`` at ``severity`` (1..3).

    Raises:
        ValueError: unknown corruption or severity.
    """
    if name not in CORRUPTIONS:
        raise ValueError(f"unknown corruption {name!r}; expected one of {sorted(CORRUPTIONS)}.")
    levels = CORRUPTIONS[name][1]
    if not isinstance(severity, int) or not 1 <= severity <= len(levels):
        raise ValueError(f"severity must be an integer in 1..{len(levels)}, got {severity!r}.")
    return levels[severity - 1]


def _blur(img: torch.Tensor, sigma: float) -> torch.Tensor:
    size = 2 * math.ceil(3 * sigma) + 1
    return gaussian_blur_1d(gaussian_blur_1d(img, sigma, size, axis=-2), sigma, size, axis=-1)


def corrupt(img: torch.Tensor, name: str, severity: int) -> torch.Tensor:
    """Apply corruption ``name`` at ``severity`` (0 = unchanged, 1..3, see the module table).

    Args:
        img: ``(3, H, W)`` or ``(B, 3, H, W)`` RGB in ``[0, 1]``.
        name: one of :data:`CORRUPTIONS` (or ``"clean"`` with severity 0).
        severity: 0 (identity) to 3.

    Returns:
        corrupted image in ``[0, 1]``, same shape, dtype and device.

    Raises:
        ValueError: unknown corruption or severity.
    """
    if severity == 0 and (name == "clean" or name in CORRUPTIONS):
        return img
    p = corruption_parameter(name, severity)
    x = img.float()
    if name in ("darken", "brighten"):
        out = adjust_brightness(x, p)
    elif name == "gamma":
        out = x.clamp(0, 1) ** p
    elif name == "contrast":
        out = adjust_contrast(x, p)
    else:
        out = _blur(x, p)
    return out.clamp(0, 1).to(img.dtype)


class CorruptImaged(MapTransform):
    """Dictionary transform applying :func:`corrupt` (deterministic, no random state).

    Args:
        keys: image key(s).
        corruption: one of :data:`CORRUPTIONS` (or ``"clean"`` with severity 0, as :func:`corrupt`).
        severity: 0 (identity) to 3.
        allow_missing_keys: don't raise for missing keys.

    Raises:
        ValueError: unknown corruption or severity.
    """

    def __init__(self, keys: KeysCollection, corruption: str, severity: int, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        if severity != 0:
            corruption_parameter(corruption, severity)  # validate early
        elif corruption != "clean" and corruption not in CORRUPTIONS:  # ("clean", 0): the robustness baseline
            raise ValueError(f"unknown corruption {corruption!r}; expected one of {sorted(CORRUPTIONS)}.")
        self.corruption = corruption
        self.severity = severity

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = corrupt(d[key], self.corruption, self.severity)
        return d
