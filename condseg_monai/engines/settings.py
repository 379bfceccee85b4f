# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""The training workflow's settings: their one definition, and their validation at start.

:class:`TrainingSettings` is the definition of every setting of ``bundle/configs/train.json`` that users set:
its name, type, bounds and meaning, and whether the two-stage run (``configs/both_stages.json``) passes it on to
both stages. The *values* (the defaults) live in ``train.json`` only, so no default is written twice: every
field here is required.

``train.json`` validates them first in ``initialize`` (its ``settings`` key,
``"$condseg_monai.engines.config_settings()"``): :func:`config_settings` reads every field of
:class:`TrainingSettings` by name from the config being run, so a setting cannot be left unvalidated and no list of
names is written twice. ``configs/both_stages.json`` passes ``@settings.shared_values()`` on to the stages.
"""

from __future__ import annotations

import inspect
import os
import re
from typing import Any, Literal

from monai.bundle import ConfigParser, ReferenceResolver
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from condseg_monai.data.datalist import read_datalist

__all__ = ["TrainingSettings", "check_training_settings", "config_settings", "settings_from_config"]

_DEVICE = re.compile(r"^(cpu|cuda(:\d+)?|mps)$")
_STAGE_SPECIFIC = {"shared": False}  # set per stage by configs/stage{1,2}.json or both_stages.json's per-stage keys


class TrainingSettings(BaseModel):
    """The settings of ``bundle/configs/train.json`` (and of the stage overrides) that users set.

    Every field is required: the defaults are the values in ``train.json``. Fields marked
    ``json_schema_extra={"shared": False}`` are stage-specific; all others are passed on to both stages by the
    two-stage run (:meth:`shared_values`).
    """

    model_config = ConfigDict(extra="forbid", strict=False)

    # where things are
    bundle_root: str = Field(description="the bundle folder")
    output_dir: str = Field(description="run folder (logs, checkpoints, demo data)")
    datalist: str | None = Field(description="datalist JSON; null trains on generated demo data")
    imagenet_weights: str | None = Field(description="torchvision ResNet-50 weights file for the encoder")
    pretrained_checkpoint: str = Field(description="model.pt that fine-tuning (finetune) starts from")
    stage1_checkpoint: str | None = Field(json_schema_extra=_STAGE_SPECIFIC, description="Stage 1's best model")
    # the run
    stage: Literal[1, 2] = Field(json_schema_extra=_STAGE_SPECIFIC, description="1: Stage 1, 2: Stage 2")
    finetune: bool = Field(json_schema_extra=_STAGE_SPECIFIC, description="start from pretrained_checkpoint")
    resume: bool = Field(description="continue from the run folder's latest.pt")
    device: str = Field(description="'cpu', 'cuda' or 'cuda:N'")
    amp: bool = Field(description="mixed precision (CUDA only)")
    seed: int | None = Field(description="set_determinism seed; null: not seeded")
    num_workers: int = Field(ge=0, description="DataLoader workers")
    # data and augmentation
    image_size: int = Field(ge=32, description="training / validation side, a multiple of 16")
    batch_size: int = Field(ge=1, json_schema_extra=_STAGE_SPECIFIC, description="training batch size")
    # shared, not per stage: one k checked against each stage's own batch_size (docs/training.md)
    negatives_per_batch: int | None = Field(
        ge=0,
        description="declared negatives in every training batch; 0: left out; null: shuffled in (natural share)",
    )
    val_batch_size: int = Field(ge=1, description="validation batch size")
    rotate_limit: float | None = Field(ge=0, le=180, description="rotation range (+- degrees); null: by stage")
    rotate_prob: float | None = Field(ge=0, le=1, description="rotation probability; null: by stage")
    flip_prob: float | None = Field(ge=0, le=1, description="probability of each flip; null: by stage")
    dropout_prob: float = Field(ge=0, le=1, description="coarse-dropout probability")
    shared_augmentation_draw: bool = Field(description="Stage 1: one strong-view draw per batch (official)")
    # optimisation
    max_epochs: int = Field(ge=1, json_schema_extra=_STAGE_SPECIFIC, description="training epochs")
    epoch_length: int | None = Field(
        ge=1, description="iterations per epoch (validation, checkpoint, schedules); null: one pass over the data"
    )
    val_interval: int = Field(ge=1, description="validate every N epochs")
    learning_rate: float = Field(gt=0, description="Adam learning rate")
    encoder_lr: float = Field(gt=0, json_schema_extra=_STAGE_SPECIFIC, description="Stage 2 encoder learning rate")
    lr_patience: int = Field(ge=0, description="ReduceLROnPlateau patience (validations)")
    early_stop_patience: int = Field(ge=0, description="early-stopping patience (validations)")
    # network and loss
    feature_size: int = Field(ge=2, description="ConDSeg decoder width f (even, divisible by 4 heads)")
    use_checkpoint: bool = Field(description="selective activation checkpointing (less memory, ~8 % more time)")
    channels_last: bool = Field(description="network in the channels-last memory format (faster CPU training)")
    copy_bn_buffers: bool = Field(description="Stage 2: also copy Stage 1's BatchNorm statistics")
    double_sigmoid: bool = Field(description="the official double sigmoid in DiceBCE")
    beta_mode: Literal["batch", "sample", "none"] = Field(description="β weights of the auxiliary terms")
    beta_max: float | None = Field(gt=0, description="cap of the β weights; null: uncapped (official)")
    num_preview_images: int = Field(ge=0, description="images in the TensorBoard / PNG previews")
    # semi-supervised training (docs/training.md, "Semi-supervised training")
    semi_supervised: bool = Field(description="also train on the datalist's unlabeled images")
    ema_decay: float = Field(gt=0, lt=1, description="mean-teacher EMA decay")
    ema_warmup: bool = Field(description="teacher decay min(1 - 1/(t+1), ema_decay) at step t; false: constant")
    confidence_threshold: float = Field(ge=0.5, le=1, description="pseudo-label confidence")
    class_balanced_fraction: float | None = Field(
        gt=0, le=1, description="also the most confident share of each class's pixels; null: the threshold alone"
    )
    background_fraction: float | None = Field(
        gt=0, le=1, description="also the most confident share of the background pixels; null: the threshold alone"
    )
    unsupervised_dice_weight: float = Field(ge=0, description="Dice part of the pseudo-label terms; 0: BCE only")
    unsupervised_weight: float = Field(ge=0, description="weight of the unlabeled loss after the ramp-up")
    rampup_epochs: float | None = Field(ge=0, description="sigmoid ramp-up length; null: 20 % of max_epochs")
    unlabeled_ratio: int = Field(ge=1, description="unlabeled batches drawn per labeled batch")
    unlabeled_batch_size: int | None = Field(
        ge=1, description="images per unlabeled batch (cost: docs/training.md); null: 3/8 of batch_size, at least 1"
    )
    bcp: bool = Field(description="bidirectional copy-paste mixing (needs semi_supervised)")
    cutmix: bool = Field(description="CutMix between unlabeled images and their pseudo-labels (needs semi_supervised)")
    validate_with_teacher: bool = Field(description="validate and save the teacher")

    @field_validator("image_size")
    @classmethod
    def _multiple_of_16(cls, v: int) -> int:
        if v % 16:
            raise ValueError(f"must be a multiple of 16 (ConDSeg downsamples 16x), got {v}")
        return v

    @field_validator("feature_size")
    @classmethod
    def _even_and_divisible_by_heads(cls, v: int) -> int:
        # train.json builds ConDSeg with its default 4 CDFA heads; the network raises the same, but only later
        if v % 2 or v % 4:
            raise ValueError(f"must be even and divisible by the 4 CDFA heads, got {v}")
        return v

    @field_validator("device", mode="before")
    @classmethod
    def _device(cls, v: Any) -> str:
        if not _DEVICE.match(str(v)):  # a torch.device or a string
            raise ValueError(f"expected 'cpu', 'cuda' or 'cuda:N', got {v!r}")
        return str(v)

    @field_validator("datalist", "imagenet_weights")
    @classmethod
    def _existing_file(cls, v: str | None) -> str | None:
        if v is not None and not os.path.isfile(v):
            raise ValueError(f"file not found: {v!r}")
        return v

    @model_validator(mode="after")
    def _mixing_needs_semi_supervised(self) -> TrainingSettings:
        if self.bcp and not self.semi_supervised:
            raise ValueError("bcp: copy-paste mixing is part of semi-supervised training; set semi_supervised true too")
        if self.cutmix and not self.semi_supervised:
            raise ValueError("cutmix: mixing unlabeled images needs semi-supervised training; set semi_supervised true")
        if self.cutmix and self.bcp:
            raise ValueError("cutmix: cutmix and bcp are two ways of mixing unlabeled images; set one of them false")
        return self

    @model_validator(mode="after")
    def _negatives_fit_the_batch(self) -> TrainingSettings:
        k = self.negatives_per_batch
        if k is not None and k >= self.batch_size:
            raise ValueError(
                f"negatives_per_batch: {k} negatives leave no room for a positive in a batch of batch_size "
                f"{self.batch_size}; it must be below batch_size (or null)"
            )
        if k and self.datalist is not None:
            # the datalist itself is checked later (validate_datalist); an unreadable one is reported there
            try:
                negatives = read_datalist(self.datalist).negative_counts()["training"]
            except (OSError, ValueError):
                return self
            if not negatives:
                raise ValueError(
                    f"negatives_per_batch: {k} negatives per batch, but the training split of datalist "
                    f'{self.datalist!r} has no declared negative ("negative": true; see `prepare --negatives-dir`)'
                )
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

    @classmethod
    def shared_names(cls) -> list[str]:
        """The settings the two-stage run passes on to both stages (all but the stage-specific ones)."""
        return [
            name
            for name, field in cls.model_fields.items()
            if not (isinstance(field.json_schema_extra, dict) and field.json_schema_extra.get("shared") is False)
        ]

    def shared_values(self) -> dict[str, Any]:
        """``{name: value}`` of :meth:`shared_names` (``configs/both_stages.json`` passes it to ``run_stages``)."""
        return {name: getattr(self, name) for name in self.shared_names()}


def check_training_settings(**settings: Any) -> TrainingSettings:
    """Validate the workflow settings and raise one ``ValueError`` listing every bad key.

    Args:
        settings: every field of :class:`TrainingSettings`, by name.

    Returns:
        the validated settings.

    Raises:
        ValueError: naming each missing, unknown or invalid setting and the value given.
    """
    try:
        return TrainingSettings(**settings)
    except ValidationError as e:
        lines = []
        for err in e.errors():
            key = ".".join(str(p) for p in err["loc"]) or "config"
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                msg = "unknown setting"
            if err["type"] == "missing":
                lines.append(f"  - `{key}`: missing (define it in train.json)")
            elif key == "config":
                lines.append(f"  - {msg}")
            else:
                lines.append(f"  - `{key}` = {err.get('input')!r}: {msg}")
        raise ValueError("invalid training configuration:\n" + "\n".join(lines)) from None


def settings_from_config(config: ConfigParser | ReferenceResolver) -> TrainingSettings:
    """Validate the settings of a parsed bundle config: every field of :class:`TrainingSettings`, read by name.

    Args:
        config: the workflow's ``ConfigParser`` (e.g. ``ConfigWorkflow.parser``), or the ``ReferenceResolver``
            that resolves its items.

    Returns:
        the validated settings.

    Raises:
        ValueError: as :func:`check_training_settings`; a field the config does not define is reported missing.
    """
    resolver = config.ref_resolver if isinstance(config, ConfigParser) else config
    values = {
        name: resolver.get_resolved_content(name) for name in TrainingSettings.model_fields if name in resolver.items
    }
    return check_training_settings(**values)


def config_settings() -> TrainingSettings:
    """:func:`settings_from_config` of the bundle config whose expression calls it (``train.json``'s ``settings``).

    A MONAI config expression only sees the items it names; this helper finds the ``ReferenceResolver`` that is
    evaluating it (the innermost one on the call stack, so a stage workflow run inside ``configs/both_stages.json``
    validates its own config) and reads every setting from it by name.

    Raises:
        RuntimeError: called outside the evaluation of a MONAI bundle config.
        ValueError: as :func:`check_training_settings`.
    """
    frame = inspect.currentframe()
    try:
        while frame is not None:
            resolver = frame.f_locals.get("self")
            if isinstance(resolver, ReferenceResolver):
                return settings_from_config(resolver)
            frame = frame.f_back
    finally:
        del frame
    raise RuntimeError(
        "config_settings() reads the settings of the MONAI bundle config that evaluates it: call it from a config "
        "expression (train.json's `settings`), or call settings_from_config(parser) from Python."
    )
