# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""Tests of the EvaluationReport handler: CSV / JSON / Markdown content, original-resolution labels, failures."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from PIL import Image

from condseg_monai.data import FailureLog, failure_record
from condseg_monai.handlers import EvaluationReport


def _mask(rows: slice, cols: slice, shape: tuple[int, int] = (4, 4)) -> torch.Tensor:
    m = torch.zeros(1, *shape)
    m[0, rows, cols] = 1.0
    return m


def _meta(t: torch.Tensor, name: str) -> MetaTensor:
    return MetaTensor(t, meta={"filename_or_obj": name})


def test_report_files_and_original_label_read_from_disk(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    # original mask 6x8 on disk; the "resized" versions are given directly
    orig = np.zeros((6, 8), np.uint8)
    orig[1:3, 2:6] = 255
    mask_file = tmp_path / "case_mask.png"
    Image.fromarray(orig).save(mask_file)
    gt_small = _mask(slice(0, 2), slice(0, 2))
    items = [
        {
            "image": _meta(torch.zeros(3, 4, 4), str(tmp_path / "case.png")),
            "label": _meta(gt_small, str(mask_file)),
            "pred": gt_small * 0.8,  # perfect at the model resolution
            "pred_original": torch.from_numpy(orig[None] / 255.0 * 0.7).float(),  # perfect at full size
        },
        {
            "image": _meta(torch.zeros(3, 4, 4), str(tmp_path / "empty.png")),
            "label": _meta(gt_small, str(mask_file)),
            "pred": torch.zeros(1, 4, 4),  # missed
            "pred_original": torch.zeros(1, 6, 8),
            "label_original": torch.from_numpy(orig[None] / 255.0).float(),
        },
    ]
    report = EvaluationReport(output_dir=tmp_path / "out", split="validation", image_size=4)
    for item in items:
        report.add_case(item)
    report.epoch_completed()

    summary = json.loads((tmp_path / "out" / "evaluation_summary.json").read_text())
    assert summary["split"] == "validation" and summary["num_images"] == 2 and summary["image_size"] == [4, 4]
    for res in ("resized", "original"):
        block = summary["metrics"][res]
        assert block["iou"] == pytest.approx(0.5)
        assert block["precision"] == pytest.approx(1.0)
        assert block["hd95"] == pytest.approx(0.0)  # NaN of the missed case excluded
        assert block["hd95_undefined"] == 1
    with (tmp_path / "out" / "evaluation_per_image.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [Path(r["image"]).name for r in rows] == ["case.png", "empty.png"]
    assert rows[0]["height"] == "6" and rows[0]["width"] == "8"
    assert float(rows[0]["iou_original"]) == pytest.approx(1.0)
    assert rows[1]["hd95_resized"] == "nan"
    printed = capsys.readouterr().out
    assert "| 4x4 | 50.00 | 50.00 |" in printed and "| original |" in printed
    # the pixel-metric table and the frame-level detection table
    assert (tmp_path / "out" / "evaluation_summary.md").read_text().count("\n|---") == 2


def test_report_without_rows_writes_nothing(tmp_path: Path) -> None:
    report = EvaluationReport(output_dir=tmp_path / "none")
    report.epoch_completed()
    assert not (tmp_path / "none").exists()


def test_report_counts_the_cases_that_could_not_be_read(tmp_path: Path) -> None:
    log = FailureLog(records=[failure_record({"image": "x.png"}, "file is empty"), failure_record({"image": "y"}, "?")])
    report = EvaluationReport(output_dir=tmp_path, image_size=4, original_pred_key=None, failure_log=log)
    gt = _meta(_mask(slice(0, 2), slice(0, 2)), "m.png")
    report.add_case({"image": _meta(torch.zeros(3, 4, 4), "a.png"), "label": gt, "pred": gt * 0.9})
    report.epoch_completed()
    summary = json.loads((tmp_path / "evaluation_summary.json").read_text())
    assert summary["num_images"] == 1 and summary["num_failed"] == 2
    assert "2 more cases could not be read" in (tmp_path / "evaluation_summary.md").read_text()


def test_declared_negative_without_mask_file(tmp_path: Path) -> None:
    """A declared polyp-free image (no mask file) is scored against an empty mask at both resolutions."""
    zero = MetaTensor(torch.zeros(1, 4, 4), meta={"filename_or_obj": "", "negative": True})
    items = [
        {  # quiet on the negative: pixel metrics 1, no false alarm
            "image": _meta(torch.zeros(3, 4, 4), str(tmp_path / "quiet.png")),
            "label": zero,
            "negative": torch.tensor(True),
            "pred": torch.zeros(1, 4, 4),
            "pred_original": torch.zeros(1, 6, 8),
        },
        {  # 2 of 16 pixels marked: a false alarm of area 1/8
            "image": _meta(torch.zeros(3, 4, 4), str(tmp_path / "alarm.png")),
            "label": zero.clone(),
            "pred": torch.tensor([[[0.9, 0.9, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]]),
            "pred_original": torch.zeros(1, 6, 8),
        },
    ]
    report = EvaluationReport(output_dir=tmp_path / "out", print_table=False, include_hd95=False)
    for item in items:
        report.add_case(item)
    report.epoch_completed()
    summary = json.loads((tmp_path / "out" / "evaluation_summary.json").read_text())
    assert summary["num_empty_masks"] == 2
    det = summary["detection"]
    assert (det["num_polyp_free"], det["num_false_alarms"]) == (2, 1)
    assert det["specificity"] == 0.5 and det["mean_false_alarm_area"] == pytest.approx(1 / 8)
    assert summary["metrics"]["original"]["iou"] == pytest.approx(1.0)  # both empty at the original size
    assert summary["metrics"]["resized"]["iou"] == pytest.approx(0.5)
    assert [r["label"] for r in report.rows] == ["(declared negative)"] * 2
