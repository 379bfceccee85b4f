# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""Tests of `python -m condseg_monai.data` (prepare, check, demo) and its exit codes."""

from __future__ import annotations

import json
import runpy
import sys
from pathlib import Path

import pytest

from condseg_monai.data.cli import main


def test_prepare_check_and_demo(tmp_path: Path, pair_writer, capsys: pytest.CaptureFixture) -> None:
    for i in range(6):
        pair_writer(tmp_path / "raw", f"case{i}", image_ext=".jpg")
    out = tmp_path / "dl.json"
    assert main(["prepare", "folder", "--root", str(tmp_path / "raw"), "--out", str(out), "--val-count", "2"]) == 0
    assert "training 4, validation 2, test 0" in capsys.readouterr().out
    assert main(["check", str(out)]) == 0
    assert "0 error(s)" in capsys.readouterr().out
    # break one mask: check fails with status 1 and names the file
    (tmp_path / "raw" / "masks" / "case0.png").write_bytes(b"")
    assert main(["check", str(out), "--splits", "training", "validation"]) == 1
    assert "case0.png': mask file is empty" in capsys.readouterr().out
    # absolute paths
    assert main(["prepare", "folder", "--root", str(tmp_path / "raw"), "--out", str(out), "--absolute"]) == 0
    assert Path(json.loads(out.read_text())["training"][0]["image"]).is_absolute()
    # preparation errors: status 1 with the reason on stderr
    assert main(["prepare", "kvasir-seg", "--root", str(tmp_path / "nowhere"), "--out", str(out)]) == 1
    assert "not a folder" in capsys.readouterr().err
    # demo
    assert (
        main(
            [
                "demo",
                "--out",
                str(tmp_path / "demo"),
                "--num-train",
                "2",
                "--num-val",
                "1",
                "--num-test",
                "0",
                "--image-size",
                "32",
            ]
        )
        == 0
    )
    assert (tmp_path / "demo" / "datalist.json").is_file()
    assert main(["check", str(tmp_path / "demo" / "datalist.json"), "--strict"]) == 0


def test_warnings_and_strict(tmp_path: Path, pair_writer) -> None:
    pairs = [pair_writer(tmp_path, f"c{i}") for i in range(2)]
    entries = [{"image": str(i), "label": str(m)} for i, m in pairs]
    (tmp_path / "dl.json").write_text(
        json.dumps({"training": entries[:1], "validation": entries[1:], "test": entries[1:]})
    )
    assert main(["check", str(tmp_path / "dl.json")]) == 0  # val == test is only a warning
    assert main(["check", str(tmp_path / "dl.json"), "--strict"]) == 1


def test_usage_errors() -> None:
    with pytest.raises(SystemExit) as exc:
        main(["prepare", "not-a-dataset", "--root", ".", "--out", "x.json"])
    assert exc.value.code == 2
    with pytest.raises(SystemExit) as exc:
        main([])
    assert exc.value.code == 2


def test_module_entry_point(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    # `python -m condseg_monai.data ...` in-process (a subprocess would mostly time the torch/monai import)
    monkeypatch.setattr(sys, "argv", ["condseg_monai.data", "check", str(tmp_path / "missing.json")])
    with pytest.raises(SystemExit) as exc:
        runpy.run_module("condseg_monai.data", run_name="__main__", alter_sys=True)
    assert exc.value.code == 1
    assert "missing.json' does not exist" in capsys.readouterr().out
