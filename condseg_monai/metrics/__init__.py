# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""The paper's evaluation metrics (per-image, thresholded at 0.5) as functions and MONAI metrics, the scoring of
one evaluated image and the summary of a split (:mod:`condseg_monai.metrics.evaluation`), the frame-level detection
rule and summary (:mod:`condseg_monai.metrics.detection`), the per-image uncertainty scores of active learning
(:mod:`condseg_monai.metrics.uncertainty_scores`) and the scoring of a model over a list of images
(:func:`~condseg_monai.metrics.scoring.score_images`, shared by MONAI Label and the benchmarks) and its image
embeddings for diversity-based selection (:func:`~condseg_monai.metrics.scoring.encoder_embeddings`).

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
from condseg_monai.metrics.evaluation import RESOLUTIONS, score_case, summarize_cases
from condseg_monai.metrics.hausdorff import hausdorff_distance, mask_edges
from condseg_monai.metrics.paper_metric import PaperMetric, PaperMetrics
from condseg_monai.metrics.scoring import EMBEDDING_DIM, encoder_embeddings, score_images
from condseg_monai.metrics.segmentation import (
    ALL_METRIC_NAMES,
    PAPER_METRIC_NAMES,
    binarize,
    binary_segmentation_metrics,
)
from condseg_monai.metrics.uncertainty_scores import (
    SCORE_NAMES,
    UNCERTAINTY_MAPS,
    binary_entropy,
    boundary_band,
    boundary_entropy_score,
    check_uncertainty_map,
    flip_dice_disagreement_score,
    flip_disagreement_map,
    flip_disagreement_score,
    mask_probability,
    sid_uncertainty_map,
    sid_uncertainty_score,
    uncertainty_scores,
)

__all__ = [
    "ALL_METRIC_NAMES",
    "CALIBRATION_MIN_AREAS",
    "DEFAULT_MIN_AREA",
    "EMBEDDING_DIM",
    "HIT_RECALL",
    "PAPER_METRIC_NAMES",
    "RESOLUTIONS",
    "SCORE_NAMES",
    "UNCERTAINTY_MAPS",
    "OperatingPoint",
    "PaperMetric",
    "PaperMetrics",
    "binarize",
    "binary_entropy",
    "binary_segmentation_metrics",
    "boundary_band",
    "boundary_entropy_score",
    "check_uncertainty_map",
    "choose_operating_point",
    "detection_score",
    "encoder_embeddings",
    "flip_dice_disagreement_score",
    "flip_disagreement_map",
    "flip_disagreement_score",
    "hausdorff_distance",
    "mask_edges",
    "mask_probability",
    "min_area_pixels",
    "polyp_present",
    "predicted_area",
    "score_case",
    "score_images",
    "sid_uncertainty_map",
    "sid_uncertainty_score",
    "summarize_cases",
    "summarize_detection",
    "uncertainty_scores",
]
