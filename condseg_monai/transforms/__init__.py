# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""ConDSeg transforms: file loading, Stage-1 colour augmentation, geometric augmentation presets and the
deterministic corruptions of the robustness evaluation."""

from __future__ import annotations

from condseg_monai.transforms.corruptions import CORRUPTIONS, CorruptImaged, corrupt, corruption_parameter
from condseg_monai.transforms.functional import (
    adjust_brightness,
    adjust_contrast,
    adjust_hue,
    adjust_saturation,
    gaussian_blur_1d,
    gaussian_kernel1d,
    hsv_to_rgb,
    rgb_to_grayscale,
    rgb_to_hsv,
)
from condseg_monai.transforms.illumination import RandIlluminationContrastAugment, RandIlluminationContrastAugmentd
from condseg_monai.transforms.loading import (
    EnsureSameSized,
    LoadImageRGB,
    LoadImageRGBd,
    LoadMask,
    LoadMaskd,
    NegativeLabeld,
)
from condseg_monai.transforms.mixing import BidirectionalCopyPaste, UnlabeledCutMix
from condseg_monai.transforms.presets import (
    STAGE_AUGMENTATION,
    condseg_eval_transforms,
    condseg_geometric_augmentation,
    condseg_load_transforms,
    condseg_resize_transforms,
    condseg_train_transforms,
)
from condseg_monai.transforms.readers import (
    InvalidInputError,
    NibabelMaskReader,
    NibabelRGBReader,
    PILMaskReader,
    PILRGBReader,
    binarize_mask,
    to_unit_range,
)
from condseg_monai.transforms.utility import DeriveBackgroundd

__all__ = [
    "CORRUPTIONS",
    "STAGE_AUGMENTATION",
    "BidirectionalCopyPaste",
    "CorruptImaged",
    "DeriveBackgroundd",
    "EnsureSameSized",
    "InvalidInputError",
    "LoadImageRGB",
    "LoadImageRGBd",
    "LoadMask",
    "LoadMaskd",
    "NegativeLabeld",
    "NibabelMaskReader",
    "NibabelRGBReader",
    "PILMaskReader",
    "PILRGBReader",
    "RandIlluminationContrastAugment",
    "RandIlluminationContrastAugmentd",
    "UnlabeledCutMix",
    "adjust_brightness",
    "adjust_contrast",
    "adjust_hue",
    "adjust_saturation",
    "binarize_mask",
    "condseg_eval_transforms",
    "condseg_geometric_augmentation",
    "condseg_load_transforms",
    "condseg_resize_transforms",
    "condseg_train_transforms",
    "corrupt",
    "corruption_parameter",
    "gaussian_blur_1d",
    "gaussian_kernel1d",
    "hsv_to_rgb",
    "rgb_to_grayscale",
    "rgb_to_hsv",
    "to_unit_range",
]
