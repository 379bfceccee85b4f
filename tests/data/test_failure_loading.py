# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""Tests for the failure-tolerant loading layer: records, the log, the loader inside a MONAI evaluator."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from ignite.engine import Events
from monai.data import Dataset
from monai.engines import SupervisedEvaluator
from monai.transforms import Compose, EnsureTyped, Resized
from PIL import Image

from condseg_monai.data import (
    FailureLog,
    FailureTolerantLoader,
    InputFailuresError,
    collate_skipping_failures,
    failure_record,
)
from condseg_monai.transforms import LoadImageRGBd
from condseg_monai.transforms.readers import InvalidInputError


def _images(folder: Path) -> list[dict]:
    """good_0..good_3 (PNG, 16x16) with a 0-byte PNG after the first and a truncated JPEG at the end."""
    folder.mkdir(exist_ok=True)
    names = ["good_0.png", "empty.png", "good_1.png", "good_2.png", "good_3.png", "cut.jpg"]
    for i, name in enumerate(n for n in names if n.startswith("good")):
        Image.fromarray(np.full((16, 16, 3), 40 * i, np.uint8)).save(folder / name)
    (folder / "empty.png").write_bytes(b"")
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (32, 32, 3), np.uint8)).save(folder / "full.jpg")
    data = (folder / "full.jpg").read_bytes()
    (folder / "cut.jpg").write_bytes(data[: len(data) // 2])
    return [{"image": str(folder / n)} for n in names]


def _dataset(data: list[dict]) -> Dataset:
    transform = Compose([LoadImageRGBd("image"), Resized("image", (8, 8)), EnsureTyped("image", dtype=torch.float32)])
    return Dataset(data, transform)


def test_failure_record_names_the_file_and_the_reason(tmp_path: Path) -> None:
    item = {"image": str(tmp_path / "a.png"), "label": str(tmp_path / "m.png"), "id": 3}
    wrapped = RuntimeError("applying transform <LoadMaskd>")
    wrapped.__cause__ = InvalidInputError(f"cannot read mask '{item['label']}': file is empty (0 bytes).")
    wrapped.__cause__.__cause__ = OSError("inner decoder detail")
    record = failure_record(item, wrapped)
    assert record == {
        "file": item["label"],
        "reason": f"cannot read mask '{item['label']}': file is empty (0 bytes).",
        "error": "InvalidInputError",
        "inputs": {"image": item["image"], "label": item["label"]},
    }
    assert failure_record(item, ValueError("bad"))["file"] == item["image"], "default: the first input"


def test_failure_log_write_and_raise(tmp_path: Path) -> None:
    log = FailureLog()
    log.num_read = 3
    log.raise_if_any()  # nothing failed: no error
    assert json.loads(log.write(tmp_path).read_text()) == {"num_inputs": 3, "num_failed": 0, "failures": []}
    log.add(failure_record({"image": "x.png"}, "cannot read image 'x.png': file is empty (0 bytes)."))
    path = log.write(tmp_path)
    assert path == tmp_path / "failures.json" and json.loads(path.read_text())["num_failed"] == 1
    assert not list(tmp_path.glob(".*.tmp")), "written atomically, no temporary file left"
    with pytest.raises(InputFailuresError, match=r"1 of 4 inputs could not be read \(all listed in .*failures.json"):
        log.raise_if_any()


def test_collate_keeps_the_readable_items() -> None:
    batch = [{"image": torch.ones(1, 2, 2)}, {"input_failures": {"file": "b.png"}}, {"image": torch.zeros(1, 2, 2)}]
    out = collate_skipping_failures(batch)
    assert out["image"].shape == (2, 1, 2, 2)
    assert out["input_failures"] == {"records": [{"file": "b.png"}], "num_read": 2}
    assert collate_skipping_failures(batch[1:2]) == {"input_failures": {"records": [{"file": "b.png"}], "num_read": 0}}
    with pytest.raises(ValueError, match="collate_fn"):
        FailureTolerantLoader([], collate_fn=collate_skipping_failures)


@pytest.mark.parametrize("batch_size, num_workers", [(1, 0), (2, 0), (4, 1)])
def test_loader_yields_every_readable_image_once(tmp_path: Path, batch_size: int, num_workers: int) -> None:
    data = _images(tmp_path / "in")
    log = FailureLog()
    loader = FailureTolerantLoader(_dataset(data), failure_log=log, batch_size=batch_size, num_workers=num_workers)
    seen = [str(f) for batch in loader for f in batch["image"].meta["filename_or_obj"]]
    assert seen == [d["image"] for d in data if "good" in d["image"]]
    assert [Path(r["file"]).name for r in log.records] == ["empty.png", "cut.jpg"]
    assert log.num_read == 4 and log.num_inputs == 6
    assert not hasattr(loader, "__len__"), "a len() would make Ignite restart the iterator after a failure"


def test_evaluator_runs_past_failures_and_handlers_see_only_readable_images(tmp_path: Path) -> None:
    """Inside a MONAI SupervisedEvaluator: one epoch, no re-run of the data, EPOCH_COMPLETED fired once."""
    data = _images(tmp_path / "in")
    log = FailureLog()
    loader = FailureTolerantLoader(_dataset(data), failure_log=log, batch_size=1)
    evaluator = SupervisedEvaluator(device="cpu", val_data_loader=loader, network=torch.nn.Conv2d(3, 1, 1))
    names: list[str] = []
    epochs: list[int] = []

    @evaluator.on(Events.ITERATION_COMPLETED)
    def _names(engine: SupervisedEvaluator) -> None:
        names.extend(str(o["image"].meta["filename_or_obj"]) for o in engine.state.output)

    evaluator.add_event_handler(Events.EPOCH_COMPLETED, lambda engine: epochs.append(engine.state.epoch))
    evaluator.run()
    assert [Path(n).name for n in names] == ["good_0.png", "good_1.png", "good_2.png", "good_3.png"]
    assert epochs == [1] and evaluator.state.iteration == 4
    assert len(log) == 2
