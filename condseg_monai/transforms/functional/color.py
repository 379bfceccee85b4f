# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""Colour operations on RGB tensors in ``[0, 1]`` (plain torch, CPU or GPU, no torchvision).

They follow torchvision's ``ColorJitter``/``Grayscale`` semantics: brightness multiplies, contrast blends
with the mean of the grayscale image, saturation blends with the grayscale image, hue rotates in HSV space,
and every result is clamped to ``[0, 1]``. Inputs are ``(3, H, W)`` or ``(B, 3, H, W)``; a factor is a
Python number (shared) or a tensor of shape ``(B,)`` (one per image of a batch).
"""

from __future__ import annotations

import torch

__all__ = [
    "GRAYSCALE_WEIGHTS",
    "adjust_brightness",
    "adjust_contrast",
    "adjust_hue",
    "adjust_saturation",
    "hsv_to_rgb",
    "rgb_to_grayscale",
    "rgb_to_hsv",
]

# ITU-R 601-2 luma weights for R, G, B (PIL's "L" conversion).
GRAYSCALE_WEIGHTS: tuple[float, float, float] = (0.299, 0.587, 0.114)


def _check_rgb(img: torch.Tensor) -> None:
    if img.ndim not in (3, 4) or img.shape[-3] != 3:
        raise ValueError(f"img must have shape (3, H, W) or (B, 3, H, W), got {tuple(img.shape)}.")
    if not img.is_floating_point():
        raise TypeError(f"img must be a floating point tensor in [0, 1], got dtype {img.dtype}.")


def _factor(factor: float | torch.Tensor, img: torch.Tensor) -> torch.Tensor | float:
    """Broadcast a scalar or per-image ``(B,)`` factor against ``img``."""
    if not isinstance(factor, torch.Tensor):
        return float(factor)
    factor = factor.to(device=img.device, dtype=img.dtype)
    if factor.ndim == 0:
        return factor
    if img.ndim != 4 or factor.shape != (img.shape[0],):
        raise ValueError(f"a per-image factor must have shape (B,) for img (B, C, H, W); got {tuple(factor.shape)}.")
    return factor.view(-1, 1, 1, 1)


def _blend(img: torch.Tensor, other: torch.Tensor, factor: float | torch.Tensor) -> torch.Tensor:
    """``factor * img + (1 - factor) * other``, clamped to ``[0, 1]``."""
    f = _factor(factor, img)
    return (f * img + (1.0 - f) * other).clamp_(0.0, 1.0)


def rgb_to_grayscale(img: torch.Tensor, num_output_channels: int = 1) -> torch.Tensor:
    """ITU-R 601-2 luma of an RGB image.

    Args:
        img: ``(3, H, W)`` or ``(B, 3, H, W)`` RGB.
        num_output_channels: 1 or 3 (the luma repeated).

    Returns:
        ``(..., num_output_channels, H, W)`` tensor.
    """
    _check_rgb(img)
    if num_output_channels not in (1, 3):
        raise ValueError(f"num_output_channels must be 1 or 3, got {num_output_channels}.")
    r, g, b = img.unbind(dim=-3)
    gray = (GRAYSCALE_WEIGHTS[0] * r + GRAYSCALE_WEIGHTS[1] * g + GRAYSCALE_WEIGHTS[2] * b).unsqueeze(-3)
    return gray.expand_as(img).contiguous() if num_output_channels == 3 else gray


def adjust_brightness(img: torch.Tensor, factor: float | torch.Tensor) -> torch.Tensor:
    """Multiply by ``factor`` (1 = identity, 0 = black) and clamp to ``[0, 1]``."""
    _check_rgb(img)
    return _blend(img, torch.zeros_like(img), factor)


def adjust_contrast(img: torch.Tensor, factor: float | torch.Tensor) -> torch.Tensor:
    """Blend with the per-image mean luma (1 = identity, 0 = uniform grey) and clamp to ``[0, 1]``."""
    _check_rgb(img)
    mean = rgb_to_grayscale(img).mean(dim=(-3, -2, -1), keepdim=True)
    return _blend(img, mean, factor)


def adjust_saturation(img: torch.Tensor, factor: float | torch.Tensor) -> torch.Tensor:
    """Blend with the grayscale image (1 = identity, 0 = grayscale) and clamp to ``[0, 1]``."""
    _check_rgb(img)
    return _blend(img, rgb_to_grayscale(img), factor)


def rgb_to_hsv(img: torch.Tensor) -> torch.Tensor:
    """Convert RGB in ``[0, 1]`` to HSV with every component in ``[0, 1]`` (hue as a fraction of a turn)."""
    _check_rgb(img)
    r, g, b = img.unbind(dim=-3)
    maxc, argmax = img.max(dim=-3)
    delta = maxc - img.amin(dim=-3)
    # hue numerator by the sector of the maximal channel; when two channels tie the formulas agree,
    # and a grey pixel (delta 0) gets numerator 0, i.e. hue 0
    num = torch.where(argmax == 0, g - b, torch.where(argmax == 1, b - r + 2.0 * delta, r - g + 4.0 * delta))
    hue = torch.remainder(num / torch.where(delta > 0, delta, 1.0) / 6.0, 1.0)
    sat = delta / torch.where(maxc > 0, maxc, 1.0)
    return torch.stack((hue, sat, maxc), dim=-3)


def hsv_to_rgb(img: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`rgb_to_hsv`.

    Uses the closed form ``c_n = V - V S clamp(min(k, 4 - k), 0, 1)`` with ``k = (n + 6 H) mod 6`` and
    ``n = 5, 3, 1`` for R, G, B (one fused expression instead of a six-way sector table).
    """
    _check_rgb(img)
    h, s, v = img.split(1, dim=-3)
    n = torch.tensor((5.0, 3.0, 1.0), dtype=img.dtype, device=img.device).view(3, 1, 1)
    k = torch.remainder(n + 6.0 * h, 6.0)
    ramp = torch.minimum(k, 4.0 - k).clamp_(0.0, 1.0)
    return v - v * s * ramp


def adjust_hue(img: torch.Tensor, shift: float | torch.Tensor) -> torch.Tensor:
    """Rotate the hue by ``shift`` turns (0 = identity, valid range ``[-0.5, 0.5]``)."""
    _check_rgb(img)
    if not isinstance(shift, torch.Tensor) and not -0.5 <= shift <= 0.5:
        raise ValueError(f"shift must be in [-0.5, 0.5], got {shift}.")
    hsv = rgb_to_hsv(img)
    s = _factor(shift, img)
    if isinstance(s, torch.Tensor) and s.ndim == 4:
        s = s[:, 0]  # (B, 1, 1) against the hue plane (B, H, W)
    hue = torch.remainder(hsv[..., 0, :, :] + s, 1.0)
    hsv = torch.stack((hue, hsv[..., 1, :, :], hsv[..., 2, :, :]), dim=-3)
    return hsv_to_rgb(hsv).clamp_(0.0, 1.0)
