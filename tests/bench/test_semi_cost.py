# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""bench/semi_cost.py: the ratio table and its input checks (the runs themselves are bundle trainings)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import semi_cost


def test_ratio_table_divides_by_iterations_and_by_the_supervised_run() -> None:
    table = semi_cost.ratio_table({"sup": 20.0, "semi": 42.0}, iterations=100)
    assert "| sup | 0.200 | 1.00 |" in table
    assert "| semi | 0.420 | 2.10 |" in table


def test_a_datalist_without_unlabeled_images_is_refused(tmp_path: Path) -> None:
    datalist = tmp_path / "labeled_only.json"
    datalist.write_text(json.dumps({"training": [{"image": "a.png", "label": "a_mask.png"}]}))
    with pytest.raises(SystemExit):
        semi_cost.main(["--datalist", str(datalist), "--out", str(tmp_path / "out")])
    with pytest.raises(SystemExit):
        semi_cost.main(["--datalist", str(tmp_path / "missing.json"), "--out", str(tmp_path / "out")])


def test_a_bad_unlabeled_batch_size_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    datalist = tmp_path / "semi.json"
    entry = {"image": "a.png", "label": "a_mask.png"}
    datalist.write_text(json.dumps({"training": [entry], "unlabeled": [{"image": "b.png"}]}))
    with pytest.raises(SystemExit):
        semi_cost.main(["--datalist", str(datalist), "--out", str(tmp_path / "out"), "--unlabeled-batch-size", "0"])
    assert "--unlabeled-batch-size must be >= 1" in capsys.readouterr().err
