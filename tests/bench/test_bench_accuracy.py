# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""bench/accuracy.py end to end on a tiny generated dataset (the real run is documented in docs/benchmarks.md)."""

from __future__ import annotations

import json
from pathlib import Path

import accuracy
import pytest
import torch

from condseg_monai.data import generate_demo_dataset, load_datalist

TINY = ["--size", "32", "--steps", "3", "--stage1-steps", "1", "--batch-size", "2", "--feature-size", "16"]


@pytest.fixture(scope="module")
def demo_datalist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("demo")
    return generate_demo_dataset(folder, num_train=6, num_val=3, num_test=2, image_size=(40, 48), seed=0)


def test_batches_are_identical_for_every_model_of_a_seed(demo_datalist: Path) -> None:
    cached = accuracy.load_cached(load_datalist(demo_datalist, "training"), 32)
    assert cached[0]["image"].shape == (3, 32, 32) and cached[0]["label"].shape == (1, 32, 32)
    assert set(cached[0]["label"].unique().tolist()) <= {0.0, 1.0}
    before = cached[0]["image"].clone()
    first, second, other = (accuracy.batches(cached, 32, 2, seed) for seed in (0, 0, 1))
    a, b, c = ([next(g)["image"] for _ in range(4)] for g in (first, second, other))
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not all(torch.equal(x, y) for x, y in zip(a, c))
    assert torch.equal(cached[0]["image"], before), "augmentation changed the cached image"


def test_accuracy_script_runs_resumes_and_summarises(demo_datalist: Path, tmp_path: Path) -> None:
    out = tmp_path / "acc"
    args = ["--datalist", str(demo_datalist), "--out", str(out), *TINY, "--models", "condseg", "unet"]
    cross = ["--cross-datalist", str(demo_datalist), "--cross-split", "test"]
    assert accuracy.main([*args, *cross, "--seeds", "0"]) == 0
    results = json.loads((out / "results.json").read_text())
    assert [(r["model"], r["seed"]) for r in results["runs"]] == [("condseg", 0), ("unet", 0)]
    for run in results["runs"]:
        assert set(run["val"]) == {"clean", "darken-2", "brighten-2", "gamma-2", "contrast-2", "blur-2"}
        assert all(0.0 <= v <= 1.0 for cond in run["val"].values() for v in cond.values())
        assert set(run["cross"]) == {"clean"} and run["train_seconds"] > 0
    assert results["runs"][0]["parameters"] == sum(p.numel() for p in accuracy.ConDSeg(feature_size=16).parameters())

    # a second invocation with another seed keeps the finished runs and adds the new ones
    assert (
        accuracy.main([*args, "--seeds", "0", "1", "--cross-datalist", str(demo_datalist), "--cross-split", "test"])
        == 0
    )
    runs = json.loads((out / "results.json").read_text())["runs"]
    assert runs[:2] == results["runs"] and [(r["model"], r["seed"]) for r in runs[2:]] == [("condseg", 1), ("unet", 1)]
    table = (out / "results.md").read_text()
    assert "| ConDSeg (Stage 1 + 2) | 2 |" in table and "| MONAI UNet | 2 |" in table and "±" in table

    # other settings must not be mixed into the same results file
    with pytest.raises(SystemExit):
        accuracy.main([*args, *cross, "--seeds", "0", "--lr", "0.001"])


def test_accuracy_script_rejects_bad_budgets(demo_datalist: Path, tmp_path: Path) -> None:
    base = ["--datalist", str(demo_datalist), "--out", str(tmp_path)]
    for bad in (["--stage1-steps", "5", "--steps", "5"], ["--size", "48"]):
        with pytest.raises(SystemExit):
            accuracy.main(base + bad)
