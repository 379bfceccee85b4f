# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""The model's operating point (mask threshold and minimum polyp area), stored beside its checkpoint.

``models/model.pt`` -> ``models/model.operating_point.json``. ``run calibrate`` (``bundle/configs/evaluate.json``)
writes it from a validation set; inference and evaluation read it (:func:`resolve_operating_point`), and a
``--threshold`` / ``--min_area`` given on the command line wins over the stored value.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from condseg_monai.files import atomic_write_json
from condseg_monai.metrics.detection import OperatingPoint

__all__ = [
    "OPERATING_POINT_SUFFIX",
    "load_operating_point",
    "operating_point_path",
    "resolve_operating_point",
    "save_operating_point",
]

logger = logging.getLogger(__name__)

OPERATING_POINT_SUFFIX = ".operating_point.json"


def operating_point_path(ckpt_path: str | os.PathLike) -> Path:
    """``<folder>/<checkpoint stem>.operating_point.json`` for the checkpoint ``ckpt_path``."""
    path = Path(ckpt_path)
    return path.with_name(path.stem + OPERATING_POINT_SUFFIX)


def save_operating_point(operating_point: OperatingPoint, ckpt_path: str | os.PathLike) -> Path:
    """Write ``operating_point`` beside the checkpoint ``ckpt_path`` (atomically) and return the file's path."""
    path = atomic_write_json(operating_point_path(ckpt_path), operating_point.to_dict(), indent=2)
    logger.info(
        "operating point threshold %.4g, min_area %.4g written to %s",
        operating_point.threshold,
        operating_point.min_area,
        path,
    )
    return Path(path)


def load_operating_point(ckpt_path: str | os.PathLike | None) -> OperatingPoint | None:
    """The operating point stored beside ``ckpt_path``, or ``None`` when there is none.

    Raises:
        ValueError: the file exists but is not valid (its path named).
    """
    if ckpt_path is None:
        return None
    path = operating_point_path(ckpt_path)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"operating point file '{path}' cannot be read: {e}") from e
    if not isinstance(data, dict):
        raise ValueError(f"operating point file '{path}' must hold a JSON object.")
    return OperatingPoint.from_dict(data, source=f"operating point file '{path}'")


def resolve_operating_point(
    ckpt_path: str | os.PathLike | None, threshold: float | None = None, min_area: float | None = None
) -> OperatingPoint:
    """The operating point a run uses: ``threshold`` / ``min_area`` when given, else the stored ones, else defaults.

    Args:
        ckpt_path: the model checkpoint (its operating point file is looked for beside it).
        threshold: the command line's ``--threshold`` (``None``: stored, else 0.5).
        min_area: the command line's ``--min_area`` (``None``: stored, else
            :data:`~condseg_monai.metrics.detection.DEFAULT_MIN_AREA`).

    Raises:
        ValueError: a value out of range (names ``threshold`` / ``min_area``) or an invalid stored file.
    """
    stored = load_operating_point(ckpt_path)
    base = stored or OperatingPoint()
    try:
        result = OperatingPoint(
            threshold=base.threshold if threshold is None else float(threshold),
            min_area=base.min_area if min_area is None else float(min_area),
            chosen_by=base.chosen_by if threshold is None and min_area is None else {"command_line": True},
        )
    except ValueError as e:
        raise ValueError(f"threshold / min_area: {e}") from e
    source = "stored " + str(operating_point_path(ckpt_path)) if stored is not None else "default"
    if threshold is not None or min_area is not None:
        source = "command line" + (f" (over the stored {operating_point_path(ckpt_path)})" if stored else "")
    logger.info(
        "operating point: threshold %.4g, min_area %.4g (%s)",
        result.threshold,
        result.min_area,
        source,
    )
    return result
