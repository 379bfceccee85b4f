# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""Tests of the geometric augmentation presets and the full train/eval pipelines."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from monai.transforms import Compose, Invertd, RandCoarseDropoutd, RandRotated
from monai.utils import set_determinism
from PIL import Image

from condseg_monai.transforms import (
    STAGE_AUGMENTATION,
    condseg_eval_transforms,
    condseg_geometric_augmentation,
    condseg_train_transforms,
)


def _square_sample(h: int = 48, w: int = 64) -> dict:
    """Dark textured image with a bright square; the mask is exactly the square."""
    g = torch.Generator().manual_seed(0)
    image = 0.3 * torch.rand(3, h, w, generator=g)
    label = torch.zeros(1, h, w)
    image[:, 14:30, 20:40] = 1.0
    label[:, 14:30, 20:40] = 1.0
    return {"image": MetaTensor(image), "label": MetaTensor(label)}


def test_stage_defaults() -> None:
    assert STAGE_AUGMENTATION == {1: (90.0, 0.5, 0.5), 2: (35.0, 0.3, 0.3)}
    rot, hflip, vflip, drop = condseg_geometric_augmentation(stage=1)
    assert isinstance(rot, RandRotated) and rot.prob == 0.5
    assert rot.rand_rotate.range_x == pytest.approx((-math.pi / 2, math.pi / 2))
    assert hflip.prob == 0.5 and vflip.prob == 0.5
    assert isinstance(drop, RandCoarseDropoutd) and drop.prob == 0.3 and drop.keys == ("image",)
    rot2, hflip2, _, _ = condseg_geometric_augmentation(stage=2)
    assert rot2.prob == 0.3 and hflip2.prob == 0.3
    assert rot2.rand_rotate.range_x == pytest.approx((-math.radians(35), math.radians(35)))
    with pytest.raises(ValueError, match="stage"):
        condseg_geometric_augmentation(stage=3)


@pytest.mark.parametrize("stage", [1, 2])
def test_image_and_mask_stay_aligned(stage: int) -> None:
    """After any draw of rotation/flips, the bright pixels are the mask pixels (up to interpolation at edges)."""
    aug = Compose(condseg_geometric_augmentation(stage, rotate_prob=1.0, flip_prob=0.5, dropout_prob=0.0))
    aug.set_random_state(123)
    changed = 0
    for _ in range(12):
        out = aug(_square_sample())
        image, label = out["image"], out["label"]
        assert image.shape == (3, 48, 64) and label.shape == (1, 48, 64)
        assert set(label.unique().tolist()) <= {0.0, 1.0}  # nearest interpolation keeps the mask binary
        bright = image.min(dim=0).values > 0.95
        dark = image.max(dim=0).values < 0.35
        assert bright.sum() > 100
        assert label[0][bright].min() == 1.0  # every clearly bright pixel is inside the mask
        assert label[0][dark].max() == 0.0  # every clearly dark pixel is outside it
        changed += int(not torch.equal(label, _square_sample()["label"]))
    assert changed >= 10


def test_flips_are_exact_and_joint() -> None:
    rot, hflip, vflip, _ = condseg_geometric_augmentation(2, flip_prob=1.0)
    sample = _square_sample()
    h = hflip(dict(sample))
    assert torch.equal(h["image"], sample["image"].flip(-1)) and torch.equal(h["label"], sample["label"].flip(-1))
    v = vflip(dict(sample))
    assert torch.equal(v["image"], sample["image"].flip(-2)) and torch.equal(v["label"], sample["label"].flip(-2))


def test_rotation_geometry_and_reflect101_padding() -> None:
    rot = condseg_geometric_augmentation(1, rotate_prob=1.0)[0]
    rot.rand_rotate.range_x = (math.pi / 2, math.pi / 2)  # pin the draw to +90 deg
    # a 90 degree rotation of a square image is an exact pixel permutation (align_corners=True), jointly
    img = torch.arange(49, dtype=torch.float32).view(1, 7, 7)
    out = rot({"image": MetaTensor(img), "label": MetaTensor(img.clone())})
    torch.testing.assert_close(out["image"][0], torch.rot90(img[0], -1), atol=1e-4, rtol=0)
    assert torch.equal(out["label"][0], torch.rot90(img[0], -1))
    # border padding mirrors about the edge pixel without repeating it (OpenCV BORDER_REFLECT_101):
    # rotating a 4x8 image by 90 deg keeps the size; columns 0-1 and 6-7 come from the reflection
    strip = torch.arange(32, dtype=torch.float32).view(1, 4, 8)
    out = rot({"image": MetaTensor(strip), "label": MetaTensor(strip.clone())})["label"][0]  # nearest
    assert torch.equal(out[:, 1], out[:, 3]) and torch.equal(out[:, 0], out[:, 4])
    assert torch.equal(out[:, 6], out[:, 4]) and torch.equal(out[:, 7], out[:, 3])
    assert not torch.equal(out[:, 1], out[:, 2])  # the edge column is not duplicated (that would be REFLECT)


def test_dropout_exactly_ten_32px_holes_on_image_only() -> None:
    drop = condseg_geometric_augmentation(2, dropout_prob=1.0)[3]
    drop.set_random_state(5)
    for _ in range(5):
        sample = {"image": MetaTensor(torch.ones(3, 100, 130)), "label": MetaTensor(torch.ones(1, 100, 130))}
        out = drop(sample)
        holes = drop.dropper.hole_coords
        assert len(holes) == 10
        expected = torch.ones(100, 130, dtype=torch.bool)
        for hole in holes:
            ys, xs = hole[1], hole[2]
            assert ys.stop - ys.start == 32 and xs.stop - xs.start == 32
            assert ys.start >= 0 and ys.stop <= 100 and xs.start >= 0 and xs.stop <= 130
            expected[ys, xs] = False
        assert torch.equal(out["image"] != 0, expected.expand(3, -1, -1))  # all channels, filled with 0
        assert torch.equal(out["label"], torch.ones(1, 100, 130))  # mask untouched


def _write_pair(folder: Path, h: int = 40, w: int = 56) -> dict:
    rgb = np.zeros((h, w, 3), np.uint8)
    rgb[..., 1] = 60
    rgb[10:25, 15:40] = 250
    mask = np.zeros((h, w), np.uint8)
    mask[10:25, 15:40] = 255
    Image.fromarray(rgb).save(folder / "img.png")
    Image.fromarray(mask).save(folder / "img_mask.png")
    return {"image": str(folder / "img.png"), "label": str(folder / "img_mask.png")}


def test_train_pipeline_is_reproducible_and_binary(tmp_path: Path) -> None:
    item = _write_pair(tmp_path)
    try:
        set_determinism(seed=3)
        a = [condseg_train_transforms(stage=1, image_size=32)(item) for _ in range(1)][0]
        runs = []
        for _ in range(2):
            set_determinism(seed=3)
            xform = condseg_train_transforms(stage=1, image_size=32)
            runs.append([xform(item) for _ in range(4)])
    finally:
        set_determinism(seed=None)
    assert a["image"].shape == (3, 32, 32) and a["label"].shape == (1, 32, 32)
    for x, y in zip(*runs):
        assert torch.equal(x["image"], y["image"]) and torch.equal(x["label"], y["label"])
        assert set(x["label"].unique().tolist()) <= {0.0, 1.0}  # re-binarised after the bilinear resize
    assert any(not torch.equal(runs[0][0]["image"], r["image"]) for r in runs[0][1:])


def test_eval_pipeline_and_invert(tmp_path: Path) -> None:
    item = _write_pair(tmp_path)
    pre = condseg_eval_transforms(image_size=(24, 32))
    out = pre(item)
    assert out["image"].shape == (3, 24, 32) and out["label"].shape == (1, 24, 32)
    assert set(out["label"].unique().tolist()) == {0.0, 1.0}
    out["pred"] = out["label"].clone()
    restored = Invertd("pred", transform=pre, orig_keys="image", nearest_interp=True)(out)["pred"]
    assert restored.shape == (1, 40, 56)
    truth = np.zeros((40, 56))
    truth[10:25, 15:40] = 1
    assert (restored[0].numpy() == truth).mean() > 0.95
    image_only = condseg_eval_transforms(image_size=16, label_key=None)({"image": item["image"]})
    assert image_only["image"].shape == (3, 16, 16) and "label" not in image_only


REPO = Path(__file__).resolve().parents[2]


def _bundle_pipeline(key: str, stage_config: str | None, **overrides: object) -> Compose:
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    configs = [REPO / "bundle" / "configs" / "train.json"] + ([REPO / "configs" / stage_config] if stage_config else [])
    parser.read_config([str(c) for c in configs])
    for name, value in {"device": "cpu", "image_size": 32, **overrides}.items():
        parser[name] = value
    return parser.get_parsed_content(key)


@pytest.mark.parametrize(("stage_config", "stage"), [("stage1.json", 1), ("stage2.json", 2), (None, 2)])
def test_bundle_runs_these_pipelines(tmp_path: Path, stage_config: str | None, stage: int) -> None:
    """train.json's training, unlabeled and validation pipelines are the builders' (same draws, same outputs)."""
    item = _write_pair(tmp_path)
    cases = [
        ("train#preprocessing", {}, condseg_train_transforms(stage, 32, track_meta=False), item),
        (
            "unlabeled#preprocessing",
            {"semi_supervised": True},
            condseg_train_transforms(stage, 32, label_key=None, track_meta=False, dropout_prob=0.0),
            {"image": item["image"]},
        ),
        ("validate#preprocessing", {}, condseg_eval_transforms(32, track_meta=False), item),
    ]
    for key, overrides, expected, data in cases:
        bundle = _bundle_pipeline(key, stage_config, **overrides)
        assert [type(t) for t in bundle.transforms] == [type(t) for t in expected.transforms], key
        assert [getattr(t, "prob", None) for t in bundle.transforms] == [
            getattr(t, "prob", None) for t in expected.transforms
        ]
        bundle.set_random_state(seed=5)
        expected.set_random_state(seed=5)
        for _ in range(4):  # several draws: the rotation / flip / dropout probabilities must agree too
            a, b = bundle(dict(data)), expected(dict(data))
            assert a.keys() == b.keys()
            for k in a:
                if isinstance(a[k], torch.Tensor):
                    assert a[k].dtype == torch.float32 and not isinstance(a[k], MetaTensor), (key, k)
                    assert torch.equal(a[k], b[k]), (key, k)
    assert _bundle_pipeline("unlabeled#preprocessing", stage_config) is None  # off unless semi-supervised
