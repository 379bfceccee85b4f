# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""Tests of NegativeLabeld and of the pipelines on declared negatives (images without foreground, maybe no mask)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from monai.data import DataLoader, Dataset, MetaTensor, decollate_batch
from monai.transforms import Compose, EnsureTyped, Resized
from PIL import Image

from condseg_monai.transforms import (
    InvalidInputError,
    LoadImageRGBd,
    NegativeLabeld,
    condseg_eval_transforms,
    condseg_load_transforms,
    condseg_train_transforms,
)

H, W = 20, 36  # non-square: a transposed zero mask would show up as a shape error


def _files(tmp_path: Path) -> dict[str, str]:
    rng = np.random.default_rng(0)
    image = tmp_path / "frame.png"
    Image.fromarray(rng.integers(0, 256, size=(H, W, 3), dtype=np.uint8)).save(image)
    empty, polyp = tmp_path / "empty.png", tmp_path / "polyp.png"
    Image.fromarray(np.zeros((H, W), np.uint8)).save(empty)
    mask = np.zeros((H, W), np.uint8)
    mask[5:12, 8:20] = 255  # 7 x 12 = 84 foreground pixels
    Image.fromarray(mask).save(polyp)
    return {"image": str(image), "empty": str(empty), "polyp": str(polyp)}


def _cause(info: pytest.ExceptionInfo) -> BaseException:
    err: BaseException = info.value
    while err.__cause__ is not None:  # Compose wraps a transform's error in RuntimeError
        err = err.__cause__
    return err


def test_zero_label_has_the_image_size_and_metadata(tmp_path: Path) -> None:
    f = _files(tmp_path)
    d = NegativeLabeld(keys="label")(LoadImageRGBd(keys="image")({"image": f["image"], "negative": True}))
    label, image = d["label"], d["image"]
    assert isinstance(label, MetaTensor) and label.shape == (1, H, W) and label.dtype == torch.float32
    assert not label.any()
    assert label.meta["filename_or_obj"] == "" and label.meta["negative"] is True
    assert tuple(label.meta["spatial_shape"]) == (H, W) == tuple(image.meta["spatial_shape"])
    torch.testing.assert_close(label.affine, image.affine)
    assert image.meta["filename_or_obj"] == f["image"], "the image's own metadata must stay untouched"
    assert d["negative"] is True
    # a plain tensor image gives a plain zero mask
    plain = NegativeLabeld()({"image": torch.rand(3, H, W), "negative": True})
    assert type(plain["label"]) is torch.Tensor and plain["label"].shape == (1, H, W)


def test_load_transforms_on_every_kind_of_entry(tmp_path: Path) -> None:
    f = _files(tmp_path)
    load = Compose(condseg_load_transforms())
    positive = load({"image": f["image"], "label": f["polyp"]})
    assert positive["negative"] is False and positive["label"].meta["negative"] is False
    assert int(positive["label"].sum()) == 84
    with_empty_mask = load({"image": f["image"], "label": f["empty"], "negative": True})
    assert with_empty_mask["label"].meta["filename_or_obj"] == f["empty"] and not with_empty_mask["label"].any()
    assert with_empty_mask["label"].meta["negative"] is True
    # a declared negative whose mask has foreground: an error naming the mask file
    with pytest.raises(RuntimeError) as info:
        load({"image": f["image"], "label": f["polyp"], "negative": True})
    assert isinstance(_cause(info), InvalidInputError)
    assert f["polyp"] in str(_cause(info)) and "84 foreground pixels" in str(_cause(info))
    # no mask and not declared negative: an error naming the image
    with pytest.raises(RuntimeError) as info:
        load({"image": f["image"]})
    assert isinstance(_cause(info), InvalidInputError)
    assert f["image"] in str(_cause(info)) and '"negative": true' in str(_cause(info))


def test_mixed_batches_collate_in_training_and_evaluation(tmp_path: Path) -> None:
    f = _files(tmp_path)
    data = [
        {"image": f["image"], "negative": True},
        {"image": f["image"], "label": f["polyp"]},
        {"image": f["image"], "label": f["empty"], "negative": True},
    ]
    evaluate = Compose(
        [*condseg_load_transforms(), Resized(["image", "label"], (16, 16)), EnsureTyped(["image", "label"])]
    )
    pipelines = {
        "train": condseg_train_transforms(2, 16, track_meta=False, rotate_prob=0.0, flip_prob=0.0, dropout_prob=0.0),
        "validate": condseg_eval_transforms(16),
        "evaluate.json": evaluate,
    }
    for name, transform in pipelines.items():
        batch = next(iter(DataLoader(Dataset(data, transform), batch_size=3)))
        assert batch["label"].shape == (3, 1, 16, 16), name
        assert batch["negative"].tolist() == [True, False, True], name
        assert batch["label"].flatten(1).sum(1).gt(0).tolist() == [False, True, False], name
        if isinstance(batch["label"], MetaTensor):
            # what the evaluation report reads: no file for the label-less negative, and the original size
            items = decollate_batch(batch)
            assert [i["label"].meta["filename_or_obj"] for i in items] == ["", f["polyp"], f["empty"]]
            assert [bool(i["label"].meta["negative"]) for i in items] == [True, False, True]
            assert all(tuple(int(s) for s in i["label"].meta["spatial_shape"]) == (H, W) for i in items)


def test_images_only_pipelines_are_unchanged() -> None:
    assert not any(isinstance(t, NegativeLabeld) for t in condseg_load_transforms(label_key=None))
    assert sum(isinstance(t, NegativeLabeld) for t in condseg_load_transforms()) == 1
