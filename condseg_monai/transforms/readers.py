# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""MONAI image readers that turn any supported 2D file into a ConDSeg input.

Two kinds of output:

* RGB images: ``(H, W, 3)`` float32 in ``[0, 1]`` (grayscale replicated, alpha dropped, palette expanded,
  integer data divided by its bit-depth range, float data kept when already in ``[0, 1]`` else min-max scaled).
* Masks: ``(H, W)`` float32 in ``{0, 1}`` after binarisation (see :func:`binarize_mask`).

Axis convention: the first spatial axis is the image row (``H``) and the second the column (``W``), as
numpy, PIL (``np.asarray``), OpenCV and torchvision see an image, and as the official ConDSeg code fed its
network. MONAI's own ``PILReader`` defaults to the transposed ``(W, H)`` order (``reverse_indexing=True``);
our readers default to ``reverse_indexing=False`` and write ``spatial_shape`` in the same ``(H, W)`` order so
the metadata agrees with the array. Save predictions with :class:`condseg_monai.data.PILWriterHW`.
NIfTI arrays are taken as stored (voxel axis ``i`` -> rows, ``j`` -> columns) and never reoriented.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from monai.data import NibabelReader, PILReader
from monai.data.image_reader import _copy_compatible_dict
from monai.utils import SpaceKeys, ensure_tuple
from PIL import Image

__all__ = [
    "FOREGROUND_MODES",
    "IMAGE_SUFFIXES",
    "InvalidInputError",
    "NIFTI_SUFFIXES",
    "NibabelMaskReader",
    "NibabelRGBReader",
    "PIL_SUFFIXES",
    "PILMaskReader",
    "PILRGBReader",
    "binarize_mask",
    "check_foreground_mode",
    "default_mask_threshold",
    "file_stem",
    "is_2d_image_array",
    "is_label_map",
    "is_lossy_format",
    "is_nifti",
    "mask_values_from_pil",
    "nifti_to_2d",
    "pil_to_rgb_array",
    "to_unit_range",
]

PIL_SUFFIXES: tuple[str, ...] = ("png", "jpg", "jpeg", "bmp", "tif", "tiff")
NIFTI_SUFFIXES: tuple[str, ...] = ("nii", "nii.gz")
# every file ending the package reads as an image (lower case, with the dot): the one list that the datalist
# tools, the inference folder listing and the readers share
IMAGE_SUFFIXES: tuple[str, ...] = tuple(f".{s}" for s in (*PIL_SUFFIXES, *NIFTI_SUFFIXES))
FOREGROUND_MODES: tuple[str, ...] = ("auto", "threshold", "nonzero")

# PIL modes that hold 16-bit unsigned samples (Pillow names them by byte order).
_UINT16_MODES = ("I;16", "I;16L", "I;16B", "I;16N")


class InvalidInputError(ValueError):
    """An input file is missing, empty, corrupt, undecodable or inconsistent with its partner file."""


def is_nifti(path: str | Path) -> bool:
    """Whether ``path`` names a NIfTI file (``.nii`` or ``.nii.gz``, case-insensitive)."""
    name = str(path).lower()
    return name.endswith(".nii") or name.endswith(".nii.gz")


def file_stem(path: str | Path) -> str:
    """File name without folder and image suffix (``a/b/img.nii.gz`` -> ``img``, ``a.b.JPG`` -> ``a.b``).

    The two-part NIfTI suffix is removed whole (case-insensitive), any other one like :attr:`pathlib.Path.stem`
    does, as MONAI's ``SaveImaged`` names its outputs.
    """
    name = Path(path).name
    lower = name.lower()
    for suffix in (".nii.gz", ".nii"):
        if lower.endswith(suffix):
            return name[: -len(suffix)]
    return Path(name).stem


def is_lossy_format(path: str | Path) -> bool:
    """Whether ``path`` is a JPEG, whose compression noise rules out exact label values."""
    return str(path).lower().endswith((".jpg", ".jpeg"))


def to_unit_range(array: np.ndarray) -> np.ndarray:
    """Scale an image array to float32 ``[0, 1]``.

    Rules (by dtype, never by content when the dtype fixes the range):

    * ``bool``: ``False``/``True`` -> 0/1.
    * ``uint8``: divided by 255; ``uint16``: divided by 65535.
    * other integer types (e.g. PIL mode ``"I"``, NIfTI ``int16``): divided by 255 when all values lie in
      ``[0, 255]``, by 65535 when they lie in ``[0, 65535]``, else min-max scaled.
    * floating point: kept when already in ``[0, 1]``, else min-max scaled (a constant image becomes 0).

    Args:
        array: any numeric array.

    Returns:
        float32 array of the same shape with values in ``[0, 1]``.
    """
    if array.dtype == np.bool_:
        return array.astype(np.float32)
    if array.dtype == np.uint8:
        return array.astype(np.float32) / 255.0
    if array.dtype == np.uint16:
        return array.astype(np.float32) / 65535.0
    if array.size == 0:
        return array.astype(np.float32)
    lo, hi = float(np.min(array)), float(np.max(array))
    if np.issubdtype(array.dtype, np.integer):
        if lo >= 0 and hi <= 255:
            return array.astype(np.float32) / 255.0
        if lo >= 0 and hi <= 65535:
            return array.astype(np.float32) / 65535.0
    elif lo >= 0.0 and hi <= 1.0:
        return array.astype(np.float32)
    if hi == lo:
        return np.zeros(array.shape, dtype=np.float32)
    return ((array.astype(np.float64) - lo) / (hi - lo)).astype(np.float32)


def pil_to_rgb_array(img: Image.Image) -> np.ndarray:
    """Convert a decoded PIL image of any mode to a ``(H, W, 3)`` float32 array in ``[0, 1]``.

    Grayscale (``1``, ``L``, ``LA``, ``I``, ``I;16``, ``F``) is replicated to 3 channels, alpha is dropped
    (not composited), palette images are expanded through their palette, other colour spaces are converted
    by PIL, and the result is scaled by :func:`to_unit_range`.

    Args:
        img: a PIL image.

    Returns:
        ``(H, W, 3)`` float32 array.
    """
    mode = img.mode
    if mode in ("1", "L", "F", "I", *_UINT16_MODES):
        gray = np.asarray(img)
        if mode in _UINT16_MODES:
            gray = gray.astype(np.uint16)
        gray = to_unit_range(gray)
        return np.repeat(gray[..., None], 3, axis=-1)
    if mode == "LA":
        return pil_to_rgb_array(img.getchannel("L"))
    if mode in ("P", "PA"):
        img = img.convert("RGBA")
        mode = "RGBA"
    if mode not in ("RGB", "RGBA", "RGBX", "RGBa"):
        img = img.convert("RGB")
    return to_unit_range(np.asarray(img)[..., :3].astype(np.uint8))


def mask_values_from_pil(img: Image.Image) -> np.ndarray:
    """Extract the 2D value map of a mask image before binarisation.

    * ``1``/``L``/``I``/``I;16``/``F``: the stored values;
    * ``P``/``PA``: the palette **indices** (label maps store labels as indices, e.g. index 1 may be drawn
      dark red), not the palette colours;
    * ``LA``: the ``L`` channel; RGB(A) and other colour modes: the maximum over R, G, B, so that a
      coloured annotation on black counts as foreground and 3-channel JPEG masks keep their level.

    Args:
        img: a PIL image.

    Returns:
        ``(H, W)`` numeric array.
    """
    mode = img.mode
    if mode == "1":
        return np.asarray(img).astype(np.uint8)
    if mode in ("L", "P", "I", "F"):
        return np.asarray(img)
    if mode in _UINT16_MODES:
        return np.asarray(img).astype(np.uint16)
    if mode in ("LA", "PA"):
        return np.asarray(img)[..., 0]
    if mode not in ("RGB", "RGBA", "RGBX", "RGBa"):
        img = img.convert("RGB")
    return np.asarray(img)[..., :3].max(axis=-1)


def default_mask_threshold(values: np.ndarray) -> float:
    """Binarisation threshold implied by the value range (foreground is ``value > threshold``).

    ``0.5`` when ``max <= 1`` (0/1 masks, soft maps in ``[0, 1]``); ``127`` when ``max <= 255`` (the
    official ``>= 128`` on 8-bit masks); ``32767`` when ``max <= 65535``; half the maximum otherwise.
    """
    hi = float(np.max(values)) if values.size else 0.0
    if hi <= 1.0:
        return 0.5
    if hi <= 255.0:
        return 127.0
    if hi <= 65535.0:
        return 32767.0
    return hi / 2.0


def check_foreground_mode(foreground: str) -> None:
    """Raise a ``ValueError`` unless ``foreground`` is one of :data:`FOREGROUND_MODES`."""
    if foreground not in FOREGROUND_MODES:
        raise ValueError(f"foreground must be one of {FOREGROUND_MODES}, got {foreground!r}.")


def binarize_mask(
    values: np.ndarray, foreground: str = "auto", threshold: float | None = None, lossy: bool = False
) -> np.ndarray:
    """Binarise a mask value map.

    Modes:

    * ``"nonzero"``: every value ``> 0`` is foreground (instance label maps such as GlaS).
    * ``"threshold"``: ``value > threshold``; ``threshold=None`` uses :func:`default_mask_threshold`.
    * ``"auto"`` (default): an explicit ``threshold`` is honoured; otherwise a lossless integer map whose
      maximum lies in ``[2, 127]`` is a label map (``0..N``, e.g. GlaS BMPs) and uses ``"nonzero"``;
      everything else uses the range threshold (``> 0.5`` for ``max <= 1``, ``> 127`` for 8-bit, ...).
      JPEG files are never treated as label maps because compression noise creates small non-zero values.

    Args:
        values: ``(H, W)`` value map (see :func:`mask_values_from_pil`).
        foreground: one of ``"auto"``, ``"threshold"``, ``"nonzero"``.
        threshold: explicit threshold in the file's own units (e.g. 127 on 0..255 data).
        lossy: whether the values come from a lossy (JPEG) file.

    Returns:
        boolean array of the same shape.
    """
    check_foreground_mode(foreground)
    if foreground == "nonzero":
        return values > 0
    if threshold is None:
        if foreground == "auto" and not lossy and is_label_map(values):
            return values > 0
        threshold = default_mask_threshold(values)
    return values > threshold


def is_label_map(values: np.ndarray) -> bool:
    """Whether an integer value map looks like a ``0..N`` label map (``2 <= max <= 127``, no negatives)."""
    if not np.issubdtype(values.dtype, np.integer) or values.size == 0:
        return False
    return int(np.min(values)) >= 0 and 2 <= int(np.max(values)) <= 127


def nifti_to_2d(data: np.ndarray) -> np.ndarray:
    """NIfTI data reduced towards ``(H, W)`` or ``(H, W, C)``: the readers' and the datalist checks' one rule.

    An RGB(A) structured dtype becomes a last ``3|4`` axis, then singleton axes beyond the first two are dropped
    (``(X, Y, 1)`` -> ``(X, Y)``, ``(X, Y, 1, C)`` -> ``(X, Y, C)``). What is left may still be no 2D image (a
    volume, say): check with :func:`is_2d_image_array`.
    """
    if data.dtype.names:
        data = np.stack([data[name] for name in data.dtype.names], axis=-1)
    data = np.asarray(data)
    while data.ndim > 2 and data.shape[-1] == 1:
        data = data[..., 0]
    if data.ndim == 4 and data.shape[2] == 1:  # (X, Y, 1, C): a single slice of vector data
        data = data[:, :, 0]
    return data


def is_2d_image_array(data: np.ndarray) -> bool:
    """Whether ``data`` is ``(H, W)`` or ``(H, W, 3|4)``, the shapes :func:`nifti_to_2d` should leave."""
    return data.ndim == 2 or (data.ndim == 3 and data.shape[-1] in (3, 4))


class _HWHeaderMixin:
    """Shared metadata helpers for readers that return ``(H, W[, C])`` arrays."""

    reverse_indexing: bool

    def _orient(self, data: np.ndarray) -> np.ndarray:
        return np.swapaxes(data, 0, 1) if self.reverse_indexing else data


class PILRGBReader(_HWHeaderMixin, PILReader):
    """MONAI ``PILReader`` returning ``(H, W, 3)`` float32 RGB in ``[0, 1]`` for PNG/JPEG/BMP/TIFF files.

    Args:
        reverse_indexing: ``False`` (default) keeps ``(H, W)`` order; ``True`` gives MONAI's ``(W, H)``.
        kwargs: forwarded to ``PIL.Image.open``.
    """

    def __init__(self, reverse_indexing: bool = False, **kwargs: Any) -> None:
        super().__init__(converter=None, reverse_indexing=reverse_indexing, **kwargs)

    def verify_suffix(self, filename: Sequence[str] | str) -> bool:
        return all(str(f).lower().endswith(tuple(f".{s}" for s in PIL_SUFFIXES)) for f in ensure_tuple(filename))

    def read(self, data: Sequence[str] | str, **kwargs: Any) -> Image.Image | list[Image.Image]:
        """Open and fully decode the file(s) so that truncation errors surface here and files get closed."""
        kwargs_ = {**self.kwargs, **kwargs}
        images = []
        for name in ensure_tuple(data):
            with Image.open(name, **kwargs_) as img:
                img.load()
                images.append(img)
        return images if len(images) > 1 else images[0]

    def _convert(self, img: Image.Image) -> np.ndarray:
        return pil_to_rgb_array(img)

    def _channel_dim(self) -> float | int:
        return -1

    def get_data(self, img: Image.Image | Sequence[Image.Image]) -> tuple[np.ndarray, dict]:
        """Return the converted array and a MONAI header with ``spatial_shape`` in the array's order."""
        images = ensure_tuple(img)
        if len(images) != 1:
            raise ValueError(f"{type(self).__name__} reads one file at a time, got {len(images)}.")
        pil = images[0]
        data = self._orient(self._convert(pil))
        header = {
            "format": pil.format,
            "mode": pil.mode,
            "width": pil.width,
            "height": pil.height,
            "spatial_shape": np.asarray(data.shape[:2]),
            "original_channel_dim": self._channel_dim(),
        }
        return data, header


class PILMaskReader(PILRGBReader):
    """MONAI ``PILReader`` returning a binary ``(H, W)`` float32 mask in ``{0, 1}``.

    Args:
        foreground: binarisation mode, see :func:`binarize_mask`.
        threshold: explicit threshold in the file's units, see :func:`binarize_mask`.
        reverse_indexing: as in :class:`PILRGBReader`.
        kwargs: forwarded to ``PIL.Image.open``.
    """

    def __init__(
        self, foreground: str = "auto", threshold: float | None = None, reverse_indexing: bool = False, **kwargs: Any
    ) -> None:
        check_foreground_mode(foreground)
        super().__init__(reverse_indexing=reverse_indexing, **kwargs)
        self.foreground = foreground
        self.threshold = threshold

    def _convert(self, img: Image.Image) -> np.ndarray:
        lossy = (img.format or "").upper() in ("JPEG", "MPO")
        values = mask_values_from_pil(img)
        return binarize_mask(values, self.foreground, self.threshold, lossy=lossy).astype(np.float32)

    def _channel_dim(self) -> float | int:
        return float("nan")


class NibabelRGBReader(NibabelReader):
    """MONAI ``NibabelReader`` for 2D NIfTI (or one slice) returning ``(H, W, 3)`` float32 RGB in ``[0, 1]``.

    The affine is kept from the file. Accepted shapes: ``(X, Y)``, ``(X, Y, 1)``, ``(X, Y, 3|4)``,
    ``(X, Y, 1, 3|4)`` and RGB(A) structured dtypes. Axis ``X`` becomes the row axis.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(squeeze_non_spatial_dims=False, **kwargs)

    def verify_suffix(self, filename: Sequence[str] | str) -> bool:
        return all(is_nifti(f) for f in ensure_tuple(filename))

    def _prepare(self, img: Any) -> tuple[np.ndarray, dict, str]:
        images = ensure_tuple(img)
        if len(images) != 1:
            raise ValueError(f"{type(self).__name__} reads one file at a time, got {len(images)}.")
        path = str(images[0].get_filename())
        data = nifti_to_2d(np.asanyarray(images[0].dataobj))
        if not is_2d_image_array(data):
            raise InvalidInputError(
                f"'{path}' has shape {tuple(data.shape)}: expected a 2D image or a single slice (H, W[, 1][, 3|4])."
            )
        # drop header fields the DataLoader cannot collate (NIfTI stores some as byte strings)
        header: dict = {}
        _copy_compatible_dict(self._get_meta_dict(images[0]), header)
        header["affine"] = self._get_affine(images[0])
        header["original_affine"] = header["affine"].copy()
        header["as_closest_canonical"] = False
        header["space"] = SpaceKeys.RAS  # as MONAI's NibabelReader reports it
        return data, header, path

    def get_data(self, img: Any) -> tuple[np.ndarray, dict]:
        data, header, _ = self._prepare(img)
        if data.ndim == 3:
            data = data[..., :3]
            rgb = to_unit_range(data)
        else:
            rgb = np.repeat(to_unit_range(data)[..., None], 3, axis=-1)
        header["spatial_shape"] = np.asarray(rgb.shape[:2])
        header["original_channel_dim"] = -1
        return rgb, header


class NibabelMaskReader(NibabelRGBReader):
    """MONAI ``NibabelReader`` for 2D NIfTI masks returning a binary ``(H, W)`` float32 mask.

    Args:
        foreground: binarisation mode, see :func:`binarize_mask`.
        threshold: explicit threshold in the file's units.
    """

    def __init__(self, foreground: str = "auto", threshold: float | None = None, **kwargs: Any) -> None:
        check_foreground_mode(foreground)
        super().__init__(**kwargs)
        self.foreground = foreground
        self.threshold = threshold

    def get_data(self, img: Any) -> tuple[np.ndarray, dict]:
        data, header, _ = self._prepare(img)
        if data.ndim == 3:
            data = data[..., :3].max(axis=-1)
        mask = binarize_mask(data, self.foreground, self.threshold, lossy=False).astype(np.float32)
        header["spatial_shape"] = np.asarray(mask.shape)
        header["original_channel_dim"] = float("nan")
        return mask, header
