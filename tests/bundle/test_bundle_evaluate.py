# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""Tests of ``evaluate.json`` (run ids ``evaluating`` and ``robustness``) merged on top of ``train.json``.

The hand-computed cases use the "red detector" network (predicted mask = red > 0.5) on 64x64 pictures whose objects
lie on even pixel coordinates, so resizing to 32x32 and back is exact and every metric is known:

- ``hit``: red square = lesion -> all metrics 1, HD95 0;
- ``clear``: no red, empty mask -> all metrics 1 (eps convention), HD95 0;
- ``miss``: no red, lesion of 16x48 px -> IoU = Dice = recall = F2 = 0, precision = 1, accuracy = 1 - 768/4096,
  HD95 undefined (NaN, excluded from the mean).
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
from monai.bundle import run as bundle_run
from PIL import Image

from condseg_monai.data import InputFailuresError

REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / "bundle" / "configs"
TRAIN_EVAL = [str(CONFIGS / "train.json"), str(CONFIGS / "evaluate.json")]
METADATA = str(CONFIGS / "metadata.json")
LOGGING = str(CONFIGS / "logging.conf")
SMALL = {"feature_size": 16, "network_def#num_heads": 2}
DETECTOR = {"_target_": "torch.nn.Conv2d", "in_channels": 3, "out_channels": 1, "kernel_size": 1}


@pytest.fixture
def hand_datalist(tmp_path: Path, draw) -> Path:
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    empty = np.zeros((64, 64), bool)
    cases = {
        "hit": (draw.box(64, 64, 8, 40, 16, 48), draw.box(64, 64, 8, 40, 16, 48)),
        "clear": (empty, empty),
        "miss": (empty, draw.box(64, 64, 8, 24, 8, 56)),
    }
    entries = []
    for name, (red, lesion) in cases.items():
        draw.rgb(tmp_path / "images" / f"{name}.png", red)
        draw.mask(tmp_path / "masks" / f"{name}.png", lesion)
        entries.append({"image": f"images/{name}.png", "label": f"masks/{name}.png"})
    path = tmp_path / "datalist.json"
    path.write_text(json.dumps({"training": [], "validation": entries, "test": []}))
    return path


def _root_cause(exc: BaseException) -> BaseException:
    while exc.__cause__ is not None:
        exc = exc.__cause__
    return exc


def _evaluate(run_id: str = "evaluating", **overrides) -> None:
    bundle_run(run_id, config_file=TRAIN_EVAL, meta_file=METADATA, logging_file=LOGGING, num_workers=0, **overrides)


def test_evaluating_hand_computed_metrics(
    tmp_path: Path, hand_datalist: Path, detector_ckpt: str, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "eval"
    _evaluate(
        datalist=str(hand_datalist), ckpt_path=detector_ckpt, network_def=DETECTOR, image_size=32, output_dir=str(out)
    )
    summary = json.loads((out / "evaluation_summary.json").read_text())
    assert summary["split"] == "validation", "an empty test split must fall back to validation"
    assert summary["num_images"] == 3 and summary["image_size"] == [32, 32]
    expected = {
        "iou": 2 / 3,
        "dice": 2 / 3,
        "recall": 2 / 3,
        "precision": 1.0,
        "f2": 2 / 3,
        "accuracy": (2 + 1 - 768 / 4096) / 3,
        "hd95": 0.0,
    }
    for res in ("resized", "original"):
        for name, value in expected.items():
            assert summary["metrics"][res][name] == pytest.approx(value, abs=1e-9), (res, name)
        assert summary["metrics"][res]["hd95_undefined"] == 1
    with (out / "evaluation_per_image.csv").open() as f:
        rows = {Path(r["image"]).stem: r for r in csv.DictReader(f)}
    assert set(rows) == {"hit", "clear", "miss"}
    assert float(rows["miss"]["precision_original"]) == pytest.approx(1.0)
    assert rows["miss"]["hd95_original"] == "nan" and rows["hit"]["height"] == "64"
    printed = capsys.readouterr().out
    assert "| 32x32 | 66.67 | 66.67 | 66.67 | 100.00 | 66.67 |" in printed


def test_robustness_run_id(tmp_path: Path, hand_datalist: Path, detector_ckpt: str) -> None:
    out = tmp_path / "rob"
    _evaluate(
        "robustness",
        datalist=str(hand_datalist),
        ckpt_path=detector_ckpt,
        network_def=DETECTOR,
        image_size=32,
        output_dir=str(out),
        robustness_corruptions=["darken", "blur"],
        robustness_severities=[1, 3],
    )
    summary = json.loads((out / "robustness.json").read_text())
    rows = {(r["corruption"], r["severity"]): r for r in summary["conditions"]}
    assert list(rows) == [("clean", 0), ("darken", 1), ("darken", 3), ("blur", 1), ("blur", 3)]
    assert rows[("clean", 0)]["iou"] == pytest.approx(2 / 3)
    assert rows[("darken", 1)]["drop_iou"] == pytest.approx(0.0)
    assert rows[("darken", 3)]["drop_iou"] == pytest.approx(-1 / 3)
    assert -1 / 3 <= rows[("blur", 3)]["drop_iou"] <= 0.0
    assert (out / "robustness.md").read_text().count("\n| ") == 1 + 5  # header + one row per condition


def test_evaluating_demo_data_with_condseg(tmp_path: Path, small_ckpt: str) -> None:
    from condseg_monai.data import generate_demo_dataset

    datalist = generate_demo_dataset(tmp_path / "demo", num_train=1, num_val=1, num_test=2, image_size=(40, 56))
    out = tmp_path / "eval"
    _evaluate(datalist=str(datalist), ckpt_path=small_ckpt, image_size=32, output_dir=str(out), tta=True, **SMALL)
    summary = json.loads((out / "evaluation_summary.json").read_text())
    assert summary["split"] == "test" and summary["num_images"] == 2
    for res in ("resized", "original"):
        assert 0.0 <= summary["metrics"][res]["accuracy"] <= 1.0


def test_evaluating_requires_the_checkpoint(tmp_path: Path, hand_datalist: Path) -> None:
    with pytest.raises(Exception) as info:
        _evaluate(
            datalist=str(hand_datalist),
            ckpt_path=str(tmp_path / "missing.pt"),
            network_def=DETECTOR,
            image_size=32,
            output_dir=str(tmp_path / "o"),
        )
    cause = _root_cause(info.value)
    assert "`ckpt_path`" in str(cause) and "missing.pt" in str(cause)


@pytest.mark.slow
def test_evaluating_isic_sample(tmp_path: Path, isic_sample: Path, small_ckpt: str) -> None:
    pairs = [
        {"image": str(img), "label": str(isic_sample / "masks" / f"{img.stem}.png")}
        for img in sorted((isic_sample / "images").glob("*.jpg"))[:2]
    ]
    datalist = tmp_path / "isic.json"
    datalist.write_text(json.dumps({"training": [], "validation": [], "test": pairs}))
    out = tmp_path / "eval"
    _evaluate(datalist=str(datalist), ckpt_path=small_ckpt, image_size=32, output_dir=str(out), **SMALL)
    with (out / "evaluation_per_image.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 and all((r["height"], r["width"]) == ("450", "600") for r in rows)


@pytest.fixture
def datalist_with_bad_files(hand_datalist: Path) -> Path:
    """The hand-computed cases plus a case with a 0-byte image and a case with a truncated JPEG mask."""
    root = hand_datalist.parent
    (root / "images" / "empty.png").write_bytes(b"")
    (root / "masks" / "empty.png").write_bytes((root / "masks" / "hit.png").read_bytes())
    (root / "images" / "cut.png").write_bytes((root / "images" / "hit.png").read_bytes())
    buf = io.BytesIO()
    Image.fromarray((np.random.default_rng(0).random((64, 64)) * 255).astype(np.uint8)).save(buf, "JPEG")
    (root / "masks" / "cut.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    datalist = json.loads(hand_datalist.read_text())
    hit, rest = datalist["validation"][0], datalist["validation"][1:]
    bad = [
        {"image": "images/empty.png", "label": "masks/empty.png"},
        {"image": "images/cut.png", "label": "masks/cut.jpg"},
    ]
    datalist["validation"] = [hit, bad[0], *rest, bad[1]]
    hand_datalist.write_text(json.dumps(datalist))
    return hand_datalist


def _check_failures(out: Path, root: Path) -> None:
    report = json.loads((out / "failures.json").read_text())
    assert report["num_failed"] == 2 and report["num_inputs"] == 5
    reasons = {f["file"]: f["reason"] for f in report["failures"]}
    assert set(reasons) == {str(root / "images" / "empty.png"), str(root / "masks" / "cut.jpg")}
    assert "empty (0 bytes)" in reasons[str(root / "images" / "empty.png")]
    assert "truncated" in reasons[str(root / "masks" / "cut.jpg")].lower()


def test_evaluating_scores_the_readable_cases_and_fails_at_the_end(
    tmp_path: Path, datalist_with_bad_files: Path, detector_ckpt: str, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "eval"
    with pytest.raises(Exception) as info:
        _evaluate(
            datalist=str(datalist_with_bad_files),
            ckpt_path=detector_ckpt,
            network_def=DETECTOR,
            image_size=32,
            output_dir=str(out),
        )
    cause = _root_cause(info.value)
    assert isinstance(cause, InputFailuresError) and "2 of 5 inputs" in str(cause) and "failures.json" in str(cause)
    summary = json.loads((out / "evaluation_summary.json").read_text())
    assert summary["num_images"] == 3 and summary["num_failed"] == 2
    assert summary["metrics"]["original"]["iou"] == pytest.approx(2 / 3), "the readable cases, as without bad files"
    _check_failures(out, datalist_with_bad_files.parent)
    assert "2 more cases could not be read" in (out / "evaluation_summary.md").read_text()
    assert "2 more cases could not be read" in capsys.readouterr().out


def test_robustness_scores_the_readable_cases_and_fails_at_the_end(
    tmp_path: Path, datalist_with_bad_files: Path, detector_ckpt: str
) -> None:
    out = tmp_path / "rob"
    with pytest.raises(Exception) as info:
        _evaluate(
            "robustness",
            datalist=str(datalist_with_bad_files),
            ckpt_path=detector_ckpt,
            network_def=DETECTOR,
            image_size=32,
            output_dir=str(out),
            robustness_corruptions=["darken"],
            robustness_severities=[3],
        )
    assert isinstance(_root_cause(info.value), InputFailuresError)
    summary = json.loads((out / "robustness.json").read_text())
    assert summary["num_images"] == 3 and summary["num_failed"] == 2
    assert summary["conditions"][0]["iou"] == pytest.approx(2 / 3)
    _check_failures(out, datalist_with_bad_files.parent)
