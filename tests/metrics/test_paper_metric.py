# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""Tests for the cumulative PaperMetrics / PaperMetric (per-image means, list inputs, reset, NaN handling)."""

from __future__ import annotations

import math

import pytest
import torch
from monai.data import decollate_batch

from condseg_monai.metrics import PAPER_METRIC_NAMES, PaperMetric, PaperMetrics, binary_segmentation_metrics


def _batch(b: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, 1, 16, 16, generator=g), (torch.rand(b, 1, 16, 16, generator=g) > 0.7).float()


def test_mean_over_images_not_over_batches():
    (p1, y1), (p2, y2) = _batch(3, 0), _batch(1, 1)
    metric = PaperMetrics()
    metric(p1, y1)
    metric(decollate_batch(p2), decollate_batch(y2))  # list of channel-first tensors, as after decollation
    scores = metric.aggregate()
    assert set(scores) == set(PAPER_METRIC_NAMES)
    ref = binary_segmentation_metrics(torch.cat([p1, p2]), torch.cat([y1, y2]))
    per_image = metric.aggregate("none")
    for name in PAPER_METRIC_NAMES:
        torch.testing.assert_close(per_image[name], ref[name])
        assert scores[name].item() == pytest.approx(ref[name].mean().item(), rel=1e-12)
    # the official training-time "mean of per-batch means" differs when batch sizes differ
    batch_means = (ref["iou"][:3].mean() + ref["iou"][3]) / 2
    assert abs(batch_means.item() - scores["iou"].item()) > 1e-6


def test_reset_names_and_hd95_nan_exclusion():
    metric = PaperMetrics(metric_names=["dice"], include_hd95=True)
    assert metric.metric_names == ("dice", "hd95")
    with pytest.raises(RuntimeError, match="no data"):
        metric.aggregate()
    one = torch.zeros(2, 1, 8, 8)
    one[:, :, 2:4, 2:4] = 1
    pred = one.clone()
    pred[1] = 0  # image 1: empty prediction -> hd95 NaN, excluded from the mean
    metric(pred, one)
    per_image = metric.aggregate("none")
    assert per_image["hd95"][0].item() == 0.0 and math.isnan(per_image["hd95"][1].item())
    assert metric.aggregate()["hd95"].item() == 0.0
    metric.reset()
    with pytest.raises(RuntimeError):
        metric.aggregate()
    with pytest.raises(ValueError, match="metric_names"):
        PaperMetrics(metric_names=["miou"])
    metric(pred, one)
    with pytest.raises(ValueError, match="reduction"):
        metric.aggregate("sum")


def test_single_metric_and_logits():
    p, y = _batch(4, 2)
    logits = torch.logit(p)
    metric = PaperMetric("f2", logits=True)
    metric(logits, y)
    assert metric.aggregate().item() == pytest.approx(binary_segmentation_metrics(p, y)["f2"].mean().item())
    assert metric.get_buffer().shape == (4, 1)
    assert metric.aggregate("none").shape == (4,)
    with pytest.raises(ValueError, match="metric_name"):
        PaperMetric("jaccard")
