# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""Build datalists from the raw layouts of the public datasets (see ``docs/datasets.md``).

Then, optionally: :func:`add_unlabeled` lists the images of extra folders as ``unlabeled``,
:func:`keep_labeled` keeps a seeded subset of the training pairs labeled and moves the other training images
to ``unlabeled`` (a label-scarce setting reproduced from a fully labeled dataset), and :func:`add_negatives`
adds the images of folders of images without foreground (polyp-free frames) as declared negatives, a seeded
share to ``validation`` and the rest to ``training``.

Supported: ``kvasir-seg``, ``kvasir-sessile``, ``glas``, ``isic2016``, ``isic2017`` and ``folder`` (any
``images/`` + ``masks/`` pair of folders matched by file stem). Splits follow the paper (section 4.3 of the
implementation reference); where the paper evaluates on its validation set, ``test`` repeats ``validation``.
"""

from __future__ import annotations

import math
import os
import random
import re
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from condseg_monai.data.datalist import SPLITS, Datalist, DatalistEntry, UnlabeledEntry, write_datalist
from condseg_monai.transforms.readers import IMAGE_SUFFIXES, file_stem  # file_stem: also public here

__all__ = [
    "DATASETS",
    "IMAGE_EXTENSIONS",
    "MASK_SUFFIXES",
    "Pair",
    "PrepareError",
    "add_negatives",
    "add_unlabeled",
    "file_stem",
    "keep_labeled",
    "labeled_budget_size",
    "match_pairs",
    "prepare_datalist",
    "proportional_counts",
    "read_split_file",
    "seeded_split",
]

DATASETS: tuple[str, ...] = ("kvasir-seg", "kvasir-sessile", "glas", "isic2016", "isic2017", "folder")
# the package's one list of image endings, under the name the datalist tools have always used
IMAGE_EXTENSIONS: tuple[str, ...] = IMAGE_SUFFIXES
# suffixes that mask files add to the image stem (matched case-insensitively)
MASK_SUFFIXES: tuple[str, ...] = ("_mask", "_segmentation", "_anno")
_MAX_LISTED = 50


class PrepareError(ValueError):
    """The raw dataset folder does not have the expected layout, or images and masks do not pair up."""


@dataclass(frozen=True)
class Pair:
    """An image file and its mask file, identified by ``id`` (the image stem)."""

    id: str
    image: Path
    label: Path


def _mask_key(stem: str, suffixes: Sequence[str]) -> str:
    lower = stem.lower()
    for suffix in suffixes:
        if lower.endswith(suffix.lower()) and len(stem) > len(suffix):
            return stem[: -len(suffix)]
    return stem


def _natural_key(text: str) -> list:
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", text)]


def _list_files(folder: Path, extensions: Sequence[str], exclude: Callable[[Path], bool] | None = None) -> list[Path]:
    exts = tuple(e.lower() for e in extensions)
    files = [
        p
        for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.name.lower().endswith(exts) and not (exclude and exclude(p))
    ]
    return sorted(files, key=lambda p: _natural_key(p.name))


def _listing(items: Iterable[object]) -> str:
    items = [str(i) for i in items]
    shown = "\n  ".join(items[:_MAX_LISTED])
    more = f"\n  ... and {len(items) - _MAX_LISTED} more" if len(items) > _MAX_LISTED else ""
    return f"\n  {shown}{more}"


def match_pairs(
    images_dir: Path,
    masks_dir: Path,
    image_extensions: Sequence[str] = IMAGE_EXTENSIONS,
    mask_extensions: Sequence[str] = IMAGE_EXTENSIONS,
    mask_suffixes: Sequence[str] = MASK_SUFFIXES,
    allow_unpaired: bool = False,
    exclude: Callable[[Path], bool] | None = None,
) -> list[Pair]:
    """Pair every image with the mask of the same stem (across extensions, mask suffixes stripped).

    Raises:
        PrepareError: a folder is missing, a stem is ambiguous (two images or two masks), or (unless
            ``allow_unpaired``) some images or masks have no partner. The message lists the files.
    """
    for folder in (images_dir, masks_dir):
        if not folder.is_dir():
            raise PrepareError(f"expected folder '{folder}' does not exist.")
    images = _list_files(images_dir, image_extensions, exclude)
    masks = _list_files(masks_dir, mask_extensions, exclude)
    by_stem: dict[str, list[Path]] = {}
    for p in images:
        by_stem.setdefault(file_stem(p), []).append(p)
    mask_by_stem: dict[str, list[Path]] = {}
    for p in masks:
        mask_by_stem.setdefault(_mask_key(file_stem(p), mask_suffixes), []).append(p)
    ambiguous = [p for group in (*by_stem.values(), *mask_by_stem.values()) if len(group) > 1 for p in group]
    if ambiguous:
        raise PrepareError(f"several files share one id (cannot pair them):{_listing(ambiguous)}")
    lone_images = [by_stem[s][0] for s in by_stem if s not in mask_by_stem]
    lone_masks = [mask_by_stem[s][0] for s in mask_by_stem if s not in by_stem]
    if lone_images or lone_masks:
        msg = ""
        if lone_images:
            msg += f"\n{len(lone_images)} image(s) without a mask in '{masks_dir}':{_listing(lone_images)}"
        if lone_masks:
            msg += f"\n{len(lone_masks)} mask(s) without an image in '{images_dir}':{_listing(lone_masks)}"
        if not allow_unpaired:
            raise PrepareError(f"unpaired files (use --allow-unpaired to skip them):{msg}")
        warnings.warn(f"skipping unpaired files:{msg}", stacklevel=2)
    pairs = [Pair(s, by_stem[s][0], mask_by_stem[s][0]) for s in by_stem if s in mask_by_stem]
    return sorted(pairs, key=lambda p: _natural_key(p.id))


def read_split_file(path: Path) -> list[str]:
    """Read a split list: one stem per line; blank lines, surrounding spaces and image extensions ignored.

    Tolerant of a missing trailing newline (the official loader silently dropped the last line then).
    """
    stems = [file_stem(line.strip()) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    seen: set[str] = set()
    dupes = [s for s in stems if s in seen or seen.add(s)]
    if dupes:
        raise PrepareError(f"split file '{path}' lists ids more than once:{_listing(dupes)}")
    return stems


def proportional_counts(n: int, fractions: Sequence[float]) -> list[int]:
    """Round ``n * fraction`` for each fraction; raises if they leave nothing (or less than 0) for training."""
    if any(f < 0 for f in fractions):
        raise ValueError(f"fractions must be non-negative, got {list(fractions)}.")
    counts = [int(round(n * f)) for f in fractions]
    if sum(counts) >= n and n > 0:
        raise PrepareError(f"split sizes {counts} leave no training images out of {n}.")
    return counts


def seeded_split(ids: Sequence[str], counts: Sequence[int], seed: int) -> list[list[str]]:
    """Shuffle the sorted ``ids`` with ``random.Random(seed)`` and cut them.

    Args:
        ids: item ids.
        counts: sizes of the held-out parts, e.g. ``(n_val, n_test)``.
        seed: shuffle seed.

    Returns:
        ``[rest, part_0, part_1, ...]``, each sorted naturally.
    """
    if sum(counts) > len(ids):
        raise PrepareError(f"cannot take {sum(counts)} held-out items out of {len(ids)}.")
    order = sorted(ids, key=_natural_key)
    random.Random(seed).shuffle(order)
    parts, start = [], 0
    for c in counts:
        parts.append(sorted(order[start : start + c], key=_natural_key))
        start += c
    return [sorted(order[start:], key=_natural_key), *parts]


def _find_root(root: Path, required: Sequence[str], wrappers: Sequence[str] = ()) -> Path:
    """``root`` itself or the single sub-folder (preferring ``wrappers``) that holds all ``required`` entries."""
    if not root.is_dir():
        raise PrepareError(f"dataset root '{root}' is not a folder.")

    def ok(p: Path) -> bool:
        return all((p / r).exists() for r in required)

    if ok(root):
        return root
    for name in wrappers:
        if ok(root / name):
            return root / name
    candidates = [p for p in sorted(root.iterdir()) if p.is_dir() and ok(p)]
    if len(candidates) == 1:
        return candidates[0]
    wanted = ", ".join(repr(r) for r in required)
    raise PrepareError(f"'{root}' does not contain {wanted} (nor does a single sub-folder of it).")


def _select(pairs: Sequence[Pair], ids: Sequence[str], source: Path) -> list[Pair]:
    by_id = {p.id: p for p in pairs}
    missing = [i for i in ids if i not in by_id]
    if missing:
        raise PrepareError(f"split file '{source}' names ids without an image/mask pair:{_listing(missing)}")
    return [by_id[i] for i in ids]


def _kvasir(root: Path, seed: int, allow_unpaired: bool) -> dict[str, list[Pair]]:
    base = _find_root(root, ("images", "masks"), ("Kvasir-SEG", "kvasir-seg"))
    pairs = match_pairs(base / "images", base / "masks", allow_unpaired=allow_unpaired)
    split_dir = next((d for d in (base, root) if (d / "train.txt").is_file() and (d / "val.txt").is_file()), None)
    if split_dir is not None:  # the Medico 2020 880/120 split
        train = _select(pairs, read_split_file(split_dir / "train.txt"), split_dir / "train.txt")
        val = _select(pairs, read_split_file(split_dir / "val.txt"), split_dir / "val.txt")
        overlap = {p.id for p in train} & {p.id for p in val}
        if overlap:
            raise PrepareError(f"train.txt and val.txt in '{split_dir}' share ids:{_listing(sorted(overlap))}")
        unused = len(pairs) - len(train) - len(val)
        if unused:
            warnings.warn(f"{unused} image/mask pairs in '{base}' are in neither split file.", stacklevel=2)
    else:  # seeded split in the official proportions (880/120 for 1000 images)
        (n_val,) = proportional_counts(len(pairs), (120 / 1000,))
        ids = seeded_split([p.id for p in pairs], (n_val,), seed)
        train, val = (_select(pairs, part, base) for part in ids)
    return {"training": train, "validation": val, "test": list(val)}


def _kvasir_sessile(root: Path, seed: int, allow_unpaired: bool) -> dict[str, list[Pair]]:
    base = _find_root(root, ("images", "masks"), ("sessile-main-Kvasir-SEG", "Kvasir-Sessile", "kvasir-sessile"))
    pairs = match_pairs(base / "images", base / "masks", allow_unpaired=allow_unpaired)
    n_val, n_test = proportional_counts(len(pairs), (20 / 196, 20 / 196))  # 156/20/20 for 196
    parts = seeded_split([p.id for p in pairs], (n_val, n_test), seed)
    train, val, test = (_select(pairs, part, base) for part in parts)
    return {"training": train, "validation": val, "test": test}


def _glas(root: Path, allow_unpaired: bool) -> dict[str, list[Pair]]:
    if not root.is_dir():
        raise PrepareError(f"dataset root '{root}' is not a folder.")
    candidates = [root, *sorted(p for p in root.iterdir() if p.is_dir())]
    base = next((d for d in candidates if any(d.glob("train_*_anno.bmp"))), None)
    if base is None:
        raise PrepareError(f"'{root}' holds no GlaS files (train_<n>.bmp + train_<n>_anno.bmp).")
    # one flat folder: images are the BMPs without "_anno", masks the "<id>_anno.bmp" files
    bmps = _list_files(base, (".bmp",))
    images = [p for p in bmps if not file_stem(p).lower().endswith("_anno")]
    annos = {file_stem(p)[: -len("_anno")]: p for p in bmps if file_stem(p).lower().endswith("_anno")}
    image_ids = {file_stem(p) for p in images}
    lone = [p for p in images if file_stem(p) not in annos] + [p for s, p in annos.items() if s not in image_ids]
    if lone:
        if not allow_unpaired:
            raise PrepareError(f"unpaired GlaS files in '{base}' (use --allow-unpaired to skip them):{_listing(lone)}")
        warnings.warn(f"skipping unpaired GlaS files:{_listing(lone)}", stacklevel=2)
    all_pairs = [Pair(file_stem(p), p, annos[file_stem(p)]) for p in images if file_stem(p) in annos]
    parts: dict[str, list[Pair]] = {"train": [], "testA": [], "testB": []}
    for pair in all_pairs:
        prefix = pair.id.split("_", 1)[0]
        if prefix in parts:
            parts[prefix].append(pair)
    if not parts["train"]:
        raise PrepareError(f"no GlaS training pairs (train_<n>.bmp) in '{base}'.")
    held_out = parts["testA"] + parts["testB"]  # the official 80 test images, used as validation by the paper
    return {"training": parts["train"], "validation": held_out, "test": list(held_out)}


def _isic(root: Path, folders: dict[str, tuple[str, str]], allow_unpaired: bool) -> dict[str, list[Pair]]:
    first = next(iter(folders.values()))
    base = _find_root(root, first)
    out: dict[str, list[Pair]] = {}
    for split, (img_dir, gt_dir) in folders.items():
        out[split] = match_pairs(
            base / img_dir, base / gt_dir, (".jpg", ".jpeg"), (".png",), ("_segmentation",), allow_unpaired
        )
    return out


_ISIC2016 = {
    "training": ("ISBI2016_ISIC_Part1_Training_Data", "ISBI2016_ISIC_Part1_Training_GroundTruth"),
    "test": ("ISBI2016_ISIC_Part1_Test_Data", "ISBI2016_ISIC_Part1_Test_GroundTruth"),
}
_ISIC2017 = {
    "training": ("ISIC-2017_Training_Data", "ISIC-2017_Training_Part1_GroundTruth"),
    "validation": ("ISIC-2017_Validation_Data", "ISIC-2017_Validation_Part1_GroundTruth"),
    "test": ("ISIC-2017_Test_v2_Data", "ISIC-2017_Test_v2_Part1_GroundTruth"),
}


def _folder(
    root: Path,
    seed: int,
    allow_unpaired: bool,
    val_fraction: float,
    test_fraction: float,
    val_count: int | None,
    test_count: int | None,
) -> dict[str, list[Pair]]:
    base = _find_root(root, ("images", "masks"))
    pairs = match_pairs(base / "images", base / "masks", allow_unpaired=allow_unpaired)
    n_val, n_test = proportional_counts(len(pairs), (val_fraction, test_fraction))
    n_val = n_val if val_count is None else val_count
    n_test = n_test if test_count is None else test_count
    if n_val < 0 or n_test < 0:
        raise ValueError(f"split counts must be non-negative, got val {n_val}, test {n_test}.")
    if n_val + n_test >= len(pairs):
        raise PrepareError(f"{n_val} validation + {n_test} test images leave no training images out of {len(pairs)}.")
    train, val, test = (_select(pairs, p, base) for p in seeded_split([p.id for p in pairs], (n_val, n_test), seed))
    return {"training": train, "validation": val, "test": test}


def _fmt_path(p: Path, base: Path, relative: bool) -> str:
    p = p.resolve()
    if relative:
        try:
            return Path(os.path.relpath(p, base)).as_posix()
        except ValueError:  # e.g. another drive on Windows
            return str(p)
    return str(p)


def _entry(pair: Pair, base: Path, relative: bool) -> DatalistEntry:
    return DatalistEntry(image=_fmt_path(pair.image, base, relative), label=_fmt_path(pair.label, base, relative))


def labeled_budget_size(n: int, count: int | None = None, fraction: float | None = None) -> int:
    """Number of training pairs that :func:`keep_labeled` keeps out of ``n``.

    ``count`` is taken as is; ``fraction`` gives ``floor(n * fraction + 0.5)`` (half rounds up, unlike
    Python's ``round``), at least 1.

    Raises:
        ValueError: both or neither of ``count``/``fraction``; ``count`` not in ``1..n``; ``fraction`` not in
            ``(0, 1]``; no training pairs.
    """
    if (count is None) == (fraction is None):
        raise ValueError("give exactly one of count (labeled pairs) and fraction (of the training pairs).")
    if n < 1:
        raise ValueError("the datalist has no training pairs to keep labeled.")
    if count is not None:
        if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= n:
            raise ValueError(f"labeled count must be an integer in 1..{n} (the training pairs), got {count!r}.")
        return count
    if not isinstance(fraction, (int, float)) or isinstance(fraction, bool) or not 0.0 < fraction <= 1.0:
        raise ValueError(f"labeled fraction must be in (0, 1], got {fraction!r}.")
    # the small epsilon absorbs binary rounding (e.g. 0.1 * 880 = 88.00000000000001 or 87.99999...)
    return min(n, max(1, math.floor(n * fraction + 0.5 + 1e-9)))


def keep_labeled(
    datalist: Datalist, count: int | None = None, fraction: float | None = None, seed: int = 0
) -> Datalist:
    """Keep a seeded subset of the training pairs labeled; move the other training images to ``unlabeled``.

    Rule: the indices ``0..n-1`` of the ``n`` training entries are shuffled with ``random.Random(seed)``; the
    first ``k`` (:func:`labeled_count`) stay labeled, in their original order; the others are appended to
    ``unlabeled`` in their original order, without their ``label`` (other keys, e.g. an ``id``, are kept).
    Budgets of one seed are nested: the pairs kept for ``k`` are among those kept for any larger ``k``.
    ``validation``, ``test`` and existing ``unlabeled`` entries are untouched. What was done is recorded in
    ``label_budget`` (an earlier budget is kept under ``label_budget["previous"]``). A declared negative moved to
    ``unlabeled`` loses its ``negative`` flag with its label.

    Args:
        datalist: a datalist (not modified).
        count: number of training pairs kept labeled.
        fraction: fraction of the training pairs kept labeled, in ``(0, 1]``.
        seed: shuffle seed.

    Returns:
        the new datalist.

    Raises:
        ValueError: see :func:`labeled_count`.
    """
    n = len(datalist.training)
    k = labeled_budget_size(n, count, fraction)
    order = list(range(n))
    random.Random(seed).shuffle(order)
    kept = set(order[:k])
    out = datalist.model_copy(deep=True)
    moved = [
        UnlabeledEntry.model_validate(e.model_dump(exclude={"label", "negative"}))
        for i, e in enumerate(out.training)
        if i not in kept
    ]
    out.training = [e for i, e in enumerate(out.training) if i in kept]
    out.unlabeled = out.unlabeled + moved
    budget: dict[str, Any] = {
        "labeled": k,
        "training_pairs": n,
        "moved_to_unlabeled": n - k,
        "count": count,
        "fraction": fraction,
        "seed": seed,
        "rule": "random.Random(seed).shuffle(range(training_pairs)); the first `labeled` indices stay labeled",
        "source": datalist.name,
    }
    if datalist.label_budget is not None:
        budget["previous"] = datalist.label_budget
    out.label_budget = {key: v for key, v in budget.items() if v is not None}
    return out


def _listed_images(datalist: Datalist, base: Path) -> set[str]:
    """Real paths of every image the datalist lists (labeled, negative or unlabeled)."""
    entries = (*datalist.training, *datalist.validation, *datalist.test, *datalist.unlabeled)
    return {os.path.normcase(os.path.realpath(base / e.image)) for e in entries}


_NEGATIVES_RULE = (
    "images of each folder in natural name order, all folders concatenated; random.Random(seed).shuffle of their "
    "indices; the first floor(val_fraction x n + 0.5) indices go to validation, the others to training"
)


def add_unlabeled(
    datalist: Datalist,
    folder: str | Path,
    base_dir: str | Path | None = None,
    relative: bool = True,
    extensions: Sequence[str] = IMAGE_EXTENSIONS,
) -> Datalist:
    """Append every image file of ``folder`` (not its sub-folders; hidden files skipped) to ``unlabeled``.

    Files are taken in natural name order; files with other extensions are ignored.

    Args:
        datalist: a datalist (not modified).
        folder: folder of unlabeled images.
        base_dir: folder of the datalist JSON: paths are written relative to it (if ``relative``) and the
            datalist's own relative paths are resolved against it. Default: the current folder.
        relative: write paths relative to ``base_dir`` (else absolute).
        extensions: file name endings taken as images (default :data:`IMAGE_EXTENSIONS`).

    Returns:
        the new datalist.

    Raises:
        PrepareError: ``folder`` is not a folder, holds no image file, or holds images that the datalist
            already lists (labeled or unlabeled); the message lists them.
    """
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise PrepareError(f"unlabeled image folder '{folder}' is not a folder.")
    files = _list_files(folder, extensions)
    if not files:
        raise PrepareError(f"unlabeled image folder '{folder}' holds no image file ({', '.join(extensions)}).")
    base = Path(base_dir if base_dir is not None else os.getcwd()).expanduser().resolve()
    listed = _listed_images(datalist, base)
    already = [f for f in files if os.path.normcase(os.path.realpath(f)) in listed]
    if already:
        raise PrepareError(f"images of '{folder}' are already in the datalist:{_listing(already)}")
    out = datalist.model_copy(deep=True)
    out.unlabeled = out.unlabeled + [UnlabeledEntry(image=_fmt_path(f, base, relative)) for f in files]
    return out


def add_negatives(
    datalist: Datalist,
    folders: Sequence[str | Path],
    val_fraction: float = 0.2,
    seed: int = 0,
    base_dir: str | Path | None = None,
    relative: bool = True,
    extensions: Sequence[str] = IMAGE_EXTENSIONS,
) -> Datalist:
    """Add every image file of ``folders`` as a declared negative (``{"image": ..., "negative": true}``).

    A folder with an ``images/`` sub-folder contributes that sub-folder's images (any ``masks/`` next to it is
    not needed and not read); otherwise its own image files (not its sub-folders; hidden files skipped). The
    images of all folders, each in natural name order, are shuffled by index with ``random.Random(seed)``; the
    first ``floor(val_fraction x n + 0.5)`` go to ``validation``, the others to ``training`` (each appended after
    the existing entries, in their listed order).
    What was done is recorded in the datalist's ``negatives`` object (``dirs``, ``counts`` per split,
    ``val_fraction``, ``seed``, ``rule``; an earlier record is kept under ``negatives["previous"]``).

    Args:
        datalist: a datalist (not modified).
        folders: folders of images without foreground.
        val_fraction: share of the negatives that goes to ``validation``, in ``[0, 1]``.
        seed: shuffle seed.
        base_dir: folder of the datalist JSON, as in :func:`add_unlabeled`.
        relative: write paths relative to ``base_dir`` (else absolute).
        extensions: file name endings taken as images (default :data:`IMAGE_EXTENSIONS`).

    Returns:
        the new datalist.

    Raises:
        ValueError: ``val_fraction`` not in ``[0, 1]``, or no folder given.
        PrepareError: a folder is not a folder or holds no image file, or images that the datalist already lists
            (or that two folders share); the message lists them.
    """
    if isinstance(val_fraction, bool) or not isinstance(val_fraction, (int, float)) or not 0.0 <= val_fraction <= 1.0:
        raise ValueError(f"negatives validation fraction must be in [0, 1], got {val_fraction!r}.")
    if not folders:
        raise ValueError("give at least one folder of negative images.")
    base = Path(base_dir if base_dir is not None else os.getcwd()).expanduser().resolve()
    files: list[Path] = []
    dirs: list[str] = []
    for folder in folders:
        folder = Path(folder).expanduser()
        if not folder.is_dir():
            raise PrepareError(f"negative image folder '{folder}' is not a folder.")
        source = folder / "images" if (folder / "images").is_dir() else folder
        found = _list_files(source, extensions)
        if not found:
            raise PrepareError(f"negative image folder '{source}' holds no image file ({', '.join(extensions)}).")
        files += found
        dirs.append(str(source.resolve()))
    listed = _listed_images(datalist, base)
    seen: set[str] = set()
    already = []
    for f in files:
        real = os.path.normcase(os.path.realpath(f))
        if real in listed or real in seen:
            already.append(f)
        seen.add(real)
    if already:
        raise PrepareError(f"negative images are already in the datalist (or listed twice):{_listing(already)}")
    n_val = min(len(files), math.floor(len(files) * val_fraction + 0.5 + 1e-9))
    order = list(range(len(files)))
    random.Random(seed).shuffle(order)
    to_val = set(order[:n_val])
    out = datalist.model_copy(deep=True)

    def entries(in_val: bool) -> list[DatalistEntry]:
        chosen = [f for i, f in enumerate(files) if (i in to_val) == in_val]
        return [DatalistEntry(image=_fmt_path(f, base, relative), negative=True) for f in chosen]

    out.training = out.training + entries(False)
    out.validation = out.validation + entries(True)
    record: dict[str, Any] = {
        "dirs": dirs,
        "counts": {"training": len(files) - n_val, "validation": n_val},
        "val_fraction": val_fraction,
        "seed": seed,
        "rule": _NEGATIVES_RULE,
    }
    if datalist.negatives is not None:
        record["previous"] = datalist.negatives
    out.negatives = record
    return out


def prepare_datalist(
    dataset: str,
    root: str | Path,
    out: str | Path,
    seed: int = 0,
    relative: bool = True,
    val_fraction: float = 0.1,
    test_fraction: float = 0.0,
    val_count: int | None = None,
    test_count: int | None = None,
    allow_unpaired: bool = False,
    unlabeled_dirs: Sequence[str | Path] = (),
    labeled_count: int | None = None,
    labeled_fraction: float | None = None,
    negatives_dirs: Sequence[str | Path] = (),
    negatives_val_fraction: float = 0.2,
) -> Datalist:
    """Scan a raw dataset folder and write its datalist JSON atomically.

    After the dataset's normal split, ``labeled_count``/``labeled_fraction`` apply :func:`keep_labeled`
    (with ``seed``), then the images of each of ``unlabeled_dirs`` are appended to ``unlabeled``
    (:func:`add_unlabeled`), then the images of ``negatives_dirs`` are added as declared negatives
    (:func:`add_negatives`, with ``seed``).

    Args:
        dataset: one of :data:`DATASETS`.
        root: the raw download folder (see ``docs/datasets.md`` for each layout).
        out: output JSON path.
        seed: seed of the random splits (kvasir-seg without split files, kvasir-sessile, folder).
        relative: write paths relative to the JSON's folder (else absolute).
        val_fraction: ``folder`` only: validation fraction (ignored when ``val_count`` is given).
        test_fraction: ``folder`` only: test fraction (ignored when ``test_count`` is given).
        val_count: ``folder`` only: exact validation size.
        test_count: ``folder`` only: exact test size.
        allow_unpaired: warn and skip images/masks without a partner instead of raising.
        unlabeled_dirs: folders of extra images without masks.
        labeled_count: keep only this many training pairs labeled (the other training images become unlabeled).
        labeled_fraction: keep only this fraction of the training pairs labeled (rounded as in
            :func:`labeled_budget_size`).
        negatives_dirs: folders of images without foreground (their ``images/`` sub-folder if they have one).
        negatives_val_fraction: share of the negatives that goes to ``validation`` (the rest to ``training``).

    Returns:
        the datalist that was written.
    """
    root, out = Path(root).expanduser(), Path(out).expanduser()
    if dataset == "kvasir-seg":
        splits = _kvasir(root, seed, allow_unpaired)
    elif dataset == "kvasir-sessile":
        splits = _kvasir_sessile(root, seed, allow_unpaired)
    elif dataset == "glas":
        splits = _glas(root, allow_unpaired)
    elif dataset == "isic2016":
        splits = _isic(root, _ISIC2016, allow_unpaired)
        splits["validation"] = list(splits["test"])  # the paper selects and reports on the 379 test images
    elif dataset == "isic2017":
        splits = _isic(root, _ISIC2017, allow_unpaired)
    elif dataset == "folder":
        splits = _folder(root, seed, allow_unpaired, val_fraction, test_fraction, val_count, test_count)
    else:
        raise ValueError(f"unknown dataset {dataset!r}; expected one of {DATASETS}.")
    base = out.parent.resolve()
    datalist = Datalist(
        name=dataset,
        description=f"{dataset} prepared from '{root.resolve()}'",
        seed=seed,
        **{s: [_entry(p, base, relative) for p in splits.get(s, [])] for s in SPLITS},
    )
    if labeled_count is not None or labeled_fraction is not None:
        datalist = keep_labeled(datalist, labeled_count, labeled_fraction, seed)
    for folder in unlabeled_dirs:
        datalist = add_unlabeled(datalist, folder, base, relative)
    if negatives_dirs:
        datalist = add_negatives(datalist, negatives_dirs, negatives_val_fraction, seed, base, relative)
    write_datalist(datalist, out)
    return datalist
