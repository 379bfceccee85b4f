# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""Tests on the real shared data (Kvasir-SEG 880 pairs, 5 ISIC pairs); skipped when it is absent."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from condseg_monai.data import check_datalist, load_datalist, prepare_datalist, validate_unlabeled
from condseg_monai.transforms import condseg_eval_transforms, condseg_train_transforms

pytestmark = pytest.mark.slow


def test_kvasir_seg_recipe_800_80(shared_data: Path, tmp_path: Path) -> None:
    root = shared_data / "kvasir-seg"
    if not root.is_dir():
        pytest.skip(f"{root} not found")
    out = tmp_path / "kvasir.json"
    dl = prepare_datalist("folder", root, out, seed=0, val_count=80)
    assert dl.counts() == {"training": 800, "validation": 80, "test": 0}
    again = prepare_datalist("folder", root, tmp_path / "again.json", seed=0, val_count=80)
    assert again.validation == dl.validation  # the documented split is reproducible
    problems = check_datalist(out, splits=["validation"])  # 80 full-size pairs; the 880 take ~7 s
    assert problems == [], [str(p) for p in problems]
    items = load_datalist(out, "validation")[:3]
    train = condseg_train_transforms(stage=1, image_size=64)
    train.set_random_state(0)
    for item in items:
        sample = train(item)
        assert sample["image"].shape == (3, 64, 64) and sample["label"].shape == (1, 64, 64)
        assert set(sample["label"].unique().tolist()) <= {0.0, 1.0} and sample["label"].sum() > 0
        original = condseg_eval_transforms(image_size=64)(item)
        assert original["image"].meta["spatial_shape"].tolist() == list(sample["image"].meta["spatial_shape"])


def test_isic_sample(shared_data: Path, tmp_path: Path) -> None:
    root = shared_data / "isic-sample"
    if not root.is_dir():
        pytest.skip(f"{root} not found")
    out = tmp_path / "isic.json"
    dl = prepare_datalist("folder", root, out, val_count=1)
    assert dl.counts() == {"training": 4, "validation": 1, "test": 0}
    assert all(e.image.endswith(".jpg") and e.label.endswith(".png") for e in dl.training)
    assert check_datalist(out) == []
    sample = condseg_eval_transforms(image_size=(45, 60))(load_datalist(out, "training")[0])
    assert sample["image"].shape == (3, 45, 60)
    assert 0.0 < float(sample["label"].mean()) < 1.0
    assert torch.all((sample["image"] >= 0) & (sample["image"] <= 1))


def test_kvasir_seg_ten_percent_labels(shared_data: Path, tmp_path: Path) -> None:
    """The documented label-scarce recipe: the 800/80 split, 80 training pairs labeled, 720 unlabeled."""
    root = shared_data / "kvasir-seg"
    if not root.is_dir():
        pytest.skip(f"{root} not found")
    full = prepare_datalist("folder", root, tmp_path / "kvasir.json", seed=0, val_count=80)
    out = tmp_path / "kvasir_10.json"
    dl = prepare_datalist("folder", root, out, seed=0, val_count=80, labeled_fraction=0.1)
    assert dl.counts() == {"training": 80, "validation": 80, "test": 0} and len(dl.unlabeled) == 720
    assert dl.validation == full.validation  # validation untouched
    assert {e.image for e in dl.training} | {e.image for e in dl.unlabeled} == {e.image for e in full.training}
    again = prepare_datalist("folder", root, tmp_path / "again.json", seed=0, val_count=80, labeled_fraction=0.1)
    assert again == dl  # reproducible
    # the unlabeled list only (720 JPEG decodes at 1/8 scale; compared with the labeled images by path and content)
    assert validate_unlabeled(out, required=True) == 720
