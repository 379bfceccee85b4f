# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""Tests of score_case: hand-computed per-image metrics and the official thresholding conventions."""

from __future__ import annotations

import math

import pytest
import torch

from condseg_monai.metrics import score_case


def _mask(rows: slice, cols: slice, shape: tuple[int, int] = (4, 4)) -> torch.Tensor:
    m = torch.zeros(1, *shape)
    m[0, rows, cols] = 1.0
    return m


def test_score_case_hand_computed() -> None:
    # GT: 4 pixels (top-left 2x2); prediction: 6 pixels (top 2 rows, first 3 cols), 4 of them true positives.
    gt = _mask(slice(0, 2), slice(0, 2))
    pred = _mask(slice(0, 2), slice(0, 3)) * 0.9  # probabilities > 0.5
    s = score_case(pred, gt)
    assert s["iou"] == pytest.approx(4 / 6)
    assert s["dice"] == pytest.approx(8 / 10)
    assert s["recall"] == pytest.approx(1.0)
    assert s["precision"] == pytest.approx(4 / 6)
    p, r = 4 / 6, 1.0
    assert s["f2"] == pytest.approx(5 * p * r / (4 * p + r))
    assert s["accuracy"] == pytest.approx(14 / 16)
    # the extra column lies at distance 1 from the GT boundary set; 95th percentile of [0,...,1] distances
    assert 0.0 < s["hd95"] <= 1.0


def test_score_case_empty_masks_follow_the_eps_conventions() -> None:
    empty = torch.zeros(1, 4, 4)
    both_empty = score_case(empty, empty)
    assert all(both_empty[k] == pytest.approx(1.0) for k in ("iou", "dice", "recall", "precision", "f2", "accuracy"))
    assert both_empty["hd95"] == 0.0
    missed = score_case(empty, _mask(slice(0, 2), slice(0, 2)))
    assert missed["iou"] == pytest.approx(0.0, abs=1e-12) and missed["recall"] == pytest.approx(0.0, abs=1e-12)
    assert missed["precision"] == pytest.approx(1.0)  # empty prediction -> precision 1 (official eps behaviour)
    assert math.isnan(missed["hd95"])


def test_threshold_is_strict_and_soft_labels_are_thresholded() -> None:
    pred = torch.full((1, 2, 2), 0.5)  # exactly 0.5 is background (official "> 0.5")
    label = torch.tensor([[[0.5, 0.6], [0.0, 0.0]]])  # soft label: only 0.6 is foreground
    s = score_case(pred, label)
    assert s["recall"] == pytest.approx(0.0, abs=1e-12)
    assert s["accuracy"] == pytest.approx(3 / 4)
    with pytest.raises(ValueError, match="sizes differ"):
        score_case(torch.zeros(1, 2, 2), torch.zeros(1, 2, 3))
