# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""Tests of the atomic file writers."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
import torch

from condseg_monai.files import atomic_open, atomic_torch_save, atomic_write_json, atomic_write_text


def test_writers_round_trip_and_create_the_folder(tmp_path: Path) -> None:
    text = atomic_write_text(tmp_path / "a" / "note.txt", "héllo\n")
    assert text.read_text(encoding="utf-8") == "héllo\n"
    data = atomic_write_json(tmp_path / "b" / "d.json", {"x": [1, 2]}, indent=4)
    assert data.read_text(encoding="utf-8") == json.dumps({"x": [1, 2]}, indent=4) + "\n"
    atomic_torch_save({"w": torch.arange(3)}, tmp_path / "c" / "m.pt")
    assert torch.equal(torch.load(tmp_path / "c" / "m.pt")["w"], torch.arange(3))
    with atomic_open(tmp_path / "raw.bin", "wb") as f:
        f.write(b"\x00\x01")
    assert (tmp_path / "raw.bin").read_bytes() == b"\x00\x01"
    assert sorted(p.name for p in tmp_path.rglob(".*")) == []  # no temporary file left


def test_permissions_follow_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        path = atomic_write_text(tmp_path / "f.txt", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_failed_write_keeps_the_previous_file(tmp_path: Path) -> None:
    path = atomic_write_text(tmp_path / "f.json", "old")
    with pytest.raises(RuntimeError, match="crash"), atomic_open(path) as f:
        f.write("new, partial")
        raise RuntimeError("crash")
    assert path.read_text(encoding="utf-8") == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.json"]


def test_only_whole_file_modes(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="mode"), atomic_open(tmp_path / "f.txt", "a"):
        pass
