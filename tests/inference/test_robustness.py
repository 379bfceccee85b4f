# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""Tests for run_robustness with a hand-analysable "red detector" network."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
from torch import nn

from condseg_monai.data import FailureLog, InputFailuresError, failure_record
from condseg_monai.inference import robustness_conditions, run_robustness
from condseg_monai.inferers import ConDSegInferer
from condseg_monai.transforms.readers import InvalidInputError


def _detector() -> nn.Module:
    """Conv 1x1: logit = 20 * red - 10, i.e. the predicted mask is exactly ``red > 0.5``."""
    net = nn.Conv2d(3, 1, 1)
    with torch.no_grad():
        net.weight.copy_(torch.tensor([20.0, 0.0, 0.0]).reshape(1, 3, 1, 1))
        net.bias.fill_(-10.0)
    return net


def _case(red_box: bool, label_box: bool) -> dict:
    image, label = torch.zeros(3, 16, 16), torch.zeros(1, 16, 16)
    if red_box:
        image[0, 4:12, 4:12] = 1.0
    if label_box:
        label[0, 4:12, 4:12] = 1.0
    return {"image": image, "label": label}


def test_conditions() -> None:
    assert robustness_conditions(["blur"], [1, 3]) == [("clean", 0), ("blur", 1), ("blur", 3)]
    assert len(robustness_conditions()) == 1 + 5 * 3
    with pytest.raises(ValueError, match="unknown corruption"):
        robustness_conditions(["fog"])
    with pytest.raises(ValueError, match="severity"):
        robustness_conditions(["blur"], [5])


def test_run_robustness_drops_hand_computed(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    # perfect detection, empty/empty, and a missed lesion: clean mIoU = 2/3
    data = [_case(True, True), _case(False, False), _case(False, True)]
    summary = run_robustness(
        network=_detector(),
        data=data,
        preprocessing=lambda d: d,
        inferer=ConDSegInferer(),
        output_dir=tmp_path,
        corruptions=["darken"],
        severities=[1, 3],
        batch_size=2,
    )
    rows = {(r["corruption"], r["severity"]): r for r in summary["conditions"]}
    assert rows[("clean", 0)]["iou"] == pytest.approx(2 / 3)
    assert rows[("darken", 1)]["drop_iou"] == pytest.approx(0.0)  # red 1.0 -> 0.7, still > 0.5
    assert rows[("darken", 3)]["iou"] == pytest.approx(1 / 3)  # red 0.3: the lesion is lost
    assert rows[("darken", 3)]["drop_iou"] == pytest.approx(-1 / 3)
    assert rows[("darken", 3)]["parameter"] == "factor=0.3"
    with (tmp_path / "robustness_per_image.csv").open() as f:
        assert len(list(csv.DictReader(f))) == 3 * 3
    with (tmp_path / "robustness.csv").open() as f:
        table = list(csv.DictReader(f))
    assert [r["corruption"] for r in table] == ["clean", "darken", "darken"]
    assert json.loads((tmp_path / "robustness.json").read_text())["num_images"] == 3
    assert "| darken s3 | factor=0.3 | 33.33 | -33.33 |" in capsys.readouterr().out


def test_run_robustness_rejects_empty_data(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="data is empty"):
        run_robustness(_detector(), [], lambda d: d, ConDSegInferer(), tmp_path)


def test_run_robustness_records_unreadable_cases_and_scores_the_others(tmp_path: Path) -> None:
    def preprocessing(d: dict) -> dict:
        if isinstance(d["image"], str):  # a path: the test's stand-in for an unreadable file
            raise RuntimeError("applying transform") from InvalidInputError(f"cannot read image '{d['image']}': empty")
        return d

    data = [_case(True, True), {"image": "bad.png", "label": "bad_mask.png"}, _case(False, False)]
    log = FailureLog(records=[failure_record({"image": "early.png"}, "found by the datalist check")])
    summary = run_robustness(
        _detector(),
        data,
        preprocessing,
        ConDSegInferer(),
        tmp_path,
        corruptions=["darken"],
        severities=[1],
        failure_log=log,
        print_table=False,
    )
    assert summary["num_images"] == 2 and summary["num_failed"] == 2
    assert summary["conditions"][0]["iou"] == pytest.approx(1.0)
    report = json.loads((tmp_path / "failures.json").read_text())
    assert [f["file"] for f in report["failures"]] == ["early.png", "bad.png"]
    assert report["num_inputs"] == 4 and report["failures"][1]["error"] == "InvalidInputError"
    with pytest.raises(InputFailuresError, match="2 of 4 inputs"):
        log.raise_if_any()
    bad_only = [{"image": "bad.png", "label": "m.png"}]
    with pytest.raises(ValueError, match="none of the 1 images could be read"):
        run_robustness(_detector(), bad_only, preprocessing, ConDSegInferer(), tmp_path / "none")
    assert json.loads((tmp_path / "none" / "failures.json").read_text())["num_failed"] == 1
