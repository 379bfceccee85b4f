# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""bench/accuracy.py end to end on a tiny generated dataset, through the bundle (the real run is documented in
docs/benchmarks.md)."""

from __future__ import annotations

import json
from pathlib import Path

import accuracy
import pytest
from monai.networks.nets import BasicUNet

from condseg_monai.data import generate_demo_dataset

TINY = ["--size", "32", "--steps", "2", "--stage1-steps", "1", "--eval-every", "1", "--batch-size", "2"]


@pytest.fixture(scope="module")
def demo_datalist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("demo")
    return generate_demo_dataset(folder, num_train=4, num_val=2, num_test=2, image_size=(40, 48), seed=0)


def test_accuracy_script_runs_resumes_and_summarises(demo_datalist: Path, tmp_path: Path) -> None:
    out = tmp_path / "acc"
    args = ["--datalist", str(demo_datalist), "--out", str(out), *TINY, "--models", "basic_unet"]
    cross = ["--cross", f"demo={demo_datalist.parent}"]
    assert accuracy.main([*args, *cross, "--seeds", "0"]) == 0
    results = json.loads((out / "results.json").read_text())
    (run,) = results["runs"]
    assert (run["model"], run["seed"]) == ("basic_unet", 0)
    assert set(run["val"]) == {"clean", "darken-2", "brighten-2", "gamma-2", "contrast-2", "blur-2"}
    assert all(0.0 <= v <= 1.0 for cond in run["val"].values() for v in cond.values())
    assert set(run["cross"]) == {"demo"} and run["cross"]["demo"]["num_images"] == 8  # every image of the folder
    assert run["parameters"] == sum(p.numel() for p in BasicUNet(2, 3, 1).parameters()) and run["train_seconds"] > 0
    # the evaluated model is the one after the budget (no selection on the reported validation images)
    assert "latest.pt" in (out / "basic_unet_seed0" / "eval_val" / "robustness.log").read_text().split("\n")[0]

    # a second invocation keeps the finished run and adds only the new seed
    logs = sorted(out.rglob("*.log"))
    assert accuracy.main([*args, *cross, "--seeds", "0", "1"]) == 0
    runs = json.loads((out / "results.json").read_text())["runs"]
    assert runs[0] == run and [(r["model"], r["seed"]) for r in runs[1:]] == [("basic_unet", 1)]
    assert all(p.stat().st_size > 0 for p in logs) and len(sorted(out.rglob("*.log"))) > len(logs)
    table = (out / "results.md").read_text()
    assert "| MONAI BasicUNet | 2 |" in table and "±" in table and "| MONAI BasicUNet | demo |" in table

    with pytest.raises(SystemExit):  # other settings must not be mixed into the same results file
        accuracy.main([*args, "--seeds", "0", "--batch-size", "1"])


def test_accuracy_script_rejects_bad_budgets(demo_datalist: Path, tmp_path: Path) -> None:
    base = ["--datalist", str(demo_datalist), "--out", str(tmp_path / "x"), "--seeds", "0"]
    for bad in (["--size", "48"], ["--steps", "4", "--stage1-steps", "4"], ["--cross", "nofolder"]):
        with pytest.raises(SystemExit):
            accuracy.main(base + bad)
