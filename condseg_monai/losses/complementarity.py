# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""The "degree of complementarity" loss that ties ConDSeg's foreground, background and uncertainty maps."""

from __future__ import annotations

import torch
from torch.nn.modules.loss import _Loss

from condseg_monai.losses._utils import as_loss_tensor, check_same_shape

__all__ = ["ComplementarityLoss"]


class ComplementarityLoss(_Loss):
    """Pairwise overlap of the softmax-normalised fg / bg / uncertainty maps (the paper's complementarity loss).

    The three maps are stacked on a new axis and normalised with a softmax across that axis, giving
    ``p_fg, p_bg, p_uc``; the loss is the mean over all pixels of ``p_fg p_bg + p_fg p_uc + p_bg p_uc``
    (which equals ``(1 - sum_i p_i^2) / 2``, minimal when one map dominates the pixel).

    ``faithful=True`` (default) reproduces the official code, which feeds the sigmoid *probabilities* to
    the softmax: ``softmax(sigmoid(logits))``. Its inputs are bounded to [0, 1], so the loss can only move
    between 0.2891 (one map at 1, the others at 0) and 1/3 (all maps equal): a weak but correctly aimed
    signal, whose optimum is genuinely complementary probability maps. ``faithful=False`` applies the
    softmax to the logits: the loss can reach 0 and its gradients are much larger, but its optimum only
    asks one *logit* to dominate the others, which can also be met by three maps that are all "off"
    (e.g. logits -5, -20, -20). We keep the official form as the default because it is the one the
    published numbers come from and because its optimum is the intended one; see ``docs/metrics.md``.

    Args:
        faithful: ``True``: softmax over the sigmoid probabilities (official). ``False``: softmax over logits.
    """

    def __init__(self, faithful: bool = True) -> None:
        super().__init__()
        self.faithful = bool(faithful)

    def forward(self, logits_fg: torch.Tensor, logits_bg: torch.Tensor, logits_uc: torch.Tensor) -> torch.Tensor:
        """Compute the loss.

        Args:
            logits_fg: foreground-map logits, shape (B, C, H, W).
            logits_bg: background-map logits, same shape.
            logits_uc: uncertainty-map logits, same shape.

        Returns:
            0-dim tensor.

        Raises:
            ValueError: when the shapes differ.
        """
        logits_fg = as_loss_tensor(logits_fg, "logits_fg")
        logits_bg = as_loss_tensor(logits_bg, "logits_bg")
        logits_uc = as_loss_tensor(logits_uc, "logits_uc")
        check_same_shape(logits_fg, logits_bg, "logits_fg", "logits_bg")
        check_same_shape(logits_fg, logits_uc, "logits_fg", "logits_uc")
        maps = torch.stack([logits_fg, logits_bg, logits_uc], dim=0)
        if self.faithful:
            maps = torch.sigmoid(maps)
        p_fg, p_bg, p_uc = torch.softmax(maps, dim=0).unbind(0)
        return (p_fg * p_bg + p_fg * p_uc + p_bg * p_uc).mean()
