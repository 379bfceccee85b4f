# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""Stage-2 ConDSeg loss: mask supervision, beta-weighted fg/bg auxiliary supervision and complementarity."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.nn.modules.loss import _Loss

from condseg_monai.losses._utils import CONDSEG_MAPS, as_loss_tensor, check_same_shape, split_stacked
from condseg_monai.losses.complementarity import ComplementarityLoss
from condseg_monai.losses.dice_bce import dice_bce

__all__ = ["BETA_MODES", "ConDSegLoss", "aux_beta"]

BETA_MODES = ("batch", "sample", "none")


def aux_beta(
    prob: torch.Tensor, mode: str = "batch", eps: float = 1e-15, beta_max: float | None = None
) -> torch.Tensor:
    """Weight of an auxiliary (fg or bg) term, ``1 / (tanh(sum(P) / (H*W)) + eps)`` (the paper's Stage-2 β weight),
    optionally capped: ``min(beta, beta_max)``.

    Without the cap, beta is about ``H*W / sum(P)`` when the head predicts (almost) nothing, e.g. the foreground
    head on a batch (``"batch"``) or an image (``"sample"``) without foreground: it grows without bound (up to
    ``1 / eps``). Where the cap applies, beta is the constant ``beta_max`` (no gradient through it).

    Args:
        prob: probability map of the auxiliary head, shape (B, C, H, W) (any number of spatial dims).
        mode: ``"batch"`` (official): the sum runs over the whole batch but is divided only by the number
            of pixels of one image, so the tanh argument is ``B * mean(P)`` and beta depends on the batch
            size; returns a 0-dim tensor. ``"sample"``: ``tanh(mean(P_i))`` per image, returns shape (B,).
            ``"none"``: a 0-dim tensor equal to 1.
        eps: guard against division by zero (official 1e-15).
        beta_max: upper bound of beta (per image in ``"sample"`` mode); ``None``: uncapped (official).

    Returns:
        0-dim tensor (``"batch"``, ``"none"``) or (B,) tensor (``"sample"``), differentiable w.r.t. ``prob``.

    Raises:
        ValueError: when ``mode`` is unknown or ``beta_max`` is not positive.
    """
    if mode not in BETA_MODES:
        raise ValueError(f"beta_mode must be one of {BETA_MODES}, got {mode!r}.")
    _check_beta_max(beta_max)
    if mode == "none":
        return torch.ones((), dtype=prob.dtype, device=prob.device)
    pixels = prob.shape[2:].numel()
    if mode == "batch":
        beta = 1.0 / (torch.tanh(prob.sum() / pixels) + eps)
    else:
        beta = 1.0 / (torch.tanh(prob.flatten(1).sum(dim=1) / pixels) + eps)
    return beta if beta_max is None else torch.clamp(beta, max=beta_max)


def _check_beta_max(beta_max: float | None) -> None:
    if beta_max is not None and not (isinstance(beta_max, (int, float)) and not isinstance(beta_max, bool)):
        raise ValueError(f"beta_max must be a number or None, got {beta_max!r}.")
    if beta_max is not None and not beta_max > 0:
        raise ValueError(f"beta_max must be positive (or None: uncapped), got {beta_max!r}.")


class ConDSegLoss(_Loss):
    """Stage-2 ConDSeg loss on raw logits (the paper's total loss).

    ``L = w_m DiceBCE(M, y) + w_f beta_fg DiceBCE(M_fg, y) + w_b beta_bg DiceBCE(M_bg, 1 - y) + w_c L_compl``

    * ``pred`` is the training-mode network output ``(B, 4, C, H, W)`` = stack of (mask, fg, bg,
      uncertainty) logits, or a tuple/list of those four (B, C, H, W) tensors. An evaluation-mode output
      ``(B, C, H, W)`` (mask only) gives just the ``DiceBCE(M, y)`` term: this is what the validation loss
      of our evaluators measures (the official validation loss uses the full formula).
    * The background target is derived here as ``1 - y``; this fixes an official bug (docs/deviations.md; the official
      Dataset passes a background mask that is not augmented with the image).
    * ``beta_fg/beta_bg`` come from :func:`aux_beta` on ``sigmoid`` of the fg/bg logits (the official code
      uses the model's sigmoid outputs). ``beta_mode="batch"`` is the official batch-summed form, not
      detached unless ``detach_beta``: gradients then also flow through beta, pushing sum(P_fg) and
      sum(P_bg) up slightly. ``beta_mode="sample"`` weights each image with its own beta: the fg and bg
      terms become ``mean_i(beta_i * DiceBCE_i)`` where ``DiceBCE_i`` uses per-image Dice and per-image
      mean BCE (the mask term keeps the official batch Dice). Note that per-image beta is
      ``1 / tanh(mean(P_i))``, several times larger than the batch form (``1 / tanh(B mean(P))``) and
      unbounded for near-empty maps. ``beta_mode="none"`` uses beta = 1.
    * ``beta_max`` caps beta (per image in sample mode): ``min(beta, beta_max)``. Without it, a batch (batch
      mode) or an image (sample mode) without foreground, e.g. polyp-free frames, drives the foreground beta
      towards ``H*W / sum(P_fg)`` as the head learns to predict nothing (up to ``1 / beta_eps``). In batch mode
      typical polyp batches have beta of about 1-2, well below the default cap 10; ``None`` is the official,
      uncapped formula (docs/deviations.md).
    * ``double_sigmoid`` applies the official extra sigmoid in the three DiceBCE terms only; beta and the
      complementarity term use single-sigmoid probabilities, as in the official code.

    After each call ``last_terms`` holds detached 0-dim tensors (no device sync; call ``float()`` to log):
    ``dicebce_mask``, ``dicebce_fg``, ``dicebce_bg`` (unweighted; per-image means in sample mode),
    ``complementarity``, ``beta_fg``, ``beta_bg`` (batch means in sample mode). For a mask-only ``pred``
    only ``dicebce_mask`` is present.

    Args:
        double_sigmoid: official double sigmoid in the DiceBCE terms.
        beta_mode: ``"batch"`` (official) | ``"sample"`` | ``"none"``.
        detach_beta: stop gradients through beta (the official code does not).
        faithful_complementarity: ``softmax(sigmoid(logits))`` (official) or ``softmax(logits)``,
            see :class:`~condseg_monai.losses.ComplementarityLoss`.
        mask_weight: weight of the mask term.
        fg_weight: extra weight of the (beta-weighted) foreground term.
        bg_weight: extra weight of the (beta-weighted) background term.
        complementarity_weight: weight of the complementarity term.
        smooth: Dice smoothing constant.
        beta_eps: epsilon of the beta formula.
        beta_max: upper bound of each beta; ``None``: uncapped (official).

    Raises:
        ValueError: when ``beta_mode`` is unknown or ``beta_max`` is not positive.
    """

    def __init__(
        self,
        double_sigmoid: bool = False,
        beta_mode: str = "batch",
        detach_beta: bool = False,
        faithful_complementarity: bool = True,
        mask_weight: float = 1.0,
        fg_weight: float = 1.0,
        bg_weight: float = 1.0,
        complementarity_weight: float = 1.0,
        smooth: float = 1.0,
        beta_eps: float = 1e-15,
        beta_max: float | None = 10.0,
    ) -> None:
        super().__init__()
        if beta_mode not in BETA_MODES:
            raise ValueError(f"beta_mode must be one of {BETA_MODES}, got {beta_mode!r}.")
        _check_beta_max(beta_max)
        self.double_sigmoid = bool(double_sigmoid)
        self.beta_mode = beta_mode
        self.detach_beta = bool(detach_beta)
        self.complementarity = ComplementarityLoss(faithful=faithful_complementarity)
        self.mask_weight = float(mask_weight)
        self.fg_weight = float(fg_weight)
        self.bg_weight = float(bg_weight)
        self.complementarity_weight = float(complementarity_weight)
        self.smooth = float(smooth)
        self.beta_eps = float(beta_eps)
        self.beta_max = None if beta_max is None else float(beta_max)
        self.last_terms: dict[str, torch.Tensor] = {}

    def _aux_term(self, logits: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return (beta-weighted term, unweighted DiceBCE for logging, mean beta for logging)."""
        beta = aux_beta(torch.sigmoid(logits), mode=self.beta_mode, eps=self.beta_eps, beta_max=self.beta_max)
        if self.detach_beta:
            beta = beta.detach()
        if self.beta_mode == "sample":
            per_sample = dice_bce(logits, target, self.double_sigmoid, self.smooth, batch=False)
            return (beta * per_sample).mean(), per_sample.mean(), beta.mean()
        loss = dice_bce(logits, target, self.double_sigmoid, self.smooth, batch=True)
        return beta * loss, loss, beta

    def forward(self, pred: torch.Tensor | Sequence[torch.Tensor], target: torch.Tensor) -> torch.Tensor:
        """Compute the loss.

        Args:
            pred: stacked logits (B, 4, C, H, W), a sequence of 4 (B, C, H, W) logits, or mask logits
                (B, C, H, W).
            target: ground truth (B, C, H, W), values in [0, 1] (soft targets allowed).

        Returns:
            0-dim tensor.

        Raises:
            ValueError: when the layout of ``pred`` is not recognised or the shapes differ.
        """
        maps = split_stacked(pred, CONDSEG_MAPS)
        target = as_loss_tensor(target, "target")
        for name, m in zip(CONDSEG_MAPS, maps, strict=False):
            check_same_shape(m, target, f"pred {name}", "target")
        mask_term = dice_bce(maps[0], target, self.double_sigmoid, self.smooth, batch=True)
        self.last_terms = {"dicebce_mask": mask_term.detach()}
        if len(maps) == 1:
            return self.mask_weight * mask_term
        _, fg, bg, uc = maps
        fg_term, fg_raw, beta_fg = self._aux_term(fg, target)
        bg_term, bg_raw, beta_bg = self._aux_term(bg, 1.0 - target)
        compl = self.complementarity(fg, bg, uc)
        self.last_terms.update(
            dicebce_fg=fg_raw.detach(),
            dicebce_bg=bg_raw.detach(),
            complementarity=compl.detach(),
            beta_fg=beta_fg.detach(),
            beta_bg=beta_bg.detach(),
        )
        return (
            self.mask_weight * mask_term
            + self.fg_weight * fg_term
            + self.bg_weight * bg_term
            + self.complementarity_weight * compl
        )
