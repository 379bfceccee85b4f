# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""The Stage-1 -> Stage-2 hand-over: ConDSeg's encoder initialised from a trained Stage-1 network."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from condseg_monai.networks.encoder import resolve_encoder
from condseg_monai.networks.official import convert_official_state_dict
from condseg_monai.networks.state_dict import format_keys, load_state_dict_file, unwrap_state_dict

__all__ = ["load_stage1_encoder"]


def load_stage1_encoder(
    model: nn.Module, stage1: Mapping[str, torch.Tensor] | str | Path, copy_buffers: bool = True
) -> None:
    """Initialise ``model.encoder`` from a trained Stage-1 network (the Stage-1 -> Stage-2 hand-over).

    Copies every encoder parameter and, with ``copy_buffers`` (default), the BatchNorm buffers
    (``running_mean``, ``running_var``, ``num_batches_tracked``) too. ``copy_buffers=False`` reproduces the
    official ``train.py``, which copies ``named_parameters()`` only and so leaves the encoder's BatchNorm
    statistics at their previous (ImageNet) values: a bug, kept only for exact reproduction.

    Args:
        model: a :class:`ConDSeg` (or any module with an ``encoder`` :class:`ResNet50Encoder`).
        stage1: a :class:`ConDSegStage1` state dict (ours, or an official Stage-1 checkpoint, recognised by its
            ``layer0.*`` keys and converted with :func:`convert_official_state_dict`), or a path to a file with one.
            Any state dict with ``encoder.*`` keys works (e.g. a full ConDSeg one).
        copy_buffers: also copy the BatchNorm buffers. Defaults to True.

    Raises:
        FileNotFoundError: ``stage1`` is a path that does not exist.
        ValueError: encoder keys are missing or have the wrong shape.
        TypeError: ``model`` has no ResNet-50 encoder.
    """
    encoder = resolve_encoder(model)
    if isinstance(stage1, (str, Path)):
        source = f"Stage-1 file '{stage1}'"
        state = load_state_dict_file(stage1, "Stage-1")
    else:
        source = "Stage-1 state dict"
        state = unwrap_state_dict(stage1, source)
    if any(k.startswith("layer0.") for k in state):
        state = convert_official_state_dict(state)

    targets = dict(encoder.named_parameters())
    if copy_buffers:
        targets.update(encoder.named_buffers())
    missing = [f"encoder.{name}" for name in targets if f"encoder.{name}" not in state]
    if missing:
        raise ValueError(f"{source} lacks encoder keys: [{format_keys(missing)}].")
    wrong = [
        f"encoder.{n}: {tuple(state['encoder.' + n].shape)} vs {tuple(t.shape)}"
        for n, t in targets.items()
        if state[f"encoder.{n}"].shape != t.shape
    ]
    if wrong:
        raise ValueError(f"{source} has encoder tensors of the wrong shape: {format_keys(wrong, 4)}.")
    with torch.no_grad():
        for name, tensor in targets.items():
            tensor.copy_(state[f"encoder.{name}"])
