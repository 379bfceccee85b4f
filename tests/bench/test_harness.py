# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""bench/harness.py: the benchmarks train and evaluate through the bundle's own commands (tiny runs)."""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

import harness
import pytest
import torch

from condseg_monai.data import generate_demo_dataset


@pytest.fixture(scope="module")
def demo_datalist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("demo")
    return generate_demo_dataset(folder, num_train=6, num_val=2, num_test=2, image_size=(40, 48), seed=0)


def test_command_line_is_the_bundle_run() -> None:
    cmd = harness.bundle_command(
        "training", ["a.json", Path("b.json")], {"seed": 3, "amp": False, "x": None, "severities": [2, 3]}
    )
    assert cmd[:5] == [sys.executable, "-m", "monai.bundle", "run", "training"]
    assert cmd[cmd.index("--config_file") + 1] == "['a.json','b.json']"
    assert cmd[cmd.index("--seed") + 1] == "3" and cmd[cmd.index("--amp") + 1] == "false"
    assert cmd[cmd.index("--x") + 1] == "null" and cmd[cmd.index("--severities") + 1] == "[2, 3]"


def test_train_spec_checks_the_budget() -> None:
    with pytest.raises(ValueError, match="eval_every"):
        harness.TrainSpec(iterations=300, eval_every=200)
    with pytest.raises(ValueError, match="eval_every"):
        harness.TrainSpec(stage1_iterations=50, iterations=300, eval_every=100)
    harness.TrainSpec(network="basic_unet", stage1_iterations=50, iterations=300, eval_every=100)  # no Stage 1
    with pytest.raises(ValueError, match="network"):
        harness.TrainSpec(network="resnet")
    assert all((harness.NETWORK_CONFIGS / f"{n}.json").is_file() for n in harness.NETWORKS if n != "condseg")


def _state(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def test_baseline_trains_for_the_budget_and_is_evaluated(demo_datalist: Path, tmp_path: Path) -> None:
    spec = harness.TrainSpec(network="basic_unet", iterations=2, eval_every=1, image_size=32, batch_size=2)
    got = harness.train(spec, demo_datalist, tmp_path / "run")
    trainer = _state(got["last"])["trainer"]
    # the budget in iterations: 2 "epochs" of 1 iteration each (the training split has 3 batches)
    assert (trainer["iteration"], trainer["epoch_length"], trainer["max_epochs"]) == (2, 1, 2)
    assert got["best"].is_file() and set(_state(got["best"])) == set(_state(got["last"])["model"])
    assert got["best"].parent == tmp_path / "run" / "stage2"
    done = json.loads((tmp_path / "run" / "stage2" / "DONE").read_text())
    assert "bench/configs/basic_unet.json" in " ".join(done["command"]) and done["iterations"] == 2

    # a finished stage is not trained again
    mtime = got["last"].stat().st_mtime_ns
    again = harness.train(spec, demo_datalist, tmp_path / "run")
    assert again["seconds"] == 0 and got["last"].stat().st_mtime_ns == mtime

    summary = harness.evaluate(got["last"], demo_datalist, "test", tmp_path / "eval", 32, "basic_unet")
    detection = harness.read_detection(summary)
    assert summary["num_images"] == 2 and 0.0 <= detection["iou"] <= 1.0 and detection["sensitivity"] is not None
    robust = harness.evaluate(
        got["best"], demo_datalist, "test", tmp_path / "rob", 32, "basic_unet", "robustness",
        {"robustness_severities": [2], "robustness_corruptions": ["darken"]},
    )  # fmt: skip
    assert set(harness.read_conditions(robust)) == {"clean", "darken-2"}


def test_condseg_runs_both_stage_configs(demo_datalist: Path, tmp_path: Path) -> None:
    spec = harness.TrainSpec(
        stage1_iterations=1, iterations=2, eval_every=1, image_size=32, batch_size=2, overrides={"feature_size": 16}
    )
    got = harness.train(spec, demo_datalist, tmp_path / "run")
    assert [s["stage"] for s in got["stages"]] == ["stage1", "stage2"]
    assert _state(tmp_path / "run" / "stage1" / "latest.pt")["trainer"]["iteration"] == 1
    assert _state(got["last"])["trainer"]["iteration"] == 2
    commands = [" ".join(s["command"]) for s in got["stages"]]
    assert "configs/stage1.json" in commands[0] and "configs/stage2.json" in commands[1]
    # Stage 2 starts from Stage 1's encoder (the bundle's hand-over reads stage1/model.pt)
    stage1 = _state(tmp_path / "run" / "stage1" / "model.pt")
    key = next(k for k in stage1 if k.startswith("encoder.") and k.endswith("weight"))
    assert key in _state(got["best"])


def test_folder_datalist_and_summaries(tmp_path: Path) -> None:
    demo = generate_demo_dataset(tmp_path / "d", num_train=2, num_val=1, num_test=1, image_size=(40, 48), seed=0)
    folder = demo.parent
    pairs = json.loads(harness.folder_datalist(folder, tmp_path, "pairs").read_text())["test"]
    assert len(pairs) == len(list((folder / "images").iterdir())) and all("label" in e for e in pairs)
    free = tmp_path / "free" / "images"
    free.mkdir(parents=True)
    (free / "a.png").write_bytes(
        (folder / "images" / sorted(p.name for p in (folder / "images").iterdir())[0]).read_bytes()
    )
    negatives = json.loads(harness.folder_datalist(free.parent, tmp_path, "free").read_text())["test"]
    assert negatives == [{"image": str((free / "a.png").resolve()), "negative": True}]
    assert harness.mean_std([0.5]) == "50.0" and harness.mean_std([None]) == "–"
    assert harness.mean_std([0.4, 0.6]) == "50.0 ± 14.1"


def test_presized_folder_is_the_resized_copy(tmp_path: Path) -> None:
    import numpy as np
    from PIL import Image

    src = tmp_path / "src"
    (src / "images").mkdir(parents=True)
    (src / "masks").mkdir()
    Image.fromarray(np.full((30, 50, 3), 200, np.uint8)).save(src / "images" / "a.jpg")
    mask = np.zeros((30, 50), np.uint8)
    mask[:, :25] = 255
    Image.fromarray(np.stack([mask] * 3, -1)).save(src / "masks" / "a.jpg")
    out = harness.presized_folder(src, 16, tmp_path / "small")
    img, m = Image.open(out / "images" / "a.png"), np.asarray(Image.open(out / "masks" / "a.png"))
    assert img.size == (16, 16) and img.mode == "RGB" and m.shape == (16, 16)
    assert set(np.unique(m).tolist()) == {0, 255} and m[:, :7].min() == 255 and m[:, 9:].max() == 0
    mtime = (out / "images" / "a.png").stat().st_mtime_ns
    harness.presized_folder(src, 16, tmp_path / "small")  # kept, not rewritten
    assert (out / "images" / "a.png").stat().st_mtime_ns == mtime

    # the shared cache layout of --presize: out/presized<size>/<name>, None stays None
    small = harness.presized_folders({"data": src, "negatives": None}, 16, tmp_path / "run")
    assert small == {"data": tmp_path / "run" / "presized16" / "data", "negatives": None}
    assert Image.open(small["data"] / "images" / "a.png").size == (16, 16)


def test_merge_results_joins_folders_of_the_same_settings(tmp_path: Path) -> None:
    def folder(name: str, seed: int, **settings: object) -> Path:
        out = tmp_path / name
        out.mkdir()
        record = {"settings": {"out": str(out), "data": str(out / "presized64" / "data"), "steps": 4, **settings}}
        record["runs"] = [{"seed": seed, "arm": "a"}, {"seed": seed, "arm": "b"}]
        (out / "results.json").write_text(json.dumps(record))
        return out

    first, second = folder("s0", 0), folder("s1", 1)
    merged, runs = harness.merge_results([first, second], key=("seed", "arm"), out=tmp_path / "all")
    assert [(r["seed"], r["arm"]) for r in runs] == [(0, "a"), (0, "b"), (1, "a"), (1, "b")]
    # each folder's --presize copies are the same setting; the merged record says where it came from
    assert merged["data"] == "<out>/presized64/data" and merged["merged_from"] == [str(first), str(second)]
    assert json.loads((tmp_path / "all" / "results.json").read_text())["runs"] == runs
    with pytest.raises(ValueError, match="repeats the runs"):
        harness.merge_results([first, first], key=("seed", "arm"), out=tmp_path / "twice")
    with pytest.raises(ValueError, match=r"other settings than the first folder: \['steps'\]"):
        harness.merge_results([first, folder("s2", 2, steps=8)], key=("seed",), out=tmp_path / "mixed")
    with pytest.raises(ValueError, match="does not exist"):
        harness.merge_results([tmp_path / "nowhere"], key=("seed",), out=tmp_path / "none")


def test_pooled_detection_is_the_bundles_summary_of_the_frames_of_several_reports(tmp_path: Path) -> None:
    header = "image,has_polyp,polyp_present,detection_score,predicted_area\n"
    (tmp_path / "a.csv").write_text(header + "1.png,True,True,0.9,0.2\n2.png,True,False,0.4,0.0\n")
    (tmp_path / "b.csv").write_text(header + "3.png,False,True,0.7,0.3\n4.png,False,False,0.1,0.1\n")
    got = harness.pooled_detection([tmp_path / "a.csv", tmp_path / "b.csv"])
    assert got["num_with_polyp"] == 2 and got["num_polyp_free"] == 2
    assert got["sensitivity"] == 0.5 and got["specificity"] == 0.5
    # (polyp, polyp-free) pairs ranked right: 0.9 > 0.7, 0.9 > 0.1, 0.4 > 0.1, not 0.4 < 0.7
    assert got["auroc"] == pytest.approx(0.75)
    assert got["mean_polyp_free_area"] == pytest.approx(0.2)


def test_environment_names_the_cpu_model(tmp_path: Path) -> None:
    # the cost ratios of bench/semi_cost.py differ between CPU models, so results must say which one ran them
    env = harness.environment()
    assert env["cpu"] == harness.cpu_name() and env["cpu"]
    # a bare cloud name ("AMD EPYC") is told apart by its family and model numbers and AVX-512
    block = "processor\t: {}\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\nmodel\t\t: 17\nmodel name\t: AMD EPYC\n"
    info = tmp_path / "cpuinfo"
    info.write_text(block.format(0) + "flags\t\t: fpu avx2 avx512f\n\n" + block.format(1) + "flags\t\t: fpu\n")
    assert harness.cpu_name(info) == "AMD EPYC (family 25, model 17, avx512)"
    info.write_text(block.format(0).replace("cpu family\t: 25\n", "") + "flags\t\t: fpu avx2\n")
    assert harness.cpu_name(info) == "AMD EPYC"
    info.write_text("processor\t: 0\n")  # no model name: what platform knows
    assert harness.cpu_name(info) == (platform.processor() or platform.machine())
    assert harness.cpu_name(tmp_path / "missing") == (platform.processor() or platform.machine())


def test_name_value_options_are_checked(tmp_path: Path) -> None:
    assert harness.parse_pairs(["a=1", "b=x=y"], "--set") == {"a": "1", "b": "x=y"}
    for bad in ("a", "=1", "a="):
        with pytest.raises(ValueError, match=f"--set expects NAME=VALUE, got '{bad}'"):
            harness.parse_pairs([bad], "--set")
    (tmp_path / "ok" / "images").mkdir(parents=True)
    parser = argparse.ArgumentParser()
    assert harness.parse_cross([f"cvc={tmp_path / 'ok'}"], parser) == {"cvc": tmp_path / "ok"}
    for bad in (f"{tmp_path / 'ok'}", f"cvc={tmp_path}"):
        with pytest.raises(SystemExit):
            harness.parse_cross([bad], parser)
