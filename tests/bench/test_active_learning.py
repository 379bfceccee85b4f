# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""bench/active_learning.py: its statistics, its selection rules and a tiny run on a generated folder."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import active_learning as al
import numpy as np
import pytest
from PIL import Image

from condseg_monai.data import generate_demo_dataset
from condseg_monai.metrics import SCORE_NAMES

# 15 generated images, 3 for validation, 2 for test: 10 training pairs, 2 labeled, a pool of 4 (+ 2 polyp-free
# frames in the run test), +1 per round
TINY = ["--size", "32", "--initial-steps", "1", "--stage1-steps", "1", "--round-steps", "1", "--batch-size", "2"]
TINY += ["--feature-size", "16", "--val-count", "3", "--test-count", "2", "--initial", "2", "--per-round", "1"]
TINY += ["--pool-size", "4", "--rounds", "2", "--eval-every", "1", "--threads", "0"]


def test_rank_averages_ties() -> None:
    assert al.rank([3.0, 1.0, 2.0]) == [3.0, 1.0, 2.0]
    assert al.rank([1.0, 2.0, 2.0, 3.0]) == [1.0, 2.5, 2.5, 4.0]
    assert al.rank([5.0, 5.0, 5.0]) == [2.0, 2.0, 2.0]


def test_spearman() -> None:
    assert al.spearman([1, 2, 3, 4], [2, 4, 9, 100]) == pytest.approx(1.0)  # monotone, not linear
    assert al.spearman([1, 2, 3, 4], [9, 7, 3, 1]) == pytest.approx(-1.0)
    # ties: ranks (1, 2.5, 2.5, 4) against (1, 2, 3, 4): covariance 4.5, variances 4.5 and 5
    assert al.spearman([1, 2, 2, 3], [1, 2, 3, 4]) == pytest.approx(3 / math.sqrt(10))
    assert al.spearman([1, 1, 1], [1, 2, 3]) is None  # a constant score
    assert al.spearman([1], [2]) is None
    with pytest.raises(ValueError):
        al.spearman([1, 2], [1, 2, 3])


def test_auroc() -> None:
    failed = [False, False, True, True]
    assert al.auroc([0.1, 0.2, 0.8, 0.9], failed) == pytest.approx(1.0)
    assert al.auroc([0.9, 0.8, 0.2, 0.1], failed) == pytest.approx(0.0)
    assert al.auroc([0.5, 0.5, 0.5, 0.5], failed) == pytest.approx(0.5)  # ties count one half
    assert al.auroc([0.1, 0.3, 0.2, 0.4], failed) == pytest.approx(0.75)  # 3 of 4 pairs ordered
    assert al.auroc([0.1, 0.2], [False, False]) is None
    assert al.auroc([0.1, 0.2], [True, True]) is None


def test_aurc() -> None:
    errors = [0.0, 0.2, 0.4, 1.0]
    # ordered by the error: risks 0, 0.1, 0.2, 0.4 -> mean 0.175 (the oracle)
    assert al.aurc([0.1, 0.2, 0.3, 0.9], errors) == pytest.approx(0.175)
    # reversed: risks 1, 0.7, 0.5333, 0.4
    assert al.aurc([0.9, 0.3, 0.2, 0.1], errors) == pytest.approx((1 + 0.7 + 1.6 / 3 + 0.4) / 4)
    # constant score: no credit for ties (worst order)
    assert al.aurc([0.5] * 4, errors) == al.aurc([0.9, 0.3, 0.2, 0.1], errors)
    assert al.aurc([], []) is None


def test_foreground_random_selection() -> None:
    order = [5, 1, 4, 2, 3]
    present = {1: True, 2: True, 3: False, 4: False, 5: False}
    assert al.select_foreground_random(order, present, labeled=set(), k=2) == [1, 2]
    # too few predicted polyps: topped up in the random order
    assert al.select_foreground_random(order, present, labeled={1}, k=2) == [2, 5]
    # none predicted: plain random order
    assert al.select_foreground_random(order, {}, labeled=set(), k=2) == [5, 1]
    with pytest.raises(ValueError):
        al.select_foreground_random(order, present, labeled={1, 2, 3, 4}, k=2)


def test_selection() -> None:
    scores = {10: 0.9, 11: 0.1, 12: 0.8, 13: 0.95, 14: 0.8}
    assert al.select_uncertain(scores, labeled=set(), k=2) == [13, 10]
    assert al.select_uncertain(scores, labeled={13}, k=3) == [10, 12, 14]  # never a labeled one; ties by id
    with pytest.raises(ValueError):
        al.select_uncertain(scores, labeled={10, 13}, k=4)

    pool = al.pool_subset(list(range(2, 50)), 10, seed=0)
    assert pool == al.pool_subset(list(range(2, 50)), 10, seed=0)  # the same pool for both arms and reruns
    assert len(pool) == 10 and pool == sorted(pool) and set(pool) <= set(range(2, 50))
    assert pool != al.pool_subset(list(range(2, 50)), 10, seed=1)
    assert al.pool_subset([5, 3, 4], 0, seed=0) == [3, 4, 5] == al.pool_subset([5, 3, 4], 9, seed=0)

    order = al.random_order(pool, label_seed=0, seed=0)
    assert order == al.random_order(pool, label_seed=0, seed=0) and sorted(order) == pool
    assert order != al.random_order(pool, label_seed=0, seed=1)
    first = al.select_random(order, labeled=set(), k=3)
    assert first == order[:3]
    assert al.select_random(order, labeled=set(first), k=3) == order[3:6]
    with pytest.raises(ValueError):
        al.select_random(order, labeled=set(order[:8]), k=3)


def _negatives(folder: Path, count: int) -> Path:
    """``count`` 40x48 frames with all-zero masks (a polyp-free folder)."""
    (folder / "images").mkdir(parents=True)
    (folder / "masks").mkdir()
    rng = np.random.default_rng(3)
    for i in range(count):
        Image.fromarray((rng.random((40, 48, 3)) * 255).astype(np.uint8)).save(folder / "images" / f"neg{i}.png")
        Image.fromarray(np.zeros((40, 48), np.uint8)).save(folder / "masks" / f"neg{i}.png")
    return folder


def test_tiny_run_has_every_arm_and_resumes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "demo"
    generate_demo_dataset(folder, num_train=10, num_val=3, num_test=2, image_size=(40, 48), seed=0)
    out = tmp_path / "al"
    negatives = _negatives(tmp_path / "polyp_free", 3)
    args = ["--data", str(folder), "--out", str(out), *TINY, "--negatives", str(negatives), "--negatives-count", "2"]
    args += ["--presize"]  # the runs read 32 px copies (harness.presized_folders)
    assert al.main(args) == 0
    saved = json.loads((out / "results.json").read_text())
    runs = saved["runs"]
    assert [(r["arm"], r["round"], r["labeled"]) for r in runs] == [
        ("initial", 0, 2),
        *[(arm, 1, 3) for arm in al.ARMS],
        *[(arm, 2, 4) for arm in al.ARMS],
    ]
    initial, pool = runs[0]["labeled_ids"], runs[0]["pool"]
    assert len(pool) == 4 + 2 and not set(pool) & set(initial)
    negative_ids = set(pool[-2:])  # the two polyp-free frames come last in the pool
    subset = json.loads((Path(runs[0]["model"]).parents[1] / "datalist.json").read_text())
    assert not negative_ids & set(initial)
    for arm in al.ARMS:
        mine = [r for r in runs if r["arm"] == arm]
        labeled = set(initial)
        for r in mine:
            assert len(r["added"]) == 1 and not set(r["added"]) & labeled and set(r["added"]) <= set(pool)
            labeled |= set(r["added"])
            assert r["labeled_ids"] == sorted(labeled)
            # each round is the bundle's fine-tuning workflow, from the arm's previous model, on its labeled images
            done = json.loads((Path(r["model"]).parent / "DONE").read_text())
            assert "--finetune true" in " ".join(done["command"])
            subset = json.loads((Path(r["model"]).parents[1] / "datalist.json").read_text())
            assert len(subset["training"]) == r["labeled"]
    for r in runs[1:]:
        assert r["labeled_negatives"] == sum(i in negative_ids for i in r["labeled_ids"])
    # the third polyp-free frame is held out: the false alarms of the initial and the final models
    heldout = json.loads((out / "heldout_negatives.json").read_text())["test"]
    assert len(heldout) == 1 and heldout[0]["image"] not in {e["image"] for e in subset["training"]}
    assert Path(heldout[0]["image"]).is_relative_to(out / "presized32" / "negatives")
    for r in runs:
        if r["round"] in (0, 2):
            assert r["heldout_negatives"]["num_images"] == 1 and r["heldout_negatives"]["specificity"] in (0.0, 1.0)
        else:
            assert "heldout_negatives" not in r
    unc = [r for r in runs if r["arm"] == "uncertainty"]
    for r in unc:  # the highest score among the candidates left
        scores = {int(k): v for k, v in r["pool_scores"].items()}
        assert r["added"] == [max(scores, key=scores.get)]
    assert [len(r["pool_scores"]) for r in unc] == [6, 5]
    diverse = [r for r in runs if r["arm"] == "diverse"]
    assert [len(r["pool_scores"]) for r in diverse] == [6, 5]
    assert all(r["predicted_polyps"] <= 6 for r in runs if r["arm"] == "foreground_random")
    rnd = [r for r in runs if r["arm"] == "random"]
    assert [i for r in rnd for i in r["added"]] == al.random_order(pool, 0, 0)[:2]
    for r in runs:
        failure = r["failure"]
        assert failure["images"] == 2 and len(failure["dice"]) == 2  # the test split
        assert set(failure["scores"]) == set(SCORE_NAMES) == set(failure["stats"])
        assert failure["failures"] == sum(d < 0.5 for d in failure["dice"])
        assert math.isfinite(r["test"]["iou"])
    table = (out / "results.md").read_text()
    assert "| diverse | 2 | 4 |" in table and "| random round 2 | 4 |" in table
    assert "python bench/active_learning.py --data" in table and "tta_dice_disagreement AURC" in table

    # a second invocation finds everything done: no bundle run, the same results
    monkeypatch.setattr(al.harness, "run_command", lambda *a, **k: pytest.fail("a bundle run was repeated"))
    assert al.main(args) == 0
    assert json.loads((out / "results.json").read_text())["runs"] == runs

    # an interrupted run continues with the next round, from the stored models, without training anything twice
    saved["runs"] = [r for r in runs if r["round"] < 2]
    (out / "results.json").write_text(json.dumps(saved))
    assert al.main(args) == 0
    again = json.loads((out / "results.json").read_text())["runs"]
    assert [r["added"] for r in again if r["arm"] == "random"] == [r["added"] for r in rnd]
    monkeypatch.undo()

    with pytest.raises(SystemExit):  # other settings must not be mixed into the same results file
        al.main([*args, "--round-steps", "2"])

    # runs of other seeds in other folders merge into one table; the same seed twice or other settings do not
    other = tmp_path / "al_seed9"
    other.mkdir()
    copy = json.loads((out / "results.json").read_text())
    copy["runs"] = [{**r, "seed": 9} for r in copy["runs"]]
    # as a run with --out other would record them: its --presize copies inside its own folder
    copy["settings"] = {
        k: str(other) + v[len(str(out)) :] if isinstance(v, str) and v.startswith(str(out)) else v
        for k, v in copy["settings"].items()
    }
    assert copy["settings"]["out"] == str(other) and copy["settings"]["data"].startswith(str(other))
    (other / "results.json").write_text(json.dumps(copy))
    assert al.main(["merge", str(out), str(other), "--out", str(tmp_path / "merged")]) == 0
    merged = json.loads((tmp_path / "merged" / "results.json").read_text())
    assert len(merged["runs"]) == 2 * len(runs) and {r["seed"] for r in merged["runs"]} == {0, 9}
    # two seeds per row now (identical copies here: no spread)
    assert re.search(r"\| diverse \| 2 \| 4 \| \d\.0 ± 0\.0 \| 2 \|", (tmp_path / "merged" / "results.md").read_text())
    with pytest.raises(SystemExit):
        al.main(["merge", str(out), str(out), "--out", str(tmp_path / "twice")])
    copy["settings"]["rounds"] = 3
    (other / "results.json").write_text(json.dumps(copy))
    with pytest.raises(SystemExit):
        al.main(["merge", str(out), str(other), "--out", str(tmp_path / "mixed")])
