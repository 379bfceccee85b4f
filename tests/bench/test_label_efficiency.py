# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""bench/label_efficiency.py on a tiny generated dataset, through the bundle (the real run is documented in
docs/benchmarks.md)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import label_efficiency as le
import pytest

from condseg_monai.data import generate_demo_dataset, read_datalist

TINY = ["--size", "32", "--steps", "2", "--stage1-steps", "1", "--eval-every", "1", "--batch-size", "2"]


def test_arm_specs_differ_only_in_the_semi_supervised_settings() -> None:
    args = argparse.Namespace(steps=400, stage1_steps=200, eval_every=50, size=64, batch_size=8, feature_size=128)
    specs = {arm: le.arm_spec(arm, "condseg", 1, args) for arm in le.ARMS}
    assert specs["sup"] == specs["full"] and not specs["sup"].configs
    assert [Path(c).name for c in specs["semi"].configs] == ["semi_supervised.json"]
    assert specs["semi_off"].configs == specs["semi"].configs
    assert specs["semi_off"].overrides == {**specs["semi"].overrides, "unsupervised_weight": 0.0}
    assert {(s.iterations, s.stage1_iterations, s.seed, s.batch_size) for s in specs.values()} == {(400, 200, 1, 8)}
    with pytest.raises(ValueError, match="arm"):
        le.arm_spec("teacher", "condseg", 0, args)


def test_gap_closed() -> None:
    assert le.gap_closed(0.40, 0.45, 0.50) == pytest.approx(0.5)
    assert le.gap_closed(0.40, 0.35, 0.50) == pytest.approx(-0.5)
    assert le.gap_closed(0.50, 0.45, 0.48) is None


def test_arms_run_through_the_bundle_and_resume(tmp_path: Path) -> None:
    data = generate_demo_dataset(tmp_path / "demo", num_train=6, num_val=2, num_test=2, image_size=(40, 48), seed=0)
    out = tmp_path / "le"
    base = ["--data", str(data.parent), "--out", str(out), "--val-count", "2", "--test-count", "2", *TINY]
    base += ["--models", "basic_unet", "--fractions", "0.5", "--seeds", "0", "--severities", "2"]
    assert le.main([*base, "--arms", "sup", "semi_off"]) == 0
    results = json.loads((out / "results.json").read_text())
    sup, off = results["runs"]
    assert [(r["arm"], r["fraction"]) for r in results["runs"]] == [("sup", 0.5), ("semi_off", 0.5)]
    subset = read_datalist(out / "frac0.5.json")
    full = read_datalist(out / "full.json")
    assert len(subset.training) == 3 and len(subset.unlabeled) == 3 and len(full.training) == 6
    assert [e.image for e in subset.test] == [e.image for e in full.test]  # one split, one test set
    assert sup["iterations"] == off["iterations"] == 2 and set(sup["test"]) == set(off["test"]) != {"clean"}
    assert 0 < sup["seconds_per_iteration"] < sup["train_seconds"] / 2  # the training loop, not the process
    done = json.loads((out / "runs" / "basic_unet_semi_off_f0.5_seed0" / "stage2" / "DONE").read_text())
    command = " ".join(done["command"])
    assert "configs/semi_supervised.json" in command and "--unsupervised_weight 0.0" in command
    # only the selected model is kept (the bundle's best validation model, the one evaluated)
    kept = sorted(p.name for p in (out / "runs" / "basic_unet_sup_f0.5_seed0").rglob("*.pt"))
    assert kept == ["model.pt"]

    # a second invocation trains only what is missing
    assert le.main([*base, "--arms", "sup", "semi_off", "full"]) == 0
    again = json.loads((out / "results.json").read_text())["runs"]
    assert again[:2] == results["runs"] and (again[2]["arm"], again[2]["fraction"]) == ("full", 1.0)
    table = (out / "results.md").read_text()
    assert "**MONAI BasicUNet, 50 % labels**" in table and "| full | 1 |" in table and "| semi_off | 1 |" in table
    with pytest.raises(SystemExit):  # other settings must not be mixed into the same results file
        le.main([*base, "--arms", "sup", "--steps", "4"])
