# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""Ready-made ConDSeg data pipelines built from MONAI transforms and ours.

Training (official order, all at the ORIGINAL resolution, then the resize):

1. load the image (:class:`LoadImageRGBd`) and the mask (:class:`LoadMaskd`; an all-zero mask for a declared
   negative without a mask file, :class:`NegativeLabeld`), check their sizes agree;
2. ``RandRotated`` (image bilinear, mask nearest, reflection padding), ``RandFlipd`` on ``W`` (horizontal)
   and ``H`` (vertical), ``RandCoarseDropoutd`` (exactly 10 holes of 32x32, image only, filled with 0);
3. ``Resized`` to ``image_size`` (bilinear for both) and re-binarisation of the mask at 0.5.

Stage 1 uses rotation +-90 deg, p=0.5 and flips p=0.5; Stage 2 rotation +-35 deg, p=0.3 and flips p=0.3;
dropout p=0.3 in both. Validation/test only load, check and resize.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from monai.transforms import (
    AsDiscreted,
    Compose,
    EnsureTyped,
    MapTransform,
    RandCoarseDropoutd,
    RandFlipd,
    RandRotated,
    Resized,
    Transform,
)

from condseg_monai.transforms.loading import EnsureSameSized, LoadImageRGBd, LoadMaskd, NegativeLabeld

__all__ = [
    "STAGE_AUGMENTATION",
    "condseg_eval_transforms",
    "condseg_geometric_augmentation",
    "condseg_load_transforms",
    "condseg_resize_transforms",
    "condseg_train_transforms",
]

# stage -> (rotation limit in degrees, rotation probability, flip probability), from the official code
STAGE_AUGMENTATION: dict[int, tuple[float, float, float]] = {1: (90.0, 0.5, 0.5), 2: (35.0, 0.3, 0.3)}


def _stage(stage: int) -> tuple[float, float, float]:
    if stage not in STAGE_AUGMENTATION:
        raise ValueError(f"stage must be 1 or 2, got {stage!r}.")
    return STAGE_AUGMENTATION[stage]


def condseg_load_transforms(
    image_key: str = "image",
    label_key: str | None = "label",
    foreground: str = "auto",
    negative_key: str = "negative",
) -> list[MapTransform]:
    """Load the RGB image and (optionally) the binary mask, and check that their sizes agree.

    With a ``label_key``, a declared negative (``d[negative_key]`` true) needs no mask file: it gets an all-zero
    mask of the image's size (:class:`NegativeLabeld`, which also checks that a negative's mask file is empty and
    sets ``d[negative_key]`` on every item); an item that is neither raises naming its image.

    Args:
        image_key: image key.
        label_key: mask key (``None``: the image only).
        foreground: mask binarisation mode (see :class:`LoadMaskd`).
        negative_key: key of the declared-negative flag (see :class:`NegativeLabeld`).

    Returns:
        the loading transforms: ``image`` ``(3, H, W)`` and ``label`` ``(1, H, W)`` ``MetaTensor`` s.
    """
    xforms: list[MapTransform] = [LoadImageRGBd(keys=image_key)]
    if label_key is not None:
        xforms += [
            # a missing mask is allowed here and decided by NegativeLabeld (declared negative or an error)
            LoadMaskd(keys=label_key, foreground=foreground, allow_missing_keys=True),
            NegativeLabeld(keys=label_key, image_key=image_key, negative_key=negative_key),
            EnsureSameSized(keys=(image_key, label_key)),
        ]
    return xforms


def condseg_geometric_augmentation(
    stage: int = 2,
    image_key: str = "image",
    label_key: str | None = "label",
    rotate_limit: float | None = None,
    rotate_prob: float | None = None,
    flip_prob: float | None = None,
    dropout_prob: float = 0.3,
    dropout_holes: int = 10,
    dropout_size: int = 32,
) -> list[Transform]:
    """The official albumentations-1.3 geometric augmentation as MONAI transforms (joint image/mask).

    ``RandRotated`` uses ``align_corners=True``: its reflection padding then mirrors about the border pixel
    centres, which is OpenCV's ``BORDER_REFLECT_101`` (albumentations' default), and a 90 deg rotation is an
    exact pixel permutation. ``RandCoarseDropoutd(holes=10, spatial_size=32)`` gives exactly 10 holes of
    exactly 32x32 px placed fully inside the image (they may overlap, as in albumentations).

    Args:
        stage: 1 or 2; sets the defaults of the next three arguments.
        image_key: image key.
        label_key: mask key (``None`` to augment the image only).
        rotate_limit: rotation range in degrees (+-), default by stage (90 / 35).
        rotate_prob: rotation probability, default by stage (0.5 / 0.3).
        flip_prob: probability of each of the horizontal and vertical flips, default by stage (0.5 / 0.3).
        dropout_prob: probability of the coarse dropout (0.3).
        dropout_holes: number of holes (10).
        dropout_size: hole side in pixels (32).

    Returns:
        list of MONAI transforms: rotation, horizontal flip, vertical flip, dropout.
    """
    limit, rprob, fprob = _stage(stage)
    limit = limit if rotate_limit is None else rotate_limit
    rprob = rprob if rotate_prob is None else rotate_prob
    fprob = fprob if flip_prob is None else flip_prob
    keys = [image_key] if label_key is None else [image_key, label_key]
    modes = ["bilinear"] if label_key is None else ["bilinear", "nearest"]
    return [
        RandRotated(
            keys=keys,
            range_x=math.radians(limit),
            prob=rprob,
            keep_size=True,
            mode=modes,
            padding_mode="reflection",
            align_corners=True,
        ),
        RandFlipd(keys=keys, prob=fprob, spatial_axis=1),  # horizontal: mirror the columns
        RandFlipd(keys=keys, prob=fprob, spatial_axis=0),  # vertical: mirror the rows
        RandCoarseDropoutd(
            keys=image_key, holes=dropout_holes, spatial_size=dropout_size, fill_value=0.0, prob=dropout_prob
        ),
    ]


def condseg_resize_transforms(
    image_size: int | Sequence[int] = 256, image_key: str = "image", label_key: str | None = "label"
) -> list[Transform]:
    """Bilinear resize of image and mask, then re-binarise the mask (``>= 0.5``).

    The official code kept the bilinearly resized mask soft; we re-binarise so targets stay in {0, 1}.
    """
    size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    if len(size) != 2 or min(size) < 1:
        raise ValueError(f"image_size must be a positive int or an (H, W) pair, got {image_size!r}.")
    xforms: list[Transform] = [Resized(keys=image_key, spatial_size=size, mode="bilinear")]
    if label_key is not None:
        xforms += [
            Resized(keys=label_key, spatial_size=size, mode="bilinear"),
            AsDiscreted(keys=label_key, threshold=0.5),
        ]
    return xforms


def condseg_train_transforms(
    stage: int = 2,
    image_size: int | Sequence[int] = 256,
    image_key: str = "image",
    label_key: str | None = "label",
    foreground: str = "auto",
    track_meta: bool = True,
    **augmentation_kwargs: float,
) -> Compose:
    """Full training pipeline: load + check, geometric augmentation at original size, resize, re-binarise.

    ``bundle/configs/train.json`` builds its training pipeline (and, with ``label_key=None``, the unlabeled one
    of semi-supervised training) with this function.

    Args:
        stage: 1 or 2 (augmentation strength, see :func:`condseg_geometric_augmentation`).
        image_size: network input size (256 in the paper).
        image_key: image key.
        label_key: mask key (``None``: images only, e.g. unlabeled images).
        foreground: mask binarisation mode (see :class:`LoadMaskd`).
        track_meta: keep MONAI metadata; the bundle's training passes ``False`` (plain float32 tensors batch
            faster and carry no file names into the engine).
        augmentation_kwargs: overrides for :func:`condseg_geometric_augmentation`.

    Returns:
        a ``Compose`` returning ``image`` (3, H, W) and ``label`` (1, H, W) float32 at ``image_size``.
    """
    return Compose(
        condseg_load_transforms(image_key, label_key, foreground)
        + condseg_geometric_augmentation(stage, image_key, label_key, **augmentation_kwargs)
        + condseg_resize_transforms(image_size, image_key, label_key)
        + [_ensure_float(image_key, label_key, track_meta)]
    )


def condseg_eval_transforms(
    image_size: int | Sequence[int] = 256,
    image_key: str = "image",
    label_key: str | None = "label",
    foreground: str = "auto",
    track_meta: bool = True,
) -> Compose:
    """Validation/test/inference pipeline: load (+ check), resize (+ re-binarise). Invertible by ``Invertd``.

    ``bundle/configs/train.json`` builds its validation pipeline with this function (``track_meta=False``).

    Args:
        image_size: network input size.
        image_key: image key.
        label_key: mask key (``None``: images only).
        foreground: mask binarisation mode (see :class:`LoadMaskd`).
        track_meta: keep MONAI metadata (needed by ``Invertd``).

    Returns:
        a ``Compose`` returning float32 ``image`` (3, H, W) and ``label`` (1, H, W) at ``image_size``.
    """
    return Compose(
        condseg_load_transforms(image_key, label_key, foreground)
        + condseg_resize_transforms(image_size, image_key, label_key)
        + [_ensure_float(image_key, label_key, track_meta)]
    )


def _ensure_float(image_key: str, label_key: str | None, track_meta: bool) -> EnsureTyped:
    keys = [image_key] if label_key is None else [image_key, label_key]
    return EnsureTyped(keys=keys, dtype=torch.float32, track_meta=track_meta)
