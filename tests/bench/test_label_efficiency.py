# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""bench/label_efficiency.py on a tiny generated dataset (the real run is documented in docs/benchmarks.md)."""

from __future__ import annotations

import json
from pathlib import Path

import accuracy
import label_efficiency as le
import pytest
import torch

from condseg_monai.data import generate_demo_dataset, keep_labeled, load_datalist, prepare_datalist, read_datalist
from condseg_monai.networks import ConDSeg

TINY = ["--size", "32", "--steps", "3", "--stage1-steps", "1", "--batch-size", "2", "--feature-size", "16"]
KVASIR = Path(__file__).resolve().parents[3] / "shared" / "data" / "kvasir-seg"


@pytest.fixture(scope="module")
def demo_datalist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("demo")
    return generate_demo_dataset(folder, num_train=10, num_val=3, num_test=2, image_size=(40, 48), seed=0)


def test_isolated_batches_do_not_depend_on_randomness_consumed_in_between(demo_datalist: Path) -> None:
    cached = accuracy.load_cached(load_datalist(demo_datalist, "training"), 32)
    quiet, busy = (le.IsolatedBatches(accuracy.batches(cached, 32, 2, 0)) for _ in range(2))
    a = [next(quiet)["image"] for _ in range(12)]  # more than one epoch: the shuffle is redrawn
    b = []
    for _ in range(12):
        torch.rand(1000)  # what a network's dropout or augmentation would consume
        b.append(next(busy)["image"])
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert quiet.digest == busy.digest and quiet.count == busy.count == 12

    # the plain stream, by contrast, changes its second-epoch shuffle when the global generator is used
    plain_quiet, plain_busy = (accuracy.batches(cached, 32, 2, 0) for _ in range(2))
    c = [next(plain_quiet)["image"] for _ in range(12)]
    d = []
    for _ in range(12):
        torch.rand(1000)
        d.append(next(plain_busy)["image"])
    assert not all(torch.equal(x, y) for x, y in zip(c, d))

    unlabeled = le.IsolatedBatches(accuracy.batches(cached, 32, 2, 1), keep_label=False)
    assert set(next(unlabeled)) == {"image"}


def test_labeled_indices_follow_keep_labeled(demo_datalist: Path) -> None:
    labeled, unlabeled = le.labeled_indices(demo_datalist, 0.3, seed=0)
    full = read_datalist(demo_datalist)
    kept = keep_labeled(full, fraction=0.3, seed=0)
    assert [full.training[i].image for i in labeled] == [e.image for e in kept.training]
    assert [full.training[i].image for i in unlabeled] == [e.image for e in kept.unlabeled]
    assert sorted(labeled + unlabeled) == list(range(len(full.training))) and len(labeled) == 3
    bigger, _ = le.labeled_indices(demo_datalist, 0.6, seed=0)
    assert set(labeled) <= set(bigger)  # budgets of one seed are nested


def test_arms_share_labeled_batches_and_results_resume(
    demo_datalist: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "le"
    base = ["--datalist", str(demo_datalist), "--out", str(out), *TINY, "--fractions", "0.3", "--eval-at", "2"]
    assert le.main([*base, "--models", "basic_unet", "--arms", "sup", "semi"]) == 0
    runs = json.loads((out / "results.json").read_text())["runs"]
    assert [(r["model"], r["arm"], r["labeled"], r["unlabeled"]) for r in runs] == [
        ("basic_unet", "sup", 3, 0),
        ("basic_unet", "semi", 3, 7),
    ]
    sup, semi = runs
    assert sup["labeled_batches"] == semi["labeled_batches"] == 3
    assert sup["labeled_digest"] == semi["labeled_digest"], "the arms saw different labeled batches"
    assert set(sup["curve"]) == {"2"} and set(semi["curve"]) == {"2"}
    assert "student" in semi and "student" not in sup
    assert [row["step"] for row in semi["log"]] == [1, 2, 3]
    assert all({"unsup_loss", "unsup_weight", "confident_fraction"} <= set(row) for row in semi["log"])
    assert set(semi["val"]) == {"clean", "darken-2", "brighten-2", "gamma-2", "contrast-2", "blur-2"}

    # a second invocation trains only what is missing (the full arm), never the finished arms again
    trained: list[str] = []
    original = le.train_baseline
    monkeypatch.setattr(le, "train_baseline", lambda *a, **k: trained.append("sup") or original(*a, **k))
    monkeypatch.setattr(le, "train_semi_baseline", lambda *a, **k: pytest.fail("semi arm re-run"))
    assert le.main([*base, "--models", "basic_unet", "--arms", "sup", "semi", "full"]) == 0
    again = json.loads((out / "results.json").read_text())["runs"]
    assert again[:2] == runs and trained == ["sup"] and again[2]["arm"] == "full" and again[2]["labeled"] == 10
    assert again[2]["labeled_digest"] != sup["labeled_digest"]
    table = (out / "results.md").read_text()
    assert "| MONAI BasicUNet | semi (teacher) | 3 | 1 |" in table and ("% of " in table or "no gap (" in table)

    # results written before a setting existed count as having its default
    saved = json.loads((out / "results.json").read_text())
    del saved["settings"]["ema_warmup_iters"]
    (out / "results.json").write_text(json.dumps(saved))
    assert le.main([*base, "--models", "basic_unet", "--arms", "sup"]) == 0
    with pytest.raises(SystemExit):  # other settings must not be mixed into the same results file
        le.main([*base, "--models", "basic_unet", "--steps", "4"])
    with pytest.raises(SystemExit):
        le.main([*base, "--models", "basic_unet", "--ema-warmup-iters", "5"])


def test_condseg_semi_arm_runs_both_stages(demo_datalist: Path, tmp_path: Path) -> None:
    out = tmp_path / "le"
    args = ["--datalist", str(demo_datalist), "--out", str(out), *TINY, "--fractions", "0.3", "--severities"]
    assert le.main([*args, "--models", "condseg", "--arms", "sup", "semi", "--ema-warmup-iters", "2"]) == 0
    sup, semi = json.loads((out / "results.json").read_text())["runs"]
    assert sup["labeled_digest"] == semi["labeled_digest"] and semi["labeled_batches"] == 3
    assert sup["parameters"] == semi["parameters"] == sum(p.numel() for p in ConDSeg(feature_size=16).parameters())
    assert [row["step"] for row in semi["log"]] == [1, 1, 2]  # Stage 1 (1 step), then Stage 2 (2 steps)
    assert set(semi["val"]) == set(semi["student"]) == {"clean"}


def _run(arm: str, iou: float, student: float | None = None, seed: int = 0) -> dict:
    val = {"clean": {"iou": iou, "dice": iou, "recall": iou, "precision": iou}}
    run = {"model": "basic_unet", "arm": arm, "fraction": 1.0 if arm == "full" else 0.1, "seed": seed}
    run |= {"labeled": 800 if arm == "full" else 80, "train_seconds": 60.0, "val": val, "curve": {"500": val["clean"]}}
    if student is not None:
        run["student"] = {"clean": dict.fromkeys(val["clean"], student)}
    return run


def test_summarise_reports_the_share_of_the_gap_closed() -> None:
    table = le.summarise([_run("sup", 0.40), _run("semi", 0.45, student=0.42), _run("full", 0.50)], final_step=1000)
    assert "| MONAI BasicUNet | semi (teacher) | 80 | 1 | 1.0 | 45.0 |" in table
    assert "| 50% of 10.0 |" in table and "| 20% of 10.0 |" in table  # teacher, student
    assert "| arm | labeled | 500 | 1000 |" in table and "| sup | 80 | 40.0 | 40.0 |" in table
    no_gap = le.summarise([_run("sup", 0.50), _run("semi", 0.45), _run("full", 0.48)])
    assert "no gap (-2.0)" in no_gap and "%" not in no_gap.split("\n")[3]


@pytest.mark.skipif(not KVASIR.is_dir(), reason="../shared/data/kvasir-seg is not available")
def test_kvasir_split_has_the_documented_budgets(tmp_path: Path) -> None:
    datalist = tmp_path / "datalist.json"
    prepare_datalist("folder", KVASIR, datalist, seed=0, val_count=80)
    for fraction, count in ((0.1, 80), (0.25, 200)):
        labeled, unlabeled = le.labeled_indices(datalist, fraction, seed=0)
        assert len(labeled) == count and len(unlabeled) == 800 - count
