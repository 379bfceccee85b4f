# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""Validation of the training workflow's top-level settings, so that bad values fail at start.

The bundle configs call :func:`check_training_settings` from their ``initialize`` list with the values of
their top-level keys; every problem is reported at once, each naming the config key.
"""

from __future__ import annotations

import os
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

__all__ = ["TrainingSettings", "check_training_settings"]

_DEVICE = re.compile(r"^(cpu|cuda(:\d+)?|mps)$")


class TrainingSettings(BaseModel):
    """Top-level keys of ``bundle/configs/train.json`` (and the stage overrides) that users set."""

    model_config = ConfigDict(extra="forbid", strict=False)

    stage: Literal[1, 2]
    datalist: str | None = None
    image_size: int = Field(ge=32)
    batch_size: int = Field(ge=1)
    max_epochs: int = Field(ge=1)
    val_interval: int = Field(ge=1)
    learning_rate: float = Field(gt=0)
    encoder_lr: float = Field(gt=0)
    lr_patience: int = Field(ge=0)
    early_stop_patience: int = Field(ge=0)
    num_workers: int = Field(ge=0)
    device: str
    amp: bool
    seed: int | None = None
    resume: bool = False
    double_sigmoid: bool = False
    beta_mode: Literal["batch", "sample", "none"] = "batch"
    use_checkpoint: bool = True
    stage1_checkpoint: str | None = None
    imagenet_weights: str | None = None
    # semi-supervised training (docs/training.md, "Semi-supervised training")
    semi_supervised: bool = False
    ema_decay: float = Field(default=0.99, gt=0, lt=1)
    confidence_threshold: float = Field(default=0.95, ge=0.5, le=1)
    unsupervised_weight: float = Field(default=1.0, ge=0)
    rampup_epochs: float | None = Field(default=None, ge=0)
    unlabeled_ratio: int = Field(default=1, ge=1)
    bcp: bool = False
    validate_with_teacher: bool = True

    @field_validator("image_size")
    @classmethod
    def _multiple_of_16(cls, v: int) -> int:
        if v % 16:
            raise ValueError(f"must be a multiple of 16 (ConDSeg downsamples 16x), got {v}")
        return v

    @field_validator("device")
    @classmethod
    def _device(cls, v: str) -> str:
        if not _DEVICE.match(str(v)):
            raise ValueError(f"expected 'cpu', 'cuda' or 'cuda:N', got {v!r}")
        return str(v)

    @field_validator("datalist", "imagenet_weights")
    @classmethod
    def _existing_file(cls, v: str | None) -> str | None:
        if v is not None and not os.path.isfile(v):
            raise ValueError(f"file not found: {v!r}")
        return v

    @model_validator(mode="after")
    def _bcp_needs_semi_supervised(self) -> TrainingSettings:
        if self.bcp and not self.semi_supervised:
            raise ValueError("bcp: copy-paste mixing is part of semi-supervised training; set semi_supervised true too")
        return self

    @model_validator(mode="after")
    def _stage1_checkpoint_exists(self) -> TrainingSettings:
        # Resuming Stage 2 restores the full state, so the Stage-1 file is only needed on a fresh start.
        path = self.stage1_checkpoint
        if self.stage == 2 and path is not None and not self.resume and not os.path.isfile(path):
            raise ValueError(
                f"stage1_checkpoint: Stage-1 checkpoint not found at {path!r}; run Stage 1 first "
                "(configs/stage1.json) or set stage1_checkpoint to null to start from ImageNet/random weights"
            )
        return self


def check_training_settings(**settings: Any) -> TrainingSettings:
    """Validate the workflow settings and raise one ``ValueError`` listing every bad key.

    Returns:
        the validated settings.
    """
    try:
        return TrainingSettings(**settings)
    except ValidationError as e:
        lines = []
        for err in e.errors():
            key = ".".join(str(p) for p in err["loc"]) or "config"
            given = err.get("input")
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                msg = "unknown setting"
            lines.append(f"  - `{key}` = {given!r}: {msg}" if key != "config" else f"  - {msg}")
        raise ValueError("invalid training configuration:\n" + "\n".join(lines)) from None
