# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""Batch mixing for semi-supervised training: bidirectional copy-paste (BCP) of labeled and unlabeled images, and
CutMix between unlabeled images with their pseudo-labels.

Like MONAI's ``CutMix`` / ``MixUp`` (``monai.transforms.regularization``), a randomised transform of a whole batch,
used by :class:`~condseg_monai.engines.SemiSupervisedTrainer` with ``bcp=True`` or ``cutmix=True``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from monai.transforms import Randomizable
from monai.utils import get_seed

__all__ = ["BidirectionalCopyPaste", "UnlabeledCutMix"]

Box = tuple[int, int, int, int]  # (top, left, height, width)


def _box_masks(
    n: int, boxes: Sequence[Box | None], spatial: tuple[int, int], device: torch.device | str | None = None
) -> torch.Tensor:
    """Masks ``(n, 1, H, W)``, 1 inside the box of each of the first ``n`` images (``None``: no box)."""
    masks = torch.zeros((n, 1, *spatial), device=device)
    for i, box in enumerate(boxes[:n]):
        if box is not None:
            top, left, h, w = box
            masks[i, :, top : top + h, left : left + w] = 1.0
    return masks


class BidirectionalCopyPaste(Randomizable):
    """Bidirectional copy-paste (BCP) mixing of labeled and unlabeled images with one random box per pair.

    Unlabeled image ``j`` is paired with labeled image ``j mod B_l``. With a box ``M`` (1 inside) of side
    ``box_fraction`` x the image side at a uniform random position, two mixed images are made per pair:

    * *inward*: ``M x_l + (1 - M) x_u``: the labeled box pasted into the unlabeled image;
    * *outward*: ``M x_u + (1 - M) x_l``: the unlabeled box pasted into the labeled image.

    Their targets are the ground truth where the pixel comes from the labeled image (``region`` = 1) and the
    teacher's pseudo-label of ``x_u`` elsewhere (see
    :class:`~condseg_monai.losses.ConfidentPseudoLabelLoss`'s ``target`` / ``region``).

    Args:
        box_fraction: box side relative to the image side, in (0, 1] (the BCP paper uses 2/3).

    Raises:
        ValueError: ``box_fraction`` outside (0, 1].
    """

    def __init__(self, box_fraction: float = 2.0 / 3.0) -> None:
        if not 0.0 < float(box_fraction) <= 1.0:
            raise ValueError(f"box_fraction must be in (0, 1], got {box_fraction}.")
        self.box_fraction = float(box_fraction)
        self.corners: np.ndarray = np.zeros((0, 2), dtype=int)
        # a standalone instance would otherwise share MONAI's class-level RandomState (see illumination.py)
        if get_seed() is not None:
            self.set_random_state(seed=get_seed())

    def box_size(self, spatial: tuple[int, int]) -> tuple[int, int]:
        """Box ``(h, w)`` for images of ``spatial = (H, W)``."""
        return tuple(max(1, round(self.box_fraction * s)) for s in spatial)  # type: ignore[return-value]

    def randomize(self, data: tuple[int, tuple[int, int]]) -> None:
        """Draw the top-left corners ``(n, 2)`` of ``n`` boxes for ``data = (n, (H, W))``."""
        n, spatial = data
        h, w = self.box_size(spatial)
        self.corners = np.stack(
            [self.R.randint(0, spatial[0] - h + 1, size=n), self.R.randint(0, spatial[1] - w + 1, size=n)], axis=1
        )

    def boxes(self, n: int, spatial: tuple[int, int], device: torch.device | str | None = None) -> torch.Tensor:
        """Box masks ``(n, 1, H, W)`` (1 inside) at the last drawn corners."""
        h, w = self.box_size(spatial)
        return _box_masks(n, [(int(top), int(left), h, w) for top, left in self.corners[:n]], spatial, device)

    def __call__(
        self, labeled: torch.Tensor, label: torch.Tensor, unlabeled: torch.Tensor, randomize: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Mix the two batches.

        Args:
            labeled: labeled images ``(B_l, 3, H, W)``.
            label: their masks ``(B_l, C, H, W)``.
            unlabeled: unlabeled images ``(B_u, 3, H, W)``.
            randomize: draw new boxes (``False`` reuses the last ones, which must cover ``B_u`` pairs).

        Returns:
            ``(mixed, target, region)``: mixed images ``(2 B_u, 3, H, W)`` (all inward, then all outward), the
            ground truth aligned with them ``(2 B_u, C, H, W)`` and the ground-truth region ``(2 B_u, 1, H, W)``.

        Raises:
            ValueError: the spatial sizes differ.
        """
        if labeled.shape[2:] != unlabeled.shape[2:] or label.shape[2:] != unlabeled.shape[2:]:
            raise ValueError(
                "labeled, label and unlabeled must have the same spatial size, got "
                f"{tuple(labeled.shape)}, {tuple(label.shape)} and {tuple(unlabeled.shape)}."
            )
        n, spatial = unlabeled.shape[0], tuple(unlabeled.shape[2:])
        if randomize:
            self.randomize((n, spatial))
        elif len(self.corners) < n:
            raise ValueError("randomize=False needs boxes drawn for at least as many pairs.")
        box = self.boxes(n, spatial, device=unlabeled.device).to(unlabeled.dtype)
        partner = torch.arange(n, device=labeled.device) % labeled.shape[0]
        x_l, y_l = labeled[partner], label[partner].to(unlabeled.dtype)
        inward = box * x_l + (1.0 - box) * unlabeled
        outward = box * unlabeled + (1.0 - box) * x_l
        return torch.cat([inward, outward]), torch.cat([y_l, y_l]), torch.cat([box, 1.0 - box])


class UnlabeledCutMix(Randomizable):
    """CutMix between the images of one unlabeled batch, their pseudo-label logits mixed with the same boxes.

    The semi-supervised CutMix of CutMix-Seg (French et al., BMVC 2020) and UniMatch (Yang et al., CVPR 2023):
    with probability ``prob`` image ``i`` gets one box pasted from image ``(i + s) mod B`` (one random shift
    ``1 <= s < B`` per batch, so no image is pasted into itself), and the teacher's logits of the two images are
    pasted alike, pixel for pixel, so every pixel keeps the pseudo-label of the image it comes from. The box covers a
    uniform share in ``area_range`` of the image, with an aspect ratio (height / width) log-uniform in
    ``aspect_range``, at a uniform position wholly inside the image. ``monai.transforms.CutMix`` is not used: it
    mixes labels by the area weight (classification) and clips boxes at the border.

    Args:
        prob: probability that an image gets a box, in [0, 1] (UniMatch: 0.5).
        area_range: ``(min, max)`` share of the image area covered by a box, ``0 < min <= max <= 1``
            (UniMatch: 0.02 to 0.4).
        aspect_range: ``(min, max)`` box height / width, ``0 < min <= max`` (UniMatch: 0.3 to 1 / 0.3).

    Raises:
        ValueError: a value outside its range.
    """

    def __init__(
        self,
        prob: float = 0.5,
        area_range: tuple[float, float] = (0.02, 0.4),
        aspect_range: tuple[float, float] = (0.3, 1 / 0.3),
    ) -> None:
        if not 0.0 <= float(prob) <= 1.0:
            raise ValueError(f"prob must be in [0, 1], got {prob}.")
        if not 0.0 < area_range[0] <= area_range[1] <= 1.0:
            raise ValueError(f"area_range must satisfy 0 < min <= max <= 1, got {area_range}.")
        if not 0.0 < aspect_range[0] <= aspect_range[1]:
            raise ValueError(f"aspect_range must satisfy 0 < min <= max, got {aspect_range}.")
        self.prob = float(prob)
        self.area_range = (float(area_range[0]), float(area_range[1]))
        self.aspect_range = (float(aspect_range[0]), float(aspect_range[1]))
        self.shift = 0
        self.boxes: list[Box | None] = []
        # a standalone instance would otherwise share MONAI's class-level RandomState (see illumination.py)
        if get_seed() is not None:
            self.set_random_state(seed=get_seed())

    def randomize(self, data: tuple[int, tuple[int, int]]) -> None:
        """Draw the source shift and one box (or ``None``) per image for ``data = (B, (H, W))``."""
        n, (height, width) = data
        self.shift = int(self.R.randint(1, n)) if n > 1 else 0
        self.boxes = []
        for _ in range(n):
            applied = self.R.uniform() < self.prob
            area = self.R.uniform(*self.area_range) * height * width
            aspect = float(np.exp(self.R.uniform(np.log(self.aspect_range[0]), np.log(self.aspect_range[1]))))
            h = int(min(height, max(1, round(np.sqrt(area * aspect)))))
            w = int(min(width, max(1, round(np.sqrt(area / aspect)))))
            top, left = int(self.R.randint(0, height - h + 1)), int(self.R.randint(0, width - w + 1))
            self.boxes.append((top, left, h, w) if applied and n > 1 else None)

    def masks(self, n: int, spatial: tuple[int, int], device: torch.device | str | None = None) -> torch.Tensor:
        """The last drawn boxes as masks ``(n, 1, H, W)`` (1 where the pixel comes from the source image)."""
        return _box_masks(n, self.boxes, spatial, device)

    def __call__(
        self, images: torch.Tensor, logits: torch.Tensor, randomize: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mix a batch of images and their pseudo-label logits with the same boxes.

        Args:
            images: unlabeled images ``(B, 3, H, W)`` (e.g. their strong views).
            logits: the teacher's logits of the same images ``(B, C, H, W)``.
            randomize: draw new boxes (``False`` reuses the last ones, drawn for the same ``B``).

        Returns:
            ``(mixed_images, mixed_logits)`` of the input shapes.

        Raises:
            ValueError: the batch or spatial sizes of ``images`` and ``logits`` differ, or ``randomize=False`` with
                boxes drawn for another batch size.
        """
        if images.shape[0] != logits.shape[0] or images.shape[2:] != logits.shape[2:]:
            raise ValueError(
                f"images and logits must have the same batch and spatial sizes, got {tuple(images.shape)} and "
                f"{tuple(logits.shape)}."
            )
        n, spatial = images.shape[0], tuple(images.shape[2:])
        if randomize:
            self.randomize((n, spatial))
        elif len(self.boxes) != n:
            raise ValueError(f"randomize=False needs boxes drawn for {n} images, got {len(self.boxes)}.")
        inside = self.masks(n, spatial, device=images.device).bool()
        source = (torch.arange(n, device=images.device) + self.shift) % n
        return torch.where(inside, images[source], images), torch.where(inside, logits[source], logits)
