# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""Inferers used by the training workflows."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from monai.inferers import Inferer

__all__ = ["ConsistencyInferer"]


class ConsistencyInferer(Inferer):
    """Stage-1 (Consistency Reinforcement) inferer: the clean batch and a strongly augmented view.

    The strong view is made on the fly from the batch, on the training device, by ``augment`` (the
    illumination/contrast/blur augmentation), without gradient. Both views then go through the network in
    two separate forward passes, as in the official training loop, so BatchNorm sees each view's own
    statistics. With this inferer MONAI's ``SupervisedTrainer`` needs no subclass: its loss receives the
    stacked predictions.

    Args:
        augment: callable mapping a batch ``(B, C, H, W)`` in [0, 1] to its strong view (same shape).

    Returns (from ``__call__``):
        ``(B, 2, out_channels, H, W)``: index 0 the clean-view logits, index 1 the strong-view logits.
    """

    CLEAN: int = 0  # index of the clean-view logits along dim 1 of the output
    STRONG: int = 1  # index of the strong-view logits

    def __init__(self, augment: Callable[[torch.Tensor], torch.Tensor]) -> None:
        super().__init__()
        self.augment = augment

    def __call__(self, inputs: torch.Tensor, network: Callable[..., torch.Tensor], *args: Any, **kwargs: Any):
        with torch.no_grad():
            strong = self.augment(inputs)
        clean_logits = network(inputs, *args, **kwargs)
        strong_logits = network(strong, *args, **kwargs)
        return torch.stack([clean_logits, strong_logits], dim=1)  # in the order CLEAN, STRONG
