# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""Ignite/MONAI handler exposing one of the paper's metrics to evaluators and bundle configs."""

from __future__ import annotations

from collections.abc import Callable

from monai.handlers import IgniteMetricHandler

from condseg_monai.metrics.paper_metric import PaperMetric

__all__ = ["PaperMetricHandler"]


class PaperMetricHandler(IgniteMetricHandler):
    """One paper metric (mean of per-image scores) as an ignite metric, like ``monai.handlers.MeanDice``.

    Usable as a key or additional metric of MONAI engines, e.g. in a bundle config::

        "key_metric": {"val_miou": {"_target_": "condseg_monai.handlers.PaperMetricHandler",
                                     "metric_name": "iou",
                                     "output_transform": "$monai.handlers.from_engine(['pred', 'label'])"}}

    Predictions should be post-processed probabilities (sigmoid applied) or binary masks; they are
    thresholded at ``threshold`` (strict ``>``), the labels at 0.5. With ``save_details`` the per-image
    values are stored in ``engine.state.metric_details[<name>]`` (shape (N, 1)) for ``MetricsSaver``.

    Args:
        metric_name: one of ``iou, dice, recall, precision, f2, accuracy, hd95``.
        threshold: prediction threshold (official 0.5).
        logits: predictions are logits (thresholded at ``logit(threshold)``).
        output_transform: extracts ``(y_pred, y)`` from ``engine.state.output``.
        save_details: save per-image values to ``engine.state.metric_details``.

    Raises:
        ValueError: when ``metric_name`` is unknown.
    """

    def __init__(
        self,
        metric_name: str = "iou",
        threshold: float = 0.5,
        logits: bool = False,
        output_transform: Callable = lambda x: x,
        save_details: bool = True,
    ) -> None:
        metric_fn = PaperMetric(metric_name=metric_name, threshold=threshold, logits=logits)
        super().__init__(metric_fn=metric_fn, output_transform=output_transform, save_details=save_details)
