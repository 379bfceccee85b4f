# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""The training settings: one definition (``TrainingSettings``), the configs that use it, and its validation."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import pytest
from bundle_runner import BOTH_STAGES_JSON, REPO, STAGE1_JSON, STAGE2_JSON, TRAIN_JSON
from monai.bundle import ConfigParser

from condseg_monai.engines import TrainingSettings, check_training_settings, config_settings, settings_from_config

FIELDS = list(TrainingSettings.model_fields)
STAGE_CONFIGS = (STAGE1_JSON, STAGE2_JSON)
PER_STAGE = {"max_epochs", "batch_size"}  # both_stages.json's stage1_/stage2_ keys


def _json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def _is_literal(value: Any) -> bool:
    return not isinstance(value, (dict, list)) and not (isinstance(value, str) and value[:1] in "$@%")


def _resolved(configs: list[Path], names: list[str], **overrides: Any) -> dict[str, Any]:
    """The resolved value of ``names`` in ``configs`` with ``overrides`` (on cpu)."""
    parser = ConfigParser()
    parser.read_config([str(c) for c in configs])
    parser.update({"device": "cpu", **overrides})
    return {name: parser.get_parsed_content(name) for name in names}


def _defaults(*configs: Path) -> dict[str, Any]:
    """The resolved value of every setting in ``configs`` (demo defaults: no datalist, cpu)."""
    with tempfile.TemporaryDirectory() as tmp:  # the demo settings generate the demo data into output_dir
        return _resolved(list(configs), FIELDS, output_dir=tmp)


def test_demo_settings_only_for_the_demo_data(tmp_path: Path) -> None:
    """No datalist means the demo data and its small settings, unless the caller injects its own training list,
    as MONAI Label's BundleTrainTask does (``train#dataset#data``, no ``datalist``): then the real-data settings."""
    names = ["use_demo_data", "image_size", "batch_size"]
    demo = _resolved([TRAIN_JSON], names, output_dir=str(tmp_path / "demo"))
    assert demo == {"use_demo_data": True, "image_size": 64, "batch_size": 4}
    injected = [{"image": str(tmp_path / "datastore" / "a.png"), "label": str(tmp_path / "datastore" / "a_mask.png")}]
    served = _resolved([TRAIN_JSON], names, output_dir=str(tmp_path / "label"), **{"train#dataset#data": injected})
    assert served == {"use_demo_data": False, "image_size": 256, "batch_size": 12}
    assert not (tmp_path / "label" / "demo_data").exists()  # nothing generated for a MONAI Label fine-tune


def test_settings_are_read_from_the_config_by_name(tmp_path: Path) -> None:
    """train.json validates its settings first in `initialize`, reading every field by name from the config
    being run (no list of names to keep in step): a field the config lacks is reported, a CLI value is seen."""
    train = _json(TRAIN_JSON)
    assert train["settings"] == "$condseg_monai.engines.config_settings()"
    assert train["initialize"][0] == "$@settings"
    parser = ConfigParser()
    parser.read_config(str(TRAIN_JSON))
    parser.update({"device": "cpu", "output_dir": str(tmp_path), "dropout_prob": 0.25})
    settings = parser.get_parsed_content("settings")
    assert isinstance(settings, TrainingSettings) and settings.dropout_prob == 0.25
    assert settings_from_config(parser) == settings
    config = {k: v for k, v in _json(TRAIN_JSON).items() if k != "dropout_prob"}
    lacking = ConfigParser(config)
    lacking.update({"device": "cpu", "output_dir": str(tmp_path)})
    with pytest.raises(Exception) as info:  # noqa: PT011 - MONAI wraps the ValueError in a RuntimeError
        lacking.get_parsed_content("settings")
    assert "`dropout_prob`: missing" in str(info.value) + str(info.value.__cause__)
    with pytest.raises(RuntimeError, match="call it from a config expression"):
        config_settings()


def test_every_field_is_a_train_json_key_and_every_literal_key_a_field() -> None:
    train = _json(TRAIN_JSON)
    assert [f for f in FIELDS if f not in train] == []
    literal = [k for k, v in train.items() if _is_literal(v)]
    assert [k for k in literal if k not in FIELDS] == [], "a literal top-level value is a setting: define it"


def test_stage_configs_set_only_stage_specific_settings() -> None:
    """A shared setting would overwrite what a stage config sets; output_dir is set to the same expression."""
    shared = set(TrainingSettings.shared_names())
    top = _json(BOTH_STAGES_JSON)
    for path in STAGE_CONFIGS:
        for key, value in _json(path).items():
            if key in shared:
                assert value == top.get(key), f"{path.name} sets shared setting {key} to {value!r}"
    assert shared.isdisjoint(PER_STAGE)
    assert top["shared_settings"] == "$@settings.shared_values()"


@pytest.mark.parametrize("stage_config", [STAGE1_JSON, STAGE2_JSON, None], ids=["stage1", "stage2", "finetune"])
def test_config_defaults_are_valid_settings(stage_config: Path | None) -> None:
    values = _defaults(TRAIN_JSON, *([stage_config] if stage_config else []))
    values["stage1_checkpoint"] = None  # Stage 2 standalone points at a Stage-1 run that does not exist here
    settings = check_training_settings(**values)
    assert settings.stage == (2 if stage_config is not STAGE1_JSON else 1)
    assert set(settings.shared_values()) == set(TrainingSettings.shared_names())


# The ten settings that used to reach the workflow unchecked, each with a value that must be refused.
BAD = {
    "rotate_limit": -5.0,
    "rotate_prob": 1.5,
    "flip_prob": -0.1,
    "dropout_prob": 2.0,
    "feature_size": 30,
    "val_batch_size": 0,
    "finetune": "maybe",
    "copy_bn_buffers": "sometimes",
    "shared_augmentation_draw": "x",
    "num_preview_images": -1,
}


def test_every_bad_value_is_named_in_one_error() -> None:
    values = _defaults(TRAIN_JSON, STAGE1_JSON)
    with pytest.raises(ValueError, match="invalid training configuration") as info:
        check_training_settings(**{**values, **BAD})
    message = str(info.value)
    for key, value in BAD.items():
        assert f"`{key}` = {value!r}" in message, f"{key} not reported:\n{message}"


def test_missing_and_unknown_settings_are_named() -> None:
    values = _defaults(TRAIN_JSON, STAGE1_JSON)
    del values["dropout_prob"]
    with pytest.raises(ValueError) as info:
        check_training_settings(**values, dropuot_prob=0.3)
    assert "`dropout_prob`: missing" in str(info.value)
    assert "`dropuot_prob` = 0.3: unknown setting" in str(info.value)


def test_device_accepts_a_torch_device() -> None:
    import torch

    values = {**_defaults(TRAIN_JSON, STAGE1_JSON), "device": torch.device("cpu")}
    assert check_training_settings(**values).device == "cpu"


def test_docs_list_every_setting() -> None:
    text = (REPO / "docs" / "training.md").read_text()
    assert [name for name in FIELDS if f"`{name}`" not in text] == []


@pytest.mark.parametrize("channels_last", [True, False])
def test_network_memory_format_follows_channels_last(tmp_path: Path, channels_last: bool) -> None:
    import torch

    network = _resolved([TRAIN_JSON], ["network"], output_dir=str(tmp_path), channels_last=channels_last)["network"]
    conv = network.encoder.conv1.weight  # (64, 3, 7, 7): the two formats differ for it
    assert conv.is_contiguous(memory_format=torch.channels_last) == channels_last
    assert conv.is_contiguous() != channels_last


def test_negatives_per_batch_must_leave_room_for_positives() -> None:
    values = {**_defaults(TRAIN_JSON, STAGE1_JSON), "batch_size": 4}
    assert check_training_settings(**{**values, "negatives_per_batch": None}).negatives_per_batch is None
    assert check_training_settings(**{**values, "negatives_per_batch": 0}).negatives_per_batch == 0
    with pytest.raises(ValueError, match=r"negatives_per_batch: 4 negatives leave no room .* batch_size 4"):
        check_training_settings(**{**values, "negatives_per_batch": 4})
    with pytest.raises(ValueError, match=r"`negatives_per_batch` = -1"):
        check_training_settings(**{**values, "negatives_per_batch": -1})


def test_negatives_per_batch_needs_declared_negatives_in_training(tmp_path: Path) -> None:
    values = {**_defaults(TRAIN_JSON, STAGE1_JSON), "batch_size": 4, "negatives_per_batch": 1}
    positives = [{"image": "a.png", "label": "a_m.png"}]
    without = tmp_path / "without.json"
    # a negative in validation only does not count: the batches are made from the training split
    without.write_text(json.dumps({"training": positives, "validation": [{"image": "n.png", "negative": True}]}))
    with pytest.raises(ValueError, match="negatives_per_batch: 1 negatives per batch, but the training split") as info:
        check_training_settings(**{**values, "datalist": str(without)})
    assert str(without) in str(info.value)
    with_negatives = tmp_path / "with.json"
    with_negatives.write_text(json.dumps({"training": [*positives, {"image": "n.png", "negative": True}]}))
    assert check_training_settings(**{**values, "datalist": str(with_negatives)}).negatives_per_batch == 1
    assert check_training_settings(**{**values, "datalist": str(without), "negatives_per_batch": 0})


def test_negatives_per_batch_is_shared_and_beta_max_bounded() -> None:
    assert {"negatives_per_batch", "beta_max"} <= set(TrainingSettings.shared_names())
    values = _defaults(TRAIN_JSON, STAGE1_JSON)
    assert values["negatives_per_batch"] is None and values["beta_max"] == 10.0
    assert check_training_settings(**{**values, "beta_max": None}).beta_max is None
    with pytest.raises(ValueError, match=r"`beta_max` = 0"):
        check_training_settings(**{**values, "beta_max": 0})


def test_loss_and_dataloader_get_the_settings(tmp_path: Path) -> None:
    parsed = _resolved([TRAIN_JSON], ["loss"], output_dir=str(tmp_path), beta_max=None)
    assert parsed["loss"].beta_max is None
    parsed = _resolved([TRAIN_JSON], ["loss"], output_dir=str(tmp_path), beta_max=3.5)
    assert parsed["loss"].beta_max == 3.5
    train = _json(TRAIN_JSON)["train"]["dataloader"]
    assert train["_target_"] == "condseg_monai.data.make_train_dataloader"
    assert train["negatives_per_batch"] == "@negatives_per_batch" and train["seed"] == "@seed"
