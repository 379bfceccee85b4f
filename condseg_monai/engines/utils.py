# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""Small helpers the bundle configs call: optimizer parameter groups, Stage-1 hand-over, resume state and files."""

from __future__ import annotations

import os
from typing import Any

import torch

from condseg_monai.inferers.consistency import ConsistencyInferer
from condseg_monai.networks.nets.condseg import ConDSegOutput, condseg_mask

__all__ = ["encoder_param_groups", "init_from_stage1", "resume_checkpoint_path", "scored_prediction", "training_state"]


def scored_prediction(pred: torch.Tensor) -> torch.Tensor:
    """The map the training metrics score, from one decollated training output.

    Args:
        pred: ``(4, C, H, W)``: ConDSeg's stacked training output (:class:`ConDSegOutput`), gives its ``MASK``;
            ``(2, C, H, W)``: the Stage-1 views of :class:`ConsistencyInferer`, gives the ``CLEAN`` view;
            ``(C, H, W)``: any other network's logits, returned as they are.

    Returns:
        ``(C, H, W)`` logits.
    """
    if pred.ndim != 4:
        return pred
    if pred.shape[0] == 2:
        return pred[ConsistencyInferer.CLEAN]
    if pred.shape[0] != len(ConDSegOutput):
        raise ValueError(f"expected a (4, C, H, W) ConDSeg or (2, C, H, W) Stage-1 output, got {tuple(pred.shape)}.")
    return condseg_mask(pred, batched=False)


def encoder_param_groups(network: torch.nn.Module, lr: float, encoder_lr: float) -> list[dict[str, Any]]:
    """Adam parameter groups: the encoder at ``encoder_lr`` and everything else at ``lr``.

    When the two rates are equal (Stage 1 trains the whole network at one rate, as the paper) or the network has
    no ``encoder`` attribute, there is a single group named ``all``.

    Returns:
        a list usable as ``torch.optim.Adam(params=...)``; groups carry a ``name`` key.
    """
    module = getattr(network, "module", network)  # DistributedDataParallel
    encoder = getattr(module, "encoder", None)
    if encoder is None or encoder_lr == lr:
        return [{"params": [p for p in network.parameters() if p.requires_grad], "lr": lr, "name": "all"}]
    enc_ids = {id(p) for p in encoder.parameters()}
    enc = [p for p in module.parameters() if id(p) in enc_ids and p.requires_grad]
    rest = [p for p in module.parameters() if id(p) not in enc_ids and p.requires_grad]
    return [
        {"params": enc, "lr": encoder_lr, "name": "encoder"},
        {"params": rest, "lr": lr, "name": "decoder"},
    ]


def init_from_stage1(network: torch.nn.Module, checkpoint: str | os.PathLike | None, copy_buffers: bool = True):
    """Initialise ConDSeg's encoder from a Stage-1 checkpoint (parameters and BatchNorm buffers).

    Args:
        network: the ConDSeg network.
        checkpoint: path of the Stage-1 best model; ``None`` leaves the network unchanged.
        copy_buffers: ``False`` reproduces the official code, which copies parameters only.

    Returns:
        ``network``, so configs can write ``"$condseg_monai.engines.init_from_stage1(@network_def, ...)"``.
    """
    if checkpoint is not None:
        from condseg_monai.networks import load_stage1_encoder

        load_stage1_encoder(network, os.fspath(checkpoint), copy_buffers=copy_buffers)
    return network


def resume_checkpoint_path(resume_dir: str | os.PathLike, resume: bool, filename: str = "latest.pt") -> str:
    """Path of the latest full training state, checked when resuming.

    Raises:
        FileNotFoundError: ``resume`` is set but there is nothing to resume from.
    """
    path = os.path.join(os.fspath(resume_dir), filename)
    if resume and not os.path.isfile(path):
        raise FileNotFoundError(
            f"resume: no training state to resume from at {path!r} (setting `resume`); "
            "run without --resume first, or point `output_dir` at the interrupted run."
        )
    return path


def training_state(**objects: Any) -> dict[str, Any]:
    """The objects of a resumable training state, leaving out the ``None`` ones (e.g. no teacher when supervised).

    Returns:
        ``{name: object}`` for ``CheckpointSaver(save_dict=...)`` / ``CheckpointLoader(load_dict=...)``.
    """
    return {name: obj for name, obj in objects.items() if obj is not None}
