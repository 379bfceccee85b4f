# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""Bundle layout, metadata (offline ``verify_metadata`` with the vendored schema) and MONAI Label-facing keys."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import monai
import numpy as np
import pytest
import torch
from monai.bundle import ConfigParser, ConfigWorkflow, verify_metadata

REPO = Path(__file__).resolve().parents[2]
BUNDLE = REPO / "bundle"
CONFIGS = BUNDLE / "configs"
METADATA = CONFIGS / "metadata.json"
SCHEMA = Path(__file__).resolve().parent / "meta_schema.json"


def _meta() -> dict:
    return json.loads(METADATA.read_text())


def test_bundle_layout() -> None:
    for rel in (
        "LICENSE",
        "configs/metadata.json",
        "configs/inference.json",
        "configs/train.json",
        "configs/evaluate.json",
        "configs/logging.conf",
        "docs/README.md",
        "docs/data_license.txt",
    ):
        assert (BUNDLE / rel).is_file(), f"bundle/{rel} is missing"
    assert (BUNDLE / "LICENSE").read_text() == (REPO / "LICENSE").read_text()
    assert "Apache License" in (BUNDLE / "LICENSE").read_text()
    tracked = [p for p in BUNDLE.rglob("*") if p.is_file() and "models" not in p.parts and "eval" not in p.parts]
    assert all(p.stat().st_size < 25 * 2**20 for p in tracked), "the zoo limits files to 25 MB"
    for cfg in CONFIGS.glob("*.json"):
        json.loads(cfg.read_text())  # valid JSON
        assert "@device.type" not in cfg.read_text(), f"{cfg.name}: MONAI Label sets `device` to a string"


def test_verify_metadata_offline(tmp_path: Path) -> None:
    verify_metadata(meta_file=str(METADATA), filepath=str(SCHEMA))  # the file exists: nothing is downloaded


@pytest.mark.parametrize("drop", ["version", "network_data_format", "monai_version"])
def test_schema_rejects_incomplete_metadata(tmp_path: Path, drop: str) -> None:
    meta = _meta()
    del meta[drop]
    bad = tmp_path / "metadata.json"
    bad.write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="Failed validating"):
        verify_metadata(meta_file=str(bad), filepath=str(SCHEMA))


def test_metadata_content() -> None:
    meta = _meta()
    assert meta["version"] in meta["changelog"]
    assert list(meta["changelog"])[0] == meta["version"], "changelog is newest first"
    assert meta["monai_version"] == monai.__version__
    assert meta["pytorch_version"] == torch.__version__.split("+")[0]
    assert meta["numpy_version"].split(".")[0] == np.__version__.split(".")[0]
    assert "research" in meta["intended_use"].lower()
    assert meta["required_packages_version"]["condseg-monai"] == __import__("condseg_monai").__version__
    image = meta["network_data_format"]["inputs"]["image"]
    pred = meta["network_data_format"]["outputs"]["pred"]
    assert image["num_channels"] == 3 and len(image["spatial_shape"]) == 2
    assert image["channel_def"] == {"0": "R", "1": "G", "2": "B"}
    assert pred["num_channels"] == 1 and pred["channel_def"] == {"0": "background", "1": "polyp"}
    # MONAI Label: first input/output keys and the non-background labels
    assert next(iter(meta["network_data_format"]["inputs"])) == "image"
    assert next(iter(meta["network_data_format"]["outputs"])) == "pred"


def test_inference_config_has_the_keys_monai_label_reads() -> None:
    parser = ConfigParser()
    parser.read_config(str(CONFIGS / "inference.json"))
    for key in ("bundle_root", "device", "network_def", "preprocessing", "postprocessing", "inferer", "output_dir"):
        assert key in parser, key
    assert parser["save_uncertainty"] is False and parser["uncertainty_map"] == "flip_disagreement"
    assert parser.get_parsed_content("network_def#return_aux") is False, "the default eval network returns one tensor"
    # only the SID map needs ConDSeg's auxiliary head; the flip disagreement map needs the mask alone
    for uncertainty_map, return_aux in (("flip_disagreement", False), ("sid", True)):
        parser.update({"save_uncertainty": True, "uncertainty_map": uncertainty_map})
        assert parser.get_parsed_content("network_def#return_aux", lazy=False) is return_aux, uncertainty_map
    assert isinstance(parser.get_parsed_content("device"), str)
    assert parser["inference"] == parser["run"], "`run inference` must exist"


def test_logging_conf_is_accepted(tmp_path: Path) -> None:
    ConfigWorkflow(
        workflow_type="infer",
        config_file=str(CONFIGS / "inference.json"),
        meta_file=str(METADATA),
        logging_file=str(CONFIGS / "logging.conf"),
    )
    assert any(isinstance(h, logging.StreamHandler) for h in logging.getLogger().handlers)


def test_evaluate_config_is_a_thin_override() -> None:
    train = json.loads((CONFIGS / "train.json").read_text())
    evaluate = json.loads((CONFIGS / "evaluate.json").read_text())
    assert "evaluating" in evaluate and "robustness" in evaluate
    assert "train" not in evaluate and "validate" not in evaluate, "override nested ids with `validate#...` keys"
    # use_demo_data: train.json decides it from the training list (so that MONAI Label's injected list gets the
    # real-data settings); evaluation must not load and check the training list, only "no datalist = demo data"
    assert set(train) & set(evaluate) <= {"output_dir", "run", "finalize", "use_demo_data"}
    assert evaluate["use_demo_data"] == "$@datalist is None"
