# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""End-to-end training through the real ``python -m monai.bundle run`` entry point (tiny settings)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import monai.bundle
import pytest
import torch
from bundle_runner import (
    BOTH_STAGES_JSON,
    FAST,
    META_JSON,
    REPO,
    STAGE1_JSON,
    STAGE2_JSON,
    TRAIN_JSON,
    bundle_cli,
    run_bundle,
)
from monai.bundle import ConfigWorkflow

from condseg_monai.networks import ConDSeg, ConDSegStage1


def _ok(result: subprocess.CompletedProcess) -> None:
    assert result.returncode == 0, f"bundle run failed:\n{result.stdout[-3000:]}\n{result.stderr[-6000:]}"


@pytest.fixture(scope="module")
def two_stage_run(tmp_path_factory: pytest.TempPathFactory, tiny_datalist: str) -> Path:
    """Both stages in one command through configs/both_stages.json (the documented two-stage run), started from a
    folder outside the repository: both_stages.json names its stage configs relative to the repository."""
    out = tmp_path_factory.mktemp("two_stage")
    elsewhere = tmp_path_factory.mktemp("another_cwd")
    overrides = {k: v for k, v in FAST.items() if k not in ("max_epochs", "batch_size")}
    overrides.update(datalist=tiny_datalist, output_dir=out, stage1_max_epochs=1, stage2_max_epochs=1)
    overrides.update(stage1_batch_size=2, stage2_batch_size=2)
    _ok(run_bundle("training", [TRAIN_JSON, BOTH_STAGES_JSON], overrides, cwd=elsewhere))
    (out / "cwd.txt").write_text(str(elsewhere))
    return out


def test_two_stage_run_from_another_folder(two_stage_run: Path) -> None:
    """The fixture's run started outside the repository (no configs/ there) and ran both stages."""
    cwd = Path((two_stage_run / "cwd.txt").read_text())
    assert REPO not in [cwd, *cwd.parents] and not (cwd / "configs").exists()
    assert (two_stage_run / "stage1" / "model.pt").is_file() and (two_stage_run / "stage2" / "model.pt").is_file()


def test_two_stage_run_writes_both_stages(two_stage_run: Path) -> None:
    for stage in ("stage1", "stage2"):
        folder = two_stage_run / stage
        assert (folder / "model.pt").is_file(), f"{stage} best model missing"
        assert (folder / "latest.pt").is_file(), f"{stage} resume state missing"
        assert (folder / "previews" / "latest.png").is_file()
        assert any((folder / "tensorboard").iterdir()), "no TensorBoard events"
    # best models are plain state dicts that load with weights_only=True into the right networks
    s1 = torch.load(two_stage_run / "stage1" / "model.pt", weights_only=True)
    ConDSegStage1().load_state_dict(s1)
    s2 = torch.load(two_stage_run / "stage2" / "model.pt", weights_only=True)
    ConDSeg(feature_size=16).load_state_dict(s2)
    # the resume state holds everything needed to continue
    latest = torch.load(two_stage_run / "stage2" / "latest.pt", weights_only=True)
    assert {"model", "optimizer", "lr_scheduler", "trainer", "early_stopping", "best_model_saver"} <= set(latest)
    assert latest["trainer"]["iteration"] == latest["trainer"]["epoch_length"] == 2  # one epoch of 4 images


def test_stage2_encoder_starts_from_stage1(two_stage_run: Path, tiny_datalist: str) -> None:
    """The Stage-2 network's encoder equals Stage 1's best encoder: parameters AND BatchNorm buffers."""
    overrides = {**FAST, "datalist": tiny_datalist, "output_dir": str(two_stage_run), "device": "cpu"}
    wf = ConfigWorkflow(config_file=[str(TRAIN_JSON), str(STAGE2_JSON)], workflow_type="train", **overrides)
    wf.initialize()
    net = wf.parser.get_parsed_content("network")
    stage1 = torch.load(two_stage_run / "stage1" / "model.pt", weights_only=True)
    encoder_keys = [k for k in stage1 if k.startswith("encoder.")]
    assert any("running_mean" in k for k in encoder_keys) and any("weight" in k for k in encoder_keys)
    state = net.state_dict()
    for key in encoder_keys:
        assert torch.equal(state[key], stage1[key]), f"{key} not handed over"
    # a freshly initialised ConDSeg would not match (BN running stats of a trained encoder moved)
    fresh = ConDSeg(feature_size=16).state_dict()
    assert any(not torch.equal(fresh[k], stage1[k]) for k in encoder_keys if "running_mean" in k)


def test_each_stage_runs_alone(tmp_path: Path, tiny_datalist: str) -> None:
    _ok(run_bundle("training", [TRAIN_JSON, STAGE1_JSON], {**FAST, "datalist": tiny_datalist, "output_dir": tmp_path}))
    assert (tmp_path / "stage1" / "model.pt").is_file()
    _ok(run_bundle("training", [TRAIN_JSON, STAGE2_JSON], {**FAST, "datalist": tiny_datalist, "output_dir": tmp_path}))
    assert (tmp_path / "stage2" / "model.pt").is_file()


def test_finetune_config_alone(tmp_path: Path, tiny_datalist: str) -> None:
    """train.json on its own (what MONAI Label runs) fine-tunes models/model.pt of the bundle root."""
    bundle_root = tmp_path / "bundle"
    (bundle_root / "models").mkdir(parents=True)
    start = ConDSeg(feature_size=16).state_dict()
    torch.save(start, bundle_root / "models" / "model.pt")
    result = run_bundle("run", [TRAIN_JSON], {**FAST, "datalist": tiny_datalist, "bundle_root": bundle_root})
    _ok(result)
    assert "Restored all variables from" in result.stdout + result.stderr, "pretrained model.pt not loaded"
    tuned = torch.load(bundle_root / "models" / "model.pt", weights_only=True)
    assert set(tuned) == set(start)
    assert any(not torch.equal(tuned[k], start[k]) for k in start), "model.pt was not updated by fine-tuning"


def test_resume_after_kill_continues_with_optimizer_state(tmp_path: Path, tiny_datalist: str) -> None:
    """Kill a run after its first saved epoch; --resume true continues from that epoch and optimizer state."""
    overrides = {**FAST, "datalist": tiny_datalist, "output_dir": tmp_path, "max_epochs": 200}
    latest = tmp_path / "stage1" / "latest.pt"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        bundle_cli("training", [TRAIN_JSON, STAGE1_JSON], overrides),
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 300
        while not latest.is_file() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
        assert latest.is_file(), "no checkpoint was written before the deadline"
        time.sleep(1.0)  # let it get into the next epoch
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    assert proc.returncode != 0, "the run finished before it could be killed"

    saved = torch.load(latest, weights_only=True)  # still loadable after the kill
    epoch = saved["trainer"]["iteration"] // saved["trainer"]["epoch_length"]
    iters_per_epoch = 2  # 4 training images, batch 2
    steps = {int(s["step"]) for s in saved["optimizer"]["state"].values()}
    assert steps == {epoch * iters_per_epoch}

    overrides.update(max_epochs=epoch + 1, resume="true")
    result = run_bundle("training", [TRAIN_JSON, STAGE1_JSON], overrides)
    _ok(result)
    assert f"epoch {epoch} until {epoch + 1} epochs" in result.stdout + result.stderr
    resumed = torch.load(latest, weights_only=True)
    assert resumed["trainer"]["iteration"] == (epoch + 1) * iters_per_epoch
    # Adam's step count continued from the saved state instead of restarting at zero
    assert {int(s["step"]) for s in resumed["optimizer"]["state"].values()} == {(epoch + 1) * iters_per_epoch}
    assert resumed["early_stopping"]["best_score"] >= saved["early_stopping"]["best_score"]


def _run_in_process(configs: list[Path], overrides: dict) -> str:
    """Run ``monai.bundle.run`` in this process (same code path as the CLI, without its start-up cost)."""
    with pytest.raises(Exception) as info:  # noqa: PT011 - the bundle wraps errors in RuntimeError chains
        monai.bundle.run(
            run_id="training",
            meta_file=str(META_JSON),
            config_file=[str(c) for c in configs],
            **overrides,
        )
    messages, err = [], info.value
    while err is not None:
        messages.append(str(err))
        err = err.__cause__ or err.__context__
    return "\n".join(messages)


@pytest.mark.parametrize(
    ("override", "needle"),
    [
        ({"image_size": 40}, "`image_size` = 40: must be a multiple of 16"),
        ({"device": "gpu"}, "`device` = 'gpu'"),
        ({"beta_mode": "mean"}, "`beta_mode` = 'mean'"),
        ({"use_checkpoint": "sometimes"}, "`use_checkpoint` = 'sometimes'"),
        ({"datalist": "/nonexistent/datalist.json"}, "`datalist` = '/nonexistent/datalist.json': file not found"),
        ({"learning_rate": -1}, "`learning_rate` = -1"),
    ],
)
def test_bad_settings_fail_at_start_naming_the_key(
    tmp_path: Path, tiny_datalist: str, override: dict, needle: str
) -> None:
    overrides = {**FAST, "datalist": tiny_datalist, "output_dir": str(tmp_path), **override}
    message = _run_in_process([TRAIN_JSON, STAGE1_JSON], overrides)
    assert needle in message
    assert not (tmp_path / "stage1").exists(), "training started despite the bad setting"


def test_stage2_without_stage1_checkpoint_fails_at_start(tmp_path: Path, tiny_datalist: str) -> None:
    message = _run_in_process(
        [TRAIN_JSON, STAGE2_JSON], {**FAST, "datalist": tiny_datalist, "output_dir": str(tmp_path)}
    )
    assert "stage1_checkpoint" in message and "Stage-1 checkpoint not found" in message
    assert not (tmp_path / "stage2" / "latest.pt").exists()


def test_bad_datalist_entry_fails_before_training(tmp_path: Path, tiny_datalist: str) -> None:
    """A corrupt image listed in the datalist stops the run at start, naming the file."""
    import json

    data = json.loads(Path(tiny_datalist).read_text())
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    base = Path(tiny_datalist).parent
    data["training"][0]["image"] = str(broken)
    for split in ("training", "validation", "test"):
        for entry in data.get(split, []):
            for key in ("image", "label"):
                if not os.path.isabs(entry[key]):
                    entry[key] = str(base / entry[key])
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(data))
    message = _run_in_process([TRAIN_JSON, STAGE1_JSON], {**FAST, "datalist": str(bad), "output_dir": str(tmp_path)})
    assert str(broken) in message
    assert not (tmp_path / "stage1" / "latest.pt").exists()


def test_two_stage_resume_continues_from_the_last_completed_stage(
    tmp_path: Path, two_stage_run: Path, tiny_datalist: str
) -> None:
    """Killed in Stage 2 before Stage 2 saved its first state: --resume skips the finished Stage 1 and starts
    Stage 2 afresh from Stage 1's model (before, it stopped with "no training state to resume from")."""
    import shutil

    from condseg_monai.engines.stages import STAGE_COMPLETED

    out = tmp_path / "run"
    shutil.copytree(two_stage_run, out)
    assert (out / "stage1" / STAGE_COMPLETED).is_file() and (out / "stage2" / STAGE_COMPLETED).is_file()
    for name in ("latest.pt", "model.pt", STAGE_COMPLETED):  # the state of a kill early in Stage 2
        (out / "stage2" / name).unlink()
    stage1_model = (out / "stage1" / "model.pt").read_bytes()
    overrides = {k: v for k, v in FAST.items() if k not in ("max_epochs", "batch_size")}
    overrides.update(datalist=tiny_datalist, output_dir=out, stage1_max_epochs=1, stage2_max_epochs=1)
    overrides.update(stage1_batch_size=2, stage2_batch_size=2, resume="true")
    result = run_bundle("training", [TRAIN_JSON, BOTH_STAGES_JSON], overrides)
    _ok(result)
    log = result.stdout + result.stderr
    assert "stage 1 completed in an earlier run" in log and "stage 2: no saved state" in log
    assert (out / "stage1" / "model.pt").read_bytes() == stage1_model, "the finished Stage 1 was trained again"
    for name in ("latest.pt", "model.pt", STAGE_COMPLETED):
        assert (out / "stage2" / name).is_file(), name


def test_resume_without_state_fails_at_start(tmp_path: Path, tiny_datalist: str) -> None:
    overrides = {**FAST, "datalist": tiny_datalist, "output_dir": str(tmp_path), "resume": True}
    message = _run_in_process([TRAIN_JSON, STAGE1_JSON], overrides)
    assert "resume" in message and "latest.pt" in message
    assert not (tmp_path / "stage1" / "model.pt").exists()
