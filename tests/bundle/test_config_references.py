# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""Configs refer to handlers by name: a reference by list position silently points elsewhere after an insertion."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from monai.bundle import ConfigParser

REPO = Path(__file__).resolve().parents[2]
CONFIGS = sorted([*REPO.glob("bundle/configs/*.json"), *REPO.glob("configs/*.json")])
POSITIONAL = re.compile(r"handlers#\d")


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: str(p.relative_to(REPO)))
def test_no_positional_handler_reference(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert not POSITIONAL.search(text), POSITIONAL.findall(text)


def test_handler_lists_stay_monai_label_compatible() -> None:
    # MONAI Label's BundleTrainTask calls `.get("_target_")` on every `train#handlers` item and prepends its own
    # CheckpointLoader unless one with exactly that `_target_` is there: the items must stay inline definitions.
    config = json.loads((REPO / "bundle" / "configs" / "train.json").read_text(encoding="utf-8"))
    items = config["train"]["handlers"]
    assert all(isinstance(item, dict) for item in items)
    assert items[0]["_target_"] == "CheckpointLoader"
    # the handlers that other keys refer to (resume state, teacher) are named and given to the trainer by name
    for name in ("early_stopping", "ema"):
        assert f"@train#{name}" in config["train"]["trainer"]["train_handlers"]
        assert "_target_" in config["train"][name]


def test_rank0_only_handlers_gate_themselves() -> None:
    # no positional `_disabled_` overrides in multi_gpu_train.json: the writers declare it where they are defined
    config = json.loads((REPO / "bundle" / "configs" / "train.json").read_text(encoding="utf-8"))
    writers = ("ProgressBar", "StatsHandler", "TensorBoardStatsHandler", "SegmentationPreviewHandler")
    gated = [
        item
        for section in ("train", "validate")
        for item in config[section]["handlers"]
        if isinstance(item, dict) and item["_target_"].rsplit(".", 1)[-1] in writers
    ]
    assert len(gated) == 6
    assert all(item["_disabled_"] == "$not @is_main_rank" for item in gated)


def test_disabled_named_handler_is_left_out() -> None:
    # the trainer receives the handler list plus the named handlers, without those a config switched off
    parser = ConfigParser()
    parser.read_config(str(REPO / "bundle" / "configs" / "train.json"))
    parser["train#handlers"] = [{"_target_": "monai.transforms.Identity"}]
    parser["train#early_stopping"] = {"_target_": "monai.transforms.Identity", "_disabled_": True}
    parser["train#ema"] = {"_target_": "monai.transforms.Identity"}
    handlers = parser.get_parsed_content("train#trainer#train_handlers")
    assert len(handlers) == 2 and all(type(h).__name__ == "Identity" for h in handlers)
