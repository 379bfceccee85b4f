# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""Tests for the inference post-processing transforms: output split, PNG/NIfTI saving, overlays."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from monai.transforms import SaveImaged
from PIL import Image

from condseg_monai.inference import SaveOverlayd, SavePredictiond, SplitConDSegOutputd, ToMONAIAxesd, output_stem
from condseg_monai.transforms import LoadImageRGB


def _nonsquare_mask() -> np.ndarray:
    m = np.zeros((20, 36), np.float32)  # H=20, W=36
    m[2:8, 24:34] = 1.0  # top-right block: any transpose/flip moves it
    return m


def test_split_stacked_output_and_passthrough() -> None:
    stacked = MetaTensor(
        torch.arange(4.0).reshape(4, 1, 1, 1).expand(4, 1, 2, 3).clone(), meta={"filename_or_obj": "a"}
    )
    d = SplitConDSegOutputd(keys="pred", uncertainty_key="uncertainty")({"pred": stacked})
    assert d["pred"].shape == (1, 2, 3) and float(d["pred"].max()) == 0.0
    assert float(d["uncertainty"].min()) == 3.0
    assert isinstance(d["uncertainty"], MetaTensor) and d["uncertainty"].meta["filename_or_obj"] == "a"
    plain = torch.ones(1, 2, 3)
    d = SplitConDSegOutputd(keys="pred")({"pred": plain})
    assert d["pred"] is plain and "uncertainty" not in d
    with pytest.raises(ValueError, match="expected"):
        SplitConDSegOutputd(keys="pred")({"pred": torch.zeros(3, 1, 2, 2)})


def test_split_the_uncertainty_inferer_dict() -> None:
    """``UncertaintyMapInferer``'s ``{"pred", "uncertainty"}`` (one image after decollation) becomes two keys."""
    meta = {"filename_or_obj": "a"}
    out = {"pred": MetaTensor(torch.zeros(1, 2, 3), meta=meta)}
    out["uncertainty"] = MetaTensor(torch.ones(1, 2, 3), meta=meta)
    d = SplitConDSegOutputd(keys="pred", uncertainty_key="uncertainty")({"pred": out})
    assert torch.equal(d["pred"], torch.zeros(1, 2, 3)) and torch.equal(d["uncertainty"], torch.ones(1, 2, 3))
    assert all(isinstance(d[k], MetaTensor) and d[k].meta["filename_or_obj"] == "a" for k in ("pred", "uncertainty"))
    d = SplitConDSegOutputd(keys="pred", uncertainty_key=None)({"pred": out})
    assert torch.equal(d["pred"], torch.zeros(1, 2, 3)) and "uncertainty" not in d
    with pytest.raises(ValueError, match="'pred' and 'uncertainty'"):
        SplitConDSegOutputd(keys="pred")({"pred": {"mask": torch.zeros(1, 2, 3)}})


def test_save_mask_png_keeps_size_and_orientation(tmp_path: Path) -> None:
    mask = _nonsquare_mask()
    pred = MetaTensor(torch.from_numpy(mask)[None], meta={"filename_or_obj": str(tmp_path / "in" / "case.jpg")})
    saver = SavePredictiond(keys="pred", output_dir=tmp_path / "out", output_postfix="mask")
    assert isinstance(saver, SaveImaged), "MONAI Label filters SaveImaged instances out of the post-processing"
    saver({"pred": pred})
    written = np.asarray(Image.open(tmp_path / "out" / "case_mask.png"))
    assert written.shape == (20, 36) and written.dtype == np.uint8
    np.testing.assert_array_equal(written, mask.astype(np.uint8) * 255)


def test_save_probability_png_is_8bit(tmp_path: Path) -> None:
    prob = MetaTensor(torch.tensor([[[0.0, 0.5], [0.25, 1.0]]]), meta={"filename_or_obj": "x/p.png"})
    SavePredictiond(keys="prob", output_dir=tmp_path, output_postfix="prob", kind="probability")({"prob": prob})
    written = np.asarray(Image.open(tmp_path / "p_prob.png"))
    np.testing.assert_allclose(written, [[0, 128], [64, 255]], atol=1)
    with pytest.raises(ValueError, match="kind"):
        SavePredictiond(keys="prob", kind="heatmap")


def test_save_mask_nifti_keeps_affine(tmp_path: Path) -> None:
    mask = _nonsquare_mask()
    affine = np.diag([0.5, 0.8, 1.0, 1.0])
    affine[:3, 3] = [10.0, -4.0, 2.0]
    src = tmp_path / "case.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((20, 36), np.float32), affine), src)
    meta = {"filename_or_obj": str(src), "original_affine": affine, "spatial_shape": np.array([20, 36])}
    pred = MetaTensor(torch.from_numpy(mask)[None], affine=torch.from_numpy(affine), meta=meta)
    SavePredictiond(keys="pred", output_dir=tmp_path / "out")({"pred": pred})
    out = nib.load(tmp_path / "out" / "case_mask.nii.gz")
    np.testing.assert_array_equal(np.asarray(out.dataobj), mask.astype(np.uint8))
    assert out.get_data_dtype() == np.uint8
    np.testing.assert_allclose(out.affine, affine)


def test_overlay_draws_contour_on_the_original_image(tmp_path: Path) -> None:
    img = np.full((20, 36, 3), 40, np.uint8)
    src = tmp_path / "pic.png"
    Image.fromarray(img).save(src)
    mask = _nonsquare_mask()
    pred = MetaTensor(torch.from_numpy(mask)[None], meta={"filename_or_obj": str(src)})
    SaveOverlayd(keys="pred", output_dir=tmp_path / "out")({"pred": pred})
    over = np.asarray(Image.open(tmp_path / "out" / "pic_overlay.png"))
    assert over.shape == (20, 36, 3)
    green = (over[..., 1] == 255) & (over[..., 0] == 0)
    assert green[2, 24] and green[7, 33] and not green[4, 28]  # boundary drawn, interior untouched
    assert not green[:, :20].any()  # nothing on the left half, where there is no object
    loaded = LoadImageRGB()(str(tmp_path / "out" / "pic_overlay.png"))
    assert tuple(loaded.shape) == (3, 20, 36)
    with pytest.raises(ValueError, match="after Invertd"):
        SaveOverlayd(keys="pred", output_dir=tmp_path)({"pred": MetaTensor(torch.zeros(1, 5, 5), meta=pred.meta)})


def test_output_stem() -> None:
    assert output_stem("/a/b/x.nii.gz") == "x" and output_stem("y.NII") == "y" and output_stem("z.tar.png") == "z.tar"


def test_to_monai_axes_transposes_pred_and_reference_shape() -> None:
    image = MetaTensor(torch.zeros(3, 8, 8), meta={"spatial_shape": np.array([20, 36])})
    pred = torch.from_numpy(_nonsquare_mask()).to(torch.uint8)
    d = ToMONAIAxesd(keys="pred", ref_key="image")({"pred": pred, "image": image})
    assert d["pred"].shape == (36, 20)
    torch.testing.assert_close(d["pred"], pred.T)
    assert d["image"].meta["spatial_shape"].tolist() == [36, 20]
    d = ToMONAIAxesd(keys="pred", ref_key=None)({"pred": pred.numpy()})
    assert d["pred"].shape == (36, 20)
    with pytest.raises(ValueError, match="2D"):
        ToMONAIAxesd(keys="pred")({"pred": torch.zeros(1, 4, 4)})
