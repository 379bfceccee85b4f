# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""Tests for input discovery, checkpoint checks/loading and the evaluation split choice."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from condseg_monai.inference import (
    is_image_file,
    list_input_images,
    load_model_weights,
    require_file,
    screen_eval_split,
    select_eval_split,
    skip_existing_outputs,
)


def test_list_input_images_folder_and_single_file(tmp_path: Path) -> None:
    for name in ("b.PNG", "a.jpg", "c.nii.gz", "notes.txt", ".hidden.png"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "d.png").write_bytes(b"x")
    found = [Path(d["image"]).name for d in list_input_images(tmp_path)]
    assert found == ["a.jpg", "b.PNG", "c.nii.gz"]
    single = list_input_images(tmp_path / "a.jpg")
    assert single == [{"image": str((tmp_path / "a.jpg").resolve())}]
    assert is_image_file("x.TIFF") and is_image_file("x.nii") and not is_image_file("x.gz")


def test_list_input_images_errors_name_the_setting(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="`input_path` is not set"):
        list_input_images(None)
    with pytest.raises(ValueError, match="does not exist"):
        list_input_images(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="contains no images"):
        list_input_images(tmp_path / "empty")
    (tmp_path / "x.txt").write_text("x")
    with pytest.raises(ValueError, match="not a supported image"):
        list_input_images(tmp_path / "x.txt")


def test_require_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="`ckpt_path` '.*missing.pt' does not exist"):
        require_file(tmp_path / "missing.pt", "ckpt_path")
    with pytest.raises(ValueError, match="`ckpt_path` is not set"):
        require_file(None)
    f = tmp_path / "m.pt"
    f.write_bytes(b"x")
    assert require_file(f) == str(f)


@pytest.mark.parametrize("nested", [False, True], ids=["flat", "nested"])
def test_load_model_weights_flat_and_nested(tmp_path: Path, nested: bool) -> None:
    src, dst = nn.Linear(3, 2), nn.Linear(3, 2)
    state = {"model": src.state_dict(), "epoch": 3} if nested else src.state_dict()
    torch.save(state, tmp_path / "w.pt")
    assert load_model_weights(dst, tmp_path / "w.pt") is dst
    torch.testing.assert_close(dst.weight, src.weight)


def test_load_model_weights_rejects_non_state_dict(tmp_path: Path) -> None:
    torch.save([1, 2], tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="not a model state_dict"):
        load_model_weights(nn.Linear(3, 2), tmp_path / "bad.pt")


def _datalist(tmp_path: Path, **splits: list) -> Path:
    path = tmp_path / "datalist.json"
    path.write_text(json.dumps(splits))
    return path


def test_select_eval_split_falls_back_to_validation(tmp_path: Path) -> None:
    pair = {"image": "images/a.png", "label": "masks/a.png"}
    path = _datalist(tmp_path, training=[pair], validation=[pair], test=[])
    split, data = select_eval_split(path, "test")
    assert split == "validation" and data[0]["image"] == str(tmp_path / "images" / "a.png")
    path = _datalist(tmp_path, training=[pair], validation=[pair], test=[{"image": "t.png", "label": "t_m.png"}])
    split, data = select_eval_split(path, "test")
    assert split == "test" and Path(data[0]["image"]).name == "t.png"
    path = _datalist(tmp_path, training=[pair], validation=[], test=[])
    with pytest.raises(ValueError, match="nothing to evaluate"):
        select_eval_split(path, "test")
    with pytest.raises(ValueError, match="unknown split"):
        select_eval_split(path, "val")


def test_list_input_images_names_the_ignored_files(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    for name in ("a.png", "notes.txt", "export.csv"):
        (tmp_path / name).write_bytes(b"x")
    with caplog.at_level(logging.INFO, logger="condseg_monai.inference.utils"):
        found = list_input_images(tmp_path)
    assert [Path(d["image"]).name for d in found] == ["a.png"]
    assert "ignoring 2 file(s)" in caplog.text and "export.csv, notes.txt" in caplog.text


def test_skip_existing_outputs(tmp_path: Path) -> None:
    data = [{"image": str(tmp_path / n)} for n in ("a.png", "b.jpg", "c.nii.gz", "d.png")]
    out = tmp_path / "out"
    out.mkdir()
    for name in ("a_mask.png", "c_mask.nii.gz", "d_prob.png", "b_mask.nii.gz"):
        (out / name).write_bytes(b"x")
    assert [Path(d["image"]).name for d in skip_existing_outputs(data, out)] == ["b.jpg", "d.png"]
    assert len(skip_existing_outputs(data, out, output_postfix="uncertain")) == 4
    assert len(skip_existing_outputs(data, tmp_path / "missing")) == 4


def test_screen_eval_split_keeps_the_readable_cases(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    for name in ("a", "b", "c"):
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "images" / f"{name}.png")
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "masks" / f"{name}.png")
    (tmp_path / "images" / "b.png").write_bytes(b"")
    Image.fromarray(np.zeros((8, 6), np.uint8)).save(tmp_path / "masks" / "c.png")
    pairs = [{"image": f"images/{n}.png", "label": f"masks/{n}.png"} for n in ("a", "b", "c")]
    split, data, failures = screen_eval_split(_datalist(tmp_path, training=[], validation=pairs, test=[]), "test")
    assert split == "validation" and [Path(d["image"]).name for d in data] == ["a.png"]
    assert [Path(f["file"]).name for f in failures] == ["b.png", "c.png"]
    assert "empty (0 bytes)" in failures[0]["reason"] and "size mismatch" in failures[1]["reason"]
    assert failures[0]["inputs"] == {
        "image": str(tmp_path / "images" / "b.png"),
        "label": str(tmp_path / "masks" / "b.png"),
    }
