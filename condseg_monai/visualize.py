# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""Pictures for people: contour overlays, heat maps and preview grids (plain torch + Pillow)."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFont

__all__ = ["mask_contour", "overlay_contours", "heatmap", "make_grid", "save_png", "title_strip"]

GREEN = (0.0, 1.0, 0.0)
RED = (1.0, 0.0, 0.0)


def mask_contour(mask: torch.Tensor, thickness: int = 1) -> torch.Tensor:
    """Boundary pixels of a binary mask.

    Args:
        mask: ``(1, H, W)`` or ``(H, W)`` mask; values > 0.5 are foreground.
        thickness: contour width in pixels.

    Returns:
        ``(H, W)`` bool tensor, True on the inner boundary of the foreground.
    """
    m = (mask.reshape(mask.shape[-2:]) > 0.5).float()[None, None]
    k = 2 * thickness + 1
    eroded = -F.max_pool2d(-m, kernel_size=k, stride=1, padding=thickness)
    return (m - eroded)[0, 0] > 0


def overlay_contours(
    image: torch.Tensor,
    masks: Sequence[torch.Tensor],
    colors: Sequence[tuple[float, float, float]] = (RED, GREEN),
    thickness: int = 1,
) -> torch.Tensor:
    """Draw the contour of each mask on an RGB image.

    Args:
        image: ``(3, H, W)`` RGB in [0, 1].
        masks: binary masks ``(1, H, W)``/``(H, W)`` of the same size, drawn in order.
        colors: one RGB colour per mask (default: first red, second green).
        thickness: contour width in pixels.

    Returns:
        ``(3, H, W)`` RGB image in [0, 1].
    """
    out = image.detach().float().clone().clamp(0, 1)
    for mask, color in zip(masks, colors):
        edge = mask_contour(mask.to(out.device), thickness)
        for c in range(3):
            out[c][edge] = color[c]
    return out


def heatmap(values: torch.Tensor) -> torch.Tensor:
    """Map values in [0, 1] to a blue-yellow-red colour scale.

    Args:
        values: ``(1, H, W)`` or ``(H, W)`` in [0, 1].

    Returns:
        ``(3, H, W)`` RGB in [0, 1].
    """
    v = values.detach().float().reshape(values.shape[-2:]).clamp(0, 1)
    r = (2 * v).clamp(0, 1)
    g = 1 - (2 * v - 1).abs()
    b = (1 - 2 * v).clamp(0, 1)
    return torch.stack([r, g, b])


def _wrap(
    text: str, draw: ImageDraw.ImageDraw, font: ImageFont.ImageFont | ImageFont.FreeTypeFont, width: int
) -> list[str]:
    """Greedy word wrap of ``text`` to lines at most ``width`` pixels wide (a longer single word is clipped later)."""
    lines: list[str] = []
    for word in text.split():
        if lines and draw.textlength(f"{lines[-1]} {word}", font=font) <= width:
            lines[-1] = f"{lines[-1]} {word}"
        else:
            lines.append(word)
    return lines or [""]


def title_strip(titles: Sequence[str], panel_width: int, pad: int = 2) -> torch.Tensor:
    """Column titles for :func:`make_grid`: black text on white, wrapped (and clipped) to each column's width.

    Args:
        titles: one title per column.
        panel_width: width of a panel in pixels; the font size follows it (8 to 16 px).
        pad: the grid's padding.

    Returns:
        ``(3, h, len(titles) * (panel_width + pad) + pad)`` RGB in [0, 1].
    """
    size = max(8, min(16, panel_width // 8))
    font = ImageFont.load_default(size=size)
    measure = ImageDraw.Draw(Image.new("L", (1, 1)))
    wrapped = [_wrap(t, measure, font, panel_width) for t in titles]
    line_height = size + 2
    height = max(len(lines) for lines in wrapped) * line_height + pad
    strip = Image.new("L", (len(titles) * (panel_width + pad) + pad, height), 255)
    for j, lines in enumerate(wrapped):
        column = Image.new("L", (panel_width, height - pad), 255)  # drawn apart, so that a long word is clipped
        draw = ImageDraw.Draw(column)
        for k, line in enumerate(lines):
            draw.text((0, k * line_height), line, fill=0, font=font)
        strip.paste(column, (pad + j * (panel_width + pad), pad))
    grey = torch.from_numpy(np.asarray(strip, dtype=np.float32) / 255.0)
    return grey.expand(3, -1, -1).clone()


def make_grid(
    rows: Sequence[Sequence[torch.Tensor]], pad: int = 2, titles: Sequence[str] | None = None
) -> torch.Tensor:
    """Tile ``(3, H, W)`` panels (all the same size) into one ``(3, H', W')`` picture, white-padded.

    Args:
        rows: rows of panels; a shorter row leaves its last columns white.
        pad: padding between and around the panels, in pixels.
        titles: optional column titles drawn above the first row (:func:`title_strip`, which then adds its height
            to ``H'``), one per column.

    Raises:
        ValueError: no panel, or a number of titles other than the number of columns.
    """
    if not rows or not rows[0]:
        raise ValueError("make_grid needs at least one panel.")
    h, w = rows[0][0].shape[-2:]
    ncol = max(len(r) for r in rows)
    grid = torch.ones(3, len(rows) * (h + pad) + pad, ncol * (w + pad) + pad)
    for i, row in enumerate(rows):
        for j, panel in enumerate(row):
            y, x = pad + i * (h + pad), pad + j * (w + pad)
            grid[:, y : y + h, x : x + w] = panel.detach().float().cpu().clamp(0, 1)
    if titles is None:
        return grid
    if len(titles) != ncol:
        raise ValueError(f"make_grid: {len(titles)} titles for {ncol} columns.")
    return torch.cat([title_strip(titles, w, pad), grid], dim=1)


def save_png(image: torch.Tensor, path: str | os.PathLike) -> None:
    """Write a ``(3, H, W)`` or ``(1, H, W)`` image in [0, 1] as an 8-bit PNG (folders are created)."""
    arr = (image.detach().float().cpu().clamp(0, 1) * 255).round().to(torch.uint8)
    arr = arr[0].numpy() if arr.shape[0] == 1 else arr.permute(1, 2, 0).numpy()
    os.makedirs(os.path.dirname(os.fspath(path)) or ".", exist_ok=True)
    Image.fromarray(np.ascontiguousarray(arr)).save(path)
