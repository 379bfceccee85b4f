# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""InputFailureHandler: failures.json written once the run completed, after the other end-of-epoch reports."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from ignite.engine import Engine, Events

from condseg_monai.data import FailureLog, InputFailuresError, failure_record
from condseg_monai.handlers import InputFailureHandler


def test_writes_failures_json_at_completed(tmp_path: Path) -> None:
    log = FailureLog(records=[failure_record({"image": "early.png"}, "found before the run")])
    engine = Engine(lambda e, batch: log.add(failure_record({"image": batch}, "file is empty")) if batch else None)
    seen_at_epoch_end: list[bool] = []
    engine.add_event_handler(Events.EPOCH_COMPLETED, lambda e: seen_at_epoch_end.append((tmp_path / "f").exists()))
    InputFailureHandler(log, tmp_path / "f").attach(engine)
    log.num_read = 2  # the loader counts the readable inputs
    engine.run(["", "bad.png", ""], max_epochs=1)
    report = json.loads((tmp_path / "f" / "failures.json").read_text())
    assert seen_at_epoch_end == [False], "written at COMPLETED, after the epoch's own reports"
    assert [(r["file"], r["reason"]) for r in report["failures"]] == [
        ("early.png", "found before the run"),
        ("bad.png", "file is empty"),
    ]
    assert report["num_failed"] == 2
    with pytest.raises(InputFailuresError, match="2 of 4 inputs could not be read"):
        log.raise_if_any()


def test_replaces_the_file_of_an_earlier_run_when_nothing_failed(tmp_path: Path) -> None:
    (tmp_path / "failures.json").write_text('{"num_failed": 3}')
    engine = Engine(lambda e, batch: None)
    log = FailureLog()
    InputFailureHandler(log, tmp_path).attach(engine)
    engine.run([0], max_epochs=1)
    assert json.loads((tmp_path / "failures.json").read_text())["num_failed"] == 0
    log.raise_if_any()
