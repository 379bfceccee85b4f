# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""Helpers the bundle configs call: input discovery, checkpoint checks and loading, evaluation split choice."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from condseg_monai.data.datalist import load_datalist
from condseg_monai.transforms.readers import NIFTI_SUFFIXES, PIL_SUFFIXES

__all__ = [
    "IMAGE_SUFFIXES",
    "is_image_file",
    "list_input_images",
    "load_model_weights",
    "require_file",
    "select_eval_split",
]

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES: tuple[str, ...] = tuple(f".{s}" for s in (*PIL_SUFFIXES, *NIFTI_SUFFIXES))


def is_image_file(path: str | Path) -> bool:
    """Whether ``path`` has a supported image suffix (JPG/PNG/BMP/TIF or NIfTI, case-insensitive)."""
    return str(path).lower().endswith(IMAGE_SUFFIXES)


def list_input_images(input_path: str | Path | None, key: str = "image", setting: str = "input_path") -> list[dict]:
    """Data dicts ``[{key: path}, ...]`` for a single image file or every image directly inside a folder.

    Folders are not searched recursively (outputs are named after the input file, so two inputs with the same
    name in different sub-folders would overwrite each other). Hidden files are skipped. Sorted by name.

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
    files = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith(".") and is_image_file(p.name))
    if not files:
        raise ValueError(
            f"`{setting}` folder '{input_path}' contains no images (looked for {', '.join(IMAGE_SUFFIXES)}; "
            "sub-folders are not searched)."
        )
    return [{key: str(p.resolve())} for p in files]


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
