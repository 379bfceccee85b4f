# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""In-process MONAI Label contract test of the bundle (no server, no network).

Builds MONAI Label's own ``BundleInferTask`` / ``BundleTrainTask`` on a copy of the bundle and checks what the
``monaibundle`` app would serve: labels ``{"polyp": 1}``, a 2D model, a uint8 {0, 1} PNG mask of the input size,
and a one-epoch fine-tune that rewrites ``models/model.pt``. The uncertainty entry generated from the bundle
(``condseg_monai.apps.monailabel.uncertainty_bundle``) is checked the same way: label ``{"uncertain": 1}``, a uint8
{0, 1} PNG of the input size, and no trainer. Needs the MONAI Label environment
(``make label-test`` / ``.label-venv/bin/python -m pytest tests/monailabel``); skipped where ``monailabel`` is
not importable. The bundle is ``$CONDSEG_LABEL_BUNDLE`` or ``<repo>/bundle``.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

monailabel = pytest.importorskip(
    "monailabel", reason="MONAI Label is not installed here; run `make label-test` (separate .label-venv)"
)

import numpy as np  # noqa: E402
import torch  # noqa: E402
from monai.bundle import ConfigParser  # noqa: E402
from monailabel.datastore.local import LocalDatastore  # noqa: E402
from monailabel.tasks.infer.bundle import BundleInferTask  # noqa: E402
from monailabel.tasks.train.bundle import BundleTrainTask  # noqa: E402
from PIL import Image  # noqa: E402

__all__: list[str] = []

REPO_ROOT = Path(__file__).resolve().parents[2]
BUNDLE = Path(os.environ.get("CONDSEG_LABEL_BUNDLE", REPO_ROOT / "bundle"))
NAME = "polyp_condseg_segmentation"
UNCERTAINTY_NAME = "polyp_condseg_uncertainty"
ISIC_IMAGES = REPO_ROOT / ".." / "shared" / "data" / "isic-sample" / "images"
CONF = {"preload": "false"}  # what the monaibundle app passes on from `--conf`


def _write_rgb(path: Path, width: int, height: int, seed: int) -> Path:
    """Write a deterministic RGB test image with a bright blob (PNG or JPEG by suffix)."""
    rng = np.random.default_rng(seed)
    img = (rng.random((height, width, 3)) * 80 + 40).astype(np.uint8)
    yy, xx = np.mgrid[:height, :width]
    img[((yy - height / 2) / (height / 4)) ** 2 + ((xx - width / 2) / (width / 4)) ** 2 <= 1] = (220, 90, 80)
    Image.fromarray(img).save(path)
    return path


@pytest.fixture(scope="module")
def bundle_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private copy of the bundle as ``<app>/model/<NAME>``, with weights created when the bundle has none."""
    if not (BUNDLE / "configs" / "inference.json").is_file():
        pytest.skip(f"no bundle at {BUNDLE} (set CONDSEG_LABEL_BUNDLE to a bundle folder)")
    dst = tmp_path_factory.mktemp("app") / "model" / NAME
    shutil.copytree(BUNDLE, dst, ignore=shutil.ignore_patterns("__pycache__", "eval", "runs", "*.ts"))
    weights = dst / "models" / "model.pt"
    if not weights.is_file():
        parser = ConfigParser()
        parser.read_config(dst / "configs" / "inference.json")
        parser["bundle_root"] = str(dst)
        weights.parent.mkdir(parents=True, exist_ok=True)
        torch.save(parser.get_parsed_content("network_def", instantiate=True).state_dict(), weights)
    return dst


@pytest.fixture(scope="module")
def infer_task(bundle_copy: Path) -> BundleInferTask:
    task = BundleInferTask(str(bundle_copy), CONF)
    assert task.is_valid(), "BundleInferTask rejected the bundle (see the MONAI Label log above)"
    return task


def test_infer_task_info(infer_task: BundleInferTask) -> None:
    info = infer_task.info()
    assert info["labels"] == {"polyp": 1}, "channel_def must be {'0': 'background', '1': 'polyp'}"
    assert info["dimension"] == 2, "inputs.image.spatial_shape must have 2 entries"
    assert info["type"] == "segmentation"


def _image_cases() -> list:
    cases = [pytest.param(("png", 90, 70), id="png-90x70"), pytest.param(("jpg", 100, 64), id="jpg-100x64")]
    real = sorted(ISIC_IMAGES.glob("*.jpg")) if ISIC_IMAGES.is_dir() else []
    marks = [] if real else [pytest.mark.skip(reason=f"no real images at {ISIC_IMAGES}")]
    cases.append(pytest.param(("isic", real[0] if real else None), id="isic-jpg", marks=marks))
    return cases


def _infer_png(task: BundleInferTask, image: Path) -> tuple[np.ndarray, dict]:
    """Run one CPU inference request asking for a uint8 PNG; return the decoded result and the JSON part."""
    request = {"image": str(image), "device": "cpu", "result_extension": ".png", "result_dtype": "uint8"}
    result_file, result_json = task(request)
    try:
        assert result_file and result_file.endswith(".png"), f"result file {result_file!r} is not a PNG"
        return np.asarray(Image.open(result_file)), result_json
    finally:
        if result_file and os.path.exists(result_file):
            os.remove(result_file)


@pytest.mark.parametrize("case", _image_cases())
def test_infer_returns_binary_mask_of_input_size(infer_task: BundleInferTask, tmp_path: Path, case: tuple) -> None:
    kind = case[0]
    image = case[1] if kind == "isic" else _write_rgb(tmp_path / f"img.{kind}", case[1], case[2], seed=1)
    width, height = Image.open(image).size
    mask, result_json = _infer_png(infer_task, image)
    assert mask.shape == (height, width), f"mask {mask.shape} vs image {(height, width)} (needs a 2D H x W pred)"
    assert mask.dtype == np.uint8
    assert set(np.unique(mask).tolist()) <= {0, 1}
    assert result_json["label_names"] == {"polyp": 1}


@pytest.fixture(scope="module")
def uncertainty_task(bundle_copy: Path) -> BundleInferTask:
    """``BundleInferTask`` on the uncertainty entry generated next to the bundle copy (shared weights)."""
    from condseg_monai.apps.monailabel.uncertainty_bundle import make_uncertainty_bundle

    out = make_uncertainty_bundle(bundle_copy, bundle_copy.parent / UNCERTAINTY_NAME)
    assert (out / "models" / "model.pt").resolve() == (bundle_copy / "models" / "model.pt").resolve()
    task = BundleInferTask(str(out), CONF)
    assert task.is_valid(), "BundleInferTask rejected the generated uncertainty entry"
    return task


def test_uncertainty_entry_info_and_no_trainer(uncertainty_task: BundleInferTask) -> None:
    info = uncertainty_task.info()
    assert info["labels"] == {"uncertain": 1}
    assert info["dimension"] == 2 and info["type"] == "segmentation"
    assert not BundleTrainTask(str(uncertainty_task.bundle_path), CONF).is_valid(), "it must get no trainer"


def test_uncertainty_entry_returns_binary_map_of_input_size(uncertainty_task: BundleInferTask, tmp_path: Path) -> None:
    image = _write_rgb(tmp_path / "img.jpg", 100, 64, seed=2)
    region, result_json = _infer_png(uncertainty_task, image)
    assert region.shape == (64, 100) and region.dtype == np.uint8
    assert set(np.unique(region).tolist()) <= {0, 1}
    assert result_json["label_names"] == {"uncertain": 1}


def test_train_task_finetunes_and_rewrites_weights(bundle_copy: Path, tmp_path: Path) -> None:
    task = BundleTrainTask(str(bundle_copy), CONF)
    assert task.is_valid(), "BundleTrainTask needs configs/train.json and configs/metadata.json"
    studies = tmp_path / "studies"
    studies.mkdir()
    labels = {}
    for i, fg in enumerate((1, 255)):  # labels as clients send them (0/1) and as exported masks (0/255)
        _write_rgb(studies / f"case{i}.png", 80 + 16 * i, 64, seed=i)
        mask = np.zeros((64, 80 + 16 * i), np.uint8)
        mask[16:48, 20:60] = fg
        labels[f"case{i}"] = tmp_path / f"case{i}_label.png"
        Image.fromarray(mask).save(labels[f"case{i}"])
    datastore = LocalDatastore(str(studies), extensions=("*.png", "*.jpg"), auto_reload=False)
    for image_id, label in labels.items():
        datastore.save_label(image_id, str(label), "final", {})
    assert len(datastore.get_labeled_images()) == 2
    weights = bundle_copy / "models" / "model.pt"
    before = weights.read_bytes()
    request = {
        "model": NAME,
        "max_epochs": 1,
        "val_split": 0.5,
        "device": "cpu",
        "multi_gpu": False,
        "tracking": "None",
    }
    task(request, datastore)
    assert weights.read_bytes() != before, "training did not rewrite models/model.pt (validation CheckpointSaver?)"
    state = torch.load(weights, map_location="cpu")
    assert isinstance(state, dict) and all(torch.is_tensor(v) for v in state.values()), "model.pt must be a state_dict"
