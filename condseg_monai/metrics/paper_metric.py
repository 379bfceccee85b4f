# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""MONAI cumulative metrics accumulating the paper's per-image scores over an evaluation run."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from monai.metrics import CumulativeIterationMetric

from condseg_monai.metrics.segmentation import ALL_METRIC_NAMES, PAPER_METRIC_NAMES, binary_segmentation_metrics

__all__ = ["PaperMetric", "PaperMetrics"]


class PaperMetrics(CumulativeIterationMetric):
    """Accumulate per-image IoU / Dice / recall / precision / F2 / accuracy (and optionally HD95).

    Call it once per batch (``metric(y_pred, y)``, batch-first tensors or lists of channel-first tensors
    as produced by ``decollate_batch``); :meth:`aggregate` returns the **mean of per-image scores** over
    everything seen since the last :meth:`reset`, which is how the paper's test script aggregates (the
    official training-time validation averages per-batch means instead, which differs when the last batch
    is smaller). NaN values (HD95 with exactly one empty mask) are excluded from the means.

    Example::

        metric = PaperMetrics()
        for batch in loader:
            metric(torch.sigmoid(net(batch["image"])), batch["label"])
        scores = metric.aggregate()  # {"iou": tensor(0.84, dtype=float64), ...}
        per_image = metric.aggregate("none")  # {"iou": tensor([...]), ...}

    Args:
        threshold: prediction threshold (strict ``>``; official 0.5).
        include_hd95: add ``hd95`` to the computed metrics.
        logits: predictions are logits, thresholded at ``logit(threshold)``.
        label_threshold: ground-truth threshold (official 0.5).
        metric_names: subset of ``iou, dice, recall, precision, f2, accuracy, hd95`` to compute; default the
            six paper metrics (plus ``hd95`` when ``include_hd95``).

    Raises:
        ValueError: when a metric name is unknown.
    """

    def __init__(
        self,
        threshold: float = 0.5,
        include_hd95: bool = False,
        logits: bool = False,
        label_threshold: float = 0.5,
        metric_names: str | Sequence[str] | None = None,
    ) -> None:
        super().__init__()
        if metric_names is None:
            names = list(PAPER_METRIC_NAMES)
        else:
            names = [metric_names] if isinstance(metric_names, str) else list(metric_names)
        if include_hd95 and "hd95" not in names:
            names.append("hd95")
        unknown = [n for n in names if n not in ALL_METRIC_NAMES]
        if unknown or not names:
            raise ValueError(f"metric_names must be a non-empty subset of {ALL_METRIC_NAMES}, got {names}.")
        self.metric_names: tuple[str, ...] = tuple(names)
        self.threshold = float(threshold)
        self.logits = bool(logits)
        self.label_threshold = float(label_threshold)

    def _compute_tensor(self, y_pred: torch.Tensor, y: torch.Tensor | None = None, **kwargs: Any) -> list[torch.Tensor]:
        """Per-image scores of one batch: a list (one entry per metric name) of (B, 1) float64 tensors."""
        if y is None:
            raise ValueError("y (the ground truth) is required.")
        scores = binary_segmentation_metrics(
            y_pred,
            y,
            threshold=self.threshold,
            logits=self.logits,
            label_threshold=self.label_threshold,
            include_hd95="hd95" in self.metric_names,
        )
        # (B, 1): one "class" column, the layout MONAI's MetricsSaver expects for per-image details
        return [scores[name][:, None] for name in self.metric_names]

    def per_image(self) -> dict[str, torch.Tensor]:
        """Return the accumulated per-image scores, ``{name: (N,) float64 tensor}``.

        Raises:
            RuntimeError: when nothing was accumulated since the last reset.
        """
        buffer = self.get_buffer()
        if buffer is None:
            raise RuntimeError(f"{type(self).__name__} has no data: call it on predictions before aggregate().")
        buffers = [buffer] if isinstance(buffer, torch.Tensor) else buffer
        return {name: b[:, 0] for name, b in zip(self.metric_names, buffers, strict=True)}

    def aggregate(self, reduction: str = "mean") -> dict[str, torch.Tensor]:  # type: ignore[override]
        """Aggregate the accumulated scores.

        Args:
            reduction: ``"mean"``: NaN-excluding mean over images, 0-dim tensors; ``"none"``: per-image (N,).

        Returns:
            dict from metric name to a float64 tensor.

        Raises:
            ValueError: when ``reduction`` is unknown.
            RuntimeError: when nothing was accumulated.
        """
        if reduction not in ("mean", "none"):
            raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}.")
        scores = self.per_image()
        if reduction == "none":
            return scores
        return {name: v.nanmean() for name, v in scores.items()}


class PaperMetric(PaperMetrics):
    """One of the paper's metrics as a MONAI cumulative metric whose :meth:`aggregate` returns a tensor.

    This is the ``metric_fn`` of :class:`~condseg_monai.handlers.PaperMetricHandler`; its buffer holds the
    per-image values as an (N, 1) tensor, which MONAI's ``MetricsSaver`` writes as ``<name>_raw.csv``.

    Args:
        metric_name: one of ``iou, dice, recall, precision, f2, accuracy, hd95``.
        threshold: prediction threshold (strict ``>``; official 0.5).
        logits: predictions are logits, thresholded at ``logit(threshold)``.
        label_threshold: ground-truth threshold (official 0.5).

    Raises:
        ValueError: when ``metric_name`` is unknown.
    """

    def __init__(
        self, metric_name: str = "iou", threshold: float = 0.5, logits: bool = False, label_threshold: float = 0.5
    ) -> None:
        if not isinstance(metric_name, str) or metric_name not in ALL_METRIC_NAMES:
            raise ValueError(f"metric_name must be one of {ALL_METRIC_NAMES}, got {metric_name!r}.")
        super().__init__(
            threshold=threshold, logits=logits, label_threshold=label_threshold, metric_names=(metric_name,)
        )
        self.metric_name = metric_name

    def aggregate(self, reduction: str = "mean") -> torch.Tensor:  # type: ignore[override]
        """NaN-excluding mean over images (0-dim float64), or per-image values (N,) with ``"none"``."""
        return super().aggregate(reduction)[self.metric_name]
