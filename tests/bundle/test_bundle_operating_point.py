# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""Frame-level detection through the bundle: ``run calibrate`` stores the operating point beside the checkpoint,
``evaluating`` reports sensitivity / specificity with it, and ``inference`` empties the masks of frames it calls
polyp-free.

The "red detector" (predicted mask = red > 0.5, see conftest.py) on 64x64 pictures evaluated at 32x32, objects on
even pixel coordinates so the resize is exact: polyp frames have a red square of 16x16 px at 32x32 (256 px);
polyp-free "speck" frames have a red speck of 2x2 px at 32x32 (4 px = 0.39 % of the frame); "clean" frames no red
(one of them a declared negative without a mask file).
The default minimum area (0.1 %: 2 px at 32x32) calls the specks polyps; for specificity 1 ``calibrate`` must pick
the smallest candidate area above 4 px, 0.005 (6 px), and keep the threshold at 0.5.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from monai.bundle import run as bundle_run
from PIL import Image

from condseg_monai.inference import load_operating_point, operating_point_path

REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / "bundle" / "configs"
TRAIN_EVAL = [str(CONFIGS / "train.json"), str(CONFIGS / "evaluate.json")]
METADATA = str(CONFIGS / "metadata.json")
LOGGING = str(CONFIGS / "logging.conf")
DETECTOR = {"_target_": "torch.nn.Conv2d", "in_channels": 3, "out_channels": 1, "kernel_size": 1}


@pytest.fixture
def mixed(tmp_path: Path, draw) -> Path:
    """A datalist whose validation split has 3 polyp frames, 2 speck frames and 2 clean frames."""
    for sub in ("images", "masks"):
        (tmp_path / sub).mkdir()
    empty = np.zeros((64, 64), bool)
    cases = {f"polyp{i}": (draw.box(64, 64, 8 + 8 * i, 40 + 8 * i, 16, 48),) * 2 for i in range(3)}
    cases.update({f"speck{i}": (draw.box(64, 64, 20 + 8 * i, 24 + 8 * i, 20, 24), empty) for i in range(2)})
    cases.update({f"clean{i}": (empty, empty) for i in range(2)})
    entries = []
    for name, (red, lesion) in cases.items():
        draw.rgb(tmp_path / "images" / f"{name}.png", red)
        draw.mask(tmp_path / "masks" / f"{name}.png", lesion)
        entries.append({"image": f"images/{name}.png", "label": f"masks/{name}.png"})
    entries[-1] = {"image": "images/clean1.png", "negative": True}  # a declared polyp-free frame, no mask file
    path = tmp_path / "datalist.json"
    path.write_text(json.dumps({"training": [], "validation": entries, "test": []}))
    return path


def _run(run_id: str, config_file, **overrides) -> None:
    bundle_run(run_id, config_file=config_file, meta_file=METADATA, logging_file=LOGGING, num_workers=0, **overrides)


def _summary(out: Path) -> dict:
    return json.loads((out / "evaluation_summary.json").read_text())


def test_calibrate_then_evaluate_and_infer(tmp_path: Path, mixed: Path, detector_ckpt: str) -> None:
    ckpt = tmp_path / "model" / "model.pt"  # a copy: the operating point is written beside the checkpoint
    ckpt.parent.mkdir()
    shutil.copy(detector_ckpt, ckpt)
    common = {"datalist": str(mixed), "ckpt_path": str(ckpt), "network_def": DETECTOR, "image_size": 32}

    # before calibration: the default operating point calls both speck frames polyps
    _run("evaluating", TRAIN_EVAL, output_dir=str(tmp_path / "before"), **common)
    before = _summary(tmp_path / "before")
    assert before["operating_point"] == {"threshold": 0.5, "min_area": 0.001}
    assert before["num_empty_masks"] == 4
    det = before["detection"]
    assert (det["num_with_polyp"], det["num_polyp_free"], det["num_false_alarms"]) == (3, 4, 2)
    assert det["sensitivity"] == 1.0 and det["specificity"] == 0.5
    assert det["mean_false_alarm_area"] == pytest.approx(4 / 1024)
    assert det["polyp_hit_rate"] == 1.0
    # polyp frames score ~1 (sigmoid(10)); speck frames score ~1 too at k=2 px, clean frames sigmoid(-10)
    assert det["auroc"] == pytest.approx((3 * 2 + 3 * 2 * 0.5) / 12, abs=1e-9)

    _run("calibrate", TRAIN_EVAL, output_dir=str(tmp_path / "cal"), target_specificity=1.0, **common)
    op = load_operating_point(ckpt)
    assert op is not None and operating_point_path(ckpt) == ckpt.with_name("model.operating_point.json")
    assert (op.threshold, op.min_area) == (0.5, 0.005)
    assert op.chosen_by["target_met"] is True and op.chosen_by["validation_polyp_free"] == 4
    assert op.chosen_by["split"] == "validation"

    _run("evaluating", TRAIN_EVAL, output_dir=str(tmp_path / "after"), **common)
    after = _summary(tmp_path / "after")
    assert after["operating_point"] == {"threshold": 0.5, "min_area": 0.005}
    assert after["detection"]["sensitivity"] == 1.0 and after["detection"]["specificity"] == 1.0
    # the command line wins over the stored point
    _run("evaluating", TRAIN_EVAL, output_dir=str(tmp_path / "cli"), min_area=0.0, **common)
    assert _summary(tmp_path / "cli")["detection"]["specificity"] == 0.5

    # inference with the stored point: the speck frames get empty masks, the polyp frames keep theirs
    out = tmp_path / "pred"
    _run(
        "inference",
        str(CONFIGS / "inference.json"),
        input_path=str(mixed.parent / "images"),
        output_dir=str(out),
        ckpt_path=str(ckpt),
        network_def=DETECTOR,
        image_size=32,
    )
    for name in ("speck0", "speck1", "clean0"):
        assert not np.asarray(Image.open(out / f"{name}_mask.png")).any(), name
    polyp = np.asarray(Image.open(out / "polyp0_mask.png")) > 0
    assert polyp.sum() == 32 * 32  # the 32x32 px square at the original 64x64 size


def test_calibrate_without_polyp_free_frames_says_what_is_missing(tmp_path: Path, draw, detector_ckpt: str) -> None:
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    box = draw.box(64, 64, 8, 40, 16, 48)
    draw.rgb(tmp_path / "images" / "a.png", box)
    draw.mask(tmp_path / "masks" / "a.png", box)
    datalist = tmp_path / "d.json"
    datalist.write_text(json.dumps({"validation": [{"image": "images/a.png", "label": "masks/a.png"}]}))
    ckpt = tmp_path / "m.pt"
    shutil.copy(detector_ckpt, ckpt)
    with pytest.raises(Exception) as info:
        _run(
            "calibrate",
            TRAIN_EVAL,
            datalist=str(datalist),
            ckpt_path=str(ckpt),
            network_def=DETECTOR,
            image_size=32,
            output_dir=str(tmp_path / "o"),
        )
    text = repr(info.value) + repr(info.value.__cause__)
    assert "0 without" in text or "0 without" in str(info.getrepr())
    assert not operating_point_path(ckpt).exists()
