# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""Tests of declared negatives (images without foreground): the datalist model, `add_negatives` and
`prepare --negatives-dir`, and the checks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from condseg_monai.data import (
    Datalist,
    DatalistEntry,
    PrepareError,
    add_negatives,
    check_datalist,
    load_datalist,
    prepare_datalist,
    read_datalist,
    write_datalist,
)
from condseg_monai.data.cli import main


def _image(path: Path, value: int = 90, h: int = 12, w: int = 16) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((h, w, 3), value, np.uint8)).save(path)
    return path


def _mask(path: Path, foreground: int = 0, h: int = 12, w: int = 16) -> Path:
    """A 0/255 mask with ``foreground`` pixels in its first row."""
    m = np.zeros((h, w), np.uint8)
    m.flat[:foreground] = 255
    Image.fromarray(m).save(path)
    return path


def _write(path: Path, obj: dict) -> Path:
    path.write_text(json.dumps(obj))
    return path


# --- the datalist model ---------------------------------------------------------------------------------------


def test_label_is_optional_only_for_a_declared_negative(tmp_path: Path) -> None:
    ok = {"training": [{"image": "a.png", "label": "a_m.png"}, {"image": "n.png", "negative": True, "id": "n"}]}
    dl = read_datalist(_write(tmp_path / "ok.json", ok))
    assert dl.training[1].negative and dl.training[1].label is None and not dl.training[0].negative
    assert dl.negative_counts() == {"training": 1, "validation": 0, "test": 0}
    loaded = load_datalist(tmp_path / "ok.json", "training")
    assert loaded == [
        {"image": str(tmp_path / "a.png"), "label": str(tmp_path / "a_m.png")},  # no "negative" key: unchanged
        {"image": str(tmp_path / "n.png"), "negative": True, "id": "n"},  # no "label" key
    ]
    bad = {"training": [{"image": "a.png", "label": "a_m.png"}], "validation": [{"image": "lonely.png"}]}
    with pytest.raises(ValueError, match=r"validation\.0: .*entry of image 'lonely.png' has no 'label'.*\"negative\""):
        read_datalist(_write(tmp_path / "bad.json", bad))
    explicit_false = {"training": [{"image": "x.png", "negative": False}]}
    with pytest.raises(ValueError, match=r"training\.0: .*'x.png' has no 'label'"):
        read_datalist(_write(tmp_path / "false.json", explicit_false))
    with pytest.raises(ValueError, match=r"training\.0\.negative"):
        read_datalist(_write(tmp_path / "str.json", {"training": [{"image": "x.png", "negative": "yes"}]}))


def test_write_round_trip_keeps_labeled_datalists_as_they_were(tmp_path: Path) -> None:
    dl = Datalist(
        training=[
            DatalistEntry(image="a.png", label="a_m.png"),
            DatalistEntry(image="n.png", negative=True),
            DatalistEntry(image="e.png", label="e_m.png", negative=True),
        ]
    )
    raw = json.loads(write_datalist(dl, tmp_path / "dl.json").read_text())
    assert raw["training"] == [
        {"image": "a.png", "label": "a_m.png"},
        {"image": "n.png", "negative": True},
        {"image": "e.png", "label": "e_m.png", "negative": True},
    ]
    assert read_datalist(tmp_path / "dl.json") == dl


# --- add_negatives / prepare --negatives-dir ------------------------------------------------------------------


def _folder_dataset(root: Path, pair_writer, n: int = 6) -> None:
    for i in range(n):
        pair_writer(root, f"p{i}")


def test_prepare_adds_negatives_seeded_and_recorded(tmp_path: Path, pair_writer) -> None:
    _folder_dataset(tmp_path / "raw", pair_writer)
    for i in range(7):
        _image(tmp_path / "neg_a" / f"frame_{i}.png", 10 + i)
        (tmp_path / "neg_a" / f"frame_{i}.txt").write_text("notes")  # not an image suffix: ignored
    # a folder with images/ (and masks/ that are not needed)
    for i in range(3):
        _image(tmp_path / "neg_b" / "images" / f"b{i}.jpg", 50 + i)
    (tmp_path / "neg_b" / "masks").mkdir()
    out = tmp_path / "lists" / "dl.json"
    dl = prepare_datalist(
        "folder",
        tmp_path / "raw",
        out,
        val_count=1,
        seed=4,
        negatives_dirs=[tmp_path / "neg_a", tmp_path / "neg_b"],
        negatives_val_fraction=0.3,
    )
    # 10 negatives: floor(0.3 x 10 + 0.5) = 3 to validation, 7 to training; none to test
    assert dl.negative_counts() == {"training": 7, "validation": 3, "test": 0}
    assert dl.counts() == {"training": 5 + 7, "validation": 1 + 3, "test": 0}
    negatives = [e for s in ("training", "validation") for e in dl.split(s) if e.negative]
    assert all(e.label is None for e in negatives)
    names = sorted(Path(e.image).name for e in negatives)
    assert names == sorted([f"frame_{i}.png" for i in range(7)] + ["b0.jpg", "b1.jpg", "b2.jpg"])
    assert all(e.image.startswith("../") for e in negatives), "paths relative to the datalist folder"
    record = read_datalist(out).negatives
    assert record["dirs"] == [str((tmp_path / "neg_a").resolve()), str((tmp_path / "neg_b" / "images").resolve())]
    assert record["counts"] == {"training": 7, "validation": 3}
    assert record["seed"] == 4 and record["val_fraction"] == 0.3 and "random.Random(seed)" in record["rule"]
    # the split of the negatives is seeded: same seed, same split; another seed, another split
    again = prepare_datalist(
        "folder", tmp_path / "raw", tmp_path / "again.json", val_count=1, seed=4,
        negatives_dirs=[tmp_path / "neg_a", tmp_path / "neg_b"], negatives_val_fraction=0.3,
    )  # fmt: skip
    val = {Path(e.image).name for e in dl.validation if e.negative}
    assert {Path(e.image).name for e in again.validation if e.negative} == val
    other = [
        {Path(e.image).name for e in add_negatives(Datalist(), [tmp_path / "neg_a"], 0.5, seed).validation}
        for seed in range(6)
    ]
    assert len({frozenset(s) for s in other}) > 1 and all(len(s) == 4 for s in other)  # floor(3.5 + 0.5) = 4


def test_add_negatives_errors(tmp_path: Path) -> None:
    _image(tmp_path / "neg" / "a.png")
    (tmp_path / "empty").mkdir()
    with pytest.raises(PrepareError, match="is not a folder"):
        add_negatives(Datalist(), [tmp_path / "missing"], base_dir=tmp_path)
    with pytest.raises(PrepareError, match="holds no image file"):
        add_negatives(Datalist(), [tmp_path / "empty"], base_dir=tmp_path)
    with pytest.raises(ValueError, match=r"fraction must be in \[0, 1\]"):
        add_negatives(Datalist(), [tmp_path / "neg"], val_fraction=1.5, base_dir=tmp_path)
    listed = Datalist(training=[DatalistEntry(image="neg/a.png", label="m.png")])
    with pytest.raises(PrepareError, match=r"(?s)already in the datalist.*a\.png"):
        add_negatives(listed, [tmp_path / "neg"], base_dir=tmp_path)
    with pytest.raises(PrepareError, match="already in the datalist"):  # the same folder twice
        add_negatives(Datalist(), [tmp_path / "neg", tmp_path / "neg"], base_dir=tmp_path)
    once = add_negatives(Datalist(), [tmp_path / "neg"], val_fraction=0.0, base_dir=tmp_path)
    twice = add_negatives(once, [_image(tmp_path / "more" / "b.png").parent], val_fraction=1.0, base_dir=tmp_path)
    assert [e.image for e in twice.training] == ["neg/a.png"] and [e.image for e in twice.validation] == ["more/b.png"]
    assert twice.negatives["previous"] == once.negatives


def test_cli_prepare_and_check_count_negatives(tmp_path: Path, pair_writer, capsys: pytest.CaptureFixture) -> None:
    _folder_dataset(tmp_path / "raw", pair_writer)
    for i in range(5):
        _image(tmp_path / "neg" / f"n{i}.png", 20 + i)
    out = tmp_path / "dl.json"
    args = ["prepare", "folder", "--root", str(tmp_path / "raw"), "--out", str(out), "--val-count", "1"]
    assert main([*args, "--negatives-dir", str(tmp_path / "neg"), "--negatives-val-fraction", "0.4"]) == 0
    # 5 negatives: floor(0.4 x 5 + 0.5) = 2 to validation
    assert "training 8 (3 negative), validation 3 (2 negative), test 0" in capsys.readouterr().out
    assert main(["check", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "mask is empty" not in printed
    assert "(training 8 (3 negative), validation 3 (2 negative), test 0)" in printed
    assert "0 error(s), 0 warning(s)" in printed


# --- the checks -------------------------------------------------------------------------------------------------


def test_check_declared_and_undeclared_empty_masks(tmp_path: Path, pair_writer) -> None:
    img, mask = pair_writer(tmp_path, "pos")
    neg_plain = _image(tmp_path / "neg" / "plain.png")
    neg_empty = _image(tmp_path / "neg" / "empty.png")
    neg_bad = _image(tmp_path / "neg" / "bad.png")
    undeclared = _image(tmp_path / "neg" / "undeclared.png")
    empty_mask = _mask(tmp_path / "neg" / "empty_m.png")
    bad_mask = _mask(tmp_path / "neg" / "bad_m.png", foreground=5)
    undeclared_mask = _mask(tmp_path / "neg" / "undeclared_m.png")
    dl = {
        "training": [
            {"image": str(img), "label": str(mask)},
            {"image": str(neg_plain), "negative": True},
            {"image": str(neg_empty), "label": str(empty_mask), "negative": True},
            {"image": str(neg_bad), "label": str(bad_mask), "negative": True},
            {"image": str(undeclared), "label": str(undeclared_mask)},
        ]
    }
    problems = check_datalist(_write(tmp_path / "dl.json", dl))
    found = {(p.severity, p.file, p.index): p.message for p in problems}
    assert set(found) == {("error", str(bad_mask), 3), ("warning", str(undeclared_mask), 4)}, problems
    assert "declared negative has foreground: 5 of 192 pixels" in found[("error", str(bad_mask), 3)]
    assert "mask is empty" in found[("warning", str(undeclared_mask), 4)]


def test_check_negative_without_mask_checks_its_image(tmp_path: Path) -> None:
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    problems = check_datalist(
        _write(tmp_path / "dl.json", {"training": [{"image": str(tmp_path / "gone.png"), "negative": True}],
                                      "validation": [{"image": str(broken), "negative": True}]})
    )  # fmt: skip
    assert [(p.severity, p.split, p.message.split(":")[0]) for p in problems] == [
        ("error", "training", "image file does not exist"),
        ("error", "validation", "cannot decode image"),
    ]


def test_leakage_and_duplicates_include_negatives(tmp_path: Path, pair_writer) -> None:
    img, mask = pair_writer(tmp_path, "pos")
    neg = _image(tmp_path / "neg" / "n.png")
    dl = {
        "training": [{"image": str(img), "label": str(mask)}, {"image": str(neg), "negative": True}],
        "validation": [{"image": str(neg), "negative": True}, {"image": str(img), "label": str(mask)}],
        "test": [{"image": str(neg), "negative": True}, {"image": str(neg), "negative": True}],
    }
    errors = [p for p in check_datalist(_write(tmp_path / "dl.json", dl)) if p.severity == "error"]
    messages = {(p.file, p.message.split(":")[0]) for p in errors}
    assert (str(neg), "splits overlap") in messages  # a negative in training and in validation/test
    assert (str(neg), "duplicate") in messages  # the same negative twice in test
    assert (str(img), "splits overlap") in messages
