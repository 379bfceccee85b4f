# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""One-axis Gaussian blur with a per-image sigma (plain torch, CPU or GPU)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["gaussian_blur_1d", "gaussian_kernel1d"]


def gaussian_kernel1d(
    sigma: float | torch.Tensor, kernel_size: int, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """Normalised 1D Gaussian taps centred on the middle tap (torchvision's ``GaussianBlur`` kernel).

    Args:
        sigma: a positive number, or a ``(B,)`` tensor of them.
        kernel_size: odd number of taps.
        dtype: kernel dtype.

    Returns:
        ``(kernel_size,)`` for a scalar sigma, else ``(B, kernel_size)``; each row sums to 1.
    """
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be a positive odd integer, got {kernel_size}.")
    sig = torch.as_tensor(sigma, dtype=torch.float64)
    if torch.any(sig <= 0):
        raise ValueError(f"sigma must be positive, got {sigma}.")
    half = (kernel_size - 1) / 2.0
    x = torch.linspace(-half, half, kernel_size, dtype=torch.float64, device=sig.device)
    pdf = torch.exp(-0.5 * (x / sig.unsqueeze(-1)) ** 2)
    return (pdf / pdf.sum(dim=-1, keepdim=True)).to(dtype)


def gaussian_blur_1d(
    img: torch.Tensor, sigma: float | torch.Tensor, kernel_size: int = 7, axis: int = -2, padding_mode: str = "reflect"
) -> torch.Tensor:
    """Blur along one spatial axis only.

    With the default ``axis=-2`` (rows, ``H``) and ``kernel_size=7`` this is the official ConDSeg Stage-1 blur:
    torchvision ``GaussianBlur(kernel_size=(1, 7))`` is 7 taps tall and 1 wide.

    Args:
        img: ``(C, H, W)`` or ``(B, C, H, W)`` floating point tensor.
        sigma: a number, or a ``(B,)`` tensor (one sigma per image of the batch).
        kernel_size: odd number of taps.
        axis: ``-2`` (vertical, along ``H``) or ``-1`` (horizontal, along ``W``).
        padding_mode: ``torch.nn.functional.pad`` mode (``"reflect"``: mirror without repeating the edge, as
            torchvision).

    Returns:
        tensor of the same shape, dtype and device.
    """
    if img.ndim not in (3, 4):
        raise ValueError(f"img must have shape (C, H, W) or (B, C, H, W), got {tuple(img.shape)}.")
    if axis not in (-2, -1):
        raise ValueError(f"axis must be -2 (H) or -1 (W), got {axis}.")
    batched = img.ndim == 4
    x = img if batched else img.unsqueeze(0)
    if axis == -1:
        x = x.transpose(-1, -2)
    b, c, h, w = x.shape
    pad = kernel_size // 2
    if padding_mode == "reflect" and h <= pad:
        raise ValueError(f"reflect padding needs more than {pad} pixels along the blur axis, got {h}.")
    kernel = gaussian_kernel1d(sigma, kernel_size, dtype=x.dtype).to(x.device)
    if kernel.ndim == 1:
        kernel = kernel.expand(b, kernel_size)
    elif kernel.shape[0] != b:
        raise ValueError(f"sigma must be a number or have shape ({b},), got {tuple(kernel.shape[:1])}.")
    weight = kernel.repeat_interleave(c, dim=0).view(b * c, 1, kernel_size, 1)
    padded = F.pad(x.reshape(1, b * c, h, w), (0, 0, pad, pad), mode=padding_mode)
    out = F.conv2d(padded, weight, groups=b * c).view(b, c, h, w)
    if axis == -1:
        out = out.transpose(-1, -2)
    return out if batched else out[0]
