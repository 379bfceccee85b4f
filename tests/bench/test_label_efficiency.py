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
    assert specs["semi_off_neg"].overrides == specs["semi_off"].overrides  # the datalist holds the negatives
    assert specs["sup_neg"] == specs["sup"] and specs["semi_neg"] == specs["semi"]
    assert {(s.iterations, s.stage1_iterations, s.seed, s.batch_size) for s in specs.values()} == {(400, 200, 1, 8)}
    with pytest.raises(ValueError, match="arm"):
        le.arm_spec("teacher", "condseg", 0, args)


def test_semi_settings_reach_only_the_semi_supervised_arms() -> None:
    args = argparse.Namespace(
        steps=400, stage1_steps=200, eval_every=50, size=64, batch_size=8, feature_size=32, unlabeled_batch_size=3,
        confidence_threshold=0.8, class_balanced_fraction=0.5, background_fraction=0.25, negatives_per_batch=2,
        unsupervised_dice_weight=0.0, cutmix=True, unsupervised_weight=3.0, ema_decay=0.999,
    )  # fmt: skip
    for arm in le.ARMS:
        overrides = le.arm_spec(arm, "basic_unet", 0, args).overrides
        semi = arm.removesuffix("_neg") in ("semi", "semi_off", "semi_target")
        assert overrides.get("unlabeled_batch_size") == (3 if semi else None), arm
        assert overrides.get("class_balanced_fraction") == (0.5 if semi else None), arm
        assert overrides.get("background_fraction") == (0.25 if semi else None), arm
        assert overrides.get("unsupervised_dice_weight") == (0.0 if semi else None), arm
        assert overrides.get("confidence_threshold") == (0.8 if semi else None), arm
        assert overrides.get("cutmix") == (True if semi else None), arm
        assert overrides.get("ema_decay") == (0.999 if semi else None), arm  # the control shares the teacher
        # the control keeps its unlabeled loss off whatever the semi arms' weight
        control = arm.removesuffix("_neg") == "semi_off"
        assert overrides.get("unsupervised_weight") == (0.0 if control else 3.0 if semi else None), arm
        assert overrides.get("negatives_per_batch") == (2 if arm.endswith("_neg") else None), arm


@pytest.mark.parametrize(
    "option, message",
    [
        (["--unlabeled-batch-size", "0"], "--unlabeled-batch-size must be >= 1"),
        (["--class-balanced-fraction", "0"], "--class-balanced-fraction must be in (0, 1]"),
        (["--background-fraction", "1.5"], "--background-fraction must be in (0, 1]"),
        (["--unsupervised-dice-weight", "-1"], "--unsupervised-dice-weight must be >= 0"),
        (["--unsupervised-weight", "-1"], "--unsupervised-weight must be >= 0"),
        (["--confidence-threshold", "0.3"], "--confidence-threshold must be in [0.5, 1]"),
        (["--ema-decay", "1"], "--ema-decay must be in (0, 1)"),
        (["--arms", "sup", "--target-validation", "3"], "--target-validation needs --target"),
    ],
)
def test_bad_options_are_usage_errors_naming_the_option(
    option: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        le.main(["--data", "nowhere", "--out", "nowhere", *option])
    assert message in capsys.readouterr().err


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

    # seeds run side by side into other folders merge into one table (as a run with --out other records them)
    other = tmp_path / "le_seed1"
    other.mkdir()
    copy = json.loads((out / "results.json").read_text())
    copy["runs"] = [{**r, "seed": 1} for r in copy["runs"]]
    copy["settings"] = {
        k: v.replace(str(out), str(other)) if isinstance(v, str) else v for k, v in copy["settings"].items()
    }
    (other / "results.json").write_text(json.dumps(copy))
    assert le.main(["merge", str(out), str(other), "--out", str(tmp_path / "merged")]) == 0
    merged = json.loads((tmp_path / "merged" / "results.json").read_text())
    assert sorted((r["arm"], r["seed"]) for r in merged["runs"]) == sorted(
        (a, s) for a in ("sup", "semi_off", "full") for s in (0, 1)
    )
    assert "| full | 2 |" in (tmp_path / "merged" / "results.md").read_text()
    with pytest.raises(SystemExit):  # the same run twice
        le.main(["merge", str(out), str(out), "--out", str(tmp_path / "twice")])


def test_split_by_sequence_cuts_at_a_change_of_sequence(tmp_path: Path) -> None:
    import numpy as np
    from PIL import Image

    folder = tmp_path / "hospital"
    (folder / "images").mkdir(parents=True)
    (folder / "masks").mkdir()
    rng = np.random.default_rng(0)
    for i in range(1, 13):  # two "sequences": frames 1-5 dark, 6-12 bright (ids sort numerically: 10 after 9)
        base = 40 if i <= 5 else 200
        img = np.clip(base + rng.integers(-5, 6, (24, 24, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(img).save(folder / "images" / f"{i}.jpg")
        Image.fromarray(np.zeros((24, 24), np.uint8)).save(folder / "masks" / f"{i}.png")
    dirs = le.split_by_sequence(folder, tmp_path / "split")
    first = sorted(int(p.stem) for p in (dirs["train"] / "images").iterdir())
    second = sorted(int(p.stem) for p in (dirs["eval"] / "images").iterdir())
    assert first == [1, 2, 3, 4, 5] and second == list(range(6, 13))
    assert sorted(int(p.stem) for p in dirs["unlabeled"].iterdir()) == first
    assert sorted(p.name for p in (dirs["eval"] / "masks").iterdir()) == sorted(f"{i}.png" for i in second)
    assert json.loads((tmp_path / "split" / "split.json").read_text())["cut_before"] == "6.jpg"
    with pytest.raises(ValueError, match="holds a split with 0 validation frames"):
        le.split_by_sequence(folder, tmp_path / "split", validation=2)


def test_split_by_sequence_sets_whole_sequences_aside_for_validation(tmp_path: Path) -> None:
    import numpy as np
    from PIL import Image

    folder = tmp_path / "hospital"
    (folder / "images").mkdir(parents=True)
    (folder / "masks").mkdir()
    rng = np.random.default_rng(0)
    for i in range(1, 19):  # three "sequences": frames 1-6, 7-9, 10-18
        base = 40 if i <= 6 else 120 if i <= 9 else 200
        img = np.clip(base + rng.integers(-5, 6, (24, 24, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(img).save(folder / "images" / f"{i}.jpg")
        Image.fromarray(np.zeros((24, 24), np.uint8)).save(folder / "masks" / f"{i}.png")
    dirs = le.split_by_sequence(folder, tmp_path / "split", validation=3)
    stems = {
        k: sorted(int(p.stem) for p in (d / "images" if k != "unlabeled" else d).iterdir()) for k, d in dirs.items()
    }
    first = [1, 2, 3, 4, 5, 6]
    assert stems == {"train": first, "unlabeled": first, "validation": [7, 8, 9], "eval": list(range(10, 19))}
    assert sorted(p.name for p in (dirs["validation"] / "masks").iterdir()) == ["7.png", "8.png", "9.png"]
    with pytest.raises(ValueError, match="too few"):
        le.split_by_sequence(folder, tmp_path / "other", validation=5)


def _polyp_free_folder(folder: Path, count: int) -> Path:
    """``folder/images`` with ``count`` random 40 x 48 frames (``1.jpg`` ...), standing in for polyp-free frames."""
    import numpy as np
    from PIL import Image

    (folder / "images").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(1, count + 1):
        Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(folder / "images" / f"{i}.jpg")
    return folder


def test_target_arms_add_the_hospitals_frames(tmp_path: Path) -> None:
    data = generate_demo_dataset(tmp_path / "demo", num_train=6, num_val=2, num_test=2, image_size=(40, 48), seed=0)
    target = generate_demo_dataset(tmp_path / "hosp", num_train=6, num_val=0, num_test=0, image_size=(40, 48), seed=1)
    free = _polyp_free_folder(tmp_path / "free", 4)
    parser = argparse.ArgumentParser()
    args = argparse.Namespace(
        data=data.parent, datalist=None, out=tmp_path / "out", val_count=2, split_seed=0, test_count=2,
        fractions=[0.5], unlabeled_dir=[], negatives_dir=None, target=target.parent, known_negatives=free,
    )  # fmt: skip
    le.split_negatives(free, 3, 0, args.out / "known_negatives")
    lists = le._datalists(args, parser)
    base = read_datalist(lists["0.5"])
    semi = read_datalist(lists["0.5/semi_target"])
    labels = read_datalist(lists["0.5/target_labels"])
    first = sorted(p.name for p in (tmp_path / "out" / "target" / "train" / "images").iterdir())
    assert 0 < len(first) < 6  # one block of the hospital's frames; the other is its evaluation set
    assert [e.image for e in semi.training] == [e.image for e in base.training]
    assert len(semi.unlabeled) == len(base.unlabeled) + len(first)
    assert len(labels.training) == len(base.training) + len(first) and labels.test == base.test
    semi_neg = read_datalist(lists[le._datalist_key("semi_target_neg", 0.5)])  # semi_target + the 3 negatives
    assert [e.image for e in semi_neg.unlabeled] == [e.image for e in semi.unlabeled]
    assert [e.image for e in semi_neg.training if not e.negative] == [e.image for e in semi.training]
    assert sum(e.negative for s in (semi_neg.training, semi_neg.validation) for e in s) == 3
    assert le._datalist_key("sup_neg", 0.5) == "0.5/neg" and le._datalist_key("full", 0.5) == "full"

    # --target-validation: the hospital's validation frames are in every arm's validation split, in no training
    args.out, args.target_validation = tmp_path / "out_val", 1
    le.split_negatives(free, 3, 0, args.out / "known_negatives")
    with_val = le._datalists(args, parser)
    held = sorted(p.resolve() for p in (args.out / "target" / "validation" / "images").iterdir())
    assert 1 <= len(held) <= 2 and set(with_val) == set(lists)
    for key, path in with_val.items():
        got, before = read_datalist(path), read_datalist(lists[key])
        assert sorted(Path(e.image).resolve() for e in got.validation[len(before.validation) :]) == held, key
        assert [e.image for e in got.validation[: len(before.validation)]] == [e.image for e in before.validation]
        trained = [Path(e.image).resolve() for s in (got.training, got.unlabeled) for e in s]
        assert not set(held) & set(trained), key
    with pytest.raises(SystemExit):
        le.main(["--data", str(data.parent), "--out", str(tmp_path / "x"), "--arms", "semi_target"])


def test_known_negatives_train_the_neg_arms_and_the_rest_is_evaluated(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = generate_demo_dataset(tmp_path / "demo", num_train=6, num_val=2, num_test=2, image_size=(40, 48), seed=0)
    free = _polyp_free_folder(tmp_path / "free", 7)
    out = tmp_path / "le"
    base = ["--data", str(data.parent), "--out", str(out), "--val-count", "2", "--test-count", "2", *TINY]
    base += ["--models", "basic_unet", "--fractions", "0.5", "--seeds", "0", "--severities", "2"]
    neg = ["--known-negatives", str(free), "--known-negatives-count", "5", "--negatives-per-batch", "1"]
    assert le.main([*base, *neg, "--arms", "sup_neg", "semi_neg"]) == 0

    trained = sorted(p.name for p in (out / "known_negatives" / "train" / "images").iterdir())
    heldout = sorted(p.name for p in (out / "known_negatives" / "heldout" / "images").iterdir())
    assert len(trained) == 5 and len(heldout) == 2 and not set(trained) & set(heldout)
    plain, with_neg = read_datalist(out / "frac0.5.json"), read_datalist(out / "frac0.5_known_negatives.json")
    for split in ("training", "validation", "unlabeled", "test"):  # the same split, plus the negatives
        positives = [e.image for e in getattr(with_neg, split) if not getattr(e, "negative", False)]
        assert positives == [e.image for e in getattr(plain, split)], split
    negatives = [Path(e.image).name for s in ("training", "validation") for e in getattr(with_neg, s) if e.negative]
    assert sorted(negatives) == trained and any(e.negative for e in with_neg.validation)

    runs = {r["arm"]: r for r in json.loads((out / "results.json").read_text())["runs"]}
    assert set(runs) == {"sup_neg", "semi_neg"}
    for arm, run in runs.items():
        assert run["cross"]["polyp_free_heldout"]["sensitivity"] is None  # frames without polyps, never trained on
        assert run["cross"]["polyp_free_heldout"]["specificity"] is not None
        done = out / "runs" / f"basic_unet_{arm}_f0.5_seed0" / "stage2" / "DONE"
        command = " ".join(json.loads(done.read_text())["command"])
        assert "frac0.5_known_negatives.json" in command and "--negatives_per_batch 1" in command
        assert ("configs/semi_supervised.json" in command) == (arm == "semi_neg")
    assert "| sup_neg | 1 |" in (out / "results.md").read_text()

    for bad, message in (
        ([*base, "--arms", "sup_neg"], "need --known-negatives"),
        ([*base, *neg, "--arms", "sup", "--cross", f"free={free}"], "is the --known-negatives folder"),
        ([*base, "--out", str(tmp_path / "x"), *neg[:2], "--known-negatives-count", "7", "--arms", "sup"], "in 1..6"),
    ):
        with pytest.raises(SystemExit):
            le.main(bad)
        assert message in capsys.readouterr().err


def test_a_cross_set_sharing_frames_with_the_unlabeled_pool_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # --negatives-dir puts polyp-free frames in the unlabeled pool; false alarms must be read on other frames
    free = _polyp_free_folder(tmp_path / "free", 4)
    pool, held = tmp_path / "pool", tmp_path / "held"
    for folder, frames in ((pool, range(1, 4)), (held, [4])):
        (folder / "images").mkdir(parents=True)
        for i in frames:
            (folder / "images" / f"{i}.jpg").symlink_to(free / "images" / f"{i}.jpg")
    other = _polyp_free_folder(tmp_path / "other", 4)  # a bad --known-negatives-count: the next check to fail
    base = ["--data", str(tmp_path), "--out", str(tmp_path / "le"), "--arms", "semi", "--negatives-dir", str(pool)]
    base += ["--known-negatives", str(other), "--known-negatives-count", "9"]
    for cross, shared in ((f"free={free}", True), (f"pool={pool}", True), (f"held={held}", False)):
        with pytest.raises(SystemExit):
            le.main([*base, "--cross", cross])
        err = capsys.readouterr().err
        assert ("shares frames with --negatives-dir" in err) == shared, cross
        assert ("in 1..3" in err) == (not shared), cross


def _write_eval(folder: Path, frames: list[tuple[bool, float, float]], iou: float | None) -> None:
    """A bundle ``evaluating`` report of ``frames`` = (has_polyp, detection score, predicted area) at threshold 0.5."""
    folder.mkdir(parents=True)
    rows = ["image,has_polyp,polyp_present,detection_score,predicted_area"]
    rows += [f"{i}.png,{h},{s > 0.5},{s},{a}" for i, (h, s, a) in enumerate(frames)]
    (folder / "evaluation_per_image.csv").write_text("\n".join(rows) + "\n")
    pos = [f for f in frames if f[0]]
    neg = [f for f in frames if not f[0]]
    detection = {
        "sensitivity": sum(s > 0.5 for _, s, _ in pos) / len(pos) if pos else None,
        "specificity": sum(s <= 0.5 for _, s, _ in neg) / len(neg) if neg else None,
        "mean_polyp_free_area": sum(a for *_, a in neg) / len(neg) if neg else None,
    }
    metrics = {"resized": {"iou": iou, "dice": iou}}
    summary = {"num_images": len(frames), "detection": detection, "metrics": metrics}
    (folder / "evaluation_summary.json").write_text(json.dumps(summary))


def test_collect_cross_and_rescore_read_the_kept_reports(tmp_path: Path) -> None:
    run_dir = tmp_path / "runs" / "basic_unet_sup_f0.1_seed0"
    _write_eval(run_dir / "eval_hospital", [(True, 0.9, 0.2), (True, 0.6, 0.1)], iou=0.4)
    _write_eval(run_dir / "eval_clean", [(False, 0.7, 0.3), (False, 0.1, 0.0)], iou=None)
    got = le.collect_cross(run_dir, ["hospital", "clean"])
    assert got["cross"]["hospital"]["iou"] == 0.4 and got["cross"]["hospital"]["polyp_free_area"] is None
    assert got["cross"]["clean"]["specificity"] == 0.5 and got["cross"]["clean"]["polyp_free_area"] == 0.15
    # pooled frames: 3 of the 4 (polyp, polyp-free) pairs ranked right (0.6 < 0.7)
    assert got["auroc"] == {"hospital vs clean": pytest.approx(0.75)}

    old = {"network": "basic_unet", "fraction": 0.1, "arm": "sup", "seed": 0, "iterations": 2}
    old |= {"test": {"clean": {"iou": 0.5, "dice": 0.6}}, "seconds_per_iteration": 0.1, "train_seconds": 1.0}
    old["cross"] = {s: {k: v for k, v in r.items() if k != "polyp_free_area"} for s, r in got["cross"].items()}
    (tmp_path / "results.json").write_text(json.dumps({"settings": {}, "runs": [old]}))
    assert le.main(["rescore", str(tmp_path)]) == 0
    run = json.loads((tmp_path / "results.json").read_text())["runs"][0]
    assert run["cross"] == got["cross"] and run["auroc"] == got["auroc"]
    table = (tmp_path / "results.md").read_text()
    assert "| clean false alarms | clean marked area | hospital mIoU | hospital sensitivity |" in table
    assert "| AUROC hospital vs clean |" in table and "| 50.0 | 15.0 | 40.0 | 100.0 | 75.0 |" in table
