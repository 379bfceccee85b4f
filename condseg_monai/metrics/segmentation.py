# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""The paper's per-image binary segmentation metrics, exactly as the official evaluation computes them."""

from __future__ import annotations

import math

import torch
from monai.utils import convert_to_tensor

from condseg_monai.metrics.hausdorff import hausdorff_distance

__all__ = ["ALL_METRIC_NAMES", "PAPER_METRIC_NAMES", "binarize", "binary_segmentation_metrics"]

PAPER_METRIC_NAMES = ("iou", "dice", "recall", "precision", "f2", "accuracy")
ALL_METRIC_NAMES = (*PAPER_METRIC_NAMES, "hd95")


def binarize(x: torch.Tensor, threshold: float = 0.5, logits: bool = False) -> torch.Tensor:
    """Threshold probabilities (``x > threshold``) or logits (``x > logit(threshold)``) to a bool mask.

    Args:
        x: probabilities, binary masks or (with ``logits``) raw logits, any shape.
        threshold: probability threshold, strict ``>`` as in the official code.
        logits: ``x`` holds logits; the threshold is mapped to logit space (0.5 -> 0), which is exact
            where float32 ``sigmoid`` would round values near the threshold.

    Returns:
        Boolean tensor of the same shape.

    Raises:
        ValueError: when ``logits`` and ``threshold`` is not in (0, 1).
    """
    if logits:
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"threshold must be in (0, 1) when logits=True, got {threshold}.")
        return x > math.log(threshold / (1.0 - threshold))
    return x > threshold


def binary_segmentation_metrics(
    y_pred: torch.Tensor,
    y: torch.Tensor,
    threshold: float = 0.5,
    logits: bool = False,
    label_threshold: float = 0.5,
    include_hd95: bool = False,
    eps: float = 1e-15,
) -> dict[str, torch.Tensor]:
    """Per-image IoU, Dice, recall, precision, F2 and pixel accuracy (as the official ``test.py``), optionally HD95.

    Prediction and ground truth are thresholded with a strict ``>``, then per image, in float64, with
    ``TP = sum(y * yhat)``: ``iou = (TP+eps)/(sum y + sum yhat - TP + eps)``,
    ``dice = (2TP+eps)/(sum y + sum yhat + eps)``, ``recall = (TP+eps)/(sum y + eps)``,
    ``precision = (TP+eps)/(sum yhat + eps)``, ``f2 = 5PR/(4P + R + eps)`` and
    ``accuracy = (TP + TN) / pixels``. The eps conventions give: empty GT and empty prediction ->
    IoU = Dice = recall = precision = F2 = 1; empty prediction -> precision = 1; empty GT -> recall = 1.
    ``hd95`` is the symmetric 95th-percentile Hausdorff distance in pixels (0 when both masks are empty,
    NaN when exactly one is), see :func:`~condseg_monai.metrics.hausdorff.hausdorff_distance`.

    Args:
        y_pred: prediction (B, 1, H, W) (any number of spatial dims): probabilities or binary masks, or
            logits with ``logits=True``.
        y: ground truth of the same shape (soft values allowed; thresholded at ``label_threshold``).
        threshold: prediction threshold on probabilities (official 0.5).
        logits: ``y_pred`` are logits (thresholded at ``logit(threshold)``, i.e. 0 for 0.5).
        label_threshold: ground-truth threshold (official 0.5).
        include_hd95: also compute ``hd95`` (2-D/3-D only; slower).
        eps: smoothing constant (official 1e-15; meaningful only in float64).

    Returns:
        dict mapping each of ``iou, dice, recall, precision, f2, accuracy`` (and ``hd95``) to a float64
        tensor of shape (B,).

    Raises:
        ValueError: when the shapes differ or there is more than one channel.
    """
    y_pred = convert_to_tensor(y_pred, track_meta=False)
    y = convert_to_tensor(y, track_meta=False, device=y_pred.device)
    if y_pred.shape != y.shape:
        raise ValueError(f"y_pred and y must have the same shape, got {tuple(y_pred.shape)} and {tuple(y.shape)}.")
    if y_pred.ndim < 3 or y_pred.shape[1] != 1:
        raise ValueError(
            f"expected binary segmentation inputs of shape (B, 1, *spatial), got {tuple(y_pred.shape)}; "
            "multi-channel (one-hot) masks are not supported."
        )
    pred = binarize(y_pred, threshold, logits)
    gt = binarize(y, label_threshold)
    p, g = pred.flatten(1).double(), gt.flatten(1).double()
    tp = (p * g).sum(dim=1)
    sum_p, sum_g = p.sum(dim=1), g.sum(dim=1)
    pixels = float(p.shape[1])
    precision = (tp + eps) / (sum_p + eps)
    recall = (tp + eps) / (sum_g + eps)
    out = {
        "iou": (tp + eps) / (sum_g + sum_p - tp + eps),
        "dice": (2.0 * tp + eps) / (sum_g + sum_p + eps),
        "recall": recall,
        "precision": precision,
        "f2": 5.0 * precision * recall / (4.0 * precision + recall + eps),
        "accuracy": (pixels - sum_p - sum_g + 2.0 * tp) / pixels,  # (TP + TN) / N
    }
    if include_hd95:
        out["hd95"] = hausdorff_distance(pred, gt, percentile=95.0)
    return out
