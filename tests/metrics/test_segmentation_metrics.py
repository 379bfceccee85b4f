# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""Tests for the paper's per-image metrics: hand-computed values, eps conventions and empty masks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from condseg_monai.metrics import PAPER_METRIC_NAMES, binarize, binary_segmentation_metrics

EPS = 1e-15


def _expected(tp: float, sum_p: float, sum_g: float, n: float) -> dict[str, float]:
    p = (tp + EPS) / (sum_p + EPS)
    r = (tp + EPS) / (sum_g + EPS)
    return {
        "iou": (tp + EPS) / (sum_g + sum_p - tp + EPS),
        "dice": (2 * tp + EPS) / (sum_g + sum_p + EPS),
        "recall": r,
        "precision": p,
        "f2": 5 * p * r / (4 * p + r + EPS),
        "accuracy": (n - sum_p - sum_g + 2 * tp) / n,
    }


def _check(result: dict[str, torch.Tensor], index: int, expected: dict[str, float]) -> None:
    for name, value in expected.items():
        assert result[name][index].item() == pytest.approx(value, rel=1e-12, abs=1e-300), name


def test_hand_computed_with_strict_thresholds():
    pred = torch.tensor([[0.9, 0.6, 0.5, 0.1], [0.7, 0.2, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.51]]).view(
        1, 1, 4, 4
    )
    gt = torch.tensor([[1.0, 1.0, 1.0, 0.0], [0.5, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.6]]).view(
        1, 1, 4, 4
    )
    # pred > 0.5: (0,0) (0,1) (1,0) (3,3) -> 4; 0.5 itself is negative
    # gt > 0.5: (0,0) (0,1) (0,2) (3,3) -> 4; the soft 0.5 label is negative
    # TP = (0,0) (0,1) (3,3) = 3, FP = (1,0), FN = (0,2), TN = 11
    # iou = 3/5, dice = 6/8, P = R = 3/4, F2 = 0.75, acc = 14/16
    out = binary_segmentation_metrics(pred, gt)
    assert set(out) == set(PAPER_METRIC_NAMES)
    assert all(v.dtype == torch.float64 and v.shape == (1,) for v in out.values())
    _check(out, 0, {"iou": 0.6, "dice": 0.75, "recall": 0.75, "precision": 0.75, "f2": 0.75, "accuracy": 14 / 16})
    _check(out, 0, _expected(3, 4, 4, 16))


def test_asymmetric_precision_recall_f2():
    pred = torch.zeros(1, 1, 4, 4)
    pred[..., :2, :] = 1  # 8 predicted
    gt = torch.zeros(1, 1, 4, 4)
    gt[..., 0, :2] = 1  # 2 true, both predicted
    out = binary_segmentation_metrics(pred, gt)
    # P = 2/8, R = 1, F2 = 5 * 0.25 / (1 + 1) = 0.625
    assert out["f2"].item() == pytest.approx(0.625)
    _check(out, 0, _expected(2, 8, 2, 16))


def test_empty_and_full_masks():
    z, o = torch.zeros(1, 1, 4, 4), torch.ones(1, 1, 4, 4)
    gt4 = z.clone()
    gt4[..., :2, :2] = 1
    pred = torch.cat([z, z, gt4, o])
    gt = torch.cat([z, gt4, z, o])
    out = binary_segmentation_metrics(pred, gt)
    # both empty: every ratio is eps/eps = 1
    _check(out, 0, {"iou": 1.0, "dice": 1.0, "recall": 1.0, "precision": 1.0, "f2": 1.0, "accuracy": 1.0})
    # empty prediction: precision = 1, recall = iou = eps/(4+eps), dice = eps/(4+eps)
    _check(out, 1, _expected(0, 0, 4, 16))
    assert out["precision"][1].item() == 1.0
    assert out["iou"][1].item() == pytest.approx(EPS / 4)
    # empty ground truth: recall = 1, precision ~ 0
    _check(out, 2, _expected(0, 4, 0, 16))
    assert out["recall"][2].item() == 1.0 and out["precision"][2].item() < 1e-14
    # all foreground everywhere: all ones
    for name in PAPER_METRIC_NAMES:
        assert out[name][3].item() == pytest.approx(1.0)


def test_float64_keeps_eps_meaningful():
    # in float32 EPS/(4+EPS) would still be representable but (TP+EPS) with TP>0 would lose EPS entirely;
    # float64 results keep the official values to full precision
    gt = torch.zeros(1, 1, 4, 4)
    gt[..., 0, 0] = 1
    out = binary_segmentation_metrics(torch.zeros(1, 1, 4, 4), gt)
    assert out["dice"].item() == pytest.approx(EPS / (1 + EPS), rel=1e-12)


def test_logits_switch_and_binarize():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 1, 8, 8, generator=g)
    x[0, 0, 0, 0] = 0.0  # logit 0 == probability 0.5: negative under the strict threshold
    y = (torch.rand(3, 1, 8, 8, generator=g) > 0.5).float()
    a = binary_segmentation_metrics(x, y, logits=True)
    b = binary_segmentation_metrics(torch.sigmoid(x), y)
    for name in PAPER_METRIC_NAMES:
        torch.testing.assert_close(a[name], b[name])
    assert not binarize(torch.tensor(0.0), logits=True)
    assert binarize(torch.tensor(0.0), threshold=0.3, logits=True)  # logit(0.3) < 0
    with pytest.raises(ValueError, match="threshold"):
        binarize(torch.tensor(0.0), threshold=1.0, logits=True)


def test_threshold_applies_to_prediction_only():
    pred = torch.full((1, 1, 2, 2), 0.4)
    gt = torch.full((1, 1, 2, 2), 0.4)  # soft label below 0.5 -> empty GT regardless of `threshold`
    out = binary_segmentation_metrics(pred, gt, threshold=0.3)
    assert out["precision"].item() < 1e-14 and out["recall"].item() == 1.0


def test_shape_errors():
    with pytest.raises(ValueError, match=r"\(1, 1, 4, 4\) and \(1, 1, 4, 5\)"):
        binary_segmentation_metrics(torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 4, 5))
    with pytest.raises(ValueError, match="multi-channel"):
        binary_segmentation_metrics(torch.zeros(1, 2, 4, 4), torch.zeros(1, 2, 4, 4))


def test_real_kvasir_masks_resized_like_the_official_evaluation():
    masks_dir = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "kvasir-seg" / "masks"
    if not masks_dir.is_dir():
        pytest.skip(f"real data not found at {masks_dir}")
    files = sorted(masks_dir.iterdir())[:4]
    # official evaluation: GT bilinear-resized to 256x256 and divided by 255 (soft), thresholded at > 0.5
    soft = torch.stack(
        [
            torch.from_numpy(np.asarray(Image.open(f).convert("L").resize((256, 256), Image.BILINEAR)) / 255.0)[None]
            for f in files
        ]
    )
    same = binary_segmentation_metrics(soft, soft, include_hd95=True)
    for name in PAPER_METRIC_NAMES:
        torch.testing.assert_close(same[name], torch.ones(4, dtype=torch.float64))
    assert (same["hd95"] == 0).all()
    shifted = torch.zeros_like(soft)
    shifted[..., 3:] = soft[..., :-3]  # 3 px down, zero fill (no wrap-around)
    out = binary_segmentation_metrics(shifted, soft, include_hd95=True)
    assert (out["iou"] < 1).all() and (out["iou"] > 0.8).all()
    assert (out["hd95"] > 0).all() and (out["hd95"] <= 3.0 + 1e-9).all()
