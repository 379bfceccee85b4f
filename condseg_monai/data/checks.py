# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""Validate a datalist before training: every problem of every file, reported at once.

Checks per entry: the image and the mask exist, are not empty and decode completely (truncation included);
their sizes agree; the mask is binary or binarisable (a soft map or a photo used as a mask is an error, an
all-background or all-foreground mask a warning). Across entries: the same image twice within a split, or
in training and in validation/test (leakage), is an error; a validation/test overlap is an error unless the
two splits are identical (the paper's protocol for Kvasir-SEG, GlaS and ISIC-2016, reported as a warning).

Declared negatives (``"negative": true``, images without foreground): without a ``label`` only the image is
checked; with one, the pair is checked as any other and its mask must be empty: foreground in it is an error
naming the mask file, and an empty mask is not reported (it is what was declared). An undeclared empty mask
stays a warning. Negatives take part in the duplicate and leakage checks like every other entry.

Unlabeled images (the optional ``unlabeled`` list): each must exist and decode completely (the same check as
a labeled image); the same image twice in ``unlabeled`` is an error, and so is an unlabeled image that is also
an image of ``training``/``validation``/``test``, found by real path (symlinks resolved) or by identical file
content (hashed only for files whose byte size equals that of a file of the other group, so it costs almost
nothing). An ``unlabeled`` list that is present but has no usable image is an error; semi-supervised training
(``require_unlabeled``) needs at least one usable unlabeled image.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageChops

from condseg_monai.data.datalist import SPLITS, UNLABELED, Datalist, read_datalist, resolve_entry
from condseg_monai.transforms.readers import (
    binarize_mask,
    default_mask_threshold,
    is_2d_image_array,
    is_label_map,
    is_lossy_format,
    is_nifti,
    mask_values_from_pil,
    nifti_to_2d,
)

__all__ = [
    "MAX_AMBIGUOUS_FRACTION",
    "Problem",
    "check_datalist",
    "check_image",
    "check_pair",
    "validate_datalist",
    "validate_unlabeled",
]

logger = logging.getLogger(__name__)

# A mask may have at most this fraction of pixels in the middle half of its value range (e.g. 64..191 on
# 8-bit data). Binary masks have none; JPEG masks have a few at the edges (0 % measured on Kvasir-SEG);
# soft probability maps and photos used as masks have many.
MAX_AMBIGUOUS_FRACTION = 0.02
_RGB_MODES = ("RGB", "RGBA", "RGBX", "RGBa", "CMYK", "YCbCr", "LAB", "HSV")
_MAX_NAMED = 20  # files named in one summary message (each bad file also has its own problem)


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

            data = nifti_to_2d(np.asanyarray(nib.load(path).dataobj))  # the readers' rule
            if not is_2d_image_array(data):
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


def _check_mask_values(
    mask: Image.Image | np.ndarray, path: str, problems: list[Problem], negative: bool = False
) -> None:
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
    if negative:
        if fg:
            message = f"mask of a declared negative has foreground: {fg} of {total} pixels (must be empty)"
            problems.append(Problem("error", path, message))
    elif fg == 0:
        problems.append(Problem("warning", path, "mask is empty (no foreground pixel)"))
    elif fg == total:
        problems.append(Problem("warning", path, "mask is all foreground"))


def check_pair(image: str, label: str, negative: bool = False) -> list[Problem]:
    """Check one image/mask pair (existence, decoding, sizes, mask binarisability).

    Args:
        image: image file.
        label: mask file.
        negative: the pair is a declared negative: its mask must be empty (foreground is an error, no warning for
            an empty mask).
    """
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
        _check_mask_values(mask, label, problems, negative)
    return problems


def check_image(image: str) -> list[Problem]:
    """Check one image without a mask (existence, complete decoding), exactly as the image of a pair."""
    problems: list[Problem] = []
    _open_checked(image, "image", problems)
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


def _real(path: str) -> str:
    return os.path.normcase(os.path.realpath(path))


def _digest(path: str) -> str | None:
    try:
        digest = hashlib.sha256()
        with open(path, "rb") as f:  # hashlib.file_digest needs Python 3.11
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
        return digest.hexdigest()
    except OSError:
        return None


def _size(path: str) -> int | None:
    try:
        return os.stat(path).st_size
    except OSError:
        return None


def _names(files: Sequence[str]) -> str:
    more = f" and {len(files) - _MAX_NAMED} more" if len(files) > _MAX_NAMED else ""
    return ", ".join(f"'{f}'" for f in files[:_MAX_NAMED]) + more


def _same_content(unlabeled: list[str], labeled: dict[str, tuple[str, int]]) -> dict[int, tuple[str, str, int]]:
    """Unlabeled indices whose file has the same bytes as a labeled image: index -> (file, split, index)."""
    by_size: dict[int, list[str]] = {}
    for image in labeled:
        size = _size(image)
        if size:
            by_size.setdefault(size, []).append(image)
    digests: dict[str, str | None] = {}
    found: dict[int, tuple[str, str, int]] = {}
    for idx, image in enumerate(unlabeled):
        candidates = by_size.get(_size(image) or -1, [])
        if not candidates:
            continue
        digest = digests.setdefault(image, _digest(image))
        for other in candidates:
            if digest is not None and digests.setdefault(other, _digest(other)) == digest:
                found[idx] = (other, *labeled[other])
                break
    return found


def _unlabeled_problems(
    datalist: Datalist, path: Path, pool: ThreadPoolExecutor, require: bool
) -> tuple[list[Problem], int]:
    """Problems of the ``unlabeled`` list and its number of usable images (readable, not duplicated, not labeled)."""
    base = path.resolve().parent
    images = [resolve_entry(e, base)["image"] for e in datalist.unlabeled]
    problems: list[Problem] = []
    bad: set[int] = set()
    for idx, found in enumerate(pool.map(check_image, images)):
        problems += [Problem(p.severity, p.file, p.message, UNLABELED, idx) for p in found]
        if any(p.severity == "error" for p in found):
            bad.add(idx)
    labeled: dict[str, tuple[str, int]] = {}
    for split in SPLITS:
        for idx, entry in enumerate(datalist.split(split)):
            labeled.setdefault(_real(resolve_entry(entry, base)["image"]), (split, idx))
    first: dict[str, int] = {}
    for idx, image in enumerate(images):
        real = _real(image)
        if real in labeled:
            split, where = labeled[real]
            problems.append(
                Problem("error", image, f"unlabeled image is also labeled ({split} entry {where})", UNLABELED, idx)
            )
            bad.add(idx)
        elif real in first:
            problems.append(
                Problem("error", image, f"duplicate: same file as unlabeled entry {first[real]}", UNLABELED, idx)
            )
            bad.add(idx)
        else:
            first[real] = idx
    for idx, (other, split, where) in _same_content(images, labeled).items():
        if idx not in bad:
            message = f"unlabeled image has the same content as labeled image '{other}' ({split} entry {where})"
            problems.append(Problem("error", images[idx], message, UNLABELED, idx))
            bad.add(idx)
    usable = len(images) - len(bad)
    if usable == 0:
        listed = (
            f"{len(images)} listed, none usable: {_names([images[i] for i in sorted(bad)])}"
            if images
            else "it is empty"
        )
        if require:
            message = (
                f"semi-supervised training is on, but datalist '{path}' has no usable 'unlabeled' images ({listed})"
            )
            problems.append(Problem("error", str(path), message))
        elif UNLABELED in datalist.model_fields_set:
            problems.append(Problem("error", str(path), f"the 'unlabeled' list has no usable image ({listed})"))
    return problems, usable


def _check_entry(entry: dict) -> list[Problem]:
    """Check one resolved labeled entry: a pair, or a declared negative without a mask (its image only)."""
    negative = bool(entry.get("negative", False))
    if "label" not in entry:  # the datalist model allows this for declared negatives only
        return check_image(entry["image"])
    return check_pair(entry["image"], entry["label"], negative)


def check_datalist(
    path: str | Path,
    splits: Sequence[str] | None = None,
    workers: int | None = None,
    require_unlabeled: bool = False,
) -> list[Problem]:
    """Check every entry of a datalist and return all problems (empty list: all good).

    Args:
        path: datalist JSON.
        splits: splits to check, among ``training``, ``validation``, ``test`` and ``unlabeled`` (default: all).
            Unlabeled images are always compared with the images of all labeled splits.
        workers: decoding threads (default ``min(8, 2 * os.cpu_count())``; PIL releases the GIL while decoding).
        require_unlabeled: semi-supervised training: at least one usable unlabeled image is needed (an error
            otherwise, also when the datalist has no ``unlabeled`` list); implies checking ``unlabeled``.

    Returns:
        problems, errors first, in datalist order.
    """
    problems, _ = _check(Path(path), splits, workers, require_unlabeled)
    return problems


def _check(
    path: Path, splits: Sequence[str] | None, workers: int | None, require_unlabeled: bool
) -> tuple[list[Problem], int]:
    """:func:`check_datalist`, also returning the number of usable unlabeled images."""
    try:
        datalist = read_datalist(path)
    except (FileNotFoundError, ValueError) as e:
        return [Problem("error", str(path), str(e))], 0
    chosen = list((*SPLITS, UNLABELED) if splits is None else splits)
    unknown = [s for s in chosen if s not in (*SPLITS, UNLABELED)]
    if unknown:
        raise ValueError(f"unknown split(s) {unknown}; expected a subset of {(*SPLITS, UNLABELED)}.")
    labeled = [s for s in chosen if s in SPLITS]
    with_unlabeled = UNLABELED in chosen or require_unlabeled
    base = path.resolve().parent
    jobs: list[tuple[str, int, dict]] = [
        (split, idx, resolve_entry(entry, base)) for split in labeled for idx, entry in enumerate(datalist.split(split))
    ]
    problems: list[Problem] = []
    if not jobs and (labeled or not with_unlabeled):
        problems.append(Problem("error", str(path), f"no entries in split(s) {labeled}"))
    workers = workers or min(8, 2 * (os.cpu_count() or 1))
    usable, found = 0, []
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        results = list(pool.map(_check_entry, [entry for _, _, entry in jobs]))
        if with_unlabeled:
            found, usable = _unlabeled_problems(datalist, path, pool, require_unlabeled)
    for (split, idx, _), found_pair in zip(jobs, results):
        problems += [Problem(p.severity, p.file, p.message, split, idx) for p in found_pair]
    entries: dict[str, list[tuple[int, str]]] = {}
    for split, idx, entry in jobs:
        entries.setdefault(split, []).append((idx, entry["image"]))
    problems += _overlap_problems(entries, str(path))
    problems += found
    return sorted(problems, key=lambda p: p.severity != "error"), usable


def _raise_or_log(path: str | Path, problems: list[Problem]) -> None:
    errors = [p for p in problems if p.severity == "error"]
    if errors:
        listing = "\n".join(f"  {p}" for p in problems)
        raise ValueError(f"datalist '{path}' has {len(errors)} error(s):\n{listing}")
    for p in problems:
        logger.warning(str(p))


def validate_datalist(path: str | Path, splits: Sequence[str] | None = None, require_unlabeled: bool = False) -> None:
    """Run :func:`check_datalist`; log warnings, and raise if there is any error.

    Args:
        path: datalist JSON.
        splits: as for :func:`check_datalist` (default: all, ``unlabeled`` included).
        require_unlabeled: semi-supervised training is on: also fail without a usable unlabeled image.

    Raises:
        ValueError: listing every problem (errors and warnings), one per line.
    """
    _raise_or_log(path, check_datalist(path, splits, require_unlabeled=require_unlabeled))


def validate_unlabeled(datalist_path: str | Path, required: bool) -> int:
    """Check only the ``unlabeled`` list (against the labeled images too); log warnings, raise on errors.

    Args:
        datalist_path: datalist JSON.
        required: semi-supervised training is on: at least one usable unlabeled image is needed. When False,
            a datalist without an ``unlabeled`` key passes (0 is returned).

    Returns:
        the number of usable unlabeled images.

    Raises:
        ValueError: listing every problem, one per line (the datalist unreadable, bad unlabeled files, or no
            usable unlabeled image while ``required``).
    """
    problems, usable = _check(Path(datalist_path), [UNLABELED], None, required)
    _raise_or_log(datalist_path, problems)
    return usable
