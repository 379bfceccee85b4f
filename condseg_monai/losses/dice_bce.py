# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""Binary cross-entropy plus batch Dice loss, the building block of every ConDSeg supervision term."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from monai.utils import LossReduction, look_up_option
from torch.nn.modules.loss import _Loss

from condseg_monai.losses._utils import as_loss_tensor, check_same_shape

__all__ = ["DiceBCELoss", "dice_bce"]


def dice_bce(
    logits: torch.Tensor,
    target: torch.Tensor,
    double_sigmoid: bool = False,
    smooth: float = 1.0,
    batch: bool = True,
) -> torch.Tensor:
    """Functional DiceBCE on raw logits.

    ``BCE(s, t) + 1 - (2 sum(s t) + smooth) / (sum(s) + sum(t) + smooth)`` with ``s = sigmoid(logits)``
    (``sigmoid(sigmoid(logits))`` when ``double_sigmoid``). The BCE is a mean over pixels.

    Args:
        logits: raw network output, shape (B, C, H, W) (any number of spatial dims).
        target: target of the same shape, values in [0, 1] (soft targets allowed).
        double_sigmoid: reproduce the official double sigmoid (see :class:`DiceBCELoss`).
        smooth: additive constant of the Dice numerator and denominator.
        batch: ``True`` sums the Dice terms over the whole batch and returns a 0-dim tensor (official);
            ``False`` computes Dice and BCE per sample and returns a (B,) tensor.

    Returns:
        0-dim tensor when ``batch`` else a (B,) tensor of per-sample losses.
    """
    logits = as_loss_tensor(logits, "logits")
    target = as_loss_tensor(target, "target")
    check_same_shape(logits, target, "logits", "target")
    # The official model emits probabilities and its loss applies another sigmoid, so its "logit" is
    # sigmoid(our logit); BCE-with-logits on that input is exactly the official BCE(sigmoid(sigmoid(x)), t).
    z = torch.sigmoid(logits) if double_sigmoid else logits
    s = torch.sigmoid(z)
    if batch:
        bce = F.binary_cross_entropy_with_logits(z, target, reduction="mean")
        inter, denom = (s * target).sum(), s.sum() + target.sum()
    else:
        dims = tuple(range(1, logits.ndim))
        bce = F.binary_cross_entropy_with_logits(z, target, reduction="none").mean(dim=dims)
        inter, denom = (s * target).sum(dim=dims), s.sum(dim=dims) + target.sum(dim=dims)
    dice = 1.0 - (2.0 * inter + smooth) / (denom + smooth)
    return bce + dice


class DiceBCELoss(_Loss):
    """ConDSeg's DiceBCE loss (``utils/metrics.py`` in the official code), computed from raw logits.

    ``loss = BCE(s, t) + 1 - (2 sum(s t) + smooth) / (sum(s) + sum(t) + smooth)``, ``s = sigmoid(logits)``.
    With ``batch=True`` (official) the Dice sums run over the whole batch flattened ("batch Dice") and the
    BCE is the mean over all pixels of the batch. The BCE uses ``binary_cross_entropy_with_logits`` (one
    fused, numerically stable sigmoid) instead of the official ``binary_cross_entropy`` on probabilities,
    which clamps ``log`` at -100; the two agree wherever the official value is finite and unclamped.

    ``double_sigmoid=True`` reproduces the official quirk: the official networks already output sigmoid
    probabilities and the loss applies a second sigmoid, so ``s = sigmoid(sigmoid(logits))`` lies in
    [0.5, 0.731]; BCE is then evaluated on that ``s`` too. Use it only for reproduction studies.

    Example::

        loss = DiceBCELoss()(torch.randn(2, 1, 64, 64), torch.randint(0, 2, (2, 1, 64, 64)).float())

    Args:
        double_sigmoid: apply the official extra sigmoid.
        smooth: additive constant of the Dice numerator and denominator (official: 1).
        batch: ``True``: batch Dice, one value for the batch (official). ``False``: Dice and BCE per sample.
        reduction: for ``batch=False`` only: ``"mean"`` | ``"sum"`` | ``"none"`` over the per-sample
            losses (``"none"`` returns shape (B,)). With ``batch=True`` there is a single value and
            ``reduction`` has no effect.

    Raises:
        ValueError: when ``smooth`` is negative or ``reduction`` is unknown.
    """

    def __init__(
        self,
        double_sigmoid: bool = False,
        smooth: float = 1.0,
        batch: bool = True,
        reduction: LossReduction | str = LossReduction.MEAN,
    ) -> None:
        super().__init__(reduction=look_up_option(reduction, LossReduction).value)
        if smooth < 0:
            raise ValueError(f"smooth must be non-negative, got {smooth}.")
        self.double_sigmoid = bool(double_sigmoid)
        self.smooth = float(smooth)
        self.batch = bool(batch)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Compute the loss.

        Args:
            logits: raw network output, shape (B, C, H, W) (any number of spatial dims).
            target: target of the same shape, values in [0, 1] (soft targets allowed).

        Returns:
            0-dim tensor, or (B,) when ``batch=False`` and ``reduction="none"``.

        Raises:
            ValueError: when the shapes differ.
        """
        loss = dice_bce(logits, target, double_sigmoid=self.double_sigmoid, smooth=self.smooth, batch=self.batch)
        if self.batch or self.reduction == LossReduction.NONE.value:
            return loss
        return loss.sum() if self.reduction == LossReduction.SUM.value else loss.mean()
