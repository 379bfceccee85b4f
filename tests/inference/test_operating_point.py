# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""The operating-point file beside a checkpoint, and the transform that applies the point to a probability map."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from monai.data import MetaTensor

from condseg_monai.inference import (
    ApplyOperatingPointd,
    load_operating_point,
    operating_point_path,
    resolve_operating_point,
    save_operating_point,
)
from condseg_monai.metrics.detection import DEFAULT_MIN_AREA, OperatingPoint


def test_save_load_and_precedence(tmp_path: Path) -> None:
    ckpt = tmp_path / "model.pt"
    assert load_operating_point(ckpt) is None
    assert resolve_operating_point(ckpt) == OperatingPoint(0.5, DEFAULT_MIN_AREA)
    stored = OperatingPoint(0.7, 0.01, {"target_specificity": 0.95})
    path = save_operating_point(stored, ckpt)
    assert path == operating_point_path(ckpt) == tmp_path / "model.operating_point.json"
    assert load_operating_point(ckpt) == stored
    assert resolve_operating_point(ckpt) == stored
    cli = resolve_operating_point(ckpt, threshold=0.6)
    assert (cli.threshold, cli.min_area) == (0.6, 0.01)  # the other value stays the stored one
    with pytest.raises(ValueError, match="threshold / min_area"):
        resolve_operating_point(ckpt, min_area=1.5)


def test_bad_file_is_named(tmp_path: Path) -> None:
    ckpt = tmp_path / "model.pt"
    operating_point_path(ckpt).write_text("{not json")
    with pytest.raises(ValueError, match="model.operating_point.json"):
        load_operating_point(ckpt)
    operating_point_path(ckpt).write_text(json.dumps({"threshold": 2.0, "min_area": 0.0}))
    with pytest.raises(ValueError, match="model.operating_point.json.*threshold"):
        resolve_operating_point(ckpt)


def test_apply_operating_point_empties_small_masks() -> None:
    prob = torch.zeros(1, 20, 20)
    prob[0, :2, :2] = 0.9  # 4 px = 1 % of the frame
    transform = ApplyOperatingPointd("pred", OperatingPoint(0.5, 0.02))  # needs 8 px
    out = transform({"pred": MetaTensor(prob.clone())})
    assert out["pred"].sum() == 0 and out["polyp_present"] is False
    assert out["predicted_area"] == pytest.approx(0.01) and out["detection_score"] == 0.0
    assert out["pred"].meta["polyp_present"] is False
    kept = ApplyOperatingPointd("pred", OperatingPoint(0.5, 0.01))({"pred": MetaTensor(prob.clone())})
    assert kept["pred"].sum() == 4 and kept["polyp_present"] is True and kept["detection_score"] == pytest.approx(0.9)
    unfiltered = ApplyOperatingPointd("pred", OperatingPoint(0.5, 0.02), clear_below_min_area=False)
    assert unfiltered({"pred": prob.clone()})["pred"].sum() == 4
