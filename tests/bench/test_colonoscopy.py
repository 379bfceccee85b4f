# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""bench/colonoscopy.py: the datalists it writes (through the product's prepare) and the tables it reads back."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import colonoscopy
import numpy as np
import pytest
from PIL import Image


def _folder(root: Path, n: int, foreground: bool) -> Path:
    for sub in ("images", "masks"):
        (root / sub).mkdir(parents=True)
    rng = np.random.default_rng(n)
    for i in range(1, n + 1):
        Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(root / "images" / f"{i}.jpg")
        mask = np.zeros((32, 32), np.uint8)
        if foreground:
            mask[8:20, 8:20] = 255
        Image.fromarray(mask).save(root / "masks" / f"{i}.jpg")
    return root


def test_make_data_writes_every_datalist(tmp_path: Path) -> None:
    data = tmp_path / "data"
    _folder(data / "kvasir-seg", 10, True)
    _folder(data / "cvc-clinicdb", 4, True)
    _folder(data / "polyp-free", 6, False)
    out = tmp_path / "out"
    colonoscopy.make_data(data, out, seed=0, val_count=2, pool_size=5)
    full = json.loads((out / "kvasir_full.json").read_text())
    semi = json.loads((out / "kvasir_semi.json").read_text())
    neg = json.loads((out / "kvasir_neg.json").read_text())
    assert (len(full["training"]), len(full["validation"])) == (8, 2)
    assert (len(semi["training"]), len(semi["unlabeled"])) == (1, 7)  # floor(0.1 x 8 + 0.5) labeled
    assert neg["negatives"]["counts"] == {"training": 4, "validation": 1}
    assert sum(bool(e.get("negative")) for e in neg["training"]) == 4
    cvc = json.loads((out / "cvc.json").read_text())["test"]
    assert [Path(e["image"]).name for e in cvc] == ["1.jpg", "2.jpg", "3.jpg", "4.jpg"]  # video order
    free_test = {Path(e["image"]).name for e in json.loads((out / "polyp_free_test.json").read_text())["test"]}
    pool = {p.name for p in (out / "negatives_pool").iterdir()}
    assert len(free_test) == 1 and not free_test & pool, "the held-out polyp-free frames are never trained on"
    calib = json.loads((out / "calibration.json").read_text())["validation"]
    assert len(calib) == 2 + 1 and sum(bool(e.get("negative")) for e in calib) == 1


def _rows(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def _summary(path: Path, sens: float, spec: float) -> None:
    path.mkdir(parents=True, exist_ok=True)
    detection = {"sensitivity": sens, "specificity": spec, "false_alarm_rate": 1 - spec, "polyp_hit_rate": sens}
    detection["mean_false_alarm_area"] = 0.01
    summary = {
        "metrics": {"resized": {"iou": 0.5, "dice": 0.6}},
        "operating_point": {"threshold": 0.5, "min_area": 0.001},
        "detection": detection,
    }
    (path / "evaluation_summary.json").write_text(json.dumps(summary))


def test_report_reads_roc_and_temporal_filter(tmp_path: Path) -> None:
    arm = tmp_path / "eval" / "sup"
    for name in ("kvasir_val", "cvc", "polyp_free"):
        _summary(arm / "default" / name, 0.75, 0.8)
    # CVC scores 0.6..0.9, polyp-free scores 0.1..0.7: one overlap pair (0.6 < 0.7)
    _rows(arm / "default" / "cvc" / "evaluation_per_image.csv", [{"detection_score": s} for s in (0.6, 0.8, 0.9)])
    _rows(arm / "default" / "polyp_free" / "evaluation_per_image.csv", [{"detection_score": s} for s in (0.1, 0.7)])
    (arm / "calibrated_model").mkdir()
    (arm / "calibrated_model" / "model.operating_point.json").write_text(json.dumps({"threshold": 0.5}))
    # videos: CVC alarms on frames 0-2 and 4; polyp-free a one-frame flicker at frame 1 and a 3-frame run
    video = tmp_path / "video" / "sup"
    cvc = [0.9, 0.9, 0.9, 0.1, 0.9]
    free = [0.1, 0.9, 0.1, 0.9, 0.9, 0.9]
    _rows(video / "cvc" / "cvc_frames.csv", [{"detection_score": s, "readable": "True"} for s in cvc])
    _rows(video / "polyp_free" / "polyp_free_frames.csv", [{"detection_score": s, "readable": "True"} for s in free])

    results = colonoscopy.report(tmp_path, ["sup"])
    roc = results["arms"]["sup"]["roc"]
    assert roc["auroc"] == pytest.approx(5 / 6)
    # specificity 80 %: threshold = the 2nd smallest of 2 polyp-free scores (0.7): CVC 0.8, 0.9 detected
    assert roc["points"][0]["threshold"] == 0.7 and roc["points"][0]["sensitivity"] == pytest.approx(2 / 3)
    temporal = {(t["persistence"], t["smoothing"]): t for t in results["arms"]["sup"]["temporal"]}
    assert temporal[(1, 1)]["polyp_free_alarm_frames"] == pytest.approx(4 / 6)
    assert temporal[(1, 1)]["polyp_free_alarm_runs"] == 2
    assert temporal[(2, 1)]["polyp_free_alarm_frames"] == pytest.approx(2 / 6)  # the flicker is gone
    assert temporal[(3, 1)]["cvc_alarm_frames"] == pytest.approx(1 / 5)  # only frame 2 of the first run
    assert "| sup | default" in (tmp_path / "results.md").read_text()
