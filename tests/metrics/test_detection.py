# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""The frame-level decision rule, its summary and the choice of the operating point (hand-computed cases)."""

from __future__ import annotations

import math

import pytest
import torch

from condseg_monai.metrics.detection import (
    OperatingPoint,
    choose_operating_point,
    detection_score,
    min_area_pixels,
    polyp_present,
    predicted_area,
    summarize_detection,
)


def test_min_area_pixels() -> None:
    assert min_area_pixels(0.0, 4096) == 1  # at least one pixel
    assert min_area_pixels(0.001, 4096) == 5  # ceil(4.096)
    assert min_area_pixels(0.07, 100) == 7  # 0.07 * 100 is 7.000000000000001 in float64
    with pytest.raises(ValueError, match="min_area"):
        min_area_pixels(1.0, 10)
    with pytest.raises(ValueError, match="min_area"):
        min_area_pixels(-0.1, 10)


def test_score_is_the_kth_largest_probability_and_the_decision_counts_pixels() -> None:
    g = torch.Generator().manual_seed(0)
    probs = torch.rand(6, 1, 10, 10, generator=g) ** 4  # mostly low values, a few high ones
    for min_area in (0.0, 0.02, 0.05, 0.2):
        k = min_area_pixels(min_area, 100)
        scores = detection_score(probs, min_area)
        assert torch.equal(scores, probs.flatten(1).sort(dim=1, descending=True).values[:, k - 1])
        for t in (0.1, 0.5, 0.9):
            present = polyp_present(probs, OperatingPoint(t, min_area))
            expected = (probs.flatten(1) > t).sum(dim=1) >= k  # the rule as written in the docs
            assert torch.equal(present, expected), (min_area, t)
    # shapes: (H, W) and (1, H, W) give one score
    assert detection_score(probs[0, 0], 0.0).shape == (1,)
    assert detection_score(probs[0], 0.0).shape == (1,)
    assert predicted_area(torch.tensor([[0.2, 0.6], [0.7, 0.5]]), 0.5).item() == 0.5
    with pytest.raises(ValueError, match="one channel"):
        detection_score(torch.rand(1, 2, 4, 4))


def test_operating_point_validation_and_round_trip() -> None:
    op = OperatingPoint(0.7, 0.005, {"target_specificity": 0.9})
    assert OperatingPoint.from_dict(op.to_dict()) == op
    with pytest.raises(ValueError, match="threshold"):
        OperatingPoint(1.0, 0.0)
    with pytest.raises(ValueError, match="min_area"):
        OperatingPoint(0.5, 2.0)
    with pytest.raises(ValueError, match="my file.*unknown keys"):
        OperatingPoint.from_dict({"threshold": 0.5, "min_area": 0.0, "thresh": 1}, source="my file")
    with pytest.raises(ValueError, match="needs 'threshold' and 'min_area'"):
        OperatingPoint.from_dict({"threshold": 0.5})


def test_summary_hand_computed() -> None:
    # frames: 3 with a polyp (2 detected), 4 without (1 false alarm of area 0.02)
    has_polyp = [True, True, True, False, False, False, False]
    present = [True, False, True, False, True, False, False]
    scores = [0.9, 0.3, 0.8, 0.1, 0.85, 0.2, 0.4]
    areas = [0.10, 0.0, 0.05, 0.0, 0.02, 0.0, 0.0]
    recalls = [0.8, 0.0, 0.05, 1.0, 1.0, 1.0, 1.0]
    s = summarize_detection(has_polyp, present, scores, areas, recalls)
    assert (s["num_with_polyp"], s["num_polyp_free"], s["num_false_alarms"]) == (3, 4, 1)
    assert s["sensitivity"] == pytest.approx(2 / 3)
    assert s["specificity"] == pytest.approx(3 / 4)
    assert s["false_alarm_rate"] == pytest.approx(1 / 4)
    assert s["mean_false_alarm_area"] == pytest.approx(0.02)
    assert s["mean_polyp_free_area"] == pytest.approx(0.005)
    assert s["polyp_hit_rate"] == pytest.approx(1 / 3)  # only the first polyp frame has recall >= 0.1
    # AUROC: share of (polyp, polyp-free) pairs ranked correctly: 0.9 beats all 4, 0.8 all but 0.85, 0.3 two
    assert s["auroc"] == pytest.approx((4 + 3 + 2) / 12)
    only_free = summarize_detection([False, False], [False, True], [0.1, 0.9], [0.0, 0.1])
    assert math.isnan(only_free["sensitivity"]) and math.isnan(only_free["auroc"])
    assert only_free["specificity"] == 0.5


def test_choose_for_a_target_specificity_prefers_the_best_sensitivity() -> None:
    has_polyp = [True] * 4 + [False] * 4
    scores = {
        # min_area 0: polyp-free frames have confident specks -> specificity 1 needs threshold 0.97
        0.0: [0.99, 0.98, 0.9, 0.6] + [0.97, 0.95, 0.3, 0.1],
        # larger area: the specks no longer count; 0.55 keeps every polyp-free frame clear
        0.01: [0.95, 0.9, 0.8, 0.55] + [0.4, 0.3, 0.1, 0.05],
    }
    op = choose_operating_point(scores, has_polyp, target_specificity=1.0)
    assert op.min_area == 0.01 and op.threshold == 0.5  # the quantile 0.4 is raised to 0.5
    assert op.chosen_by["validation_sensitivity"] == 1.0 and op.chosen_by["validation_specificity"] == 1.0
    assert op.chosen_by["target_met"] is True
    # with only the first candidate: threshold = the largest polyp-free score, sensitivity 2/4
    op0 = choose_operating_point({0.0: scores[0.0]}, has_polyp, target_specificity=1.0)
    assert (op0.threshold, op0.chosen_by["validation_sensitivity"]) == (0.97, 0.5)
    # specificity 0.75: the 3rd smallest polyp-free score (0.95) is the lowest threshold reaching it
    op1 = choose_operating_point({0.0: scores[0.0]}, has_polyp, target_specificity=0.75)
    assert op1.threshold == 0.95 and op1.chosen_by["validation_specificity"] == 0.75


def test_choose_for_a_target_sensitivity_and_unreachable_targets() -> None:
    has_polyp = [True] * 4 + [False] * 2
    scores = {0.0: [0.95, 0.9, 0.8, 0.7, 0.85, 0.2]}
    op = choose_operating_point(scores, has_polyp, target_sensitivity=0.75)
    # keep the 3 best polyp frames: just below 0.8; the frame at 0.85 stays a false alarm
    assert op.threshold < 0.8 and op.threshold == pytest.approx(0.8)
    assert op.chosen_by["validation_sensitivity"] == 0.75 and op.chosen_by["validation_specificity"] == 0.5
    # specificity 1 would need a threshold of 0.85 > max_threshold 0.8: closest reachable, flagged
    capped = choose_operating_point(scores, has_polyp, target_specificity=1.0, max_threshold=0.8)
    assert capped.threshold == 0.8 and capped.chosen_by["target_met"] is False


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "exactly one"),
        ({"target_specificity": 0.9, "target_sensitivity": 0.9}, "exactly one"),
        ({"target_specificity": 0.0}, r"\(0, 1\]"),
    ],
)
def test_choose_bad_targets(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        choose_operating_point({0.0: [0.5, 0.5]}, [True, False], **kwargs)


def test_choose_needs_both_kinds_of_frames() -> None:
    with pytest.raises(ValueError, match="0 without.*negatives-dir"):
        choose_operating_point({0.0: [0.9, 0.8]}, [True, True], target_specificity=0.9)
    with pytest.raises(ValueError, match="has 3 values for 2 frames"):
        choose_operating_point({0.0: [0.9, 0.8, 0.1]}, [True, False], target_specificity=0.9)
