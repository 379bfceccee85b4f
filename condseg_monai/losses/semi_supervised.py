# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""Unsupervised losses of semi-supervised ConDSeg (an extension, not in the paper; see ``docs/deviations.md``).

* :class:`ConfidentPseudoLabelLoss`: mean-teacher term. The teacher's logits on the weak view give a hard
  pseudo-label and a confidence mask; the student's prediction on the strong view is trained towards the
  pseudo-label on the confident pixels only. For a ConDSeg student the SID heads get consistent targets:
  FOREGROUND towards the pseudo-label and BACKGROUND towards its complement.
* :class:`UnlabeledConsistencyLoss`: Stage-1 term. ConDSeg's consistency loss between the clean and the strong
  view of unlabeled images (the same term Stage 1 uses on labeled images).
* :func:`sigmoid_rampup`: the usual mean-teacher weight ramp ``exp(-5 (1 - t)^2)``.

Both losses take ``(pred, other_logits)``: ``pred`` is the student output (mask logits ``(B, C, H, W)``, or
ConDSeg's stacked training output ``(B, 4, C, H, W)``), ``other_logits`` the logits it is compared with
(teacher mask logits, or the other view). After each call ``confident_fraction`` holds the detached fraction
of pixels that contributed a target, and ``last_terms`` the detached unweighted terms (0-dim tensors, no
device sync).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch.nn.modules.loss import _Loss

from condseg_monai.losses._utils import CONDSEG_MAPS, as_loss_tensor, check_same_shape, split_stacked
from condseg_monai.losses.complementarity import ComplementarityLoss
from condseg_monai.losses.consistency import ConsistencyLoss
from condseg_monai.networks.nets.condseg import ConDSegOutput, condseg_mask

__all__ = ["ConfidentPseudoLabelLoss", "UnlabeledConsistencyLoss", "mask_logits", "pseudo_label", "sigmoid_rampup"]


def sigmoid_rampup(iteration: float, rampup_iterations: float) -> float:
    """Weight ramp of the unsupervised term, ``exp(-5 (1 - t)^2)`` with ``t = clip(iteration / rampup, 0, 1)``.

    Args:
        iteration: current iteration (or epoch; any unit matching ``rampup_iterations``).
        rampup_iterations: length of the ramp; ``<= 0`` means no ramp (always 1).

    Returns:
        a float in ``[exp(-5), 1]`` (``1.0`` from ``rampup_iterations`` on).
    """
    if rampup_iterations <= 0:
        return 1.0
    t = min(max(float(iteration), 0.0), float(rampup_iterations)) / float(rampup_iterations)
    return float(math.exp(-5.0 * (1.0 - t) ** 2))


def mask_logits(pred: torch.Tensor) -> torch.Tensor:
    """The mask logits of a network output: ``pred`` itself, or the MASK map of ConDSeg's stacked output.

    Args:
        pred: ``(B, C, H, W)`` logits or ConDSeg's stacked ``(B, 4, C, H, W)`` training output.

    Returns:
        ``(B, C, H, W)`` mask logits.
    """
    return condseg_mask(as_loss_tensor(pred, "pred"))


def pseudo_label(
    logits: torch.Tensor,
    threshold: float,
    class_balanced_fraction: float | None = None,
    background_fraction: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Hard pseudo-label and confidence mask from (teacher) logits, without gradient.

    A pixel is confident when ``max(p, 1 - p) >= threshold`` (``p = sigmoid(logits)``). With a class-balanced
    fraction ``f`` the most confident ``ceil(f x n_k)`` of the ``n_k`` pixels the teacher assigns to class ``k``
    (background, foreground; per channel, over the whole batch; ties included) are confident as well, whatever
    ``threshold`` says: class-balanced self-training (Zou et al., ECCV 2018), meant for a short-trained teacher
    that is confident only on the foreground. The quota always gives both classes targets, but it also admits the
    teacher's unsure foreground pixels; in the label-efficiency benchmark it made the student mark more, not less,
    and cost accuracy (docs/training.md, ``class_balanced_fraction``), so the bundle leaves it off. A background
    fraction ``g`` applies the same quota to the background class only: the teacher's most confident
    ``ceil(g x n_bg)`` background pixels get a (background) target, while foreground still needs ``threshold``.
    Both run on the device (sorts, no host synchronisation).

    Args:
        logits: ``(B, C, H, W)`` logits.
        threshold: confidence threshold in [0.5, 1] (``0.5`` keeps every pixel).
        class_balanced_fraction: per-class quota in ``(0, 1]``, or ``None`` for the threshold alone.
        background_fraction: background-only quota in ``(0, 1]``, or ``None`` for the threshold alone.

    Returns:
        ``(target, confident)``: float tensors of ``logits``' shape with values in {0, 1}.
    """
    logits = as_loss_tensor(logits, "logits").detach()
    p = torch.sigmoid(logits)
    positive = logits > 0
    score = torch.maximum(p, 1.0 - p)
    confident = score >= threshold
    if class_balanced_fraction is not None:
        fraction = _check_fraction(class_balanced_fraction, "class_balanced_fraction")
        confident = confident | _class_quota(score, positive, fraction)
    if background_fraction is not None:
        fraction = _check_fraction(background_fraction, "background_fraction")
        confident = confident | _class_quota(score, positive, fraction, foreground=False)
    return positive.to(logits.dtype), confident.to(logits.dtype)


def _class_quota(score: torch.Tensor, positive: torch.Tensor, fraction: float, foreground: bool = True) -> torch.Tensor:
    """The top ``ceil(fraction x n_k)`` scores of each class ``k`` (``positive`` false / true), per channel;
    ``foreground=False``: of the background class only."""
    channels = score.shape[1]
    flat_score = score.transpose(0, 1).reshape(channels, -1)
    flat_positive = positive.transpose(0, 1).reshape(channels, -1)
    chosen = torch.zeros_like(flat_positive)
    for member in (~flat_positive, flat_positive) if foreground else (~flat_positive,):
        count = member.sum(dim=1, keepdim=True)
        # scores are in [0.5, 1]: -1 puts the other class last in the descending sort
        ranked = torch.where(member, flat_score, -1.0).sort(dim=1, descending=True).values
        # an empty class: k = 1 reads a -1 of the other class, and `member` keeps nothing of it anyway
        k = torch.ceil(fraction * count).long().clamp(min=1)
        kth = ranked.gather(1, k - 1)
        chosen |= member & (flat_score >= kth)
    return chosen.reshape(channels, score.shape[0], *score.shape[2:]).transpose(0, 1)


def _masked_dice_bce(
    logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor, smooth: float, dice_weight: float = 0.0
) -> torch.Tensor:
    """BCE plus ``dice_weight`` x batch Dice, restricted to the pixels where ``weight`` is 1.

    The BCE is normalised by *all* pixels (FixMatch convention), so the term grows with the confident fraction
    instead of giving a few confident pixels the full weight early in training. The Dice sums run over the
    confident pixels only, so the Dice part does give them full weight however few they are; with none, both
    parts are exactly 0.
    """
    bce = (F.binary_cross_entropy_with_logits(logits, target, reduction="none") * weight).mean()
    if not dice_weight:
        return bce
    s = torch.sigmoid(logits) * weight
    t = target * weight
    dice = 1.0 - (2.0 * (s * t).sum() + smooth) / (s.sum() + t.sum() + smooth)
    return bce + dice_weight * dice


def _check_fraction(fraction: float, name: str) -> float:
    if not 0.0 < float(fraction) <= 1.0:
        raise ValueError(f"{name} must be in (0, 1] (a share of a class's pixels), got {fraction}.")
    return float(fraction)


def _check_threshold(threshold: float) -> float:
    if not 0.5 <= float(threshold) <= 1.0:
        raise ValueError(f"threshold must be in [0.5, 1] (a confidence max(p, 1 - p)), got {threshold}.")
    return float(threshold)


class ConfidentPseudoLabelLoss(_Loss):
    """Mean-teacher pseudo-label loss on the confident pixels of the teacher (semi-supervised extension).

    With ``y = 1[teacher logit > 0]`` and ``m = 1[max(p_t, 1 - p_t) >= threshold]``:

    ``L = DiceBCE_m(M, y) + w_aux (DiceBCE_m(M_fg, y) + DiceBCE_m(M_bg, 1 - y)) + w_c L_compl(M_fg, M_bg, M_uc)``

    where ``DiceBCE_m`` is BCE (normalised by all pixels) plus ``dice_weight`` x batch Dice, both restricted to
    ``m``. The auxiliary and complementarity terms exist only for ConDSeg's stacked output; the UNCERTAINTY map
    gets no target of its own (only the label-free complementarity term, off by default). β weights of the
    supervised loss are not used: they would rescale the pseudo-label terms by the student's own prediction size.

    For bidirectional copy-paste (BCP) ``target`` and ``region`` replace the pseudo-label inside a pasted
    region by the ground truth, which counts as confident there.

    Args:
        threshold: confidence threshold in [0.5, 1]; 0.5 uses every pixel.
        dice_weight: weight of the Dice part of each term, >= 0; 0 (default): masked BCE only. The Dice part
            weighs the confident pixels as one set whatever their number, so early in training a few confident
            (nearly all "polyp") pixels get the full weight; with it the benchmark's models marked more of
            polyp-free frames (docs/training.md, ``unsupervised_dice_weight``).
        aux_weight: weight of the FOREGROUND / BACKGROUND head terms of a ConDSeg student.
        complementarity_weight: weight of the label-free complementarity term of a ConDSeg student.
        smooth: Dice smoothing constant.
        class_balanced_fraction: also use the most confident share of each class's pixels (see
            :func:`pseudo_label`), in ``(0, 1]``; ``None`` (default): the threshold alone.
        background_fraction: also use the most confident share of the pixels the teacher calls background
            (see :func:`pseudo_label`), in ``(0, 1]``; ``None`` (default): the threshold alone.

    Raises:
        ValueError: ``threshold`` outside [0.5, 1], ``class_balanced_fraction`` or ``background_fraction``
            outside (0, 1], or a negative ``dice_weight``.

    Example::

        loss = ConfidentPseudoLabelLoss(threshold=0.9)
        value = loss(student(strong_view), teacher(weak_view))  # 0-dim
        loss.confident_fraction  # share of pixels with a pseudo-label
    """

    def __init__(
        self,
        threshold: float = 0.95,
        dice_weight: float = 0.0,
        aux_weight: float = 1.0,
        complementarity_weight: float = 0.0,
        smooth: float = 1.0,
        class_balanced_fraction: float | None = None,
        background_fraction: float | None = None,
    ) -> None:
        super().__init__()
        self.threshold = _check_threshold(threshold)
        self.class_balanced_fraction = (
            None
            if class_balanced_fraction is None
            else _check_fraction(class_balanced_fraction, "class_balanced_fraction")
        )
        self.background_fraction = (
            None if background_fraction is None else _check_fraction(background_fraction, "background_fraction")
        )
        if dice_weight < 0:
            raise ValueError(f"dice_weight must be >= 0, got {dice_weight}.")
        self.dice_weight = float(dice_weight)
        self.aux_weight = float(aux_weight)
        self.complementarity_weight = float(complementarity_weight)
        self.complementarity = ComplementarityLoss()
        self.smooth = float(smooth)
        self.confident_fraction: torch.Tensor = torch.zeros(())
        self.last_terms: dict[str, torch.Tensor] = {}

    def _term(self, logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        return _masked_dice_bce(logits, target, weight, self.smooth, self.dice_weight)

    def forward(
        self,
        pred: torch.Tensor,
        teacher_logits: torch.Tensor,
        target: torch.Tensor | None = None,
        region: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Compute the loss.

        Args:
            pred: student logits ``(B, C, H, W)`` or ConDSeg's stacked ``(B, 4, C, H, W)``.
            teacher_logits: teacher mask logits ``(B, C, H, W)`` (a stacked output is reduced to its MASK).
            target: optional ground truth ``(B, C, H, W)`` used where ``region`` is 1 (BCP).
            region: optional ``(B, 1 or C, H, W)`` {0, 1} map of the ground-truth region (BCP).

        Returns:
            0-dim tensor.

        Raises:
            ValueError: shapes differ, or only one of ``target`` / ``region`` is given.
        """
        maps = split_stacked(pred, CONDSEG_MAPS)
        teacher = mask_logits(teacher_logits)
        check_same_shape(maps[0], teacher, "pred mask", "teacher_logits")
        pseudo, confident = pseudo_label(
            teacher, self.threshold, self.class_balanced_fraction, self.background_fraction
        )
        self.confident_fraction = confident.mean()
        if (target is None) != (region is None):
            raise ValueError("target and region must be given together (bidirectional copy-paste).")
        if target is not None and region is not None:
            target = as_loss_tensor(target, "target")
            check_same_shape(target, pseudo, "target", "teacher_logits")
            region = as_loss_tensor(region, "region").expand_as(pseudo)
            pseudo = region * target + (1.0 - region) * pseudo
            confident = torch.maximum(region, confident)
        loss = self._term(maps[ConDSegOutput.MASK], pseudo, confident)
        self.last_terms = {"mask": loss.detach()}
        if len(maps) == 1:
            return loss
        fg = self._term(maps[ConDSegOutput.FOREGROUND], pseudo, confident)
        bg = self._term(maps[ConDSegOutput.BACKGROUND], 1.0 - pseudo, confident)
        self.last_terms.update(fg=fg.detach(), bg=bg.detach())
        loss = loss + self.aux_weight * (fg + bg)
        if self.complementarity_weight:
            compl = self.complementarity(
                maps[ConDSegOutput.FOREGROUND], maps[ConDSegOutput.BACKGROUND], maps[ConDSegOutput.UNCERTAINTY]
            )
            self.last_terms["complementarity"] = compl.detach()
            loss = loss + self.complementarity_weight * compl
        return loss


class UnlabeledConsistencyLoss(_Loss):
    """Stage-1 consistency between two views of unlabeled images (semi-supervised extension).

    ``threshold=0.5`` (default) is exactly ConDSeg's :class:`~condseg_monai.losses.ConsistencyLoss`
    ``BCE(p_a, 1[p_b > 0.5]) + BCE(p_b, 1[p_a > 0.5])`` on every pixel, as Stage 1 uses on labeled images.
    A higher threshold keeps, in each direction, only the pixels where the *target* view is confident
    (BCE still normalised by all pixels). Both views receive gradients, as in the labeled term. ConDSeg
    stacked outputs are reduced to their MASK map.

    ``confident_fraction`` is the mean over the two directions of the share of pixels used (1 at 0.5);
    ``last_terms`` has ``consistency`` and ``agreement`` (share of pixels where the two hard decisions agree).

    Args:
        threshold: confidence threshold in [0.5, 1].

    Raises:
        ValueError: ``threshold`` outside [0.5, 1].
    """

    def __init__(self, threshold: float = 0.5) -> None:
        super().__init__()
        self.threshold = _check_threshold(threshold)
        self.consistency = ConsistencyLoss()
        self.confident_fraction: torch.Tensor = torch.ones(())
        self.last_terms: dict[str, torch.Tensor] = {}

    def forward(self, pred: torch.Tensor, other_logits: torch.Tensor) -> torch.Tensor:
        """Compute the loss.

        Args:
            pred: logits of one view (the strong view), ``(B, C, H, W)`` or ConDSeg's ``(B, 4, C, H, W)``.
            other_logits: logits of the other view (the clean view), same layout.

        Returns:
            0-dim tensor.

        Raises:
            ValueError: when the mask shapes differ.
        """
        a, b = mask_logits(pred), mask_logits(other_logits)
        check_same_shape(a, b, "pred", "other_logits")
        agreement = ((a.detach() > 0) == (b.detach() > 0)).float().mean()
        if self.threshold == 0.5:
            loss = self.consistency(a, b)
            self.confident_fraction = torch.ones((), device=a.device)
        else:
            target_b, conf_b = pseudo_label(b, self.threshold)
            target_a, conf_a = pseudo_label(a, self.threshold)
            loss = (F.binary_cross_entropy_with_logits(a, target_b, reduction="none") * conf_b).mean() + (
                F.binary_cross_entropy_with_logits(b, target_a, reduction="none") * conf_a
            ).mean()
            self.confident_fraction = 0.5 * (conf_a.mean() + conf_b.mean())
        self.last_terms = {"consistency": loss.detach(), "agreement": agreement}
        return loss
