# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""Helpers the bundle configs call: input discovery (images and videos), checkpoint checks and loading, evaluation
split choice."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from condseg_monai.data.checks import check_datalist
from condseg_monai.data.datalist import load_datalist
from condseg_monai.data.failures import describe_failure, failure_record
from condseg_monai.inference.transforms import output_stem
from condseg_monai.transforms.readers import IMAGE_SUFFIXES, is_nifti  # IMAGE_SUFFIXES: also public here

__all__ = [
    "IMAGE_SUFFIXES",
    "VIDEO_SUFFIXES",
    "is_image_file",
    "is_video_file",
    "list_input_images",
    "list_input_videos",
    "list_inputs",
    "load_model_weights",
    "require_file",
    "screen_eval_split",
    "select_eval_split",
    "skip_existing_outputs",
]

logger = logging.getLogger(__name__)

# Containers read by the video path (PyAV / FFmpeg), compared case-insensitively. MP4 and AVI are tested.
VIDEO_SUFFIXES: tuple[str, ...] = (".mp4", ".avi", ".mov", ".mkv", ".m4v")


def is_image_file(path: str | Path) -> bool:
    """Whether ``path`` has a supported image suffix (JPG/PNG/BMP/TIF or NIfTI, case-insensitive)."""
    return str(path).lower().endswith(IMAGE_SUFFIXES)


def list_input_images(input_path: str | Path | None, key: str = "image", setting: str = "input_path") -> list[dict]:
    """Data dicts ``[{key: path}, ...]`` for a single image file or every image directly inside a folder.

    Folders are not searched recursively (outputs are named after the input file, so two inputs with the same
    name in different sub-folders would overwrite each other). Hidden files are skipped; other files without an
    image suffix (:data:`IMAGE_SUFFIXES`, e.g. ``notes.txt``) are skipped and named in the log. Sorted by name.

    Args:
        input_path: an image file or a folder of images.
        key: the data-dict key of the image path.
        setting: name of the config setting, used in error messages.

    Returns:
        list of ``{key: absolute path}`` dicts.

    Raises:
        ValueError: ``input_path`` is unset, missing, a file of an unsupported type, or a folder without images.
    """
    if input_path is None or str(input_path).strip() == "":
        raise ValueError(f"`{setting}` is not set: pass --{setting} <image file or folder of images>.")
    path = Path(input_path).expanduser()
    if not path.exists():
        raise ValueError(f"`{setting}` '{input_path}' does not exist.")
    if path.is_file():
        if not is_image_file(path):
            raise ValueError(
                f"`{setting}` '{input_path}' is not a supported image (expected one of {', '.join(IMAGE_SUFFIXES)})."
            )
        return [{key: str(path.resolve())}]
    visible = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
    files = [p for p in visible if is_image_file(p.name)]
    ignored = [p.name for p in visible if not is_image_file(p.name)]
    if ignored:
        logger.info(
            "ignoring %d file(s) in '%s' that are not images (%s): %s",
            len(ignored),
            input_path,
            ", ".join(IMAGE_SUFFIXES),
            ", ".join(ignored),
        )
    if not files:
        raise ValueError(
            f"`{setting}` folder '{input_path}' contains no images (looked for {', '.join(IMAGE_SUFFIXES)}; "
            "sub-folders are not searched)."
        )
    return [{key: str(p.resolve())} for p in files]


def is_video_file(path: str | Path) -> bool:
    """Whether ``path`` has a supported video suffix (:data:`VIDEO_SUFFIXES`, case-insensitive)."""
    return str(path).lower().endswith(VIDEO_SUFFIXES)


def list_input_videos(input_path: str | Path | None, video_key: str = "video") -> list[dict]:
    """The video items of ``input_path`` (:func:`list_inputs`), or none when ``input_path`` is unset.

    An unset ``input_path`` is not an error here: a run may give its images as ``datalist`` instead (``make demo``
    does), and then has no video; without either, the image path reports the missing ``input_path``.
    """
    if input_path is None or str(input_path).strip() == "":
        return []
    # the image side (``inputs`` in inference.json) lists the same folder and names the ignored files once
    return list_inputs(input_path, video_key=video_key, log_ignored=False)["videos"]


def list_inputs(
    input_path: str | Path | None,
    image_key: str = "image",
    video_key: str = "video",
    setting: str = "input_path",
    log_ignored: bool = True,
) -> dict[str, list[dict]]:
    """Split ``input_path`` into image items and video items: a single file, or the files directly in a folder.

    The image items are exactly what :func:`list_input_images` returns for the images; videos
    (:data:`VIDEO_SUFFIXES`) are listed beside them for the video path
    (:class:`~condseg_monai.inference.video.VideoInferenceRunner`). Same folder rules: not recursive, hidden files
    skipped, other files skipped and named in the log, sorted by name. Whether a file really decodes is found out
    when it is read (a bad file is then a recorded failure, not an error here).

    Args:
        input_path: an image, a video, or a folder of images and/or videos.
        image_key: the data-dict key of an image path.
        video_key: the data-dict key of a video path.
        setting: name of the config setting, used in error messages.
        log_ignored: name the skipped files in the log.

    Returns:
        ``{"images": [{image_key: absolute path}, ...], "videos": [{video_key: absolute path}, ...]}``.

    Raises:
        ValueError: ``input_path`` is unset, missing, a file of an unsupported type, or a folder with neither
            images nor videos.
    """
    if input_path is None or str(input_path).strip() == "":
        raise ValueError(f"`{setting}` is not set: pass --{setting} <image or video file, or a folder of them>.")
    path = Path(input_path).expanduser()
    if not path.exists():
        raise ValueError(f"`{setting}` '{input_path}' does not exist.")
    if path.is_file():
        if is_video_file(path):
            return {"images": [], "videos": [{video_key: str(path.resolve())}]}
        if not is_image_file(path):
            raise ValueError(
                f"`{setting}` '{input_path}' is not a supported image or video (expected one of "
                f"{', '.join(IMAGE_SUFFIXES + VIDEO_SUFFIXES)})."
            )
        return {"images": [{image_key: str(path.resolve())}], "videos": []}
    visible = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
    images = [p for p in visible if is_image_file(p.name)]
    videos = [p for p in visible if is_video_file(p.name)]
    ignored = [p.name for p in visible if not (is_image_file(p.name) or is_video_file(p.name))]
    if ignored and log_ignored:
        logger.info(
            "ignoring %d file(s) in '%s' that are not images (%s) or videos (%s): %s",
            len(ignored),
            input_path,
            ", ".join(IMAGE_SUFFIXES),
            ", ".join(VIDEO_SUFFIXES),
            ", ".join(ignored),
        )
    if not images and not videos:
        raise ValueError(
            f"`{setting}` folder '{input_path}' contains no images or videos (looked for "
            f"{', '.join(IMAGE_SUFFIXES + VIDEO_SUFFIXES)}; sub-folders are not searched)."
        )
    return {
        "images": [{image_key: str(p.resolve())} for p in images],
        "videos": [{video_key: str(p.resolve())} for p in videos],
    }


def require_file(path: str | Path | None, setting: str = "ckpt_path") -> str:
    """Return ``path`` as a string after checking that it names an existing file.

    Args:
        path: file path (e.g. the model checkpoint).
        setting: name of the config setting, used in the error message.

    Raises:
        ValueError: ``path`` is unset or not an existing file.
    """
    if path is None or str(path).strip() == "":
        raise ValueError(f"`{setting}` is not set: pass --{setting} <file>.")
    if not Path(path).expanduser().is_file():
        raise ValueError(
            f"`{setting}` '{path}' does not exist or is not a file: pass --{setting} <model.pt> "
            "(training writes it, see bundle/docs/README.md)."
        )
    return str(Path(path).expanduser())


def load_model_weights(
    network: nn.Module,
    path: str | Path,
    map_location: str | torch.device | None = "cpu",
    strict: bool = True,
    key: str = "model",
    setting: str = "ckpt_path",
) -> nn.Module:
    """Load a checkpoint into ``network``: a plain ``state_dict`` or a dict holding one under ``key``.

    ``torch.load(weights_only=True)`` as MONAI's ``CheckpointLoader`` does, so only tensors and plain values load.

    Args:
        network: the module to fill.
        path: checkpoint file (``models/model.pt``).
        map_location: passed to ``torch.load``.
        strict: passed to ``load_state_dict``.
        key: entry holding the model in nested checkpoints (``{"model": ..., "optimizer": ...}``).
        setting: name of the config setting, used in error messages.

    Returns:
        ``network`` (for chaining in configs).

    Raises:
        ValueError: missing file or a checkpoint that is not a state dict.
    """
    path = require_file(path, setting)
    state = torch.load(path, map_location=map_location, weights_only=True)
    if isinstance(state, Mapping) and key in state and isinstance(state[key], Mapping):
        state = state[key]
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"`{setting}` '{path}' is not a model state_dict (nor a dict holding one under {key!r}).")
    network.load_state_dict(state, strict=strict)
    return network


def select_eval_split(datalist: str | Path, split: str = "test") -> tuple[str, list[dict[str, Any]]]:
    """Pick the evaluation split of a datalist, falling back from an empty ``test`` list to ``validation``.

    Args:
        datalist: datalist JSON path.
        split: ``"test"`` (default), ``"validation"`` or ``"training"``.

    Returns:
        ``(split actually used, data dicts with absolute paths)``.

    Raises:
        ValueError: unknown split, or the chosen split (after the fallback) is empty.
    """
    data = load_datalist(datalist, split, required=False)
    if not data and split == "test":
        logger.warning("the 'test' split of datalist '%s' is empty: evaluating the 'validation' split.", datalist)
        split = "validation"
        data = load_datalist(datalist, split, required=False)
    if not data:
        raise ValueError(f"nothing to evaluate: split {split!r} of datalist '{datalist}' is empty (eval_split).")
    logger.info("evaluating %d images of split '%s' of '%s'.", len(data), split, datalist)
    return split, data


def skip_existing_outputs(
    data: list[dict], output_dir: str | Path, output_postfix: str = "mask", key: str = "image"
) -> list[dict]:
    """Drop the inputs whose output already exists, to continue an interrupted run.

    The output of ``<stem>.<ext>`` is ``<output_dir>/<stem>_<output_postfix>.png`` (``.nii.gz`` for NIfTI inputs),
    as :class:`~condseg_monai.inference.SavePredictiond` names it. Only this file is looked at: the optional
    outputs (probability, overlay, ...) of a skipped input are not re-made.

    Args:
        data: data dicts ``[{key: path}, ...]`` (:func:`list_input_images`).
        output_dir: the run's output folder.
        output_postfix: postfix of the mask file (``"mask"``, or ``"uncertain"`` with ``label_output``
            ``uncertainty``).
        key: the data-dict key of the image path.

    Returns:
        the data dicts still to process, in the same order.
    """
    out = Path(output_dir)
    todo = []
    for item in data:
        suffix = ".nii.gz" if is_nifti(item[key]) else ".png"
        if not (out / f"{output_stem(item[key])}_{output_postfix}{suffix}").is_file():
            todo.append(item)
    logger.info(
        "skip_existing: %d of %d inputs already have a '_%s' output in '%s'; processing the other %d.",
        len(data) - len(todo),
        len(data),
        output_postfix,
        output_dir,
        len(todo),
    )
    return todo


def screen_eval_split(
    datalist: str | Path, split: str = "test"
) -> tuple[str, list[dict[str, Any]], list[dict[str, Any]]]:
    """:func:`select_eval_split`, then check every file of that split; unreadable cases become failures.

    Each image/mask pair is checked with :func:`condseg_monai.data.check_datalist` (exists, not empty, decodes
    completely, sizes agree, the mask is binarisable). A case with an error is left out of the evaluation and
    returned as a :func:`~condseg_monai.data.failure_record` (for the run's ``failures.json``), so one bad
    file does not stop the evaluation of the others. Warnings are logged.

    Args:
        datalist: datalist JSON path.
        split: as in :func:`select_eval_split`.

    Returns:
        ``(split actually used, readable data dicts, failure records)``.

    Raises:
        ValueError: as :func:`select_eval_split`, or a problem of the datalist itself.
    """
    split, data = select_eval_split(datalist, split)
    failed: dict[int, list[str]] = {}
    for problem in check_datalist(datalist, [split]):
        if problem.severity == "error" and problem.index is not None:
            failed.setdefault(problem.index, []).append(f"'{problem.file}': {problem.message}")
        elif problem.severity == "error":
            raise ValueError(f"cannot evaluate datalist '{datalist}': {problem}")
        else:
            logger.warning(str(problem))
    failures = [failure_record(data[i], "; ".join(reasons)) for i, reasons in sorted(failed.items())]
    kept = [item for i, item in enumerate(data) if i not in failed]
    for record in failures:
        logger.warning("case left out of the evaluation: %s", describe_failure(record))
    return split, kept, failures
