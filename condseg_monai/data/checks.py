# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""Validate a datalist before training: every problem of every file, reported at once.

Checks per entry: the image and the mask exist, are not empty and decode completely (truncation included);
their sizes agree; the mask is binary or binarisable (a soft map or a photo used as a mask is an error, an
all-background or all-foreground mask a warning). Across entries: the same image twice within a split, or
in training and in validation/test (leakage), is an error; a validation/test overlap is an error unless the
two splits are identical (the paper's protocol for Kvasir-SEG, GlaS and ISIC-2016, reported as a warning).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageChops

from condseg_monai.data.datalist import SPLITS, read_datalist, resolve_entry
from condseg_monai.transforms.readers import (
    binarize_mask,
    default_mask_threshold,
    is_label_map,
    is_lossy_format,
    is_nifti,
    mask_values_from_pil,
)

__all__ = ["MAX_AMBIGUOUS_FRACTION", "Problem", "check_datalist", "check_pair", "validate_datalist"]

logger = logging.getLogger(__name__)

# A mask may have at most this fraction of pixels in the middle half of its value range (e.g. 64..191 on
# 8-bit data). Binary masks have none; JPEG masks have a few at the edges (0 % measured on Kvasir-SEG);
# soft probability maps and photos used as masks have many.
MAX_AMBIGUOUS_FRACTION = 0.02
_RGB_MODES = ("RGB", "RGBA", "RGBX", "RGBa", "CMYK", "YCbCr", "LAB", "HSV")


@dataclass(frozen=True)
class Problem:
    """One finding of :func:`check_datalist`.

    Attributes:
        severity: ``"error"`` (blocks training) or ``"warning"``.
        file: the file concerned (or the datalist itself).
        message: what is wrong.
        split: split of the entry, if any.
        index: index of the entry in its split, if any.
    """

    severity: str
    file: str
    message: str
    split: str | None = None
    index: int | None = None

    def __str__(self) -> str:
        where = f" [{self.split}#{self.index}]" if self.split is not None else ""
        return f"{self.severity.upper()}{where} '{self.file}': {self.message}"


def _open_checked(path: str, what: str, problems: list[Problem]) -> Image.Image | np.ndarray | None:
    """Fully decode ``path`` (PIL image or NIfTI array); record a problem and return None on failure."""
    p = Path(path)
    if not p.exists():
        problems.append(Problem("error", path, f"{what} file does not exist"))
        return None
    if not p.is_file():
        problems.append(Problem("error", path, f"{what} path is not a regular file"))
        return None
    if p.stat().st_size == 0:
        problems.append(Problem("error", path, f"{what} file is empty (0 bytes)"))
        return None
    try:
        if is_nifti(path):
            import nibabel as nib

            data = np.asanyarray(nib.load(path).dataobj)
            if data.dtype.names:
                data = np.stack([data[n] for n in data.dtype.names], axis=-1)
            while data.ndim > 2 and data.shape[-1] == 1:
                data = data[..., 0]
            if data.ndim == 4 and data.shape[2] == 1:
                data = data[:, :, 0]
            if not (data.ndim == 2 or (data.ndim == 3 and data.shape[-1] in (3, 4))):
                problems.append(Problem("error", path, f"{what} is not 2D: shape {tuple(data.shape)}"))
                return None
            return data
        with Image.open(path) as img:
            if what == "image" and img.format == "JPEG":
                # decode at 1/8 scale: the whole stream is still parsed (truncation is caught), 2-3x faster
                size = img.size
                img.draft("RGB", (max(1, size[0] // 8), max(1, size[1] // 8)))
                img.load()
                img.info["full_size"] = size
            else:
                img.load()
            return img
    except Exception as e:  # any decoder failure is a problem of this file
        problems.append(Problem("error", path, f"cannot decode {what}: {type(e).__name__}: {e}"))
        return None


def _size_hw(obj: Image.Image | np.ndarray) -> tuple[int, int]:
    if isinstance(obj, np.ndarray):
        return int(obj.shape[0]), int(obj.shape[1])
    w, h = obj.info.get("full_size", obj.size)
    return int(h), int(w)


def _mask_histogram(mask: Image.Image | np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Value map statistics source: an 8-bit histogram when possible (fast, in C), else the values."""
    if isinstance(mask, np.ndarray):
        values = mask[..., :3].max(axis=-1) if mask.ndim == 3 else mask
        return np.empty(0), values
    if mask.mode in _RGB_MODES:
        r, g, b = mask.convert("RGB").split()
        return np.asarray(ImageChops.lighter(ImageChops.lighter(r, g), b).histogram()), None
    if mask.mode in ("L", "P"):  # for "P" the histogram counts palette indices, our label values
        return np.asarray(mask.histogram()), None
    if mask.mode in ("LA", "PA"):
        return np.asarray(mask.getchannel(0).histogram()), None
    if mask.mode == "1":
        return np.asarray(mask.convert("L").histogram()), None
    return np.empty(0), mask_values_from_pil(mask)


def _check_mask_values(mask: Image.Image | np.ndarray, path: str, problems: list[Problem]) -> None:
    lossy = is_lossy_format(path)
    hist, values = _mask_histogram(mask)
    if values is None:  # 8-bit histogram
        total = int(hist.sum())
        nonzero = np.flatnonzero(hist)
        vmax = int(nonzero[-1]) if nonzero.size else 0
        label_map = (not lossy) and 2 <= vmax <= 127
        scale = 1.0 if vmax <= 1 else 255.0
        if label_map:
            fg = total - int(hist[0])
            ambiguous = 0
        else:
            thr = default_mask_threshold(np.array([vmax]))
            fg = int(hist[int(np.floor(thr)) + 1 :].sum())
            ambiguous = int(hist[int(0.25 * scale) + 1 : int(np.ceil(0.75 * scale))].sum()) if scale > 1 else 0
    else:
        values = np.asarray(values)
        total = int(values.size)
        label_map = (not lossy) and is_label_map(values)
        fg = int(binarize_mask(values, "auto", None, lossy=lossy).sum())
        vmax = float(values.max()) if values.size else 0.0
        vmin = float(values.min()) if values.size else 0.0
        scale = 1.0 if vmax <= 1 else 255.0 if vmax <= 255 else 65535.0 if vmax <= 65535 else vmax
        if vmin < 0:
            problems.append(Problem("error", path, f"mask has negative values (min {vmin:g})"))
            return
        ambiguous = 0 if label_map else int(((values > 0.25 * scale) & (values < 0.75 * scale)).sum())
    if total == 0:
        problems.append(Problem("error", path, "mask has no pixels"))
        return
    frac = ambiguous / total
    if frac > MAX_AMBIGUOUS_FRACTION:
        problems.append(
            Problem(
                "error",
                path,
                f"mask is not binary: {100 * frac:.1f}% of pixels are grey levels in the middle of the value range "
                "(a soft map or a photo used as a mask?)",
            )
        )
        return
    if fg == 0:
        problems.append(Problem("warning", path, "mask is empty (no foreground pixel)"))
    elif fg == total:
        problems.append(Problem("warning", path, "mask is all foreground"))


def check_pair(image: str, label: str) -> list[Problem]:
    """Check one image/mask pair (existence, decoding, sizes, mask binarisability)."""
    problems: list[Problem] = []
    img = _open_checked(image, "image", problems)
    mask = _open_checked(label, "mask", problems)
    if img is not None and mask is not None:
        ih, iw = _size_hw(img)
        mh, mw = _size_hw(mask)
        if (ih, iw) != (mh, mw):
            problems.append(
                Problem("error", image, f"size mismatch: image is {ih}x{iw} (HxW) but mask '{label}' is {mh}x{mw}")
            )
    if mask is not None:
        _check_mask_values(mask, label, problems)
    return problems


def _overlap_problems(entries: dict[str, list[tuple[int, str]]], datalist: str) -> list[Problem]:
    """Duplicates within a split and overlaps between splits (by resolved image path)."""
    problems: list[Problem] = []
    where: dict[str, list[tuple[str, int]]] = {}
    for split, items in entries.items():
        for idx, image in items:
            where.setdefault(os.path.normcase(image), []).append((split, idx))
    for image, places in where.items():
        splits = [s for s, _ in places]
        for split in dict.fromkeys(splits):
            if splits.count(split) > 1:
                idxs = [i for s, i in places if s == split]
                problems.append(
                    Problem("error", image, f"duplicate: listed {len(idxs)} times (entries {idxs})", split, idxs[0])
                )
        if "training" in splits and len(set(splits)) > 1:
            others = sorted(set(splits) - {"training"})
            first = next(i for s, i in places if s == "training")
            message = f"splits overlap: in training and in {', '.join(others)}"
            problems.append(Problem("error", image, message, "training", first))
    val_index = {os.path.normcase(i): idx for idx, i in entries.get("validation", [])}
    val = set(val_index)
    test = {os.path.normcase(i) for _, i in entries.get("test", [])}
    if val and test:
        if val == test:
            problems.append(
                Problem(
                    "warning",
                    datalist,
                    "validation and test are the same images (the paper's protocol for this dataset: "
                    "reported numbers come from the images used to pick the checkpoint)",
                )
            )
        else:
            for image in sorted(val & test):
                message = "splits overlap: in validation and in test"
                problems.append(Problem("error", image, message, "validation", val_index[image]))
    # same file stem at two different paths: probably one image copied twice
    stems: dict[str, set[str]] = {}
    for image in where:
        stems.setdefault(Path(image).name.split(".")[0].lower(), set()).add(image)
    for stem, paths in stems.items():
        if len(paths) > 1:
            problems.append(
                Problem("warning", sorted(paths)[0], f"id '{stem}' is used by {len(paths)} files: {sorted(paths)}")
            )
    return problems


def check_datalist(path: str | Path, splits: Sequence[str] | None = None, workers: int | None = None) -> list[Problem]:
    """Check every entry of a datalist and return all problems (empty list: all good).

    Args:
        path: datalist JSON.
        splits: splits to check (default: all of ``training``, ``validation``, ``test``).
        workers: decoding threads (default ``min(8, 2 * os.cpu_count())``; PIL releases the GIL while decoding).

    Returns:
        problems, errors first, in datalist order.
    """
    path = Path(path)
    try:
        datalist = read_datalist(path)
    except (FileNotFoundError, ValueError) as e:
        return [Problem("error", str(path), str(e))]
    chosen = list(SPLITS if splits is None else splits)
    unknown = [s for s in chosen if s not in SPLITS]
    if unknown:
        raise ValueError(f"unknown split(s) {unknown}; expected a subset of {SPLITS}.")
    base = path.resolve().parent
    jobs: list[tuple[str, int, dict]] = [
        (split, idx, resolve_entry(entry, base)) for split in chosen for idx, entry in enumerate(datalist.split(split))
    ]
    problems: list[Problem] = []
    if not jobs:
        problems.append(Problem("error", str(path), f"no entries in split(s) {chosen}"))
    workers = workers or min(8, 2 * (os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        results = list(pool.map(lambda job: check_pair(job[2]["image"], job[2]["label"]), jobs))
    for (split, idx, _), found in zip(jobs, results):
        problems += [Problem(p.severity, p.file, p.message, split, idx) for p in found]
    entries: dict[str, list[tuple[int, str]]] = {}
    for split, idx, entry in jobs:
        entries.setdefault(split, []).append((idx, entry["image"]))
    problems += _overlap_problems(entries, str(path))
    return sorted(problems, key=lambda p: p.severity != "error")


def validate_datalist(path: str | Path, splits: Sequence[str] | None = None) -> None:
    """Run :func:`check_datalist`; log warnings, and raise if there is any error.

    Raises:
        ValueError: listing every problem (errors and warnings), one per line.
    """
    problems = check_datalist(path, splits)
    errors = [p for p in problems if p.severity == "error"]
    if errors:
        listing = "\n".join(f"  {p}" for p in problems)
        raise ValueError(f"datalist '{path}' has {len(errors)} error(s):\n{listing}")
    for p in problems:
        logger.warning(str(p))
