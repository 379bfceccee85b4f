# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""Small input helpers shared by the ConDSeg losses (private)."""

from __future__ import annotations

import torch
from monai.utils import convert_to_tensor

__all__ = ["as_loss_tensor", "check_same_shape"]


def as_loss_tensor(x: torch.Tensor, name: str) -> torch.Tensor:
    """Return ``x`` as a plain floating tensor suitable for loss arithmetic.

    MetaTensors are unwrapped (autograd is kept) so that loss values and logged terms are plain tensors.
    Half precision and integer/bool inputs are promoted to float32: the batch sums of the Dice term
    (``B*H*W`` up to ~10^6 values) overflow float16, and targets may arrive as uint8/bool masks.

    Args:
        x: input tensor of any shape.
        name: argument name used in error messages.

    Raises:
        TypeError: when ``x`` is not a tensor.
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}.")
    x = convert_to_tensor(x, track_meta=False)
    if not torch.is_floating_point(x) or x.dtype in (torch.float16, torch.bfloat16):
        x = x.float()
    return x


def check_same_shape(a: torch.Tensor, b: torch.Tensor, name_a: str, name_b: str) -> None:
    """Raise a ``ValueError`` naming both arguments and shapes when ``a`` and ``b`` differ in shape.

    Args:
        a: first tensor.
        b: second tensor.
        name_a: name of ``a`` in the error message.
        name_b: name of ``b`` in the error message.
    """
    if a.shape != b.shape:
        raise ValueError(
            f"{name_a} and {name_b} must have the same shape, got {name_a} {tuple(a.shape)} "
            f"and {name_b} {tuple(b.shape)}."
        )
    if a.ndim < 3:
        raise ValueError(
            f"{name_a} must be batch-first and channel-first, (B, C, *spatial), got shape {tuple(a.shape)}."
        )
