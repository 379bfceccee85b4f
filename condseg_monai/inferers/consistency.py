# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""The Stage-1 (Consistency Reinforcement) inferer: the network on the clean batch and on its strong view."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from monai.inferers import Inferer

__all__ = ["ConsistencyInferer"]


class ConsistencyInferer(Inferer):
    """Run the network on the clean batch and on its strong view; return both predictions stacked.

    The strong view is data, not inference: it is made from the batch by the trainer's ``prepare_batch``
    (:class:`~condseg_monai.engines.StrongViewPrepareBatch`, on the training device, without gradient), which
    hands it to this inferer as the keyword argument ``strong``. Both views go through the network in two
    separate forward passes, as in the official training loop, so BatchNorm sees each view's own statistics.
    With the pair, MONAI's ``SupervisedTrainer`` needs no subclass: its loss receives the stacked predictions.

    Returns (from ``__call__``):
        ``(B, 2, out_channels, H, W)``: index ``CLEAN`` (0) the clean-view logits, ``STRONG`` (1) the strong-view
        logits.

    Raises (from ``__call__``):
        ValueError: no strong view was given, or its shape differs from the batch's.
    """

    CLEAN: int = 0  # index of the clean-view logits along dim 1 of the output
    STRONG: int = 1  # index of the strong-view logits
    STRONG_VIEW_KEY: str = "strong"  # the keyword argument that carries the strong view

    def __call__(
        self,
        inputs: torch.Tensor,
        network: Callable[..., torch.Tensor],
        *args: Any,
        strong: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> torch.Tensor:
        """Stacked clean / strong logits of ``inputs`` ``(B, C, H, W)`` and its ``strong`` view (same shape)."""
        if strong is None:
            raise ValueError(
                "ConsistencyInferer needs the strong view of the batch (keyword 'strong'): use "
                "condseg_monai.engines.StrongViewPrepareBatch as the trainer's prepare_batch."
            )
        if strong.shape != inputs.shape:
            raise ValueError(f"the strong view has shape {tuple(strong.shape)}, the batch {tuple(inputs.shape)}.")
        clean_logits = network(inputs, *args, **kwargs)
        strong_logits = network(strong, *args, **kwargs)
        return torch.stack([clean_logits, strong_logits], dim=1)  # in the order CLEAN, STRONG
