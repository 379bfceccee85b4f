# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""Small dictionary utilities for ConDSeg data pipelines."""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

from monai.config import KeysCollection
from monai.transforms import MapTransform

__all__ = ["DeriveBackgroundd"]


class DeriveBackgroundd(MapTransform):
    """Add the background target ``1 - mask`` for each mask key.

    Deriving it *after* augmentation keeps it aligned with the mask (the official code passed the background
    to albumentations as an unknown key, so it was never flipped or rotated; docs/deviations.md). The ConDSeg loss can
    derive it on the fly instead; this transform is for pipelines that want it stored.

    Args:
        keys: mask keys, channel-first tensors in ``[0, 1]``.
        postfix: the background is stored under ``f"{key}_{postfix}"``.
        allow_missing_keys: don't raise for missing keys.
    """

    def __init__(self, keys: KeysCollection = "label", postfix: str = "background", allow_missing_keys: bool = False):
        super().__init__(keys, allow_missing_keys)
        self.postfix = postfix

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[f"{key}_{self.postfix}"] = 1.0 - d[key]
        return d
