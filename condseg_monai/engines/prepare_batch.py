# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""Batch preparation of the Stage-1 trainer: the clean batch and its strong colour/blur view."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from monai.engines.utils import PrepareBatch, default_prepare_batch

from condseg_monai.inferers.consistency import ConsistencyInferer

__all__ = ["StrongViewPrepareBatch"]


class StrongViewPrepareBatch(PrepareBatch):
    """``prepare_batch`` of Consistency Reinforcement (Stage 1): the batch, its masks and its strong view.

    The images and masks are moved to the device as MONAI's ``default_prepare_batch`` does; ``augment`` then
    makes the strong view of the images there, without gradient. The view goes to the inferer as the keyword
    argument ``strong`` (:class:`~condseg_monai.inferers.ConsistencyInferer`), so the augmentation is part of the
    data path and the inferer only runs the network.

    Args:
        augment: maps a batch ``(B, C, H, W)`` in [0, 1] to its strong view (same shape), e.g.
            :class:`~condseg_monai.transforms.RandIlluminationContrastAugment`.
    """

    def __init__(self, augment: Callable[[torch.Tensor], torch.Tensor]) -> None:
        self.augment = augment

    def __call__(
        self,
        batchdata: dict[str, torch.Tensor],
        device: str | torch.device | None = None,
        non_blocking: bool = False,
        **kwargs: Any,
    ) -> tuple[torch.Tensor, torch.Tensor | None, tuple, dict[str, torch.Tensor]]:
        """``(images, masks, (), {"strong": strong view})``, the 4-tuple form ``SupervisedTrainer`` accepts."""
        images, masks = default_prepare_batch(batchdata, device, non_blocking, **kwargs)
        with torch.no_grad():
            strong = self.augment(images)
        return images, masks, (), {ConsistencyInferer.STRONG_VIEW_KEY: strong}
