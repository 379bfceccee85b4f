# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""Tests of the datalist models, reader, loader and atomic writer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from monai.data import load_decathlon_datalist

from condseg_monai.data import Datalist, DatalistEntry, DatasetSettings, load_datalist, read_datalist, write_datalist


def _write(path: Path, obj) -> Path:
    path.write_text(json.dumps(obj))
    return path


def test_load_resolves_like_monai(tmp_path: Path) -> None:
    sub = tmp_path / "lists"
    sub.mkdir()
    path = _write(
        sub / "dl.json",
        {
            "training": [{"image": "../img/a.png", "label": "../msk/a.png"}],
            "validation": [{"image": "/abs/b.png", "label": "/abs/b_mask.png", "id": "b"}],
            "test": [],
        },
    )
    train = load_datalist(path, "training")
    assert train == [{"image": str(tmp_path / "img" / "a.png"), "label": str(tmp_path / "msk" / "a.png")}]
    assert train == load_decathlon_datalist(str(path), data_list_key="training", base_dir=str(sub))
    val = load_datalist(path, "validation")
    assert val[0]["image"] == "/abs/b.png" and val[0]["id"] == "b"  # extra keys kept
    assert load_datalist(path, "test", required=False) == []
    with pytest.raises(ValueError, match=r"split 'test' of datalist '.*dl.json' is empty"):
        load_datalist(path, "test")
    with pytest.raises(ValueError, match="unknown split 'train'"):
        load_datalist(path, "train")


def test_bad_files(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope.json"):
        load_datalist(tmp_path / "nope.json", "training")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match="bad.json' is not valid JSON"):
        read_datalist(tmp_path / "bad.json")
    _write(tmp_path / "list.json", [1, 2])
    with pytest.raises(ValueError, match="must hold a JSON object"):
        read_datalist(tmp_path / "list.json")
    _write(tmp_path / "noimage.json", {"training": [{"label": "a.png"}]})
    with pytest.raises(ValueError, match=r"noimage.json' is malformed.*image"):
        read_datalist(tmp_path / "noimage.json")
    _write(tmp_path / "emptypath.json", {"training": [{"image": "", "label": "a.png"}]})
    with pytest.raises(ValueError, match="malformed"):
        read_datalist(tmp_path / "emptypath.json")


def test_write_is_atomic_and_round_trips(tmp_path: Path) -> None:
    dl = Datalist(name="x", seed=3, training=[DatalistEntry(image="a.png", label="b.png")])
    out = write_datalist(dl, tmp_path / "deep" / "dl.json")
    assert [p.name for p in out.parent.iterdir()] == ["dl.json"]  # no temporary file left behind
    back = read_datalist(out)
    assert back == dl and back.counts() == {"training": 1, "validation": 0, "test": 0}
    assert "description" not in json.loads(out.read_text())  # None fields are omitted


def test_dataset_settings() -> None:
    s = DatasetSettings(name="kvasir-seg", datalist="dl.json", image_size=256)
    assert s.image_size == (256, 256) and s.seed == 0
    with pytest.raises(ValueError, match="image_size"):
        DatasetSettings(name="x", datalist="dl.json", image_size=(0, 3))
    with pytest.raises(ValueError):
        DatasetSettings(name="x", datalist="dl.json", unknown=1)
