# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""Stage-1 "illumination/contrast" strong augmentation of ConDSeg (consistency reinforcement).

Official recipe (torchvision, on the GPU batch): ``ColorJitter(0.3, 0.3, 0.3, 0.1)`` in random order,
``RandomGrayscale(p=0.5)``, then always ``GaussianBlur(kernel_size=(1, 7), sigma=(0.1, 3.0))``, i.e. a
vertical-only 7-tap blur. Deviations, both documented in ``docs/datasets.md``: our images are RGB (the
official BGR order made grayscale and hue act on swapped channels), and the random parameters are drawn per
image by default (``per_batch=True`` reproduces the official single draw for the whole batch).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform, Randomizable, Transform
from monai.utils import get_seed

from condseg_monai.transforms.functional import (
    adjust_brightness,
    adjust_contrast,
    adjust_hue,
    adjust_saturation,
    gaussian_blur_1d,
    rgb_to_grayscale,
)

__all__ = ["RandIlluminationContrastAugment", "RandIlluminationContrastAugmentd"]

_COLOR_OPS = (adjust_brightness, adjust_contrast, adjust_saturation, adjust_hue)
_OP_NAMES = ("brightness", "contrast", "saturation", "hue")


def _factor_range(value: float | Sequence[float], name: str, center: float, bound: tuple[float, float]) -> tuple:
    """torchvision-style range: a number ``v`` means ``[center - v, center + v]``."""
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError(f"{name} must be non-negative, got {value}.")
        lo, hi = center - value, center + value
    else:
        if len(value) != 2:
            raise ValueError(f"{name} must be a number or a (min, max) pair, got {value}.")
        lo, hi = float(value[0]), float(value[1])
    if not bound[0] <= lo <= hi <= bound[1]:
        raise ValueError(f"{name} range must satisfy {bound[0]} <= min <= max <= {bound[1]}, got ({lo}, {hi}).")
    return max(lo, bound[0]), hi


class RandIlluminationContrastAugment(Randomizable, Transform):
    """Random colour jitter + grayscale + one-axis Gaussian blur on RGB tensors in ``[0, 1]``.

    Callable on one image ``(3, H, W)`` or a batch ``(B, 3, H, W)``, on any device; parameters are drawn on
    the CPU from ``self.R`` (so ``set_random_state`` and ``monai.utils.set_determinism`` make it
    reproducible) and applied on the tensor's device.

    Args:
        brightness: factor range; a number ``v`` means ``[1 - v, 1 + v]`` (official 0.3).
        contrast: as ``brightness`` (official 0.3).
        saturation: as ``brightness`` (official 0.3).
        hue: shift range in turns; a number ``v`` means ``[-v, v]``, ``v <= 0.5`` (official 0.1).
        grayscale_prob: probability of converting to 3-channel grayscale after the jitter (official 0.5).
        blur_kernel_size: odd number of blur taps (official 7).
        blur_sigma: ``(min, max)`` of the uniform sigma draw (official ``(0.1, 3.0)``).
        blur_axis: ``-2`` blurs along ``H`` (vertical, official with our ``(H, W)`` images), ``-1`` along ``W``.
        blur_prob: probability of blurring (official 1.0: always).
        per_batch: ``True`` shares one draw across the batch (official behaviour); ``False`` (default) draws
            independently for each image.

    Example::

        aug = RandIlluminationContrastAugment()
        aug.set_random_state(0)
        strong = aug(images)  # (B, 3, H, W) on the training device
    """

    def __init__(
        self,
        brightness: float | Sequence[float] = 0.3,
        contrast: float | Sequence[float] = 0.3,
        saturation: float | Sequence[float] = 0.3,
        hue: float | Sequence[float] = 0.1,
        grayscale_prob: float = 0.5,
        blur_kernel_size: int = 7,
        blur_sigma: Sequence[float] = (0.1, 3.0),
        blur_axis: int = -2,
        blur_prob: float = 1.0,
        per_batch: bool = False,
    ) -> None:
        self.brightness = _factor_range(brightness, "brightness", 1.0, (0.0, float("inf")))
        self.contrast = _factor_range(contrast, "contrast", 1.0, (0.0, float("inf")))
        self.saturation = _factor_range(saturation, "saturation", 1.0, (0.0, float("inf")))
        self.hue = _factor_range(hue, "hue", 0.0, (-0.5, 0.5))
        for name, p in (("grayscale_prob", grayscale_prob), ("blur_prob", blur_prob)):
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {p}.")
        if blur_kernel_size < 1 or blur_kernel_size % 2 == 0:
            raise ValueError(f"blur_kernel_size must be a positive odd integer, got {blur_kernel_size}.")
        if len(blur_sigma) != 2 or not 0 < blur_sigma[0] <= blur_sigma[1]:
            raise ValueError(f"blur_sigma must be a (min, max) pair with 0 < min <= max, got {blur_sigma}.")
        if blur_axis not in (-2, -1):
            raise ValueError(f"blur_axis must be -2 (H) or -1 (W), got {blur_axis}.")
        self.grayscale_prob = float(grayscale_prob)
        self.blur_kernel_size = int(blur_kernel_size)
        self.blur_sigma = (float(blur_sigma[0]), float(blur_sigma[1]))
        self.blur_axis = blur_axis
        self.blur_prob = float(blur_prob)
        self.per_batch = per_batch
        self.params: dict[str, np.ndarray] = {}
        # Compose seeds its members from set_determinism; a standalone instance (as the training engine uses
        # it) would otherwise share MONAI's class-level RandomState, so seed it here too.
        if get_seed() is not None:
            self.set_random_state(seed=get_seed())

    def randomize(self, data: int = 1) -> None:
        """Draw the parameters for a batch of ``data`` images (stored in ``self.params``).

        Keys: ``order`` ``(B, 4)`` permutation of (brightness, contrast, saturation, hue); ``brightness``,
        ``contrast``, ``saturation``, ``hue``, ``sigma`` ``(B,)``; ``grayscale``, ``blur`` ``(B,)`` booleans.
        """
        n = 1 if self.per_batch else int(data)
        params = {
            "order": np.stack([self.R.permutation(4) for _ in range(n)]),
            "brightness": self.R.uniform(*self.brightness, size=n),
            "contrast": self.R.uniform(*self.contrast, size=n),
            "saturation": self.R.uniform(*self.saturation, size=n),
            "hue": self.R.uniform(*self.hue, size=n),
            "grayscale": self.R.random_sample(n) < self.grayscale_prob,
            "sigma": self.R.uniform(*self.blur_sigma, size=n),
            "blur": self.R.random_sample(n) < self.blur_prob,
        }
        if self.per_batch:
            params = {k: np.repeat(v, int(data), axis=0) for k, v in params.items()}
        self.params = params

    def __call__(self, img: torch.Tensor, randomize: bool = True) -> torch.Tensor:
        """Augment ``img``.

        Args:
            img: ``(3, H, W)`` or ``(B, 3, H, W)`` float tensor in ``[0, 1]``.
            randomize: draw new parameters (``False`` reuses ``self.params``, which must fit the batch).

        Returns:
            augmented tensor, same shape, dtype and device, values in ``[0, 1]``.
        """
        if not isinstance(img, torch.Tensor):
            raise TypeError(f"img must be a torch.Tensor, got {type(img).__name__}.")
        if img.ndim not in (3, 4) or img.shape[-3] != 3:
            raise ValueError(f"img must have shape (3, H, W) or (B, 3, H, W), got {tuple(img.shape)}.")
        batched = img.ndim == 4
        x = img if batched else img.unsqueeze(0)
        b = x.shape[0]
        if randomize:
            self.randomize(b)
        elif not self.params or len(self.params["order"]) != b:
            raise ValueError("randomize=False needs parameters drawn for the same batch size.")
        p = self.params

        def factor(name: str, rows: np.ndarray) -> torch.Tensor:
            return torch.as_tensor(p[name][rows], dtype=x.dtype, device=x.device)

        # images sharing an op order are processed together (at most 24 groups; 1 when per_batch)
        orders = [tuple(o) for o in p["order"]]
        groups = list(dict.fromkeys(orders))
        out = x if len(groups) == 1 else torch.empty_like(x)
        for order in groups:
            rows = np.array([i for i, o in enumerate(orders) if o == order])
            idx = torch.as_tensor(rows, device=x.device)
            sub = x if len(groups) == 1 else x.index_select(0, idx)
            for op_id in order:
                sub = _COLOR_OPS[op_id](sub, factor(_OP_NAMES[op_id], rows))
            if len(groups) == 1:
                out = sub
            else:
                out.index_copy_(0, idx, sub)
        all_rows = np.arange(b)
        gray = torch.as_tensor(p["grayscale"], device=x.device).view(b, 1, 1, 1)
        out = torch.where(gray, rgb_to_grayscale(out, num_output_channels=3), out)
        if p["blur"].any():
            blurred = gaussian_blur_1d(out, factor("sigma", all_rows), self.blur_kernel_size, axis=self.blur_axis)
            out = torch.where(torch.as_tensor(p["blur"], device=x.device).view(b, 1, 1, 1), blurred, out)
        out = out.clamp_(0.0, 1.0)
        return out if batched else out[0]


class RandIlluminationContrastAugmentd(Randomizable, MapTransform):
    """Dictionary version of :class:`RandIlluminationContrastAugment`.

    One draw per call, applied identically to every key (all keys must have the same batch size).

    Args:
        keys: keys of RGB tensors to augment (usually only the image).
        allow_missing_keys: don't raise for missing keys.
        kwargs: forwarded to :class:`RandIlluminationContrastAugment`.
    """

    def __init__(self, keys: KeysCollection, allow_missing_keys: bool = False, **kwargs: Any) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        self.augment = RandIlluminationContrastAugment(**kwargs)

    def set_random_state(
        self, seed: int | None = None, state: np.random.RandomState | None = None
    ) -> RandIlluminationContrastAugmentd:
        super().set_random_state(seed, state)
        self.augment.set_random_state(seed, state)
        return self

    def randomize(self, data: int = 1) -> None:
        self.augment.randomize(data)

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        first = self.first_key(d)
        if first == ():
            return d
        self.randomize(d[first].shape[0] if d[first].ndim == 4 else 1)
        for key in self.key_iterator(d):
            d[key] = self.augment(d[key], randomize=False)
        return d
