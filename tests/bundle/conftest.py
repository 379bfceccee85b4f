# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""Shared fixtures for the bundle tests: paths, tiny checkpoints and synthetic images with known objects.

Most tests replace ConDSeg by a 1x1 convolution "red detector" (logit = 20 * red - 10, so the predicted mask is
exactly ``red > 0.5``): its outputs are known by hand, which makes orientation and metric checks exact and fast.
A small ConDSeg (``feature_size=16, num_heads=2``) is used where the real network is the point.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

__all__: list[str] = []

REPO = Path(__file__).resolve().parents[2]
SHARED_DATA = REPO / ".." / "shared" / "data"
SMALL = {"feature_size": 16, "num_heads": 2}


def write_rgb(path: Path, red_mask: np.ndarray) -> Path:
    """Write an RGB picture whose red channel is 255 on ``red_mask`` and 0 elsewhere (green/blue: texture)."""
    h, w = red_mask.shape
    img = np.zeros((h, w, 3), np.uint8)
    img[..., 0] = np.where(red_mask, 255, 0)
    img[..., 1] = (np.arange(w)[None, :] * 3 % 200).astype(np.uint8)
    img[..., 2] = 60
    Image.fromarray(img).save(path)
    return path


def write_mask(path: Path, mask: np.ndarray) -> Path:
    """Write a binary mask as PNG 0/255."""
    Image.fromarray((mask > 0).astype(np.uint8) * 255).save(path)
    return path


def box_mask(h: int, w: int, top: int, bottom: int, left: int, right: int) -> np.ndarray:
    """``(h, w)`` bool mask, True on rows ``top:bottom`` and columns ``left:right``."""
    m = np.zeros((h, w), bool)
    m[top:bottom, left:right] = True
    return m


@pytest.fixture(scope="session")
def draw():
    """The picture helpers as a namespace: ``draw.rgb(path, red_mask)``, ``draw.mask(path, m)``, ``draw.box(...)``."""

    class _Draw:
        rgb = staticmethod(write_rgb)
        mask = staticmethod(write_mask)
        box = staticmethod(box_mask)

    return _Draw


@pytest.fixture(autouse=True, scope="module")
def _single_torch_thread():
    """Run torch on one thread: on a busy 2-core machine two OpenMP threads make small convolutions ~50x slower."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def detector_ckpt(tmp_path_factory: pytest.TempPathFactory) -> str:
    """State dict of the red detector: ``Conv2d(3, 1, 1)`` with weight (20, 0, 0) and bias -10."""
    path = tmp_path_factory.mktemp("ckpt") / "detector.pt"
    torch.save({"weight": torch.tensor([20.0, 0.0, 0.0]).reshape(1, 3, 1, 1), "bias": torch.tensor([-10.0])}, path)
    return str(path)


@pytest.fixture(scope="session")
def small_ckpt(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Untrained small ConDSeg (``feature_size=16, num_heads=2``) as a plain state dict."""
    from condseg_monai.networks import ConDSeg

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "small.pt"
    torch.save(ConDSeg(**SMALL).state_dict(), path)
    return str(path)


@pytest.fixture(scope="session")
def isic_sample() -> Path:
    folder = (SHARED_DATA / "isic-sample").resolve()
    if not (folder / "images").is_dir():
        pytest.skip(f"real data not found at {folder} (shared/data beside the repository)")
    return folder
