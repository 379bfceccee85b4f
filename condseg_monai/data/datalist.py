# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""Datalist files: MONAI decathlon-style JSON with ``training``/``validation``/``test`` lists of pairs.

Example::

    {
      "name": "kvasir-seg", "seed": 0,
      "training":   [{"image": "images/a.jpg", "label": "masks/a.jpg"}, ...],
      "validation": [...],
      "test":       [...],
      "unlabeled":  [{"image": "unlabeled/c.jpg"}, ...]
    }

An entry of a labeled split may be a declared negative (an image known to hold no foreground, e.g. a
polyp-free colonoscopy frame): ``{"image": "neg/n.jpg", "negative": true}`` without a ``label`` (the loading
transforms then make an all-zero mask of the image's size, :class:`condseg_monai.transforms.NegativeLabeld`),
or with a ``label`` file that must be empty. ``unlabeled`` (optional) lists images without a mask, for
semi-supervised training; :data:`SPLITS` are the labeled splits only. A ``label_budget`` object records how a
label-scarce datalist was derived (see :func:`condseg_monai.data.keep_labeled`), a ``negatives`` object how
declared negatives were added (see :func:`condseg_monai.data.add_negatives`).

Relative paths are relative to the folder holding the JSON file, exactly as
``monai.data.load_decathlon_datalist(path, data_list_key=split, base_dir=folder)`` resolves them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidationError,
    field_validator,
    model_serializer,
    model_validator,
)

from condseg_monai.files import atomic_write_json

__all__ = [
    "SPLITS",
    "UNLABELED",
    "Datalist",
    "DatalistEntry",
    "DatasetSettings",
    "UnlabeledEntry",
    "load_datalist",
    "read_datalist",
    "resolve_entry",
    "write_datalist",
]

SPLITS: tuple[str, ...] = ("training", "validation", "test")
# key of the list of images without masks; deliberately not in SPLITS, which are the labeled splits
UNLABELED = "unlabeled"


class DatalistEntry(BaseModel):
    """One image/mask pair, or a declared negative (extra keys are kept, e.g. an ``id``).

    A declared negative (``negative`` true) is an image without any foreground; its ``label`` may be left out
    (an all-zero mask is made when it is loaded) or name a mask file, which must then be empty. Every other
    entry needs a ``label``. Serialised, ``negative`` is written only when true and ``label`` only when given,
    so datalists without negatives are written as before.
    """

    model_config = ConfigDict(extra="allow")

    image: str = Field(min_length=1, description="image file, absolute or relative to the datalist folder")
    label: str | None = Field(
        default=None,
        min_length=1,
        description="mask file, absolute or relative to the datalist folder; optional only for a declared negative",
    )
    negative: bool = Field(default=False, strict=True, description="the image holds no foreground (no polyp)")

    @model_validator(mode="after")
    def _label_unless_negative(self) -> DatalistEntry:
        if self.label is None and not self.negative:
            raise ValueError(
                f"entry of image {self.image!r} has no 'label'; an image without foreground must be declared "
                'with "negative": true'
            )
        return self

    @model_serializer(mode="wrap")
    def _compact(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data = handler(self)
        if data.get("negative") is False:
            data.pop("negative")
        if "label" in data and data["label"] is None:
            data.pop("label")
        return data


class UnlabeledEntry(BaseModel):
    """One image without a mask (extra keys are kept, e.g. an ``id``)."""

    model_config = ConfigDict(extra="allow")

    image: str = Field(min_length=1, description="image file, absolute or relative to the datalist folder")


class Datalist(BaseModel):
    """A whole datalist file. Unknown top-level keys (e.g. decathlon ``labels``) are kept."""

    model_config = ConfigDict(extra="allow")

    name: str | None = None
    description: str | None = None
    seed: int | None = None
    training: list[DatalistEntry] = Field(default_factory=list)
    validation: list[DatalistEntry] = Field(default_factory=list)
    test: list[DatalistEntry] = Field(default_factory=list)
    unlabeled: list[UnlabeledEntry] = Field(default_factory=list)
    label_budget: dict[str, Any] | None = None
    negatives: dict[str, Any] | None = None

    def split(self, name: str) -> list[DatalistEntry] | list[UnlabeledEntry]:
        """Entries of split ``name`` (one of :data:`SPLITS`, or :data:`UNLABELED`)."""
        if name not in (*SPLITS, UNLABELED):
            raise ValueError(f"unknown split {name!r}; expected one of {(*SPLITS, UNLABELED)}.")
        return getattr(self, name)

    def counts(self) -> dict[str, int]:
        """Number of entries per split."""
        return {s: len(self.split(s)) for s in SPLITS}

    def negative_counts(self) -> dict[str, int]:
        """Number of declared negatives per split."""
        return {s: sum(e.negative for e in self.split(s)) for s in SPLITS}


class DatasetSettings(BaseModel):
    """Settings of a dataset as a training workflow sees it."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    datalist: str = Field(min_length=1, description="path to the datalist JSON")
    image_size: tuple[int, int] = (256, 256)
    seed: int = 0

    @field_validator("image_size", mode="before")
    @classmethod
    def _square(cls, value: Any) -> Any:
        return (value, value) if isinstance(value, int) else value

    @field_validator("image_size")
    @classmethod
    def _positive(cls, value: tuple[int, int]) -> tuple[int, int]:
        if min(value) < 1:
            raise ValueError(f"image_size must be positive, got {value}.")
        return value


def read_datalist(path: str | Path) -> Datalist:
    """Parse and validate a datalist file.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file is not valid JSON or does not match :class:`Datalist` (message names the file).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"datalist '{path}' does not exist.")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"datalist '{path}' is not valid JSON: {e}") from e
    if not isinstance(raw, dict):
        raise ValueError(f"datalist '{path}' must hold a JSON object, got {type(raw).__name__}.")
    try:
        return Datalist.model_validate(raw)
    except ValidationError as e:
        details = "; ".join(
            f"{'.'.join(str(x) for x in err['loc'])}: {err['msg']}" for err in e.errors(include_url=False)
        )
        raise ValueError(f"datalist '{path}' is malformed: {details}") from e


def resolve_entry(entry: DatalistEntry | UnlabeledEntry, base_dir: str | Path) -> dict[str, Any]:
    """Return the entry as a dict with ``image`` (and ``label``, if any) made absolute against ``base_dir``.

    A declared negative keeps ``"negative": True`` (and has no ``label`` key when it has no mask file); other
    entries have no ``negative`` key.
    """
    d = entry.model_dump()
    for key in ("image", "label"):
        if key in d:
            d[key] = os.path.normpath(os.path.join(str(base_dir), d[key]))
    return d


def load_datalist(path: str | Path, split: str, required: bool | None = None) -> list[dict[str, Any]]:
    """Load one split as MONAI data dicts with absolute paths (for ``Dataset(data=...)`` in configs).

    Args:
        path: datalist JSON.
        split: ``"training"``, ``"validation"``, ``"test"`` or ``"unlabeled"`` (``{"image": ...}`` dicts).
        required: raise if the split is empty. Default: True for the labeled splits, False for
            ``"unlabeled"`` (an absent ``unlabeled`` list gives ``[]``).

    Raises:
        FileNotFoundError: missing datalist file.
        ValueError: unknown split, malformed file, or empty split when ``required``.
    """
    if split not in (*SPLITS, UNLABELED):
        raise ValueError(f"unknown split {split!r}; expected one of {(*SPLITS, UNLABELED)}.")
    if required is None:
        required = split != UNLABELED
    path = Path(path)
    entries = read_datalist(path).split(split)
    if required and not entries:
        raise ValueError(f"split {split!r} of datalist '{path}' is empty.")
    base = path.resolve().parent
    return [resolve_entry(e, base) for e in entries]


def write_datalist(datalist: Datalist, path: str | Path) -> Path:
    """Write ``datalist`` to ``path`` atomically (:func:`condseg_monai.files.atomic_write_json`)."""
    data = datalist.model_dump(exclude_none=True)
    if not data.get(UNLABELED):
        # an empty list is left out: labeled-only datalists stay as they were, and a present but empty
        # ``unlabeled`` list is reported by the checks as a mistake
        data.pop(UNLABELED, None)
    return atomic_write_json(path, data, indent=2)
