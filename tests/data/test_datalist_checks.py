# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""Tests of `check_datalist` / `validate_datalist` on every kind of bad input."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from condseg_monai.data import Problem, check_datalist, validate_datalist


def _datalist(path: Path, training, validation=(), test=()) -> Path:
    def entries(items):
        return [{"image": i, "label": m} for i, m in items]

    path.write_text(
        json.dumps({"training": entries(training), "validation": entries(validation), "test": entries(test)})
    )
    return path


def _rel(paths: tuple[Path, Path], base: Path) -> tuple[str, str]:
    return tuple(str(p.relative_to(base)) for p in paths)


def _errors(problems: list[Problem]) -> list[Problem]:
    return [p for p in problems if p.severity == "error"]


def test_good_inputs_of_every_format_pass(tmp_path: Path, pair_writer) -> None:
    entries = [_rel(pair_writer(tmp_path, f"ok{i}"), tmp_path) for i in range(3)]
    # RGBA, 16-bit, grayscale and palette images
    for name, convert in (
        ("rgba", lambda im: im.convert("RGBA")),
        ("deep", lambda im: Image.fromarray(np.asarray(im)[..., 0].astype(np.uint16) * 257)),
        ("gray", lambda im: im.convert("L")),
        ("pal", lambda im: im.quantize(8)),
    ):
        img, mask = pair_writer(tmp_path, name)
        convert(Image.open(img)).save(img)
        entries.append(_rel((img, mask), tmp_path))
    # 3-channel JPEG mask, GlaS-style instance BMP mask (labels 1 and 2), 0/1 PNG mask
    img, mask = pair_writer(tmp_path, "jpegmask", mask_name="jpegmask.jpg")
    Image.open(mask).convert("RGB").save(mask, quality=75)
    entries.append(_rel((img, mask), tmp_path))
    img, mask = pair_writer(tmp_path, "glas", mask_name="glas_anno.bmp")
    labels = (np.asarray(Image.open(mask)) > 0).astype(np.uint8)
    labels[: labels.shape[0] // 2] *= 2
    Image.fromarray(labels).save(mask)
    entries.append(_rel((img, mask), tmp_path))
    img, mask = pair_writer(tmp_path, "zeroone")
    Image.fromarray((np.asarray(Image.open(mask)) > 0).astype(np.uint8)).save(mask)
    entries.append(_rel((img, mask), tmp_path))
    path = _datalist(tmp_path / "dl.json", entries[:7], entries[7:])
    problems = check_datalist(path, workers=2)
    assert problems == [], [str(p) for p in problems]
    validate_datalist(path)  # no exception


def test_every_bad_input_is_reported_at_once(tmp_path: Path, pair_writer) -> None:
    good = [pair_writer(tmp_path, f"g{i}") for i in range(4)]
    corrupt_img, corrupt_mask = pair_writer(tmp_path, "corrupt")
    corrupt_img.write_bytes(b"garbage")
    empty_img, _ = pair_writer(tmp_path, "empty")
    empty_img.write_bytes(b"")
    trunc_img, _ = pair_writer(tmp_path, "trunc", image_ext=".jpg")
    data = trunc_img.read_bytes()
    trunc_img.write_bytes(data[: len(data) // 2])
    nomask_img, nomask_mask = pair_writer(tmp_path, "nomask")
    nomask_mask.unlink()
    size_img, size_mask = pair_writer(tmp_path, "size")
    Image.fromarray(np.zeros((13, 16), np.uint8)).save(size_mask)
    soft_img, soft_mask = pair_writer(tmp_path, "soft")
    soft = np.tile(np.linspace(0, 255, 16, dtype=np.uint8), (12, 1))  # a soft probability map
    Image.fromarray(soft).save(soft_mask)
    photo_img, photo_mask = pair_writer(tmp_path, "photo", mask_name="photo.jpg")
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)).save(photo_mask)  # a photo as the mask
    blank_img, blank_mask = pair_writer(tmp_path, "blank")
    Image.fromarray(np.zeros((12, 16), np.uint8)).save(blank_mask)
    rel = [_rel(p, tmp_path) for p in good]
    training = [
        _rel((corrupt_img, corrupt_mask), tmp_path),
        _rel((empty_img, corrupt_mask), tmp_path),
        _rel((trunc_img, corrupt_mask), tmp_path),
        _rel((nomask_img, nomask_mask), tmp_path),
        _rel((size_img, size_mask), tmp_path),
        _rel((soft_img, soft_mask), tmp_path),
        _rel((photo_img, photo_mask), tmp_path),
        _rel((blank_img, blank_mask), tmp_path),
        rel[0],
        rel[0],  # duplicate within a split
        rel[1],
    ]
    validation = [rel[1], rel[2]]  # rel[1] overlaps training
    test = [rel[3], rel[2]]  # partial overlap with validation
    path = _datalist(tmp_path / "dl.json", training, validation, test)
    problems = check_datalist(path)
    text = "\n".join(str(p) for p in problems)
    expectations = [
        r"ERROR \[training#0\] '.*corrupt.png': cannot decode image",
        r"ERROR \[training#1\] '.*empty.png': image file is empty \(0 bytes\)",
        r"ERROR \[training#2\] '.*trunc.jpg': cannot decode image: .*(?i:truncated)",
        r"ERROR \[training#3\] '.*nomask.png': mask file does not exist",
        r"ERROR \[training#4\] '.*size.png': size mismatch: image is 12x16 \(HxW\) but mask '.*size.png' is 13x16",
        r"ERROR \[training#5\] '.*soft.png': mask is not binary",
        r"ERROR \[training#6\] '.*photo.jpg': mask is not binary",
        r"WARNING \[training#7\] '.*blank.png': mask is empty",
        r"ERROR \[training#8\] '.*g0.png': duplicate: listed 2 times \(entries \[8, 9\]\)",
        r"ERROR \[training#10\] '.*g1.png': splits overlap: in training and in validation",
        r"ERROR \[validation#1\] '.*g2.png': splits overlap: in validation and in test",
    ]
    for pattern in expectations:
        assert any(re.search(pattern, str(p)) for p in problems), f"{pattern} not in\n{text}"
    assert problems[0].severity == "error" and problems[-1].severity == "warning"  # errors first
    with pytest.raises(ValueError, match=r"(?s)has 10 error\(s\).*corrupt.png.*photo.jpg.*blank.png"):
        validate_datalist(path)
    # restricting the splits restricts the checks
    only_val = check_datalist(path, splits=["validation"])
    assert _errors(only_val) == []
    with pytest.raises(ValueError, match="unknown split"):
        check_datalist(path, splits=["train"])


def test_identical_validation_and_test_is_a_warning(tmp_path: Path, pair_writer) -> None:
    pairs = [_rel(pair_writer(tmp_path, f"c{i}"), tmp_path) for i in range(3)]
    path = _datalist(tmp_path / "dl.json", pairs[:1], pairs[1:], pairs[1:])
    problems = check_datalist(path)
    assert [p.severity for p in problems] == ["warning"]
    assert "validation and test are the same images" in problems[0].message
    validate_datalist(path)  # warnings do not raise


def test_unreadable_or_empty_datalist(tmp_path: Path) -> None:
    problems = check_datalist(tmp_path / "missing.json")
    assert len(problems) == 1 and "does not exist" in problems[0].message
    path = _datalist(tmp_path / "dl.json", [])
    assert "no entries" in check_datalist(path)[0].message
    with pytest.raises(ValueError, match="no entries"):
        validate_datalist(path)


def test_nifti_pairs(tmp_path: Path) -> None:
    import nibabel as nib

    img = np.random.default_rng(0).integers(0, 255, (10, 14), dtype=np.uint8)
    mask = np.zeros((10, 14), np.uint8)
    mask[2:6, 3:9] = 1
    nib.save(nib.Nifti1Image(img, np.eye(4)), tmp_path / "i.nii.gz")
    nib.save(nib.Nifti1Image(mask, np.eye(4)), tmp_path / "m.nii.gz")
    nib.save(nib.Nifti1Image(np.zeros((10, 14, 3, 2), np.uint8), np.eye(4)), tmp_path / "vol.nii.gz")
    path = _datalist(tmp_path / "dl.json", [("i.nii.gz", "m.nii.gz")], [("i.nii.gz", "vol.nii.gz")])
    problems = check_datalist(path)
    assert len(_errors(problems)) == 2  # 3D mask + train/val overlap of i.nii.gz
    assert any("mask is not 2D" in p.message for p in problems)
