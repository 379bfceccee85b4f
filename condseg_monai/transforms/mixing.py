# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""Batch mixing of labeled and unlabeled images for semi-supervised training (bidirectional copy-paste, BCP).

Like MONAI's ``CutMix`` / ``MixUp`` (``monai.transforms.regularization``), a randomised transform of a whole batch,
used by :class:`~condseg_monai.engines.SemiSupervisedTrainer` with ``bcp=True``.
"""

from __future__ import annotations

import numpy as np
import torch
from monai.transforms import Randomizable
from monai.utils import get_seed

__all__ = ["BidirectionalCopyPaste"]


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
        masks = torch.zeros((n, 1, *spatial), device=device)
        for i, (top, left) in enumerate(self.corners[:n]):
            masks[i, :, top : top + h, left : left + w] = 1.0
        return masks

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
