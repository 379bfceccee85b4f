# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""Semi-supervised training through the bundle: configs/semi_supervised.json on top of the stage configs."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import torch
from bundle_runner import BOTH_STAGES_JSON, FAST, REPO, STAGE2_JSON, TRAIN_JSON, run_bundle
from ignite.engine import Events
from monai.bundle import ConfigParser, ConfigWorkflow

from condseg_monai.data import generate_demo_dataset
from condseg_monai.engines import SemiSupervisedTrainer, TrainingSettings, check_training_settings
from condseg_monai.networks import ConDSeg
from condseg_monai.transforms import UnlabeledCutMix

SEMI_JSON = REPO / "configs" / "semi_supervised.json"
SEMI_TAGS = ("train_unsup_loss", "train_unsup_weight", "train_confident_fraction")
# a plain MONAI network through the same workflow (Stage 2 without a Stage-1 checkpoint)
TINY_BASIC_UNET = {
    "stage1_checkpoint": None,
    "network_def": {
        "_target_": "BasicUNet",
        "spatial_dims": 2,
        "in_channels": 3,
        "out_channels": 1,
        "features": [4, 4, 8, 8, 16, 4],
    },
    "loss": {"_target_": "condseg_monai.losses.DiceBCELoss"},
}


def _ok(result: subprocess.CompletedProcess) -> None:
    assert result.returncode == 0, f"bundle run failed:\n{result.stdout[-3000:]}\n{result.stderr[-6000:]}"


def _messages(error: BaseException) -> str:
    """All messages of an exception chain (MONAI wraps config errors in RuntimeError)."""
    parts = []
    while error is not None:
        parts.append(str(error))
        error = error.__cause__ or error.__context__
    return "\n".join(parts)


def _workflow(configs: list[Path], **overrides) -> ConfigWorkflow:
    settings = {**FAST, "device": "cpu", **overrides}
    return ConfigWorkflow(config_file=[str(p) for p in configs], workflow_type="train", **settings)


@pytest.fixture(scope="module")
def semi_datalist(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Four training, two validation, two test pairs and three unlabeled images (48x64)."""
    out = tmp_path_factory.mktemp("semi_demo")
    return str(
        generate_demo_dataset(out, num_train=4, num_val=2, num_test=2, image_size=(48, 64), seed=3, num_unlabeled=3)
    )


@pytest.fixture(scope="module")
def semi_two_stage_run(tmp_path_factory: pytest.TempPathFactory, semi_datalist: str) -> Path:
    """Both stages, semi-supervised, in one `python -m monai.bundle run training` with the override."""
    out = tmp_path_factory.mktemp("semi_two_stage")
    overrides = {k: v for k, v in FAST.items() if k not in ("max_epochs", "batch_size")}
    overrides.update(datalist=semi_datalist, output_dir=out, stage1_max_epochs=1, stage2_max_epochs=1)
    overrides.update(stage1_batch_size=2, stage2_batch_size=2, rampup_epochs=1, confidence_threshold=0.6)
    _ok(run_bundle("training", [TRAIN_JSON, BOTH_STAGES_JSON, SEMI_JSON], overrides))
    return out


def _scalar_tags(tensorboard_dir: Path) -> set[str]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(tensorboard_dir))
    acc.Reload()
    return set(acc.Tags()["scalars"])


def test_override_keys_are_settings_forwarded_to_both_stages() -> None:
    """semi_supervised.json only sets top-level settings that train.json defines and both_stages.json forwards."""
    semi = json.loads(SEMI_JSON.read_text())
    train = json.loads(TRAIN_JSON.read_text())
    shared = TrainingSettings.shared_names()
    assert semi["semi_supervised"] is True
    for key in semi:
        assert key in train, f"{key} is not a train.json setting"
        assert key in shared, f"both_stages.json does not forward {key} to the stages"
        assert key in TrainingSettings.model_fields, f"{key} is not validated by check_training_settings"


def test_two_stage_semi_supervised_run(semi_two_stage_run: Path) -> None:
    for stage in ("stage1", "stage2"):
        folder = semi_two_stage_run / stage
        assert (folder / "model.pt").is_file() and (folder / "latest.pt").is_file()
        tags = _scalar_tags(folder / "tensorboard")
        assert set(SEMI_TAGS) <= tags, f"{stage}: missing TensorBoard scalars {set(SEMI_TAGS) - tags}"
    assert "train_unsup_consistency" in _scalar_tags(semi_two_stage_run / "stage1" / "tensorboard")
    assert {"train_unsup_fg", "train_unsup_bg"} <= _scalar_tags(semi_two_stage_run / "stage2" / "tensorboard")
    # Stage 1 has no teacher; Stage 2's EMA teacher is part of the resume state and is the saved best model
    assert "teacher" not in torch.load(semi_two_stage_run / "stage1" / "latest.pt", weights_only=True)
    latest = torch.load(semi_two_stage_run / "stage2" / "latest.pt", weights_only=True)
    assert {"model", "teacher", "optimizer", "trainer"} <= set(latest)
    best = torch.load(semi_two_stage_run / "stage2" / "model.pt", weights_only=True)
    ConDSeg(feature_size=16).load_state_dict(best)
    assert all(torch.equal(best[k], latest["teacher"][k]) for k in best), "model.pt is not the teacher"
    assert any(not torch.equal(latest["model"][k], latest["teacher"][k]) for k in best), "teacher == student"


def test_resume_restores_the_teacher(semi_two_stage_run: Path, semi_datalist: str) -> None:
    """--resume true continues with the saved teacher (not re-synced to the student)."""
    saved = torch.load(semi_two_stage_run / "stage2" / "latest.pt", weights_only=True)
    wf = _workflow(
        [TRAIN_JSON, STAGE2_JSON, SEMI_JSON],
        datalist=semi_datalist,
        output_dir=str(semi_two_stage_run),
        resume=True,
        max_epochs=2,
        val_interval=5,
    )
    wf.initialize()
    trainer = wf.parser.get_parsed_content("train#trainer")
    assert isinstance(trainer, SemiSupervisedTrainer) and trainer.teacher is not None
    seen: dict[str, torch.Tensor] = {}

    momenta: list[float] = []

    @trainer.on(Events.STARTED)
    def _teacher_at_start(engine) -> None:
        seen.update({k: v.detach().clone() for k, v in trainer.teacher.state_dict().items()})

    trainer.add_event_handler(Events.ITERATION_COMPLETED, lambda e: momenta.append(e.state.ema_momentum))
    wf.run()
    wf.finalize()
    assert trainer.state.epoch == 2
    # the shipped warm-up continues from the restored iteration: updates 3 and 4 (2 iterations per epoch)
    assert momenta == pytest.approx([1 / 3, 1 / 4])
    for key, value in saved["teacher"].items():
        torch.testing.assert_close(seen[key], value, msg=f"teacher {key} not restored")


def test_monai_baseline_network_through_the_bundle(tmp_path: Path, semi_datalist: str) -> None:
    """The same workflow trains a plain MONAI network semi-supervised (for comparisons outside ConDSeg)."""
    wf = _workflow(
        [TRAIN_JSON, STAGE2_JSON, SEMI_JSON],
        datalist=semi_datalist,
        output_dir=str(tmp_path),
        bcp=True,
        **TINY_BASIC_UNET,
    )
    wf.initialize()
    wf.run()
    wf.finalize()
    trainer = wf.parser.get_parsed_content("train#trainer")
    assert trainer.bcp is not None and trainer.state.iteration == 2
    assert (tmp_path / "stage2" / "model.pt").is_file()


def test_teacher_momentum_warm_up_override(tmp_path: Path, semi_datalist: str) -> None:
    """`train#ema#momentum_warmup` / `warmup_iters` (ignite's EMA warm-up, for short fine-tunes) reach the teacher:
    the momentum goes linearly from the warm-up value to 1 - ema_decay."""
    overrides = {"train#ema#momentum_warmup": 0.5, "train#ema#warmup_iters": 2, "ema_decay": 0.9}
    wf = _workflow(
        [TRAIN_JSON, STAGE2_JSON, SEMI_JSON],
        datalist=semi_datalist,
        output_dir=str(tmp_path),
        **TINY_BASIC_UNET,
        **overrides,
    )
    wf.initialize()
    trainer = wf.parser.get_parsed_content("train#trainer")
    momenta: list[float] = []
    # attached after the EMA handler's own scheduler, so it reads the momentum used for this iteration's update
    trainer.add_event_handler(Events.ITERATION_COMPLETED, lambda e: momenta.append(e.state.ema_momentum))
    wf.run()
    wf.finalize()
    assert momenta == pytest.approx([0.5, 0.1])  # iteration 1: warm-up value; iteration 2 = warmup_iters: 1 - 0.9


def test_shipped_teacher_warm_up(tmp_path: Path, semi_datalist: str) -> None:
    """configs/semi_supervised.json as shipped (ema_warmup true, ema_decay 0.99): the momentum of the t-th teacher
    update is max(1/t, 0.01), so after the first iteration the teacher is exactly the student."""
    assert json.loads(SEMI_JSON.read_text())["ema_warmup"] is True
    wf = _workflow(
        [TRAIN_JSON, STAGE2_JSON, SEMI_JSON], datalist=semi_datalist, output_dir=str(tmp_path), **TINY_BASIC_UNET
    )
    wf.initialize()
    trainer = wf.parser.get_parsed_content("train#trainer")
    records: list[tuple[float, bool]] = []

    @trainer.on(Events.ITERATION_COMPLETED)  # registered after the EMA handler: sees the updated teacher
    def _record(engine) -> None:
        teacher, student = trainer.teacher.state_dict(), trainer.network.state_dict()
        records.append((engine.state.ema_momentum, all(torch.equal(teacher[k], student[k]) for k in student)))

    wf.run()
    wf.finalize()
    assert [m for m, _ in records] == pytest.approx([1.0, 0.5])
    assert records[0][1], "after iteration 1 the teacher is not the student"
    assert not records[1][1]


def test_constant_teacher_momentum_without_warm_up(tmp_path: Path, semi_datalist: str) -> None:
    wf = _workflow(
        [TRAIN_JSON, STAGE2_JSON, SEMI_JSON],
        datalist=semi_datalist,
        output_dir=str(tmp_path),
        ema_warmup=False,
        **TINY_BASIC_UNET,
    )
    wf.initialize()
    trainer = wf.parser.get_parsed_content("train#trainer")
    momenta: list[float] = []
    trainer.add_event_handler(Events.ITERATION_COMPLETED, lambda e: momenta.append(e.state.ema_momentum))
    wf.run()
    wf.finalize()
    assert momenta == pytest.approx([0.01, 0.01])


def test_semi_supervised_without_unlabeled_images_fails(tmp_path: Path, tiny_datalist: str) -> None:
    wf = _workflow(
        [TRAIN_JSON, STAGE2_JSON, SEMI_JSON], datalist=tiny_datalist, output_dir=str(tmp_path), stage1_checkpoint=None
    )
    wf.initialize()
    with pytest.raises(Exception) as info:
        wf.run()
    assert "no usable 'unlabeled' images" in _messages(info.value)
    assert not (tmp_path / "stage2" / "latest.pt").exists(), "training started anyway"


def test_unlabeled_image_that_is_also_labeled_fails_naming_it(tmp_path: Path, semi_datalist: str) -> None:
    data = json.loads(Path(semi_datalist).read_text())
    data["unlabeled"] = [{"image": data["training"][0]["image"]}]
    bad = Path(semi_datalist).parent / "also_labeled.json"
    bad.write_text(json.dumps(data))
    wf = _workflow(
        [TRAIN_JSON, STAGE2_JSON, SEMI_JSON], datalist=str(bad), output_dir=str(tmp_path), stage1_checkpoint=None
    )
    wf.initialize()
    with pytest.raises(Exception) as info:
        wf.run()
    message = _messages(info.value)
    assert "also labeled" in message and Path(data["training"][0]["image"]).name in message


def test_settings_errors_name_the_key() -> None:
    parser = ConfigParser()
    parser.read_config(str(TRAIN_JSON))
    parser["device"] = "cpu"
    base = {name: parser.get_parsed_content(name) for name in TrainingSettings.model_fields}
    assert check_training_settings(**{**base, "semi_supervised": True, "bcp": True}).bcp
    bad = {
        "ema_decay": 1.0,
        "confidence_threshold": 0.3,
        "class_balanced_fraction": 0.0,
        "background_fraction": 1.5,
        "unsupervised_dice_weight": -1.0,
        "unsupervised_weight": -1.0,
        "rampup_epochs": -2,
        "unlabeled_ratio": 0,
        "unlabeled_batch_size": 0,
    }
    with pytest.raises(ValueError) as info:
        check_training_settings(**{**base, "semi_supervised": True, **bad})
    for key in bad:
        assert f"`{key}`" in str(info.value)
    with pytest.raises(ValueError, match="bcp"):
        check_training_settings(**{**base, "semi_supervised": False, "bcp": True})
    assert check_training_settings(**{**base, "semi_supervised": True, "cutmix": True}).cutmix
    with pytest.raises(ValueError, match="cutmix: mixing unlabeled images needs semi-supervised"):
        check_training_settings(**{**base, "semi_supervised": False, "cutmix": True})
    with pytest.raises(ValueError, match="cutmix: cutmix and bcp"):
        check_training_settings(**{**base, "semi_supervised": True, "cutmix": True, "bcp": True})


def test_epoch_length_sets_the_epochs_and_the_ramp_up(tmp_path: Path, semi_datalist: str) -> None:
    """A budget in iterations (``epoch_length``): the trainer's epochs and the unsupervised ramp-up follow it."""
    wf = _workflow(
        [TRAIN_JSON, STAGE2_JSON, SEMI_JSON],
        datalist=semi_datalist,
        output_dir=str(tmp_path),
        epoch_length=5,
        max_epochs=1,
        class_balanced_fraction=0.5,
        background_fraction=0.25,
        unsupervised_dice_weight=0.5,
        **TINY_BASIC_UNET,
    )
    wf.initialize()
    trainer = wf.parser.get_parsed_content("train#trainer")
    assert trainer.unsupervised_loss.class_balanced_fraction == 0.5
    assert trainer.unsupervised_loss.background_fraction == 0.25
    assert trainer.unsupervised_loss.dice_weight == 0.5
    assert trainer.state.epoch_length == 5 and len(wf.parser.get_parsed_content("train#dataloader")) != 5
    assert trainer.rampup_iterations == 1  # 20 % of 1 epoch of 5 iterations
    unlabeled_loader = wf.parser.get_parsed_content("unlabeled#dataloader")
    batch_size = wf.parser.get_parsed_content("batch_size")
    assert unlabeled_loader.batch_size == max(1, 3 * batch_size // 8), "null: 3/8 of the labeled batch size"
    wf.run()
    wf.finalize()
    assert trainer.state.iteration == 5


def test_unlabeled_batch_size_sets_the_unlabeled_batches(tmp_path: Path, semi_datalist: str) -> None:
    """``unlabeled_batch_size`` (cheaper semi-supervised iterations): the unlabeled loader and each step use it."""
    wf = _workflow(
        [TRAIN_JSON, STAGE2_JSON, SEMI_JSON],
        datalist=semi_datalist,
        output_dir=str(tmp_path),
        epoch_length=2,
        max_epochs=1,
        batch_size=2,
        unlabeled_batch_size=1,
        **TINY_BASIC_UNET,
    )
    wf.initialize()
    trainer = wf.parser.get_parsed_content("train#trainer")
    assert wf.parser.get_parsed_content("unlabeled#dataloader").batch_size == 1
    assert trainer.draw_unlabeled().shape[0] == 1


@pytest.mark.parametrize("stage_json, applies", [(STAGE2_JSON, True), (REPO / "configs" / "stage1.json", False)])
def test_cutmix_setting_reaches_the_stage_2_trainer(
    tmp_path: Path, semi_datalist: str, stage_json: Path, applies: bool
) -> None:
    """``--cutmix true`` mixes the unlabeled batch in Stage 2 (mean teacher); Stage 1 has no pseudo-labels to mix."""
    wf = _workflow(
        [TRAIN_JSON, stage_json, SEMI_JSON],
        datalist=semi_datalist,
        output_dir=str(tmp_path),
        epoch_length=1,
        max_epochs=1,
        batch_size=2,
        unlabeled_batch_size=2,
        cutmix=True,
        **TINY_BASIC_UNET,
    )
    wf.initialize()
    trainer = wf.parser.get_parsed_content("train#trainer")
    assert isinstance(trainer, SemiSupervisedTrainer)
    assert isinstance(trainer.cutmix, UnlabeledCutMix) is applies and (trainer.cutmix is None) is not applies
    if applies:
        wf.run()
        assert trainer.state.iteration == 1 and len(trainer.cutmix.boxes) == 2
    wf.finalize()
