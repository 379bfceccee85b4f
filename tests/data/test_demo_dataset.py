# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""Tests of the synthetic demo dataset."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from condseg_monai.data import check_datalist, generate_demo_dataset, is_demo_data, load_datalist, make_demo_pair
from condseg_monai.transforms import LoadImageRGBd, LoadMaskd


def test_layout_counts_and_loading(tmp_path: Path) -> None:
    path = generate_demo_dataset(tmp_path / "demo", num_train=6, num_val=2, num_test=2, image_size=64, seed=0)
    assert path == tmp_path / "demo" / "datalist.json"
    train = load_datalist(path, "training")
    assert len(train) == 6 and len(load_datalist(path, "validation")) == 2 and len(load_datalist(path, "test")) == 2
    load = [LoadImageRGBd("image"), LoadMaskd("label")]
    fractions = []
    for item in train:
        for xform in load:
            item = xform(item)
        assert item["image"].shape == (3, 64, 64) and item["label"].shape == (1, 64, 64)
        assert set(item["label"].unique().tolist()) == {0.0, 1.0}
        fractions.append(float(item["label"].mean()))
        # the blobs are visible: the foreground differs in colour from the background on average
        fg, bg = item["label"][0] > 0, item["label"][0] == 0
        diff = (item["image"][:, fg].mean(1) - item["image"][:, bg].mean(1)).abs().max()
        assert diff > 0.02
    assert min(fractions) > 0.02 and max(fractions) < 0.6 and np.mean(fractions) > 0.08
    masks = [np.asarray(Image.open(p)) for p in sorted((tmp_path / "demo" / "masks").iterdir())]
    assert all(set(np.unique(m)) <= {0, 255} for m in masks)
    assert check_datalist(path) == []


def test_deterministic_and_idempotent(tmp_path: Path) -> None:
    a = generate_demo_dataset(tmp_path / "a", num_train=3, num_val=1, num_test=0, image_size=(40, 56), seed=5)
    b = generate_demo_dataset(tmp_path / "b", num_train=3, num_val=1, num_test=0, image_size=(40, 56), seed=5)
    for sub in ("images", "masks"):
        for f in (tmp_path / "a" / sub).iterdir():
            assert f.read_bytes() == (tmp_path / "b" / sub / f.name).read_bytes()
    stamp = {f: f.stat().st_mtime_ns for f in (tmp_path / "a").rglob("*") if f.is_file()}
    assert generate_demo_dataset(tmp_path / "a", num_train=3, num_val=1, num_test=0, image_size=(40, 56), seed=5) == a
    assert stamp == {f: f.stat().st_mtime_ns for f in (tmp_path / "a").rglob("*") if f.is_file()}  # nothing rewritten
    assert np.asarray(Image.open(tmp_path / "a" / "images" / "demo_0000.png")).shape == (40, 56, 3)
    # other settings regenerate; a missing file regenerates
    generate_demo_dataset(tmp_path / "a", num_train=3, num_val=1, num_test=0, image_size=(40, 56), seed=6)
    assert (tmp_path / "a" / "images" / "demo_0000.png").read_bytes() != (
        tmp_path / "b" / "images" / "demo_0000.png"
    ).read_bytes()
    (tmp_path / "b" / "masks" / "demo_0001.png").unlink()
    generate_demo_dataset(tmp_path / "b", num_train=3, num_val=1, num_test=0, image_size=(40, 56), seed=5)
    assert (tmp_path / "b" / "masks" / "demo_0001.png").is_file()
    assert b.is_file()


def test_size_range_and_errors(tmp_path: Path) -> None:
    sizes = {make_demo_pair(0, i, ((32, 48), (40, 80)))[0].shape[:2] for i in range(8)}
    assert len(sizes) > 1 and all(32 <= h <= 48 and 40 <= w <= 80 for h, w in sizes)
    img, mask = make_demo_pair(1, 0, 32)
    assert img.dtype == np.uint8 and mask.dtype == np.uint8 and img.shape == (32, 32, 3)
    assert torch.equal(torch.from_numpy(make_demo_pair(1, 0, 32)[0]), torch.from_numpy(img))
    with pytest.raises(ValueError, match="image_size"):
        generate_demo_dataset(tmp_path, image_size=(8, 8))
    with pytest.raises(ValueError, match="num_train"):
        generate_demo_dataset(tmp_path, num_train=-1)
    with pytest.raises(ValueError, match="at least one"):
        generate_demo_dataset(tmp_path, num_train=0, num_val=0, num_test=0)


def test_is_demo_data(tmp_path: Path) -> None:
    path = generate_demo_dataset(tmp_path / "demo", num_train=2, num_val=1, num_test=1, image_size=32, seed=0)
    items = load_datalist(path, "training")
    assert is_demo_data(items, tmp_path / "demo")
    assert is_demo_data([], tmp_path / "demo")  # nothing injected: the demo data is used
    assert not is_demo_data(items + [{"image": str(tmp_path / "elsewhere" / "x.png")}], tmp_path / "demo")
    assert not is_demo_data(items, tmp_path / "other")
