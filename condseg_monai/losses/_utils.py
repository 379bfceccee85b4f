# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""Small input helpers shared by the ConDSeg losses (private)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from monai.utils import convert_to_tensor

__all__ = ["CONDSEG_MAPS", "as_loss_tensor", "check_same_shape", "split_stacked"]

# the maps of ConDSeg's stacked training output, in ConDSegOutput order, as the losses name them in messages
CONDSEG_MAPS: tuple[str, ...] = ("mask", "fg", "bg", "uc")


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


def split_stacked(
    pred: torch.Tensor | Sequence[torch.Tensor], parts: Sequence[str], name: str = "pred"
) -> list[torch.Tensor]:
    """The maps of a prediction given in one of three layouts, as loss tensors (see :func:`as_loss_tensor`).

    Args:
        pred: ``(B, n, C, H, W)`` stacked along dim 1 -> all ``n`` maps; a sequence of ``n`` tensors -> each;
            a ``(B, C, H, W)`` tensor -> ``[pred]`` (the first part only).
        parts: the names of the ``n`` maps, in order (e.g. ``("mask", "fg", "bg", "uc")``), for messages.
        name: the argument's name, for messages.

    Raises:
        TypeError: ``pred`` is neither a tensor nor a sequence.
        ValueError: a sequence or a stack of the wrong length, or a tensor that is neither 4-D nor 5-D.
    """
    n, names = len(parts), ", ".join(parts)
    if isinstance(pred, (list, tuple)):
        if len(pred) != n:
            raise ValueError(f"{name} as a sequence must hold {n} tensors ({names}), got {len(pred)}.")
        return [as_loss_tensor(p, f"{name}[{i}]") for i, p in enumerate(pred)]
    if not isinstance(pred, torch.Tensor):
        raise TypeError(f"{name} must be a tensor or a sequence of {n} tensors ({names}), got {type(pred).__name__}.")
    pred = convert_to_tensor(pred, track_meta=False)
    if pred.ndim == 5:
        if pred.shape[1] != n:
            raise ValueError(
                f"a 5-D {name} must be stacked (B, {n}, C, H, W) = ({names}), got shape {tuple(pred.shape)}."
            )
        return [as_loss_tensor(p, name) for p in pred.unbind(1)]
    if pred.ndim == 4:
        return [as_loss_tensor(pred, name)]
    raise ValueError(
        f"{name} must have shape (B, {n}, C, H, W) ({names}) or (B, C, H, W) ({parts[0]} only), "
        f"got {tuple(pred.shape)}."
    )
