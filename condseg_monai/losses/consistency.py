# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""Stage-1 "Consistency Reinforcement" losses: the hard-label consistency term and the full Stage-1 loss."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch.nn.modules.loss import _Loss

from condseg_monai.losses._utils import as_loss_tensor, check_same_shape, split_stacked
from condseg_monai.losses.dice_bce import DiceBCELoss

__all__ = ["ConsistencyLoss", "Stage1Loss"]


class ConsistencyLoss(_Loss):
    """Symmetric hard-label consistency between two predictions of the same images (the paper's Stage-1 loss).

    ``L = BCE(p_a, 1[p_b > 0.5]) + BCE(p_b, 1[p_a > 0.5])`` with ``p = sigmoid(logits)``, each BCE a mean
    over all pixels of the batch. The binarised targets carry no gradient, so each view is pulled towards
    the other's hard decision only through its own prediction. ``1[p > 0.5]`` is evaluated as
    ``1[logit > 0]`` (mathematically identical, and exact where float32 would round ``sigmoid`` to 0.5).
    As in the official code a single sigmoid is used (no double-sigmoid quirk in this term).

    Args: none.
    """

    def __init__(self) -> None:
        super().__init__()

    def forward(self, logits_a: torch.Tensor, logits_b: torch.Tensor) -> torch.Tensor:
        """Compute the loss.

        Args:
            logits_a: logits of the first view, shape (B, C, H, W).
            logits_b: logits of the second view, same shape.

        Returns:
            0-dim tensor.

        Raises:
            ValueError: when the shapes differ.
        """
        logits_a = as_loss_tensor(logits_a, "logits_a")
        logits_b = as_loss_tensor(logits_b, "logits_b")
        check_same_shape(logits_a, logits_b, "logits_a", "logits_b")
        hard_a = (logits_a.detach() > 0).to(logits_a.dtype)
        hard_b = (logits_b.detach() > 0).to(logits_b.dtype)
        return F.binary_cross_entropy_with_logits(logits_a, hard_b) + F.binary_cross_entropy_with_logits(
            logits_b, hard_a
        )


class Stage1Loss(_Loss):
    """Full Stage-1 loss: ``w_c DiceBCE(clean, y) + w_s DiceBCE(strong, y) + w_k Consistency(clean, strong)``.

    ``clean`` are the logits of the original batch and ``strong`` those of the strongly (colour/blur)
    augmented copy, both from the same network. All weights are 1 in the official code. Two call forms:

    * ``loss(logits_clean, logits_strong, target)``;
    * ``loss(pred, target)``, the form MONAI's ``SupervisedTrainer`` uses, where ``pred`` is the stacked
      ``(B, 2, C, H, W)`` output of :class:`~condseg_monai.inferers.ConsistencyInferer` (index 0 clean,
      1 strong) or a ``(clean, strong)`` sequence. A plain ``(B, C, H, W)`` ``pred`` (a single view, e.g.
      validation) gives only the clean DiceBCE term.

    After each call ``last_terms`` holds the detached unweighted terms ``dicebce_clean``,
    ``dicebce_strong`` and ``consistency`` (0-dim tensors, no device sync; call ``float()`` to log); for a
    single-view ``pred`` only ``dicebce_clean``.

    Args:
        double_sigmoid: official double sigmoid in the two DiceBCE terms (see :class:`DiceBCELoss`).
        weight_clean: weight of the clean DiceBCE term.
        weight_strong: weight of the augmented DiceBCE term.
        weight_consistency: weight of the consistency term.
        smooth: Dice smoothing constant.
    """

    def __init__(
        self,
        double_sigmoid: bool = False,
        weight_clean: float = 1.0,
        weight_strong: float = 1.0,
        weight_consistency: float = 1.0,
        smooth: float = 1.0,
    ) -> None:
        super().__init__()
        self.dice_bce = DiceBCELoss(double_sigmoid=double_sigmoid, smooth=smooth)
        self.consistency = ConsistencyLoss()
        self.weight_clean = float(weight_clean)
        self.weight_strong = float(weight_strong)
        self.weight_consistency = float(weight_consistency)
        self.last_terms: dict[str, torch.Tensor] = {}

    def forward(
        self,
        logits_clean: torch.Tensor | Sequence[torch.Tensor],
        logits_strong: torch.Tensor,
        target: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Compute the loss, as ``loss(logits_clean, logits_strong, target)`` or ``loss(pred, target)``.

        Args:
            logits_clean: logits for the clean batch, shape (B, C, H, W); in the two-argument form the
                stacked ``(B, 2, C, H, W)`` prediction, a ``(clean, strong)`` pair or a single view.
            logits_strong: logits for the augmented batch (same shape); in the two-argument form the target.
            target: ground truth (B, C, H, W), values in [0, 1]; ``None`` selects the two-argument form.

        Returns:
            0-dim tensor.

        Raises:
            ValueError: when the shapes differ or the layout of ``pred`` is not recognised.
        """
        if target is None:
            views, target = split_stacked(logits_clean, ("clean", "strong")), logits_strong
        else:
            views = [logits_clean, logits_strong]
        check_same_shape(views[0], target, "logits_clean", "target")
        clean = self.dice_bce(views[0], target)
        self.last_terms = {"dicebce_clean": clean.detach()}
        if len(views) == 1:
            return self.weight_clean * clean
        check_same_shape(views[0], views[1], "logits_clean", "logits_strong")
        strong = self.dice_bce(views[1], target)
        cons = self.consistency(views[0], views[1])
        self.last_terms.update(dicebce_strong=strong.detach(), consistency=cons.detach())
        return self.weight_clean * clean + self.weight_strong * strong + self.weight_consistency * cons
