# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""End-to-end tests of ``bundle/configs/inference.json`` (in-process ``monai.bundle.run`` and one CLI call)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.bundle import ConfigParser, ConfigWorkflow
from monai.bundle import run as bundle_run
from monai.transforms import CastToTyped, LoadImaged, SaveImaged, SqueezeDimd
from PIL import Image

from condseg_monai.data import InputFailuresError

REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / "bundle" / "configs"
INFERENCE = str(CONFIGS / "inference.json")
METADATA = str(CONFIGS / "metadata.json")
LOGGING = str(CONFIGS / "logging.conf")
SMALL = {"feature_size": 16, "num_heads": 2}
DETECTOR = {"_target_": "torch.nn.Conv2d", "in_channels": 3, "out_channels": 1, "kernel_size": 1}


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(bool), b.astype(bool)
    return float((a & b).sum() / max(1, (a | b).sum()))


def _root_cause(exc: BaseException) -> BaseException:
    while exc.__cause__ is not None:
        exc = exc.__cause__
    return exc


def _infer(**overrides) -> None:
    bundle_run("inference", config_file=INFERENCE, meta_file=METADATA, logging_file=LOGGING, **overrides)


def test_folder_of_png_and_jpg_keeps_size_and_orientation(tmp_path: Path, draw, detector_ckpt: str) -> None:
    inp = tmp_path / "in"
    inp.mkdir()
    boxes = {
        "wide.png": draw.box(40, 72, 4, 20, 44, 68),  # top-right of a wide image
        "tall.jpg": draw.box(56, 40, 30, 50, 4, 16),  # bottom-left of a tall image
    }
    for name, box in boxes.items():
        draw.rgb(inp / name, box)
    _infer(
        input_path=str(inp),
        output_dir=str(tmp_path / "out"),
        ckpt_path=detector_ckpt,
        network_def=DETECTOR,
        image_size=32,
    )
    for name, box in boxes.items():
        mask = np.asarray(Image.open(tmp_path / "out" / f"{Path(name).stem}_mask.png"))
        assert mask.shape == box.shape and mask.dtype == np.uint8
        assert set(np.unique(mask).tolist()) <= {0, 255}
        assert _iou(mask > 0, box) > 0.8, f"{name}: mask not where the object is"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["failures.json", "tall_mask.png", "wide_mask.png"]
    assert json.loads((tmp_path / "out" / "failures.json").read_text())["num_failed"] == 0


def test_datalist_given_instead_of_input_path(tmp_path: Path, draw, detector_ckpt: str) -> None:
    """``make demo`` gives the images as ``--datalist`` without ``input_path``: no video is looked for, images run."""
    box = draw.box(40, 72, 4, 20, 44, 68)
    picture = draw.rgb(tmp_path / "wide.png", box)
    _infer(
        datalist=[{"image": str(picture)}],
        output_dir=str(tmp_path / "out"),
        ckpt_path=detector_ckpt,
        network_def=DETECTOR,
        image_size=32,
    )
    assert _iou(np.asarray(Image.open(tmp_path / "out" / "wide_mask.png")) > 0, box) > 0.8


def test_nifti_input_gives_nifti_mask_with_the_same_affine(tmp_path: Path, draw, detector_ckpt: str) -> None:
    inp = tmp_path / "in"
    inp.mkdir()
    box = draw.box(48, 32, 2, 14, 20, 30)
    rgb = np.zeros((48, 32, 3), np.uint8)
    rgb[..., 0] = box * 255
    affine = np.diag([0.5, 0.7, 1.0, 1.0])
    affine[:3, 3] = [5.0, -3.0, 1.0]
    nib.save(nib.Nifti1Image(rgb, affine), inp / "slice.nii.gz")
    _infer(
        input_path=str(inp),
        output_dir=str(tmp_path / "out"),
        ckpt_path=detector_ckpt,
        network_def=DETECTOR,
        image_size=32,
    )
    out = nib.load(tmp_path / "out" / "slice_mask.nii.gz")
    data = np.asarray(out.dataobj)
    assert data.shape == (48, 32) and data.dtype == np.uint8
    np.testing.assert_allclose(out.affine, affine, atol=1e-5)
    assert _iou(data > 0, box) > 0.8


def test_single_image_with_tta_and_all_optional_outputs(tmp_path: Path, draw, small_ckpt: str) -> None:
    """Every optional output (the flip disagreement map too) has the input's size."""
    image = draw.rgb(tmp_path / "case.png", draw.box(40, 72, 4, 20, 44, 68))
    _infer(
        input_path=str(image),
        output_dir=str(tmp_path / "out"),
        ckpt_path=small_ckpt,
        image_size=32,
        tta=True,
        save_probability=True,
        save_uncertainty=True,
        save_overlay=True,
        **SMALL,
    )
    out = tmp_path / "out"
    for suffix in ("mask", "prob", "uncertainty"):
        assert np.asarray(Image.open(out / f"case_{suffix}.png")).shape == (40, 72)
    assert np.asarray(Image.open(out / "case_overlay.png")).shape == (40, 72, 3)
    prob = np.asarray(Image.open(out / "case_prob.png")).astype(float)
    mask = np.asarray(Image.open(out / "case_mask.png"))
    np.testing.assert_array_equal(mask > 0, prob > 128)  # mask = probability > 0.5 (up to 8-bit rounding)


def _nifti_rgb(path: Path, seed: int, shape: tuple[int, int] = (32, 32)) -> Path:
    """A random RGB NIfTI picture: NIfTI outputs are float32, so maps can be compared without 8-bit rounding."""
    rgb = np.random.default_rng(seed).integers(0, 256, (*shape, 3), dtype=np.uint8)
    nib.save(nib.Nifti1Image(rgb, np.eye(4)), path)
    return path


def _small_condseg(ckpt: str, return_aux: bool = False) -> torch.nn.Module:
    from condseg_monai.networks import ConDSeg

    net = ConDSeg(**SMALL, return_aux=return_aux)
    net.load_state_dict(torch.load(ckpt, weights_only=True))
    return net.eval()


def _preprocessed(picture: Path, image_size: int) -> torch.Tensor:
    """``(1, 3, S, S)``: the picture through the bundle's own preprocessing."""
    parser = ConfigParser()
    parser.read_config(INFERENCE)
    parser["image_size"] = image_size
    return torch.as_tensor(parser.get_parsed_content("preprocessing")({"image": str(picture)})["image"])[None]


def _nifti(path: Path) -> np.ndarray:
    return np.asarray(nib.load(path).dataobj)


@pytest.mark.parametrize("tta", [False, True])
def test_save_uncertainty_writes_the_flip_disagreement_map_and_keeps_the_mask(
    tmp_path: Path, small_ckpt: str, tta: bool
) -> None:
    """The default map is 2 x the per-pixel std of the 4 flip passes (run even without tta); the mask is unchanged."""
    from condseg_monai.inferers import ConDSegInferer
    from condseg_monai.metrics import flip_disagreement_map

    picture = _nifti_rgb(tmp_path / "case.nii.gz", seed=1)
    size = 32  # the picture's own size: Resized and its inverse are no-ops, so the written map is the model's
    settings = {"input_path": str(picture), "ckpt_path": small_ckpt, "image_size": size, "tta": tta, **SMALL}
    _infer(output_dir=str(tmp_path / "plain"), save_probability=True, **settings)
    _infer(output_dir=str(tmp_path / "unc"), save_probability=True, save_uncertainty=True, **settings)

    # the mask and the probability are bit for bit what they are without the map
    for suffix in ("mask", "prob"):
        np.testing.assert_array_equal(
            _nifti(tmp_path / "unc" / f"case_{suffix}.nii.gz"), _nifti(tmp_path / "plain" / f"case_{suffix}.nii.gz")
        )
    assert not (tmp_path / "plain" / "case_uncertainty.nii.gz").exists()
    written = _nifti(tmp_path / "unc" / "case_uncertainty.nii.gz")

    # the map of the four flip passes, computed directly
    with torch.no_grad():
        passes = ConDSegInferer(tta=True).flip_passes(_preprocessed(picture, size), _small_condseg(small_ckpt))
    expected = flip_disagreement_map(passes)[0, 0].numpy()
    assert written.shape == expected.shape == (32, 32) and written.dtype == np.float32
    np.testing.assert_array_equal(written, expected)
    assert expected.max() > 0, "an untrained ConDSeg is not flip-equivariant: the map must not be blank"
    prob = _nifti(tmp_path / "plain" / "case_prob.nii.gz")
    np.testing.assert_array_equal(prob, (passes.mean(0) if tta else passes[0])[0, 0].numpy())


def test_uncertainty_map_sid_writes_the_sid_head(tmp_path: Path, small_ckpt: str) -> None:
    """``uncertainty_map sid`` keeps the former output: sigmoid of ConDSeg's SID head, with the same mask."""
    picture = _nifti_rgb(tmp_path / "case.nii.gz", seed=2)
    settings = {"input_path": str(picture), "ckpt_path": small_ckpt, "image_size": 32, **SMALL}
    _infer(output_dir=str(tmp_path / "plain"), **settings)
    _infer(output_dir=str(tmp_path / "sid"), save_uncertainty=True, uncertainty_map="sid", **settings)
    with torch.no_grad():
        stacked = torch.sigmoid(_small_condseg(small_ckpt, return_aux=True)(_preprocessed(picture, 32)))
    written = _nifti(tmp_path / "sid" / "case_uncertainty.nii.gz")
    np.testing.assert_array_equal(written, stacked[0, 3, 0].numpy())
    np.testing.assert_array_equal(
        _nifti(tmp_path / "sid" / "case_mask.nii.gz"), _nifti(tmp_path / "plain" / "case_mask.nii.gz")
    )


@pytest.mark.parametrize("save_uncertainty", [True, False])
def test_bad_uncertainty_map_names_the_setting(tmp_path: Path, draw, small_ckpt: str, save_uncertainty: bool) -> None:
    image = draw.rgb(tmp_path / "a.png", draw.box(32, 32, 0, 8, 0, 8))
    with pytest.raises(Exception) as info:
        _infer(
            input_path=str(image),
            output_dir=str(tmp_path / "o"),
            ckpt_path=small_ckpt,
            image_size=32,
            save_uncertainty=save_uncertainty,
            uncertainty_map="entropy",
            **SMALL,
        )
    cause = _root_cause(info.value)
    assert isinstance(cause, ValueError) and "uncertainty_map" in str(cause) and "'entropy'" in str(cause)
    assert not (tmp_path / "o" / "a_mask.png").exists()


def test_clear_errors_for_missing_checkpoint_and_inputs(tmp_path: Path, draw) -> None:
    image = draw.rgb(tmp_path / "a.png", draw.box(32, 32, 0, 8, 0, 8))
    with pytest.raises(Exception) as info:
        _infer(
            input_path=str(image),
            output_dir=str(tmp_path / "o"),
            ckpt_path=str(tmp_path / "nope.pt"),
            image_size=32,
            **SMALL,
        )
    cause = _root_cause(info.value)
    assert isinstance(cause, ValueError) and "`ckpt_path`" in str(cause) and "nope.pt" in str(cause)
    (tmp_path / "empty").mkdir()
    with pytest.raises(Exception) as info:
        _infer(input_path=str(tmp_path / "empty"), ckpt_path=str(tmp_path / "nope.pt"), image_size=32, **SMALL)
    assert "contains no images" in str(_root_cause(info.value))
    with pytest.raises(Exception) as info:
        _infer(image_size=32, **SMALL)
    assert "`input_path` is not set" in str(_root_cause(info.value))


def test_infer_workflow_properties(tmp_path: Path, draw, small_ckpt: str) -> None:
    image = draw.rgb(tmp_path / "a.png", draw.box(32, 32, 0, 8, 0, 8))
    wf = ConfigWorkflow(
        workflow_type="infer",
        config_file=INFERENCE,
        meta_file=METADATA,
        logging_file=LOGGING,
        input_path=str(image),
        ckpt_path=small_ckpt,
        output_dir=str(tmp_path / "o"),
        **SMALL,
    )
    wf.initialize()
    assert wf.check_properties() == []
    assert isinstance(wf.device, str), "MONAI Label overrides `device` with a string: keep it a string"


def test_monai_label_shaped_postprocessing(tmp_path: Path, draw, detector_ckpt: str) -> None:
    """Mimic MONAI Label 0.8.5's BundleInferTask on one image and check the label map its writer would save.

    MONAI Label drops ``SaveImaged``, appends ``Restored`` (resize to the image's ``spatial_shape`` when the last
    axis differs) and its writer transposes the 2D map before ITK writes it (MONAI's ``(W, H)`` convention).
    """
    parser = ConfigParser()
    parser.read_config(INFERENCE)
    parser.read_meta(METADATA)
    parser["bundle_root"] = str(REPO / "bundle")
    parser["device"] = "cpu"  # MONAI Label passes a string
    parser["output_dir"] = str(tmp_path / "never")
    parser["network_def"] = DETECTOR
    parser["image_size"] = 32
    pre = parser.get_parsed_content("preprocessing").transforms
    post = [t for t in parser.get_parsed_content("postprocessing").transforms if not isinstance(t, SaveImaged)]
    assert not any(isinstance(t, LoadImaged) for t in pre), "LoadImageRGBd is used as-is by MONAI Label"
    assert isinstance(post[-3], SqueezeDimd) and isinstance(post[-1], CastToTyped)
    net = parser.get_parsed_content("network_def")
    net.load_state_dict(torch.load(detector_ckpt, weights_only=True))
    net.eval()
    box = draw.box(40, 72, 4, 20, 44, 68)
    d = {"image": str(draw.rgb(tmp_path / "x.png", box))}
    for t in pre:
        d = t(d)
    with torch.no_grad():
        d["pred"] = parser.get_parsed_content("inferer")(d["image"][None], net)[0]
    for t in post:
        d = t(d)
    pred = torch.as_tensor(d["pred"])
    assert pred.dtype == torch.uint8 and set(pred.unique().tolist()) <= {0, 1}
    assert pred.shape == (72, 40), "MONAI's (W, H) order"
    # MONAI Label's Restored: compares the last axis with the image's spatial_shape -> must be a no-op
    spatial_shape = [int(v) for v in d["image"].meta["spatial_shape"]]
    assert pred.shape[1:] == tuple(spatial_shape[-1:])
    # MONAI Label's write_itk transposes before writing: the saved picture is (H, W) with the object in place
    written = pred.numpy().transpose()
    assert written.shape == (40, 72) and _iou(written, box) > 0.8
    assert not (tmp_path / "never").exists()


def test_cli_on_demo_images(tmp_path: Path, small_ckpt: str) -> None:
    """The documented command line, in a subprocess, on a few demo images."""
    from condseg_monai.data import generate_demo_dataset

    datalist = generate_demo_dataset(tmp_path / "demo", num_train=0, num_val=0, num_test=2, image_size=(40, 56))
    images = datalist.parent / "images"
    cmd = [
        sys.executable,
        "-m",
        "monai.bundle",
        "run",
        "inference",
        "--config_file",
        INFERENCE,
        "--meta_file",
        METADATA,
        "--input_path",
        str(images),
        "--output_dir",
        str(tmp_path / "out"),
        "--ckpt_path",
        small_ckpt,
        "--image_size",
        "32",
        "--feature_size",
        "16",
        "--num_heads",
        "2",
    ]
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
    res = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300, env=env)
    assert res.returncode == 0, res.stderr[-3000:]
    masks = sorted((tmp_path / "out").glob("*_mask.png"))
    assert len(masks) == len(list(images.iterdir())) == 2
    assert all(np.asarray(Image.open(m)).shape == (40, 56) for m in masks)


@pytest.mark.slow
def test_isic_sample(tmp_path: Path, isic_sample: Path, small_ckpt: str) -> None:
    inp = tmp_path / "in"
    inp.mkdir()
    images = sorted((isic_sample / "images").glob("*.jpg"))[:2]
    for image in images:  # two real 600x450 dermoscopy JPEGs are enough
        (inp / image.name).symlink_to(image)
    _infer(input_path=str(inp), output_dir=str(tmp_path / "out"), ckpt_path=small_ckpt, image_size=32, **SMALL)
    for image in images:
        mask = Image.open(tmp_path / "out" / f"{image.stem}_mask.png")
        assert mask.size == Image.open(image).size == (600, 450)


def _folder_with_bad_files(folder: Path, draw) -> dict[str, np.ndarray]:
    """4 good CVC-ClinicDB-like frames, a 0-byte PNG and a truncated JPEG (sorted among them), and notes.txt."""
    folder.mkdir()
    boxes = {f"frame_{i}.{ext}": draw.box(40, 48, 4 + i, 20 + i, 8, 30) for i, ext in enumerate(("png", "jpg") * 2)}
    for name, box in boxes.items():
        draw.rgb(folder / name, box)
    (folder / "frame_1_empty.png").write_bytes(b"")
    full = (folder / "frame_3.jpg").read_bytes()
    (folder / "frame_5_cut.jpg").write_bytes(full[: len(full) // 2])
    (folder / "notes.txt").write_text("export notes")
    return boxes


def test_bad_files_are_reported_and_the_cli_exits_non_zero(tmp_path: Path, draw) -> None:
    """One subprocess: every readable frame gets its mask, the two bad ones are listed, exit status is 1."""
    boxes = _folder_with_bad_files(tmp_path / "in", draw)
    ckpt = tmp_path / "detector.pt"
    torch.save({"weight": torch.tensor([20.0, 0.0, 0.0]).reshape(1, 3, 1, 1), "bias": torch.tensor([-10.0])}, ckpt)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "monai.bundle", "run", "inference", "--config_file", INFERENCE]
    cmd += ["--meta_file", METADATA, "--input_path", str(tmp_path / "in"), "--output_dir", str(out)]
    cmd += ["--ckpt_path", str(ckpt), "--image_size", "32", "--network_def", repr(DETECTOR)]
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
    res = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300, env=env)
    log = res.stdout + res.stderr
    assert res.returncode != 0, log[-3000:]
    assert sorted(p.name for p in out.glob("*_mask.png")) == sorted(f"{Path(n).stem}_mask.png" for n in boxes)
    for name, box in boxes.items():
        assert _iou(np.asarray(Image.open(out / f"{Path(name).stem}_mask.png")) > 0, box) > 0.8, name
    report = json.loads((out / "failures.json").read_text())
    assert report["num_inputs"] == 6 and report["num_failed"] == 2
    reasons = {Path(f["file"]).name: f["reason"] for f in report["failures"]}
    assert set(reasons) == {"frame_1_empty.png", "frame_5_cut.jpg"}
    assert "empty (0 bytes)" in reasons["frame_1_empty.png"]
    assert "truncated" in reasons["frame_5_cut.jpg"].lower() and "frame_5_cut.jpg" in reasons["frame_5_cut.jpg"]
    assert "InputFailuresError: 2 of 6 inputs could not be read" in log and "failures.json" in log
    assert "not images" in log and "notes.txt" in log
    for name in reasons:  # each failure is in the log, with its file and reason
        assert any(name in line and "skipped an unreadable input" in line for line in log.splitlines()), name


def test_skip_existing_processes_only_missing_outputs(tmp_path: Path, draw, detector_ckpt: str) -> None:
    _folder_with_bad_files(tmp_path / "in", draw)
    out = tmp_path / "out"
    settings = {"input_path": str(tmp_path / "in"), "output_dir": str(out), "ckpt_path": detector_ckpt}
    settings.update(network_def=DETECTOR, image_size=32, save_overlay=True)
    with pytest.raises(Exception) as info:
        _infer(**settings)
    assert isinstance(_root_cause(info.value), InputFailuresError)
    # an interrupted run: two masks missing; the two present ones are marked so that a rewrite would show
    (out / "frame_0_mask.png").unlink()
    (out / "frame_3_mask.png").unlink()
    marker = np.full((4, 4), 7, np.uint8)
    for stem in ("frame_1", "frame_2"):
        Image.fromarray(marker).save(out / f"{stem}_mask.png")
        (out / f"{stem}_overlay.png").unlink()
    with pytest.raises(Exception) as info:
        _infer(skip_existing=True, **settings)
    cause = _root_cause(info.value)
    assert isinstance(cause, InputFailuresError) and "2 of 4 inputs" in str(cause), "the bad files are retried"
    for stem in ("frame_1", "frame_2"):  # kept as they were, not re-processed
        np.testing.assert_array_equal(np.asarray(Image.open(out / f"{stem}_mask.png")), marker)
        assert not (out / f"{stem}_overlay.png").exists()
    for stem in ("frame_0", "frame_3"):  # re-made
        assert np.asarray(Image.open(out / f"{stem}_mask.png")).shape == (40, 48)
        assert (out / f"{stem}_overlay.png").is_file()
    assert json.loads((out / "failures.json").read_text())["num_failed"] == 2
    # nothing left to do and no bad input: the run succeeds and says so in failures.json
    for name in ("frame_1_empty.png", "frame_5_cut.jpg"):
        (tmp_path / "in" / name).unlink()
    _infer(skip_existing=True, **settings)
    assert json.loads((out / "failures.json").read_text()) == {"num_inputs": 0, "num_failed": 0, "failures": []}
