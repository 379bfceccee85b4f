# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""Scoring one evaluated image and summarising a split with the paper's metrics (plus HD95).

The official ConDSeg evaluation (``test.py``) thresholds the prediction and the bilinearly resized ground truth
at 0.5 (strict ``>``), computes IoU / Dice / recall / precision / F2 / accuracy per image with eps = 1e-15 and
averages over images, all at 256 x 256. :func:`score_case` does exactly that for one image;
:class:`~condseg_monai.handlers.EvaluationReport` (the evaluator's handler) applies it at the model resolution
and at each image's original resolution and writes the report.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from monai.utils import convert_to_tensor

from condseg_monai.metrics.segmentation import binary_segmentation_metrics
from condseg_monai.reports import nan_mean

__all__ = ["RESOLUTIONS", "score_case", "summarize_cases"]

RESOLUTIONS: tuple[str, ...] = ("resized", "original")


def _as_batch(x: torch.Tensor) -> torch.Tensor:
    """``(1, H, W)`` or ``(H, W)`` -> ``(1, 1, H, W)`` plain float tensor on CPU."""
    t = convert_to_tensor(x, dtype=torch.float32, track_meta=False).detach().cpu()
    return t.reshape(1, 1, *t.shape[-2:])


def score_case(
    pred: torch.Tensor, label: torch.Tensor, threshold: float = 0.5, include_hd95: bool = True
) -> dict[str, float]:
    """The paper's per-image metrics (and HD95) for one image.

    Args:
        pred: ``(1, H, W)`` or ``(H, W)`` probabilities (or a binary mask).
        label: ground truth of the same size; soft values are thresholded at 0.5 (strict ``>``).
        threshold: prediction threshold (strict ``>``, official 0.5).
        include_hd95: also compute the 95 % Hausdorff distance in pixels (NaN when exactly one mask is empty).

    Returns:
        ``{"iou", "dice", "recall", "precision", "f2", "accuracy"[, "hd95"]}`` as floats.

    Raises:
        ValueError: when the spatial sizes differ.
    """
    p, y = _as_batch(pred), _as_batch(label)
    if p.shape != y.shape:
        raise ValueError(f"prediction {tuple(p.shape[-2:])} and label {tuple(y.shape[-2:])} sizes differ.")
    scores = binary_segmentation_metrics(p, y, threshold=threshold, include_hd95=include_hd95)
    return {k: float(v[0]) for k, v in scores.items()}


def summarize_cases(rows: Sequence[Mapping[str, Any]], metric_columns: Sequence[str]) -> dict[str, Any]:
    """Mean over images of every metric column (NaN excluded, the count of NaN reported as ``<col>_undefined``)."""
    summary: dict[str, Any] = {}
    for col in metric_columns:
        values = [float(r[col]) for r in rows if col in r]
        summary[col] = nan_mean(values)
        undefined = sum(1 for v in values if v != v)
        if undefined:
            summary[f"{col}_undefined"] = undefined
    return summary
