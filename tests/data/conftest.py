# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""Shared helpers for the data tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

SHARED_DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"


def save_pair(folder: Path, stem: str, h: int = 12, w: int = 16, image_ext: str = ".png", mask_name: str | None = None):
    """Write a small RGB image with a bright square and its 0/255 mask; return (image, mask) paths."""
    (folder / "images").mkdir(parents=True, exist_ok=True)
    (folder / "masks").mkdir(parents=True, exist_ok=True)
    rgb = np.full((h, w, 3), 40, np.uint8)
    mask = np.zeros((h, w), np.uint8)
    mask[h // 4 : 3 * h // 4, w // 4 : 3 * w // 4] = 255
    rgb[mask > 0] = 220
    image = folder / "images" / f"{stem}{image_ext}"
    label = folder / "masks" / (mask_name or f"{stem}.png")
    Image.fromarray(rgb).save(image)
    Image.fromarray(mask).save(label)
    return image, label


@pytest.fixture
def pair_writer() -> Callable[..., tuple[Path, Path]]:
    return save_pair


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared real data not found at {SHARED_DATA.resolve()} (only on development machines)")
    return SHARED_DATA.resolve()
