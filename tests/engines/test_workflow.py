# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""The named decisions train.json declares (condseg_monai/engines/workflow.py) and where run_stages finds configs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from bundle_runner import REPO

from condseg_monai.engines import (
    evaluation_network,
    finetunes_from,
    memory_format,
    run_defaults,
    train_handlers,
    uses_amp,
    uses_demo_data,
    uses_mixing,
    uses_teacher,
)
from condseg_monai.engines.stages import REPOSITORY, find_config

DATA = {"image_size": 256, "batch_size": 12, "max_epochs": 50}
DEMO = {"image_size": 64, "batch_size": 4, "max_epochs": 2}


def test_run_defaults_pick_one_table() -> None:
    assert vars(run_defaults(True, DATA, DEMO)) == DEMO
    assert vars(run_defaults(False, DATA, DEMO)) == DATA
    assert run_defaults(False, DATA, DEMO).image_size == 256
    with pytest.raises(ValueError, match="same keys"):
        run_defaults(True, DATA, {"image_size": 64})


def test_demo_data_only_without_datalist_and_inside_the_demo_folder(tmp_path: Path) -> None:
    demo = [{"image": str(tmp_path / "demo" / "images" / "a.png")}]
    injected = [{"image": str(tmp_path / "datastore" / "a.png")}]
    assert uses_demo_data(None, demo, str(tmp_path / "demo"))
    assert not uses_demo_data(None, injected, str(tmp_path / "demo"))  # MONAI Label's own training list
    assert not uses_demo_data("datalist.json", demo, str(tmp_path / "demo"))


def test_semi_supervised_decisions() -> None:
    assert uses_teacher(True, 2) and not uses_teacher(True, 1) and not uses_teacher(False, 2)
    assert uses_mixing(True, True) and not uses_mixing(True, False) and not uses_mixing(False, True)
    student, teacher = torch.nn.Identity(), torch.nn.Identity()
    assert evaluation_network(student, teacher, True) is teacher
    assert evaluation_network(student, teacher, False) is student
    assert evaluation_network(student, None, True) is student


def test_trainer_handlers_leave_out_the_switched_off_ones() -> None:
    a, b, c = object(), object(), object()
    assert train_handlers([a, b], None, c, None) == [a, b, c]
    assert train_handlers([], None) == []


def test_small_switches(tmp_path: Path) -> None:
    assert uses_amp(True, "cuda:1") and not uses_amp(True, "cpu") and not uses_amp(False, "cuda")
    assert memory_format(True) is torch.channels_last and memory_format(False) is torch.contiguous_format
    ckpt = tmp_path / "model.pt"
    assert not finetunes_from(True, str(ckpt))
    ckpt.write_bytes(b"")
    assert finetunes_from(True, str(ckpt)) and not finetunes_from(False, str(ckpt))


def test_configs_are_found_from_another_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert REPOSITORY == REPO
    monkeypatch.chdir(tmp_path)
    assert find_config("configs/stage1.json") == os.fspath(REPO / "configs" / "stage1.json")
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "stage1.json").write_text("{}")  # the working directory's own file comes first
    assert find_config("configs/stage1.json") == os.fspath(Path("configs/stage1.json"))
    elsewhere = tmp_path / "bundle_copy"
    (elsewhere / "configs").mkdir(parents=True)
    (elsewhere / "configs" / "stage2.json").write_text("{}")
    assert find_config("configs/stage2.json", [elsewhere]) == os.fspath(elsewhere / "configs" / "stage2.json")
    with pytest.raises(FileNotFoundError, match=r"config file not found: 'configs/nope.json' \(looked for"):
        find_config("configs/nope.json")
