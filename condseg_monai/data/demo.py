# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""A small deterministic synthetic "polyp" dataset for demos and tests (no download needed).

Each image is a textured, unevenly lit background (smooth colour noise, fine texture, an illumination
gradient, vignetting and random contrast) with 1-3 soft-edged blobs of varied size, ellipticity and
irregular outline, each with its own colour, texture and dome shading, plus specular highlights. The mask is
the union of the blob supports. Images and masks are PNG files (masks 0/255), listed in ``datalist.json``
with paths relative to it. Optional unlabeled images (drawn the same way, masks not written) go to
``unlabeled/`` and the datalist's ``unlabeled`` list, for semi-supervised demos and tests.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from condseg_monai.data.datalist import Datalist, DatalistEntry, UnlabeledEntry, read_datalist, write_datalist

__all__ = ["DEMO_VERSION", "generate_demo_dataset", "is_demo_data", "make_demo_pair"]

# bump when the images change, so existing folders get regenerated
DEMO_VERSION = 1


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], cells: int, channels: int = 1) -> np.ndarray:
    """Band-limited noise in about ``[-1, 1]``: a ``cells x cells`` random grid upsampled bicubically."""
    h, w = shape
    grid = torch.from_numpy(rng.uniform(-1.0, 1.0, size=(1, channels, cells + 3, cells + 3)).astype(np.float32))
    up = F.interpolate(grid, size=(h + 2 * (h // cells + 1), w + 2 * (w // cells + 1)), mode="bicubic")
    oy, ox = h // cells + 1, w // cells + 1
    return up[0, :, oy : oy + h, ox : ox + w].numpy()


def _parse_size(image_size: Any) -> tuple[tuple[int, int], tuple[int, int]]:
    """``int`` | ``(H, W)`` | ``((h_min, h_max), (w_min, w_max))`` -> ranges for H and W."""
    if isinstance(image_size, int):
        image_size = (image_size, image_size)
    if not isinstance(image_size, Sequence) or len(image_size) != 2:
        raise ValueError(f"image_size must be an int, (H, W) or ((h_min, h_max), (w_min, w_max)), got {image_size!r}.")
    ranges = []
    for v in image_size:
        lo, hi = (int(v), int(v)) if isinstance(v, (int, np.integer)) else (int(v[0]), int(v[1]))
        if not 16 <= lo <= hi:
            raise ValueError(f"image_size values must satisfy 16 <= min <= max, got {image_size!r}.")
        ranges.append((lo, hi))
    return ranges[0], ranges[1]


def make_demo_pair(seed: int, index: int, image_size: Any = (128, 128)) -> tuple[np.ndarray, np.ndarray]:
    """Synthesise one image/mask pair.

    Args:
        seed: dataset seed.
        index: sample index (each ``(seed, index)`` gives an independent, reproducible sample).
        image_size: ``int``, ``(H, W)`` or ``((h_min, h_max), (w_min, w_max))``.

    Returns:
        ``(H, W, 3)`` uint8 RGB image and ``(H, W)`` uint8 mask with values {0, 255}.
    """
    rng = np.random.default_rng([seed, index])
    (hmin, hmax), (wmin, wmax) = _parse_size(image_size)
    h, w = int(rng.integers(hmin, hmax + 1)), int(rng.integers(wmin, wmax + 1))
    # coordinates in units of half the short side, so shapes are not stretched on non-square images
    ey, ex = h / min(h, w), w / min(h, w)
    yy, xx = np.meshgrid(
        np.linspace(-ey, ey, h, dtype=np.float32), np.linspace(-ex, ex, w, dtype=np.float32), indexing="ij"
    )

    # background: pink/orange mucosa with smooth colour variation and fine texture
    base = np.array([0.78, 0.46, 0.40], dtype=np.float32) + rng.uniform(-0.08, 0.08, 3).astype(np.float32)
    img = base[:, None, None] + 0.10 * _smooth_noise(rng, (h, w), 4, 3) + 0.04 * _smooth_noise(rng, (h, w), 16, 1)
    # blobs: irregular ellipses, each with its own colour, texture and dome shading
    mask = np.zeros((h, w), dtype=bool)
    for _ in range(int(rng.integers(1, 4))):
        cy, cx = rng.uniform(-0.6, 0.6) * ey, rng.uniform(-0.6, 0.6) * ex
        radius = rng.uniform(0.2, 0.6)  # 10-30 % of the short side
        ry, rx = radius, radius * rng.uniform(0.55, 1.0)
        if rng.random() < 0.5:
            ry, rx = rx, ry
        angle = rng.uniform(0, math.pi)
        dy, dx = yy - cy, xx - cx
        u = (dx * math.cos(angle) + dy * math.sin(angle)) / rx
        v = (-dx * math.sin(angle) + dy * math.cos(angle)) / ry
        theta = np.arctan2(v, u)
        wobble = 1.0 + sum(rng.uniform(0, 0.12) * np.cos(k * theta + rng.uniform(0, 2 * math.pi)) for k in (2, 3, 5))
        dist = np.sqrt(u**2 + v**2) / wobble  # < 1 inside the blob
        support = dist < 1.0
        if not support.any():
            continue
        mask |= support
        edge = 0.06 + rng.uniform(0.0, 0.08)
        alpha = 0.5 + 0.5 * np.tanh((1.0 - dist) / (2.0 * edge))  # soft edge (a logistic ramp)
        colour = np.array([0.70, 0.30, 0.28], dtype=np.float32) + rng.uniform(-0.12, 0.12, 3).astype(np.float32)
        dome = 0.85 + 0.3 * np.clip(1.0 - dist, 0.0, 1.0)
        blob = colour[:, None, None] * dome + 0.06 * _smooth_noise(rng, (h, w), 10, 3)
        img = img * (1.0 - alpha) + blob * alpha
    # illumination: gradient in a random direction, vignetting, contrast and brightness variation
    phi = rng.uniform(0, 2 * math.pi)
    img = img * (1.0 + rng.uniform(0.0, 0.25) * (xx * math.cos(phi) + yy * math.sin(phi)))
    img = img * (1.0 - rng.uniform(0.2, 0.5) * (xx**2 + yy**2) / (ex**2 + ey**2))
    img = (img - img.mean()) * rng.uniform(0.8, 1.25) + img.mean() + rng.uniform(-0.05, 0.05)
    # specular highlights: small saturated white spots
    for _ in range(int(rng.integers(1, 5))):
        sy, sx = rng.uniform(-0.9, 0.9) * ey, rng.uniform(-0.9, 0.9) * ex
        r = rng.uniform(0.01, 0.04)
        img = img + 0.9 * np.exp(-((yy - sy) ** 2 + (xx - sx) ** 2) / (2 * r * r))
    rgb = (np.clip(img, 0.0, 1.0).transpose(1, 2, 0) * 255.0 + 0.5).astype(np.uint8)
    return rgb, mask.astype(np.uint8) * 255


def _settings(
    num_train: int, num_val: int, num_test: int, num_unlabeled: int, image_size: Any, seed: int
) -> dict[str, Any]:
    size = json.loads(json.dumps(image_size))  # tuples -> lists, for comparison with the stored JSON
    # without unlabeled images the settings are those of earlier versions, so existing folders stay valid
    num = [num_train, num_val, num_test] + ([num_unlabeled] if num_unlabeled else [])
    return {"version": DEMO_VERSION, "num": num, "image_size": size, "seed": seed}


def generate_demo_dataset(
    out_dir: str | Path,
    num_train: int = 24,
    num_val: int = 8,
    num_test: int = 8,
    image_size: int | Sequence[int] | Sequence[Sequence[int]] = (128, 128),
    seed: int = 0,
    num_unlabeled: int = 0,
) -> Path:
    """Write the demo dataset (``images/``, ``masks/``, ``datalist.json``) and return the datalist path.

    Idempotent: if ``out_dir/datalist.json`` was generated with the same settings and all its files exist,
    nothing is written.

    Args:
        out_dir: output folder (created).
        num_train: training pairs.
        num_val: validation pairs.
        num_test: test pairs.
        image_size: ``int``, ``(H, W)``, or ``((h_min, h_max), (w_min, w_max))`` for sizes drawn per image.
        seed: generation seed.
        num_unlabeled: images without masks (``unlabeled/demo_<n>.png``, numbered after the labeled ones, so
            the labeled pairs do not depend on it), listed in ``unlabeled``.

    Returns:
        path of ``datalist.json``.
    """
    for name, n in (
        ("num_train", num_train),
        ("num_val", num_val),
        ("num_test", num_test),
        ("num_unlabeled", num_unlabeled),
    ):
        if not isinstance(n, (int, np.integer)) or n < 0:
            raise ValueError(f"{name} must be a non-negative integer, got {n!r}.")
    if num_train + num_val + num_test == 0:
        raise ValueError("the demo dataset needs at least one image.")
    _parse_size(image_size)
    out = Path(out_dir).expanduser()
    path = out / "datalist.json"
    settings = _settings(num_train, num_val, num_test, num_unlabeled, image_size, seed)
    if path.is_file():
        try:
            existing = read_datalist(path)
            entries = existing.training + existing.validation + existing.test
            if (
                getattr(existing, "demo_settings", None) == settings
                and all((out / e.image).is_file() and (out / e.label).is_file() for e in entries)
                and all((out / e.image).is_file() for e in existing.unlabeled)
            ):
                return path
        except ValueError:
            pass  # unreadable: regenerate
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "masks").mkdir(parents=True, exist_ok=True)
    splits: dict[str, list[DatalistEntry]] = {"training": [], "validation": [], "test": []}
    counts = {"training": num_train, "validation": num_val, "test": num_test}
    index = 0
    for split, n in counts.items():
        for _ in range(n):
            rgb, mask = make_demo_pair(seed, index, image_size)
            name = f"demo_{index:04d}.png"
            Image.fromarray(rgb).save(out / "images" / name)
            Image.fromarray(mask).save(out / "masks" / name)
            splits[split].append(DatalistEntry(image=f"images/{name}", label=f"masks/{name}"))
            index += 1
    unlabeled: list[UnlabeledEntry] = []
    if num_unlabeled:
        (out / "unlabeled").mkdir(parents=True, exist_ok=True)
    for _ in range(num_unlabeled):
        rgb, _mask = make_demo_pair(seed, index, image_size)
        name = f"demo_{index:04d}.png"
        Image.fromarray(rgb).save(out / "unlabeled" / name)
        unlabeled.append(UnlabeledEntry(image=f"unlabeled/{name}"))
        index += 1
    datalist = Datalist(
        name="condseg-demo",
        description="synthetic polyp-like blobs generated by condseg_monai.data.generate_demo_dataset",
        seed=seed,
        demo_settings=settings,
        unlabeled=unlabeled,
        **splits,
    )
    return write_datalist(datalist, path)


def is_demo_data(data: Sequence[Mapping[str, Any]], dataset_dir: str | Path) -> bool:
    """Whether every image of ``data`` lies in the generated demo folder ``dataset_dir``.

    The bundle trains with the small demo settings (64 px, batch 4) only then: a caller that injects its own
    training list (MONAI Label's ``BundleTrainTask`` overrides ``train#dataset#data`` and passes no ``datalist``)
    gets the real-data settings.

    Args:
        data: the training list, dicts with an ``"image"`` path.
        dataset_dir: the demo folder (``generate_demo_dataset``'s ``out_dir``).
    """
    root = Path(dataset_dir).resolve()
    return all(root in Path(str(item["image"])).resolve().parents for item in data)
