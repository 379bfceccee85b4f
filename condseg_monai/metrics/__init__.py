# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""The paper's evaluation metrics (per-image, thresholded at 0.5) as functions and MONAI metrics.

Their Ignite handler is :class:`condseg_monai.handlers.PaperMetricHandler`.
"""

from __future__ import annotations

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
    "PAPER_METRIC_NAMES",
    "PaperMetric",
    "PaperMetrics",
    "binarize",
    "binary_segmentation_metrics",
    "hausdorff_distance",
    "mask_edges",
]
