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


def test_handler_lists_name_every_handler() -> None:
    config = json.loads((REPO / "bundle" / "configs" / "train.json").read_text(encoding="utf-8"))
    for section in ("train", "validate"):
        for item in config[section]["handlers"]:
            assert isinstance(item, str) and item.startswith(f"@{section}#"), item
            assert item.split("#", 1)[1] in config[section], f"{item} is not defined in {section}"


def test_disabled_named_handler_is_left_out() -> None:
    # the engines receive the handler list without the handlers that a config switched off (rank gating, options)
    parser = ConfigParser()
    parser.read_config(str(REPO / "bundle" / "configs" / "train.json"))
    parser["train#progress_bar"] = {"_target_": "monai.transforms.Identity", "_disabled_": True}
    parser["train#stats"] = {"_target_": "monai.transforms.Identity"}
    parser["train#handlers"] = ["@train#progress_bar", "@train#stats"]
    handlers = parser.get_parsed_content("train#trainer#train_handlers")
    assert len(handlers) == 1 and type(handlers[0]).__name__ == "Identity"
