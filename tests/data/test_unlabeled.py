# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""Tests of unlabeled images: the datalist model and loader, `keep_labeled`, `add_unlabeled` and the checks."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from condseg_monai.data import (
    SPLITS,
    UNLABELED,
    Datalist,
    DatalistEntry,
    PrepareError,
    UnlabeledEntry,
    add_unlabeled,
    check_datalist,
    keep_labeled,
    labeled_budget_size,
    load_datalist,
    read_datalist,
    validate_datalist,
    validate_unlabeled,
    write_datalist,
)


def _image(path: Path, value: int = 90, h: int = 12, w: int = 16) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((h, w, 3), value, np.uint8)).save(path)
    return path


def _labeled(tmp_path: Path, pair_writer, n_train: int = 3, n_val: int = 1) -> dict:
    """A datalist dict (paths relative to ``tmp_path``) with ``n_train`` training and ``n_val`` validation pairs."""

    def entries(prefix: str, n: int) -> list[dict]:
        out = []
        for i in range(n):
            img, mask = pair_writer(tmp_path, f"{prefix}{i}")
            out.append({"image": str(img.relative_to(tmp_path)), "label": str(mask.relative_to(tmp_path))})
        return out

    return {"training": entries("tr", n_train), "validation": entries("va", n_val), "test": []}


def _write(path: Path, obj: dict) -> Path:
    path.write_text(json.dumps(obj))
    return path


def _datalist(n: int) -> Datalist:
    return Datalist(
        name="toy",
        training=[DatalistEntry(image=f"images/{i}.png", label=f"masks/{i}.png", id=str(i)) for i in range(n)],
        validation=[DatalistEntry(image="images/v.png", label="masks/v.png")],
        test=[DatalistEntry(image="images/t.png", label="masks/t.png")],
        unlabeled=[UnlabeledEntry(image="extra/u.png")],
    )


# --- datalist model and loader ------------------------------------------------------------------------------


def test_unlabeled_constant_and_splits() -> None:
    assert UNLABELED == "unlabeled"
    assert UNLABELED not in SPLITS and SPLITS == ("training", "validation", "test")
    assert Datalist().unlabeled == [] and Datalist().label_budget is None


def test_load_unlabeled_resolves_like_labeled_splits(tmp_path: Path) -> None:
    sub = tmp_path / "lists"
    sub.mkdir()
    path = _write(
        sub / "dl.json",
        {
            "training": [{"image": "../img/a.png", "label": "../msk/a.png"}],
            "unlabeled": [{"image": "../raw/u.png", "id": "u"}, {"image": "/abs/v.png"}],
        },
    )
    assert load_datalist(path, UNLABELED) == [
        {"image": str(tmp_path / "raw" / "u.png"), "id": "u"},  # extra keys kept
        {"image": "/abs/v.png"},
    ]
    assert load_datalist(path, "training")[0]["image"] == str(tmp_path / "img" / "a.png")
    no_key = _write(tmp_path / "nokey.json", {"training": [{"image": "a.png", "label": "b.png"}]})
    assert load_datalist(no_key, UNLABELED) == []
    with pytest.raises(ValueError, match=r"split 'unlabeled' of datalist '.*nokey.json' is empty"):
        load_datalist(no_key, UNLABELED, required=True)
    with pytest.raises(ValueError, match="unknown split 'unlabelled'"):
        load_datalist(no_key, "unlabelled")


def test_unlabeled_entry_needs_an_image(tmp_path: Path) -> None:
    path = _write(tmp_path / "bad.json", {"unlabeled": [{"id": "x"}]})
    with pytest.raises(ValueError, match=r"bad.json' is malformed: unlabeled\.0\.image"):
        read_datalist(path)


def test_write_leaves_out_an_empty_unlabeled_list(tmp_path: Path) -> None:
    dl = Datalist(training=[DatalistEntry(image="a.png", label="b.png")])
    raw = json.loads(write_datalist(dl, tmp_path / "dl.json").read_text())
    assert UNLABELED not in raw and "label_budget" not in raw
    dl.unlabeled = [UnlabeledEntry(image="u.png", id="u")]
    raw = json.loads(write_datalist(dl, tmp_path / "dl.json").read_text())
    assert raw[UNLABELED] == [{"image": "u.png", "id": "u"}]
    assert read_datalist(tmp_path / "dl.json") == dl


# --- keep_labeled -------------------------------------------------------------------------------------------


def test_keep_labeled_count_moves_the_rest_to_unlabeled() -> None:
    dl = _datalist(10)
    out = keep_labeled(dl, count=3, seed=1)
    assert len(out.training) == 3 and len(out.unlabeled) == 1 + 7
    kept = [e.id for e in out.training]
    assert kept == sorted(kept, key=int)  # original order
    moved = out.unlabeled[1:]
    assert [e.id for e in moved] == [str(i) for i in range(10) if str(i) not in kept]  # original order
    assert all(not hasattr(e, "label") and "label" not in e.model_dump() for e in moved)
    assert [e.image for e in moved] == [f"images/{e.id}.png" for e in moved]
    assert out.unlabeled[0].image == "extra/u.png"  # existing unlabeled kept, first
    assert out.validation == dl.validation and out.test == dl.test
    assert len(dl.training) == 10 and len(dl.unlabeled) == 1  # input untouched
    assert out.label_budget == {
        "labeled": 3,
        "training_pairs": 10,
        "moved_to_unlabeled": 7,
        "count": 3,
        "seed": 1,
        "rule": out.label_budget["rule"],
        "source": "toy",
    }


def test_keep_labeled_is_seeded_and_nested() -> None:
    dl = _datalist(40)
    a, b = keep_labeled(dl, count=10, seed=0), keep_labeled(dl, count=10, seed=0)
    assert a == b
    assert keep_labeled(dl, count=10, seed=1).training != a.training
    small = {e.id for e in keep_labeled(dl, count=4, seed=0).training}
    assert small < {e.id for e in a.training}  # budgets of one seed are nested
    # the documented rule
    import random

    order = list(range(40))
    random.Random(0).shuffle(order)
    assert [e.id for e in a.training] == [str(i) for i in sorted(order[:10])]


@pytest.mark.parametrize(
    ("n", "fraction", "k"), [(800, 0.1, 80), (880, 0.1, 88), (10, 0.25, 3), (10, 0.01, 1), (7, 1.0, 7)]
)
def test_labeled_fraction_rounding(n: int, fraction: float, k: int) -> None:
    assert labeled_budget_size(n, fraction=fraction) == k
    out = keep_labeled(_datalist(n), fraction=fraction)
    assert len(out.training) == k and out.label_budget["fraction"] == fraction
    assert len(out.unlabeled) == 1 + n - k


def test_keep_labeled_records_previous_budget() -> None:
    once = keep_labeled(_datalist(10), count=5, seed=0)
    twice = keep_labeled(once, count=2, seed=3)
    assert twice.label_budget["previous"] == once.label_budget
    assert {e.id for e in twice.training} <= {e.id for e in once.training}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "exactly one of count"),
        ({"count": 2, "fraction": 0.5}, "exactly one of count"),
        ({"count": 11}, r"integer in 1\.\.10 .* got 11"),
        ({"count": 0}, r"integer in 1\.\.10 .* got 0"),
        ({"fraction": 0.0}, r"fraction must be in \(0, 1\], got 0.0"),
        ({"fraction": 1.5}, r"fraction must be in \(0, 1\], got 1.5"),
    ],
)
def test_keep_labeled_errors(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        keep_labeled(_datalist(10), **kwargs)


def test_keep_labeled_needs_training_pairs() -> None:
    with pytest.raises(ValueError, match="no training pairs"):
        keep_labeled(Datalist(), count=1)


# --- checks -------------------------------------------------------------------------------------------------


def test_good_unlabeled_images_pass(tmp_path: Path, pair_writer) -> None:
    obj = _labeled(tmp_path, pair_writer)
    obj[UNLABELED] = [{"image": f"raw/u{i}.png"} for i in range(3)]
    for i in range(3):
        _image(tmp_path / "raw" / f"u{i}.png", 10 + i)
    _image(tmp_path / "raw" / "u2.jpg", 12)
    obj[UNLABELED].append({"image": "raw/u2.jpg"})
    path = _write(tmp_path / "dl.json", obj)
    assert check_datalist(path) == []
    validate_datalist(path, require_unlabeled=True)
    assert validate_unlabeled(path, required=True) == 4


def test_bad_unlabeled_images_are_all_named(tmp_path: Path, pair_writer) -> None:
    obj = _labeled(tmp_path, pair_writer)
    good = _image(tmp_path / "raw" / "good.png", 10)
    (tmp_path / "raw" / "empty.png").write_bytes(b"")
    _image(tmp_path / "raw" / "cut.png", 20, 64, 64)
    (tmp_path / "raw" / "cut.png").write_bytes((tmp_path / "raw" / "cut.png").read_bytes()[:60])
    _image(tmp_path / obj["validation"][0]["image"], 77)  # unlike the other labeled images, all alike
    shutil.copy(tmp_path / obj["validation"][0]["image"], tmp_path / "raw" / "copy_of_val.png")
    os.symlink(tmp_path / obj["training"][1]["image"], tmp_path / "raw" / "link.png")
    obj[UNLABELED] = [
        {"image": "raw/good.png"},
        {"image": "raw/missing.png"},
        {"image": "raw/empty.png"},
        {"image": "raw/cut.png"},
        {"image": obj["training"][0]["image"]},  # listed path of a labeled image
        {"image": "raw/link.png"},  # symlink to a labeled image
        {"image": "raw/copy_of_val.png"},  # same bytes as a validation image
        {"image": str(good)},  # absolute path of entry 0
    ]
    path = _write(tmp_path / "dl.json", obj)
    problems = check_datalist(path)
    errors = {(p.split, p.index): str(p) for p in problems if p.severity == "error"}
    assert set(errors) == {(UNLABELED, i) for i in range(1, 8)}, [str(p) for p in problems]
    assert "missing.png': image file does not exist" in errors[(UNLABELED, 1)]
    assert "empty.png': image file is empty" in errors[(UNLABELED, 2)]
    assert "cut.png': cannot decode image" in errors[(UNLABELED, 3)]
    assert re.search(r"tr0\.png': unlabeled image is also labeled \(training entry 0\)", errors[(UNLABELED, 4)])
    assert re.search(r"link\.png': unlabeled image is also labeled \(training entry 1\)", errors[(UNLABELED, 5)])
    assert re.search(
        r"copy_of_val\.png': unlabeled image has the same content as labeled image '.*va0\.png' \(validation entry 0\)",
        errors[(UNLABELED, 6)],
    )
    assert "good.png': duplicate: same file as unlabeled entry 0" in errors[(UNLABELED, 7)]
    with pytest.raises(ValueError, match="7 error") as e:
        validate_datalist(path)
    for name in ("missing.png", "empty.png", "cut.png", "tr0.png", "link.png", "copy_of_val.png", "good.png"):
        assert name in str(e.value)
    with pytest.raises(ValueError, match="7 error"):
        validate_unlabeled(path, required=False)


def test_unlabeled_list_without_usable_image_is_an_error(tmp_path: Path, pair_writer) -> None:
    obj = _labeled(tmp_path, pair_writer)
    obj[UNLABELED] = [{"image": "raw/gone0.png"}, {"image": "raw/gone1.png"}]
    path = _write(tmp_path / "dl.json", obj)
    problems = [str(p) for p in check_datalist(path) if p.split is None]
    assert len(problems) == 1
    assert re.search(
        r"'unlabeled' list has no usable image \(2 listed, none usable: '.*gone0.png', '.*gone1.png'\)", problems[0]
    )
    obj[UNLABELED] = []
    path = _write(tmp_path / "dl.json", obj)
    assert [p.message for p in check_datalist(path)] == ["the 'unlabeled' list has no usable image (it is empty)"]


def test_semi_supervised_requires_unlabeled_images(tmp_path: Path, pair_writer) -> None:
    obj = _labeled(tmp_path, pair_writer)
    path = _write(tmp_path / "dl.json", obj)
    assert check_datalist(path) == []  # no unlabeled key: fine for supervised training
    validate_datalist(path)
    assert validate_unlabeled(path, required=False) == 0
    message = rf"semi-supervised training is on, but datalist '{re.escape(str(path))}' has no usable 'unlabeled' images"
    with pytest.raises(ValueError, match=message):
        validate_unlabeled(path, required=True)
    with pytest.raises(ValueError, match=message):
        validate_datalist(path, require_unlabeled=True)
    obj[UNLABELED] = [{"image": obj["training"][0]["image"]}]
    path = _write(tmp_path / "dl.json", obj)
    with pytest.raises(ValueError, match=message + r" \(1 listed, none usable: '.*tr0\.png'\)"):
        validate_unlabeled(path, required=True)


def test_unlabeled_split_selection(tmp_path: Path, pair_writer) -> None:
    obj = _labeled(tmp_path, pair_writer)
    obj[UNLABELED] = [{"image": "raw/missing.png"}, {"image": obj["training"][2]["image"]}]
    obj["training"].append({"image": "images/nope.png", "label": "masks/nope.png"})
    path = _write(tmp_path / "dl.json", obj)
    only = check_datalist(path, splits=[UNLABELED])
    assert {p.split for p in only} == {UNLABELED, None}  # labeled pairs not decoded, but compared with
    assert any("also labeled (training entry 2)" in p.message for p in only)
    labeled_only = check_datalist(path, splits=["validation"])
    assert labeled_only == []
    with pytest.raises(ValueError, match="unknown split"):
        check_datalist(path, splits=["unlabelled"])


# --- add_unlabeled ------------------------------------------------------------------------------------------


def test_add_unlabeled_lists_every_image_file(tmp_path: Path) -> None:
    folder = tmp_path / "pool"
    for name in ("b10.png", "b2.jpg", "c.tif", "d.JPEG"):
        _image(folder / name)
    (folder / "notes.txt").write_text("x")
    (folder / ".hidden.png").write_bytes(b"")
    (folder / "sub").mkdir()
    _image(folder / "sub" / "deep.png")
    dl = _datalist(2)
    out = add_unlabeled(dl, folder, base_dir=tmp_path)
    assert [e.image for e in out.unlabeled] == [
        "extra/u.png",
        "pool/b2.jpg",
        "pool/b10.png",
        "pool/c.tif",
        "pool/d.JPEG",
    ]
    assert len(dl.unlabeled) == 1
    absolute = add_unlabeled(Datalist(), folder, base_dir=tmp_path, relative=False)
    assert absolute.unlabeled[0].image == str((folder / "b2.jpg").resolve())
    only_png = add_unlabeled(Datalist(), folder, base_dir=tmp_path, extensions=(".png",))
    assert [e.image for e in only_png.unlabeled] == ["pool/b10.png"]


def test_add_unlabeled_errors_name_the_files(tmp_path: Path) -> None:
    with pytest.raises(PrepareError, match="is not a folder"):
        add_unlabeled(Datalist(), tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(PrepareError, match="holds no image file"):
        add_unlabeled(Datalist(), tmp_path / "empty")
    _image(tmp_path / "images" / "0.png")
    _image(tmp_path / "images" / "new.png")
    with pytest.raises(PrepareError, match=r"already in the datalist:\n  .*images/0\.png$"):
        add_unlabeled(_datalist(1), tmp_path / "images", base_dir=tmp_path)


# --- prepare, command line, demo ------------------------------------------------------------------------------


def _raw_folder(tmp_path: Path, pair_writer, n: int = 10) -> Path:
    raw = tmp_path / "raw"
    for i in range(n):
        img, _ = pair_writer(raw, f"case{i}")
        _image(img, 20 + i)  # distinct contents, so no image is a copy of another
    return raw


def test_prepare_with_budget_and_unlabeled_dirs(tmp_path: Path, pair_writer) -> None:
    from condseg_monai.data import prepare_datalist

    raw = _raw_folder(tmp_path, pair_writer)
    for i in range(2):
        _image(tmp_path / "pool" / f"u{i}.png", 200 + i)
    _image(tmp_path / "pool2" / "w.jpg", 230)
    full = prepare_datalist("folder", raw, tmp_path / "full.json", seed=0, val_count=2)
    out = tmp_path / "lists" / "scarce.json"
    dl = prepare_datalist(
        "folder",
        raw,
        out,
        seed=0,
        val_count=2,
        labeled_fraction=0.25,
        unlabeled_dirs=[tmp_path / "pool", tmp_path / "pool2"],
    )
    assert full.counts() == {"training": 8, "validation": 2, "test": 0}
    assert dl.counts() == {"training": 2, "validation": 2, "test": 0}
    assert len(dl.unlabeled) == 6 + 3
    assert [e.image for e in dl.unlabeled[-3:]] == ["../pool/u0.png", "../pool/u1.png", "../pool2/w.jpg"]
    assert dl.label_budget["labeled"] == 2 and dl.label_budget["seed"] == 0 and dl.label_budget["source"] == "folder"
    assert read_datalist(out) == dl
    # validation untouched, the moved images are the other training images
    val = [os.path.basename(e.image) for e in dl.validation]
    assert val == [os.path.basename(e.image) for e in full.validation]
    train_all = {os.path.basename(e.image) for e in full.training}
    moved = {os.path.basename(e.image) for e in dl.unlabeled[:6]}
    assert moved | {os.path.basename(e.image) for e in dl.training} == train_all
    assert check_datalist(out) == []
    validate_unlabeled(out, required=True)
    items = load_datalist(out, UNLABELED)
    assert all(Path(d["image"]).is_file() and set(d) == {"image"} for d in items)
    with pytest.raises(PrepareError, match="already in the datalist"):
        prepare_datalist("folder", raw, tmp_path / "x.json", val_count=2, unlabeled_dirs=[raw / "images"])


def test_cli_prepare_budget_and_check(tmp_path: Path, pair_writer, capsys) -> None:
    from condseg_monai.data.cli import main

    raw = _raw_folder(tmp_path, pair_writer)
    _image(tmp_path / "pool" / "u0.png", 201)
    out = tmp_path / "dl.json"
    argv = ["prepare", "folder", "--root", str(raw), "--out", str(out), "--val-count", "2", "--seed", "3"]
    assert main([*argv, "--labeled-count", "3", "--unlabeled-dir", str(tmp_path / "pool")]) == 0
    printed = capsys.readouterr().out
    assert "training 3, validation 2, test 0, unlabeled 6 (labeled 3 of 8 training pairs, seed 3)" in printed
    assert main(["check", str(out), "--require-unlabeled"]) == 0
    assert "unlabeled 6" in capsys.readouterr().out
    assert main([*argv, "--labeled-fraction", "1.5"]) == 1
    assert "labeled fraction must be in (0, 1], got 1.5" in capsys.readouterr().err
    assert main([*argv, "--labeled-count", "9"]) == 1
    assert "integer in 1..8" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # mutually exclusive
        main([*argv, "--labeled-count", "2", "--labeled-fraction", "0.5"])
    capsys.readouterr()
    # a labeled-only datalist fails the semi-supervised check, naming the datalist
    assert main([*argv]) == 0
    capsys.readouterr()
    assert main(["check", str(out), "--require-unlabeled"]) == 1
    assert f"semi-supervised training is on, but datalist '{out}'" in capsys.readouterr().out
    # an unlabeled image that is also labeled, named by the check
    obj = json.loads(out.read_text())
    obj[UNLABELED] = [{"image": obj["validation"][0]["image"]}]
    _write(out, obj)
    assert main(["check", str(out), "--splits", UNLABELED]) == 1
    found = capsys.readouterr().out
    assert (
        f"'{tmp_path / obj['validation'][0]['image']}': unlabeled image is also labeled (validation entry 0)" in found
    )


def test_demo_with_unlabeled_images(tmp_path: Path) -> None:
    from condseg_monai.data import generate_demo_dataset

    plain = generate_demo_dataset(tmp_path / "plain", num_train=2, num_val=1, num_test=0, image_size=32)
    assert UNLABELED not in json.loads(plain.read_text())
    assert json.loads(plain.read_text())["demo_settings"]["num"] == [2, 1, 0]  # as before: folders stay valid
    path = generate_demo_dataset(tmp_path / "semi", num_train=2, num_val=1, num_test=0, image_size=32, num_unlabeled=3)
    dl = read_datalist(path)
    assert [e.image for e in dl.unlabeled] == [f"unlabeled/demo_{i:04d}.png" for i in range(3, 6)]
    assert not (tmp_path / "semi" / "masks" / "demo_0003.png").exists()
    assert (tmp_path / "semi" / "images" / "demo_0000.png").read_bytes() == (
        tmp_path / "plain" / "images" / "demo_0000.png"
    ).read_bytes()  # the labeled pairs do not depend on num_unlabeled
    assert validate_unlabeled(path, required=True) == 3
    assert check_datalist(path) == []
    mtime = path.stat().st_mtime_ns
    assert generate_demo_dataset(tmp_path / "semi", 2, 1, 0, 32, num_unlabeled=3) == path
    assert path.stat().st_mtime_ns == mtime  # idempotent
    with pytest.raises(ValueError, match="num_unlabeled must be a non-negative integer"):
        generate_demo_dataset(tmp_path / "x", num_unlabeled=-1)
