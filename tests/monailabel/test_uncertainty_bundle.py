# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""Tests of the MONAI Label uncertainty-entry generator (``condseg_monai.apps.monailabel.uncertainty_bundle``).

No MONAI Label needed: the generated ``inference.json`` is run here the way ``BundleInferTask`` runs it
(preprocessing -> inferer on ``image[None]``, a dict output decollated -> postprocessing) with a small ConDSeg.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from monai.bundle import ConfigParser
from monai.data import decollate_batch
from PIL import Image

from condseg_monai.apps.monailabel.uncertainty_bundle import main, make_uncertainty_bundle, uncertainty_inference_config
from condseg_monai.inferers import ConDSegInferer
from condseg_monai.metrics import flip_disagreement_map
from condseg_monai.networks import ConDSeg

REPO = Path(__file__).resolve().parents[2]
BUNDLE = REPO / "bundle"
SMALL = {"feature_size": 16, "num_heads": 2}
PATCHED_SETTINGS = {"save_uncertainty", "uncertainty_map", "label_output", "threshold"}


def _load(path: Path) -> dict:
    return json.loads(path.read_text())


@pytest.fixture()
def source(tmp_path: Path) -> Path:
    """A copy of the repository bundle's configs laid out as ``<app>/model/main`` with fake weights."""
    src = tmp_path / "model" / "main"
    shutil.copytree(BUNDLE / "configs", src / "configs")
    (src / "models").mkdir()
    (src / "models" / "model.pt").write_bytes(b"weights-v1")
    return src


def test_generated_configs_are_derived_from_the_bundle(source: Path) -> None:
    out = make_uncertainty_bundle(source, source.parent / "unc")
    main_inf, inf = _load(source / "configs" / "inference.json"), _load(out / "configs" / "inference.json")
    assert inf["save_uncertainty"] is True and inf["label_output"] == "uncertainty" and inf["threshold"] == 0.5
    assert inf["uncertainty_map"] == "flip_disagreement", "the default entry serves the flip disagreement map"
    # one source of truth: everything but the four settings is the main bundle's config
    assert {k: v for k, v in inf.items() if k not in PATCHED_SETTINGS} == {
        k: v for k, v in main_inf.items() if k not in PATCHED_SETTINGS
    }
    meta = _load(out / "configs" / "metadata.json")
    assert meta["network_data_format"]["outputs"]["pred"]["channel_def"] == {"0": "background", "1": "uncertain"}
    main_meta = _load(source / "configs" / "metadata.json")
    assert meta["network_data_format"]["inputs"] == main_meta["network_data_format"]["inputs"]
    assert meta["monai_version"] == main_meta["monai_version"] and meta["name"] != main_meta["name"]
    assert "flip disagreement" in meta["name"] and "M_uc" not in meta["pred_classes"]
    # no trainer: MONAI Label creates a BundleTrainTask only where configs/train.json exists
    assert not (out / "configs" / "train.json").exists() and (out / "configs" / "logging.conf").is_file()

    parser = ConfigParser()
    parser.read_config(str(out / "configs" / "inference.json"))
    parser.read_meta(str(out / "configs" / "metadata.json"))
    assert parser.get_parsed_content("network_def#return_aux") is False, "the flip map needs the mask alone"
    assert parser.get_parsed_content("inferer").uncertainty_map == "flip_disagreement"
    names = [type(t).__name__ for t in parser.get_parsed_content("postprocessing").transforms]
    assert names[2:4] == ["DeleteItemsd", "CopyItemsd"], f"uncertainty must replace pred after Invertd: {names}"


def test_main_bundle_default_serves_the_mask() -> None:
    parser = ConfigParser()
    parser.read_config(str(BUNDLE / "configs" / "inference.json"))
    assert parser["label_output"] == "pred"
    names = [type(t).__name__ for t in parser.get_parsed_content("postprocessing").transforms]
    assert "DeleteItemsd" not in names, "label_output 'pred' must leave the mask postprocessing unchanged"
    assert parser.get_parsed_content("postprocessing#transforms#6#output_postfix") == "mask"


def test_weights_link_is_relative_and_follows_the_main_model(source: Path) -> None:
    out = make_uncertainty_bundle(source, source.parent / "unc")
    link = out / "models" / "model.pt"
    assert link.is_symlink() and os.readlink(link) == os.path.join("..", "..", "main", "models", "model.pt")
    (source / "models" / "model.pt").write_bytes(b"weights-v2")  # a fine-tune of the main entry
    assert link.read_bytes() == b"weights-v2"

    make_uncertainty_bundle(source, out, copy_weights=True)  # re-run over an existing folder
    assert not link.is_symlink() and link.read_bytes() == b"weights-v2"


def test_missing_weights_still_linked(source: Path, caplog: pytest.LogCaptureFixture) -> None:
    (source / "models" / "model.pt").unlink()
    out = make_uncertainty_bundle(source, source.parent / "unc")
    assert (out / "models" / "model.pt").is_symlink() and not (out / "models" / "model.pt").exists()
    assert "no weights yet" in caplog.text


def test_bad_arguments(source: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="bundle_dir"):
        make_uncertainty_bundle(tmp_path / "nowhere", tmp_path / "unc")
    with pytest.raises(ValueError, match="out_dir"):
        make_uncertainty_bundle(source, source)
    with pytest.raises(ValueError, match="threshold"):
        make_uncertainty_bundle(source, tmp_path / "unc", threshold=1.0)
    with pytest.raises(TypeError, match="threshold"):
        uncertainty_inference_config(_load(source / "configs" / "inference.json"), threshold=True)
    with pytest.raises(ValueError, match="label_output"):
        uncertainty_inference_config({"threshold": 0.5, "save_uncertainty": False})
    with pytest.raises(ValueError, match="uncertainty_map"):  # a bundle older than the setting
        uncertainty_inference_config({"threshold": 0.5, "save_uncertainty": False, "label_output": "pred"})
    with pytest.raises(ValueError, match="uncertainty_map"):
        make_uncertainty_bundle(source, tmp_path / "unc", uncertainty_map="entropy")
    with pytest.raises(SystemExit):
        main(["--bundle", str(tmp_path / "nowhere"), "--out", str(tmp_path / "unc")])


def test_cli_writes_the_folder(source: Path, capsys: pytest.CaptureFixture) -> None:
    out = source.parent / "cli"
    assert main(["--bundle", str(source), "--out", str(out), "--threshold", "0.3"]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    assert _load(out / "configs" / "inference.json")["threshold"] == 0.3
    assert main(["--bundle", str(source), "--out", str(out), "--map", "sid"]) == 0
    assert _load(out / "configs" / "inference.json")["uncertainty_map"] == "sid"
    assert "M_uc" in _load(out / "configs" / "metadata.json")["pred_classes"]


def _random_picture(path: Path, size: int) -> tuple[Path, torch.Tensor]:
    """A random RGB PNG and its ``(3, H, W)`` float tensor (what the 32x32 preprocessing gives: no resizing)."""
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(path)
    return path, torch.from_numpy(np.asarray(Image.open(path), np.float32) / 255.0).permute(2, 0, 1)


def _threshold_between_values(values: np.ndarray) -> float:
    """A threshold halfway between two neighbouring distinct values near the median: both labels occur, no tie."""
    distinct = np.unique(values)
    assert len(distinct) > 2, "the map must not be constant"
    return float((distinct[len(distinct) // 2 - 1] + distinct[len(distinct) // 2]) / 2)


def _run_like_monai_label(out: Path, picture: Path, image: torch.Tensor, reference: ConDSeg, tmp_path: Path) -> dict:
    """Run a generated ``inference.json`` as ``BundleInferTask`` does: preprocessing, inferer, postprocessing."""
    parser = ConfigParser()
    parser.read_config(str(out / "configs" / "inference.json"))
    parser.update({**SMALL, "image_size": image.shape[-1], "device": "cpu", "output_dir": str(tmp_path / "eval")})
    net = parser.get_parsed_content("network_def")
    net.load_state_dict(reference.state_dict())
    net.eval()
    data = parser.get_parsed_content("preprocessing")({"image": str(picture)})
    assert torch.allclose(torch.as_tensor(data["image"]), image, atol=1e-6), "preprocessing changed the image"
    with torch.no_grad():
        outputs = parser.get_parsed_content("inferer")(data["image"][None], net)
    # BasicInferTask.run_inferer: a dict output is decollated and its first item becomes data["pred"]
    data["pred"] = decollate_batch(outputs)[0] if isinstance(outputs, dict) else outputs[0]
    return parser.get_parsed_content("postprocessing")(data)


def _check_served(data: dict, expected: np.ndarray, tmp_path: Path) -> None:
    pred = np.asarray(data["pred"])
    assert pred.ndim == 2 and pred.dtype == np.uint8 and set(np.unique(pred).tolist()) == {0, 1}
    # MONAI Label gets the map in MONAI's (W, H) axis order (ToMONAIAxesd), the CLI writer in the picture's (H, W)
    np.testing.assert_array_equal(pred, expected.T)
    written = np.asarray(Image.open(tmp_path / "eval" / "frame_uncertain.png"))
    np.testing.assert_array_equal(written, expected * 255)
    assert (tmp_path / "eval" / "frame_uncertainty.png").is_file()


def test_generated_pipeline_thresholds_the_flip_disagreement_map(source: Path, tmp_path: Path) -> None:
    """The default entry serves ``flip_disagreement_map(4 flip passes) > threshold``, computed here directly."""
    picture, image = _random_picture(tmp_path / "frame.png", 32)
    torch.manual_seed(0)
    reference = ConDSeg(**SMALL).eval()
    with torch.no_grad():
        passes = ConDSegInferer(tta=True).flip_passes(image[None], reference)
    disagreement = flip_disagreement_map(passes)[0, 0].numpy()  # (H, W)
    threshold = _threshold_between_values(disagreement)
    out = make_uncertainty_bundle(source, source.parent / "unc", threshold=threshold)
    _check_served(_run_like_monai_label(out, picture, image, reference, tmp_path), disagreement > threshold, tmp_path)


def test_generated_pipeline_thresholds_sigmoid_of_the_sid_channel(source: Path, tmp_path: Path) -> None:
    """With ``uncertainty_map="sid"``, ``pred`` is ``sigmoid(channel 3) > threshold`` (ConDSeg's SID head)."""
    picture, image = _random_picture(tmp_path / "frame.png", 32)
    torch.manual_seed(0)
    reference = ConDSeg(**SMALL, return_aux=True).eval()
    with torch.no_grad():
        unc = torch.sigmoid(reference(image[None])[0, ConDSeg.UNCERTAINTY, 0]).numpy()  # (H, W)
    threshold = _threshold_between_values(unc)
    out = make_uncertainty_bundle(source, source.parent / "unc", threshold=threshold, uncertainty_map="sid")
    assert "SID" in _load(out / "configs" / "metadata.json")["name"]
    _check_served(_run_like_monai_label(out, picture, image, reference, tmp_path), unc > threshold, tmp_path)
