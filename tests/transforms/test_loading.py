# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""Tests of LoadImageRGBd / LoadMaskd / EnsureSameSized and the PNG round trip through SaveImaged."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from monai.transforms import AsDiscreted, Compose, Invertd, Resized, SaveImaged
from PIL import Image

from condseg_monai.data import PILWriterHW
from condseg_monai.transforms import (
    EnsureSameSized,
    InvalidInputError,
    LoadImageRGB,
    LoadImageRGBd,
    LoadMask,
    LoadMaskd,
)

H, W = 20, 30  # non-square on purpose: a transposition would show up as a shape error


def _rgb() -> np.ndarray:
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, size=(H, W, 3), dtype=np.uint8)
    img[2:5, 10:25] = (255, 128, 0)  # an orange bar at rows 2..4, columns 10..24
    return img


def _load(path: Path) -> MetaTensor:
    return LoadImageRGBd(keys="image")({"image": str(path)})["image"]


def _load_mask(path: Path, **kwargs) -> MetaTensor:
    return LoadMaskd(keys="label", **kwargs)({"label": str(path)})["label"]


def test_rgb_png_orientation_and_metadata(tmp_path: Path) -> None:
    rgb = _rgb()
    Image.fromarray(rgb).save(tmp_path / "a.png")
    img = _load(tmp_path / "a.png")
    assert isinstance(img, MetaTensor) and img.dtype == torch.float32
    assert img.shape == (3, H, W)
    torch.testing.assert_close(img, torch.from_numpy(rgb).permute(2, 0, 1).float() / 255)
    assert img.meta["filename_or_obj"] == str(tmp_path / "a.png")
    assert tuple(img.meta["spatial_shape"]) == (H, W)
    # MONAI's convention, on request: (W, H)
    monai_order = LoadImageRGBd(keys="image", reverse_indexing=True)({"image": str(tmp_path / "a.png")})["image"]
    assert monai_order.shape == (3, W, H)
    torch.testing.assert_close(monai_order, img.transpose(1, 2))


@pytest.mark.parametrize(
    "name,make,expected",
    [
        ("gray.png", lambda a: Image.fromarray(a[..., 0]), lambda a: np.repeat(a[..., :1], 3, -1) / 255),
        ("rgba.png", lambda a: Image.fromarray(np.dstack([a, np.full((H, W), 7, np.uint8)])), lambda a: a / 255),
        ("img.bmp", lambda a: Image.fromarray(a), lambda a: a / 255),
        ("img.tif", lambda a: Image.fromarray(a), lambda a: a / 255),
        ("img.tiff", lambda a: Image.fromarray(a[..., 1]), lambda a: np.repeat(a[..., 1:2], 3, -1) / 255),
    ],
)
def test_lossless_formats(tmp_path: Path, name, make, expected) -> None:
    rgb = _rgb()
    make(rgb).save(tmp_path / name)
    img = _load(tmp_path / name)
    assert img.shape == (3, H, W)
    np.testing.assert_allclose(img.permute(1, 2, 0).numpy(), expected(rgb).astype(np.float32), atol=1e-6)


def test_palette_16bit_float_bilevel_jpeg(tmp_path: Path) -> None:
    rgb = _rgb()
    pal = Image.fromarray(rgb).quantize(colors=16)
    pal.save(tmp_path / "pal.png")
    expected = np.asarray(pal.convert("RGB")) / 255
    np.testing.assert_allclose(_load(tmp_path / "pal.png").permute(1, 2, 0).numpy(), expected, atol=1e-6)

    deep = (np.arange(H * W, dtype=np.uint16).reshape(H, W) * 100).astype(np.uint16)
    Image.fromarray(deep).save(tmp_path / "deep.png")
    img16 = _load(tmp_path / "deep.png")
    np.testing.assert_allclose(img16[0].numpy(), deep / 65535.0, atol=1e-6)  # by the 16-bit range, not min-max
    assert torch.equal(img16[0], img16[2])

    unit = np.linspace(0.1, 0.6, H * W, dtype=np.float32).reshape(H, W)
    Image.fromarray(unit).save(tmp_path / "unit.tif")
    np.testing.assert_allclose(_load(tmp_path / "unit.tif")[1].numpy(), unit, atol=1e-6)  # in [0, 1]: kept
    Image.fromarray(unit * 1000 - 50).save(tmp_path / "wide.tif")
    wide = _load(tmp_path / "wide.tif")
    assert float(wide.min()) == 0.0 and float(wide.max()) == pytest.approx(1.0)  # outside [0, 1]: min-max

    Image.fromarray(rgb[..., 0] > 127).save(tmp_path / "bits.png")
    assert set(_load(tmp_path / "bits.png").unique().tolist()) == {0.0, 1.0}

    cols, rows = np.meshgrid(np.linspace(0, 255, W), np.linspace(0, 255, H))
    smooth = np.stack([rows, cols, np.full((H, W), 90.0)], -1).astype(np.uint8)
    Image.fromarray(smooth).save(tmp_path / "photo.jpg", quality=95)
    jpg = _load(tmp_path / "photo.jpg")
    assert jpg.shape == (3, H, W) and (jpg - torch.from_numpy(smooth).permute(2, 0, 1) / 255).abs().mean() < 0.03


def test_nifti(tmp_path: Path) -> None:
    gray = _rgb()[..., 0]
    nib.save(nib.Nifti1Image(gray.astype(np.uint8), np.eye(4)), tmp_path / "a.nii.gz")
    img = _load(tmp_path / "a.nii.gz")
    assert img.shape == (3, H, W)  # stored axes taken as (rows, columns)
    np.testing.assert_allclose(img[0].numpy(), gray / 255, atol=1e-6)
    nib.save(nib.Nifti1Image(gray[..., None].astype(np.int16), np.eye(4)), tmp_path / "slice.nii")
    np.testing.assert_allclose(_load(tmp_path / "slice.nii")[2].numpy(), gray / 255, atol=1e-6)
    nib.save(nib.Nifti1Image(_rgb().astype(np.float32) / 255, np.eye(4)), tmp_path / "rgb.nii.gz")
    np.testing.assert_allclose(_load(tmp_path / "rgb.nii.gz").permute(1, 2, 0).numpy(), _rgb() / 255, atol=1e-6)
    nib.save(nib.Nifti1Image(np.zeros((4, 5, 6), np.uint8), np.eye(4)), tmp_path / "vol.nii.gz")
    with pytest.raises(InvalidInputError, match="vol.nii.gz.*2D"):
        _load(tmp_path / "vol.nii.gz")
    mask = (gray > 127).astype(np.uint8)
    nib.save(nib.Nifti1Image(mask, np.eye(4)), tmp_path / "m.nii.gz")
    loaded = _load_mask(tmp_path / "m.nii.gz")
    assert loaded.shape == (1, H, W) and torch.equal(loaded[0], torch.from_numpy(mask).float())


def test_masks_binarisation(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    truth = np.zeros((H, W), bool)
    truth[4:15, 6:22] = True
    # 3-channel JPEG mask with compression noise: thresholded at 128
    Image.fromarray(np.repeat((truth * 255).astype(np.uint8)[..., None], 3, -1)).save(tmp_path / "m.jpg", quality=70)
    jpg = _load_mask(tmp_path / "m.jpg")
    assert jpg.shape == (1, H, W) and set(jpg.unique().tolist()) <= {0.0, 1.0}
    assert (jpg[0].numpy().astype(bool) != truth).mean() < 0.02
    # PNG 0/255 and 0/1
    Image.fromarray((truth * 255).astype(np.uint8)).save(tmp_path / "m255.png")
    Image.fromarray(truth.astype(np.uint8)).save(tmp_path / "m01.png")
    for name in ("m255.png", "m01.png"):
        assert torch.equal(_load_mask(tmp_path / name)[0], torch.from_numpy(truth).float())
    # GlaS-style instance map in a BMP: labels 0..5, all non-zero labels are foreground
    labels = np.zeros((H, W), np.uint8)
    labels[truth] = rng.integers(1, 6, size=truth.sum())
    Image.fromarray(labels).save(tmp_path / "train_1_anno.bmp")
    assert torch.equal(_load_mask(tmp_path / "train_1_anno.bmp")[0], torch.from_numpy(truth).float())
    # the same map under an explicit threshold mode keeps only labels > 2
    thr = _load_mask(tmp_path / "train_1_anno.bmp", foreground="threshold", threshold=2)
    assert torch.equal(thr[0], torch.from_numpy(labels > 2).float())
    # 8-bit grey levels: > 127 by default, everything non-zero with foreground="nonzero"
    grey = (truth * 140 + 60).astype(np.uint8)  # 60 / 200
    Image.fromarray(grey).save(tmp_path / "grey.png")
    assert torch.equal(_load_mask(tmp_path / "grey.png")[0], torch.from_numpy(truth).float())
    assert float(_load_mask(tmp_path / "grey.png", foreground="nonzero").mean()) == 1.0
    # 16-bit mask 0/65535, RGBA mask, palette mask (indices are the labels)
    Image.fromarray((truth * 65535).astype(np.uint16)).save(tmp_path / "m16.png")
    assert torch.equal(_load_mask(tmp_path / "m16.png")[0], torch.from_numpy(truth).float())
    rgba = np.dstack([np.repeat((truth * 255).astype(np.uint8)[..., None], 3, -1), np.full((H, W), 255, np.uint8)])
    Image.fromarray(rgba).save(tmp_path / "rgba.png")
    assert torch.equal(_load_mask(tmp_path / "rgba.png")[0], torch.from_numpy(truth).float())
    pal = Image.fromarray(truth.astype(np.uint8), mode="L").convert("P")
    pal.putpalette([0, 0, 0, 128, 0, 0] + [0] * 762)  # index 1 drawn dark red (luma < 128)
    pal.save(tmp_path / "pal.png")
    assert torch.equal(_load_mask(tmp_path / "pal.png")[0], torch.from_numpy(truth).float())
    with pytest.raises(ValueError, match="foreground"):
        LoadMaskd(keys="label", foreground="bogus")


@pytest.mark.parametrize("loader,what", [(LoadImageRGB(), "image"), (LoadMask(), "mask")])
def test_bad_files_name_the_file(tmp_path: Path, loader, what) -> None:
    with pytest.raises(InvalidInputError, match=rf"cannot read {what} '.*missing.png': file does not exist"):
        loader(tmp_path / "missing.png")
    (tmp_path / "empty.png").touch()
    with pytest.raises(InvalidInputError, match=r"empty.png': file is empty \(0 bytes\)"):
        loader(tmp_path / "empty.png")
    (tmp_path / "corrupt.png").write_bytes(b"this is not an image")
    with pytest.raises(InvalidInputError, match=rf"cannot read {what} '.*corrupt.png'"):
        loader(tmp_path / "corrupt.png")
    Image.fromarray(_rgb()).save(tmp_path / "full.jpg")
    data = (tmp_path / "full.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(InvalidInputError, match=r"(?i)cut.jpg'.*truncated"):
        loader(tmp_path / "cut.jpg")
    with pytest.raises(ValueError):  # InvalidInputError is a ValueError
        loader(tmp_path)
    with pytest.raises(TypeError, match="file path"):
        loader(123)


def test_ensure_same_size(tmp_path: Path) -> None:
    Image.fromarray(_rgb()).save(tmp_path / "img.png")
    Image.fromarray(np.zeros((H, W + 1), np.uint8)).save(tmp_path / "mask.png")
    Image.fromarray(np.zeros((H, W), np.uint8)).save(tmp_path / "ok.png")
    load = Compose([LoadImageRGBd("image"), LoadMaskd("label"), EnsureSameSized(("image", "label"))])
    out = load({"image": str(tmp_path / "img.png"), "label": str(tmp_path / "ok.png")})
    assert out["label"].shape == (1, H, W)
    loaded = Compose(load.transforms[:2])({"image": str(tmp_path / "img.png"), "label": str(tmp_path / "mask.png")})
    with pytest.raises(InvalidInputError, match=r"img.png' is 20x30 but '.*mask.png' is 20x31"):
        EnsureSameSized(("image", "label"))(loaded)


def test_meta_dict_option(tmp_path: Path) -> None:
    Image.fromarray(_rgb()).save(tmp_path / "img.png")
    out = LoadImageRGBd("image", image_only=False)({"image": str(tmp_path / "img.png")})
    assert out["image_meta_dict"]["filename_or_obj"] == str(tmp_path / "img.png")


def test_png_prediction_round_trip_keeps_orientation_and_size(tmp_path: Path) -> None:
    """Load -> resize -> "predict" -> Invertd -> SaveImaged(.png) gives the mask back at the original size."""
    rgb = _rgb()
    Image.fromarray(rgb).save(tmp_path / "case.png")
    pre = Compose([LoadImageRGBd("image"), Resized("image", spatial_size=(16, 16), mode="bilinear")])
    data = pre({"image": str(tmp_path / "case.png")})
    assert data["image"].shape == (3, 16, 16)
    # a "prediction": the orange bar (red channel high, blue channel low) at network resolution
    data["pred"] = ((data["image"][0:1] > 0.9) & (data["image"][2:3] < 0.1)).float()
    post = Compose(
        [
            Invertd("pred", transform=pre, orig_keys="image", nearest_interp=False),
            AsDiscreted("pred", threshold=0.5),
            SaveImaged(
                "pred",
                output_dir=str(tmp_path / "out"),
                output_ext=".png",
                writer=PILWriterHW,
                output_dtype=np.uint8,
                scale=255,
                separate_folder=False,
                output_postfix="seg",
                squeeze_end_dims=True,
                print_log=False,
            ),
        ]
    )
    post(data)
    saved = np.asarray(Image.open(tmp_path / "out" / "case_seg.png"))
    assert saved.shape == (H, W)  # same size and orientation as the input file
    bar = np.zeros((H, W), bool)
    bar[2:5, 10:25] = True
    assert (saved[bar] == 255).mean() > 0.8 and (saved[~bar] == 0).mean() > 0.95
    # the same works with the dotted name, as a bundle config would give it
    SaveImaged("pred", output_dir=str(tmp_path / "out2"), output_ext=".png", writer="condseg_monai.data.PILWriterHW")
