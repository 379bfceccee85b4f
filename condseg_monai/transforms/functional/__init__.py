# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""Functional (stateless) tensor operations used by the ConDSeg transforms."""

from __future__ import annotations

from condseg_monai.transforms.functional.blur import gaussian_blur_1d, gaussian_kernel1d
from condseg_monai.transforms.functional.color import (
    GRAYSCALE_WEIGHTS,
    adjust_brightness,
    adjust_contrast,
    adjust_hue,
    adjust_saturation,
    hsv_to_rgb,
    rgb_to_grayscale,
    rgb_to_hsv,
)

__all__ = [
    "GRAYSCALE_WEIGHTS",
    "adjust_brightness",
    "adjust_contrast",
    "adjust_hue",
    "adjust_saturation",
    "gaussian_blur_1d",
    "gaussian_kernel1d",
    "hsv_to_rgb",
    "rgb_to_grayscale",
    "rgb_to_hsv",
]
