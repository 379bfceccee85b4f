# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""Loading transforms: RGB images, binary masks, the zero mask of a declared negative and an image/mask size check
(MONAI dictionary style).

They wrap MONAI's :class:`monai.transforms.LoadImage` with the readers of
:mod:`condseg_monai.transforms.readers`, so the result is a MONAI ``MetaTensor`` whose metadata
(``filename_or_obj``, ``spatial_shape``, ``affine``, applied operations) works with ``Invertd`` and
``SaveImaged``. Every failure to read a file raises :class:`InvalidInputError` naming the file.
"""

from __future__ import annotations

import copy
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from monai.config import KeysCollection
from monai.data import ImageReader, MetaTensor
from monai.transforms import LoadImage, MapTransform, Transform

from condseg_monai.transforms.readers import (
    InvalidInputError,
    NibabelMaskReader,
    NibabelRGBReader,
    PILMaskReader,
    PILRGBReader,
    is_nifti,
)

__all__ = ["EnsureSameSized", "LoadImageRGB", "LoadImageRGBd", "LoadMask", "LoadMaskd", "NegativeLabeld"]


def _check_file(path: Any, what: str) -> str:
    """Return ``path`` as a string after checking it names a non-empty regular file."""
    if not isinstance(path, (str, Path)):
        raise TypeError(f"{what} must be a file path (str or Path), got {type(path).__name__}.")
    p = Path(path).expanduser()
    if not p.exists():
        raise InvalidInputError(f"cannot read {what} '{path}': file does not exist.")
    if not p.is_file():
        raise InvalidInputError(f"cannot read {what} '{path}': not a regular file.")
    if p.stat().st_size == 0:
        raise InvalidInputError(f"cannot read {what} '{path}': file is empty (0 bytes).")
    return str(p)


class _ReaderDispatchLoader(Transform):
    """Load one file with a PIL or NIfTI reader chosen by extension, wrapping every error."""

    what = "file"

    def __init__(self, pil_reader: ImageReader, nifti_reader: ImageReader) -> None:
        self.pil_reader = pil_reader
        self.nifti_reader = nifti_reader
        # ``reader`` is passed at call time, so LoadImage never falls back to MONAI's default readers
        # (which would silently return data in another layout/scale).
        self._loader = LoadImage(image_only=True, ensure_channel_first=True, dtype=torch.float32)

    def __call__(self, filename: str | Path) -> MetaTensor:
        """Load ``filename``.

        Returns:
            channel-first float32 ``MetaTensor``.
        """
        path = _check_file(filename, self.what)
        reader = self.nifti_reader if is_nifti(path) else self.pil_reader
        try:
            return self._loader(path, reader=reader)
        except InvalidInputError:
            raise
        except Exception as e:  # any decoder error becomes one clear message naming the file
            raise InvalidInputError(f"cannot read {self.what} '{filename}': {type(e).__name__}: {e}") from e


class LoadImageRGB(_ReaderDispatchLoader):
    """Load a 2D image file as a ``(3, H, W)`` float32 ``MetaTensor`` in ``[0, 1]``.

    Reads PNG, JPEG, BMP and TIFF with PIL and NIfTI (``.nii``, ``.nii.gz``, 2D or one slice) with nibabel.
    Grayscale becomes 3 identical channels, RGBA drops alpha, palette images are expanded, 8-bit data is
    divided by 255, 16-bit by 65535 and float data is kept if in ``[0, 1]`` else min-max scaled
    (see :func:`condseg_monai.transforms.readers.to_unit_range`).

    Args:
        reverse_indexing: ``False`` (default) returns ``(3, H, W)`` (rows first, the project convention);
            ``True`` returns MONAI's PIL convention ``(3, W, H)``. NIfTI data is always taken as stored.
    """

    what = "image"

    def __init__(self, reverse_indexing: bool = False) -> None:
        super().__init__(PILRGBReader(reverse_indexing=reverse_indexing), NibabelRGBReader())


class LoadMask(_ReaderDispatchLoader):
    """Load a 2D mask file as a binary ``(1, H, W)`` float32 ``MetaTensor`` in ``{0, 1}``.

    Args:
        foreground: ``"auto"`` (default), ``"threshold"`` or ``"nonzero"``; see
            :func:`condseg_monai.transforms.readers.binarize_mask`. In short: ``max <= 1`` -> ``> 0.5``;
            lossless ``0..N`` label maps with ``N <= 127`` -> ``> 0``; otherwise 8-bit ``> 127`` (``>= 128``),
            16-bit ``> 32767``.
        threshold: explicit threshold in the file's own units (foreground is ``value > threshold``).
        reverse_indexing: as in :class:`LoadImageRGB`.
    """

    what = "mask"

    def __init__(self, foreground: str = "auto", threshold: float | None = None, reverse_indexing: bool = False):
        # the mask readers check ``foreground`` (check_foreground_mode) before anything is built
        super().__init__(
            PILMaskReader(foreground=foreground, threshold=threshold, reverse_indexing=reverse_indexing),
            NibabelMaskReader(foreground=foreground, threshold=threshold),
        )


class _Loadd(MapTransform):
    """Dictionary wrapper shared by :class:`LoadImageRGBd` and :class:`LoadMaskd`."""

    def __init__(
        self,
        keys: KeysCollection,
        loader: _ReaderDispatchLoader,
        image_only: bool = True,
        meta_key_postfix: str = "meta_dict",
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.loader = loader
        self.image_only = image_only
        self.meta_key_postfix = meta_key_postfix

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            img = self.loader(d[key])
            d[key] = img
            if not self.image_only:
                d[f"{key}_{self.meta_key_postfix}"] = img.meta
        return d


class LoadImageRGBd(_Loadd):
    """Dictionary version of :class:`LoadImageRGB`: ``d[key]`` (a path) -> ``(3, H, W)`` ``MetaTensor``.

    Args:
        keys: keys holding image file paths.
        reverse_indexing: see :class:`LoadImageRGB`.
        image_only: ``False`` also stores the metadata dict under ``f"{key}_{meta_key_postfix}"`` (the
            ``MetaTensor`` carries it either way).
        meta_key_postfix: postfix of the optional metadata key.
        allow_missing_keys: don't raise for missing keys.
    """

    def __init__(
        self,
        keys: KeysCollection,
        reverse_indexing: bool = False,
        image_only: bool = True,
        meta_key_postfix: str = "meta_dict",
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, LoadImageRGB(reverse_indexing), image_only, meta_key_postfix, allow_missing_keys)


class LoadMaskd(_Loadd):
    """Dictionary version of :class:`LoadMask`: ``d[key]`` (a path) -> ``(1, H, W)`` binary ``MetaTensor``.

    Args:
        keys: keys holding mask file paths.
        foreground: see :class:`LoadMask`.
        threshold: see :class:`LoadMask`.
        reverse_indexing: see :class:`LoadImageRGB`.
        image_only: see :class:`LoadImageRGBd`.
        meta_key_postfix: see :class:`LoadImageRGBd`.
        allow_missing_keys: don't raise for missing keys.
    """

    def __init__(
        self,
        keys: KeysCollection,
        foreground: str = "auto",
        threshold: float | None = None,
        reverse_indexing: bool = False,
        image_only: bool = True,
        meta_key_postfix: str = "meta_dict",
        allow_missing_keys: bool = False,
    ) -> None:
        loader = LoadMask(foreground=foreground, threshold=threshold, reverse_indexing=reverse_indexing)
        super().__init__(keys, loader, image_only, meta_key_postfix, allow_missing_keys)


def _describe(data: Mapping[Hashable, Any], key: Hashable) -> str:
    value = data[key]
    if isinstance(value, MetaTensor):
        return f"'{value.meta.get('filename_or_obj', key)}'"
    return f"'{key}'"


class NegativeLabeld(MapTransform):
    """The mask of a declared negative (an image without foreground, ``d[negative_key]`` true).

    For a declared negative without a mask (no ``keys`` entry, as :func:`condseg_monai.data.load_datalist` gives
    a negative without a ``label``), ``d[key]`` becomes an all-zero ``(1, H, W)`` float32 mask of the spatial
    size of ``d[image_key]`` ``(C, H, W)``. When the image is a ``MetaTensor``, so is the mask, with a copy of
    the image's metadata (affine, ``spatial_shape``: the original size) except ``filename_or_obj``, which is
    ``""`` (the mask has no file, and the image file must not be read as one). A declared negative whose mask
    was loaded is checked to be empty. Every item gets ``d[negative_key]`` as a ``bool`` (``False`` when
    absent) and every ``MetaTensor`` mask ``meta[negative_key]``, so batches mixing negatives and positives
    collate (data and metadata dicts with the same keys) and carry the flag.

    Place it after :class:`LoadImageRGBd` and a :class:`LoadMaskd` with ``allow_missing_keys=True``, as
    :func:`condseg_monai.transforms.condseg_load_transforms` does.

    Args:
        keys: mask keys.
        image_key: key of the loaded ``(C, H, W)`` image that gives the mask's size and metadata.
        negative_key: key of the item's declared-negative flag.
        allow_missing_keys: don't raise for an item that is not a declared negative and has no mask.

    Raises:
        InvalidInputError: an item without a mask that is not a declared negative (naming its image), or a
            declared negative whose mask has foreground (naming the mask file).
    """

    def __init__(
        self,
        keys: KeysCollection = "label",
        image_key: str = "image",
        negative_key: str = "negative",
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.image_key = image_key
        self.negative_key = negative_key

    def zero_label(self, image: torch.Tensor) -> torch.Tensor:
        """All-zero ``(1, H, W)`` float32 mask for a ``(C, H, W)`` image (a ``MetaTensor`` for a ``MetaTensor``)."""
        zeros = torch.zeros((1, *image.shape[1:]), dtype=torch.float32, device=image.device)
        if not isinstance(image, MetaTensor):
            return zeros
        meta = copy.deepcopy(dict(image.meta))
        meta["filename_or_obj"] = ""
        meta[self.negative_key] = True
        return MetaTensor(zeros, meta=meta)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        flag = d.get(self.negative_key, False)
        negative = bool(flag.item() if isinstance(flag, torch.Tensor) else flag)
        d[self.negative_key] = negative
        for key in self.keys:
            if key not in d:
                if negative:
                    d[key] = self.zero_label(d[self.image_key])
                elif not self.allow_missing_keys:
                    raise InvalidInputError(
                        f"no '{key}' for {_describe(d, self.image_key)}: an image without foreground must be "
                        f'declared with "{self.negative_key}": true.'
                    )
                continue
            label = d[key]
            if negative and bool(torch.as_tensor(label).any()):
                raise InvalidInputError(
                    f'mask {_describe(d, key)} of a declared negative ("{self.negative_key}": true) has '
                    f"{int(torch.count_nonzero(torch.as_tensor(label)))} foreground pixels; it must be empty."
                )
            if isinstance(label, MetaTensor):
                label.meta[self.negative_key] = negative
        return d


class EnsureSameSized(MapTransform):
    """Check that all ``keys`` share the same spatial size (e.g. an image and its mask).

    Raises:
        InvalidInputError: naming both files and both sizes when they differ.

    Args:
        keys: keys of channel-first tensors to compare (the first one is the reference).
        allow_missing_keys: don't raise for missing keys.
    """

    def __init__(self, keys: KeysCollection = ("image", "label"), allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)

    def __call__(self, data: Mapping[Hashable, Any]) -> Mapping[Hashable, Any]:
        ref_key: Hashable | None = None
        ref_shape: Sequence[int] = ()
        for key in self.key_iterator(dict(data)):
            shape = tuple(data[key].shape[1:])
            if ref_key is None:
                ref_key, ref_shape = key, shape
            elif shape != ref_shape:
                raise InvalidInputError(
                    f"size mismatch: {_describe(data, ref_key)} is {'x'.join(map(str, ref_shape))} but "
                    f"{_describe(data, key)} is {'x'.join(map(str, shape))} (spatial sizes must agree)."
                )
        return data
