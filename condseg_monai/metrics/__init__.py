# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""The paper's evaluation metrics (per-image, thresholded at 0.5) as functions and MONAI metrics, and the
frame-level detection rule and summary (:mod:`condseg_monai.metrics.detection`).

Their Ignite handler is :class:`condseg_monai.handlers.PaperMetricHandler`.
"""

from __future__ import annotations

from condseg_monai.metrics.detection import (
    CALIBRATION_MIN_AREAS,
    DEFAULT_MIN_AREA,
    HIT_RECALL,
    OperatingPoint,
    choose_operating_point,
    detection_score,
    min_area_pixels,
    polyp_present,
    predicted_area,
    summarize_detection,
)
from condseg_monai.metrics.hausdorff import hausdorff_distance, mask_edges
from condseg_monai.metrics.paper_metric import PaperMetric, PaperMetrics
from condseg_monai.metrics.segmentation import (
    ALL_METRIC_NAMES,
    PAPER_METRIC_NAMES,
    binarize,
    binary_segmentation_metrics,
)

__all__ = [
    "ALL_METRIC_NAMES",
    "CALIBRATION_MIN_AREAS",
    "DEFAULT_MIN_AREA",
    "HIT_RECALL",
    "PAPER_METRIC_NAMES",
    "OperatingPoint",
    "PaperMetric",
    "PaperMetrics",
    "binarize",
    "binary_segmentation_metrics",
    "choose_operating_point",
    "detection_score",
    "hausdorff_distance",
    "mask_edges",
    "min_area_pixels",
    "polyp_present",
    "predicted_area",
    "summarize_detection",
]
