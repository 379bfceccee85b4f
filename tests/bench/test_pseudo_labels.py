# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""bench/pseudo_labels.py: the bundle's confidence rule measured against masks (tiny generated images)."""

from __future__ import annotations

import json
from pathlib import Path

import harness
import pseudo_labels as pl
import pytest
import torch

from condseg_monai.data import generate_demo_dataset
from condseg_monai.transforms import condseg_eval_transforms


class _Constant(torch.nn.Module):
    """Logits ``value`` everywhere: every pixel is confident at any threshold below sigmoid(|value|)."""

    def __init__(self, value: float) -> None:
        super().__init__()
        self.value = value

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.full((x.shape[0], 1, *x.shape[2:]), self.value)


class _Ramp(torch.nn.Module):
    """Logits that follow the red channel: both classes, with varying confidence."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 8.0 * x[:, :1] - 4.0


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("pl")
    return generate_demo_dataset(root, num_train=4, num_val=1, num_test=1, image_size=(40, 48), seed=0)


def test_quality_of_constant_teachers_is_the_masks_foreground_share(demo: Path, tmp_path: Path) -> None:
    entries = pl.read_set(str(demo.parent), tmp_path, "demo")
    prep = condseg_eval_transforms(32, track_meta=False)
    fg = torch.stack([prep(dict(e))["label"] for e in entries]).gt(0.5).double().mean().item()
    assert 0 < fg < 1
    polyp = pl.pseudo_label_quality(_Constant(10.0), entries, 32, threshold=0.95, batch_size=3)
    assert polyp["images"] == len(entries) and polyp["confident"] == 1.0 and polyp["fg_pseudo"] == 1.0
    assert polyp["accuracy"] == pytest.approx(fg) and polyp["fg_true"] == pytest.approx(fg)
    assert polyp["wrong"] == pytest.approx(1 - fg)
    background = pl.pseudo_label_quality(_Constant(-10.0), entries, 32, threshold=0.95)
    assert background["accuracy"] == pytest.approx(1 - fg) and background["fg_pseudo"] == 0.0
    unsure = pl.pseudo_label_quality(_Constant(0.0), entries, 32, threshold=0.95)  # p = 0.5: nothing confident
    assert unsure["confident"] == 0.0 and unsure["wrong"] == 0.0
    # the class-balanced quota, as in training: every pixel at 1; at least half of them at 0.5 (ties included)
    ramp = _Ramp()
    assert pl.pseudo_label_quality(ramp, entries, 32, 1.0, 2, class_balanced_fraction=1.0)["confident"] == 1.0
    half = pl.pseudo_label_quality(ramp, entries, 32, 1.0, 2, class_balanced_fraction=0.5)["confident"]
    assert 0.5 <= half < 1.0
    # the background quota alone (threshold 1): background pixels only, at least half of them at 0.5
    ramp_bg = pl.pseudo_label_quality(ramp, entries, 32, 1.0, 2, background_fraction=0.5)
    assert 0.0 < ramp_bg["confident"] < 1.0 and ramp_bg["fg_pseudo"] == 0.0


def test_command_line_reads_checkpoints_and_both_kinds_of_sets(demo: Path, tmp_path: Path) -> None:
    net = harness.bundle_components(2, ("network_def",), network="basic_unet")["network_def"]
    assert type(net).__name__ == "BasicUNet"  # the overlay's network, as training builds it
    ckpt = tmp_path / "model.pt"
    torch.save(net.state_dict(), ckpt)
    out = tmp_path / "out"
    sets = [f"folder={demo.parent}", f"listed={demo}:training"]
    args = ["--network", "basic_unet", "--size", "32", "--out", str(out), "--ckpt", f"a={ckpt}", "--set", *sets]
    assert pl.main(args) == 0
    results = json.loads((out / "results.json").read_text())
    assert (
        results["threshold"]
        == json.loads((harness.REPO / "configs" / "semi_supervised.json").read_text())["confidence_threshold"]
    )
    for key in ("class_balanced_fraction", "background_fraction"):
        assert results[key] == pl.semi_defaults()[key]
    bad = ["--background-fraction", "0"]
    with pytest.raises(SystemExit):
        pl.main([*args, *bad])
    assert set(results["results"]["a"]) == {"folder", "listed"}
    for r in results["results"]["a"].values():
        assert all(0.0 <= r[k] <= 1.0 for k in ("confident", "accuracy", "wrong", "fg_pseudo", "fg_true"))
    assert "| a | listed | 4 |" in (out / "results.md").read_text()
    with pytest.raises(SystemExit):  # a split that does not exist is a usage error naming the set
        pl.main([*args[:-2], "--set", f"x={demo}:nothing"])
    with pytest.raises(ValueError, match="set 'x'.*nothing"):
        pl.read_set(f"{demo}:nothing", tmp_path, "x")
    with pytest.raises(SystemExit):
        pl.main([*args, "--threshold", "0.3"])
