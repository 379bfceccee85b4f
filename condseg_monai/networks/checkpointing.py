# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""Selective activation checkpointing that leaves BatchNorm running statistics exactly as without it.

``torch.utils.checkpoint`` recomputes a block's forward during backward instead of keeping its activations. Two
refinements make it cheap and exact here:

- **selective**: the outputs of the spatial (k x k, k > 1) convolutions are kept, everything else of the block
  (BatchNorm, ReLU, upsampling, attention gates, concatenations, 1x1 convolutions, the CDFA aggregation) is
  recomputed from them in backward (:func:`save_spatial_convolutions`, PyTorch's selective activation
  checkpointing). The expensive part of a block is its k x k convolutions and the bulky part is the cheap
  memory-bound layers around them, so backward redoes a small part of the work, for most of the memory saving;
- **BatchNorm frozen during the recomputation**: in training mode a second forward would update every
  BatchNorm's running mean/variance a second time with the same batch (as if ``momentum`` were about doubled) and
  count the batch twice, so the evaluation-mode network would drift from the one trained without checkpointing.

Checkpointing therefore changes memory and time only: outputs, gradients and buffers are the same.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.utils.checkpoint import CheckpointPolicy, checkpoint, create_selective_checkpoint_contexts

__all__ = ["checkpoint_module", "checkpointed_blocks", "frozen_batchnorm_statistics", "save_spatial_convolutions"]


@contextlib.contextmanager
def frozen_batchnorm_statistics(module: nn.Module) -> Iterator[None]:
    """Within the context, BatchNorm layers of ``module`` still normalise with batch statistics in training mode
    but do not update ``running_mean``/``running_var``/``num_batches_tracked``."""
    saved = []
    for m in module.modules():
        if isinstance(m, _BatchNorm) and m.track_running_stats and m.num_batches_tracked is not None:
            saved.append((m, m.momentum, m.num_batches_tracked.clone()))
            # momentum 0 keeps the running averages (also for momentum=None layers); the counter is restored below
            m.momentum = 0.0
    try:
        yield
    finally:
        for m, momentum, count in saved:
            m.momentum = momentum
            m.num_batches_tracked.copy_(count)


def save_spatial_convolutions(ctx: Any, op: Any, *args: Any, **kwargs: Any) -> CheckpointPolicy:
    """Selective-checkpointing policy: keep the output of every k x k convolution (k > 1), recompute the rest."""
    if op is torch.ops.aten.convolution.default and args[1].shape[-1] > 1:  # args: input, weight, ...
        return CheckpointPolicy.MUST_SAVE
    return CheckpointPolicy.PREFER_RECOMPUTE


@contextlib.contextmanager
def _recomputation(selective: contextlib.AbstractContextManager, module: nn.Module) -> Iterator[None]:
    # the BatchNorm bookkeeping (clone / copy_ of the counters) must stay outside the selective-checkpointing mode,
    # which expects exactly the forward's operators during the recomputation
    with frozen_batchnorm_statistics(module), selective:
        yield


def _contexts(module: nn.Module) -> tuple[contextlib.AbstractContextManager, contextlib.AbstractContextManager]:
    forward, recompute = create_selective_checkpoint_contexts(save_spatial_convolutions)
    return forward, _recomputation(recompute, module)


def checkpoint_module(module: nn.Module, *args: torch.Tensor, function: Callable[..., Any] | None = None) -> Any:
    """``module(*args)`` keeping only its k x k convolution outputs for backward; the rest is recomputed then.

    Non-reentrant ``torch.utils.checkpoint`` (RNG state preserved) with the :func:`save_spatial_convolutions`
    policy and BatchNorm statistics frozen during the recomputation (see :func:`frozen_batchnorm_statistics`). Use
    it in training mode with gradients enabled; it is pointless (but harmless) otherwise.

    Args:
        module: the checkpointed block (its BatchNorm layers are frozen during the recomputation).
        args: the block's tensor inputs.
        function: run ``function(*args)`` instead of ``module(*args)``, e.g. a part of ``module``'s forward.
    """
    return checkpoint(
        module if function is None else function,
        *args,
        use_reentrant=False,
        context_fn=lambda: _contexts(module),
    )


@contextlib.contextmanager
def checkpointed_blocks(blocks: Iterable[nn.Module]) -> Iterator[None]:
    """Within the context, every call of one of ``blocks`` runs through :func:`checkpoint_module`.

    Each block is its own checkpoint region, so backward recomputes one block at a time (one region around a whole
    network would recompute, and hold, all of its activations at once). The blocks' ``forward`` is wrapped for the
    duration of the context only; the modules, their parameters and their state-dict keys are unchanged.
    """
    wrapped = []
    try:
        for block in blocks:
            block.forward = functools.partial(checkpoint_module, block, function=block.forward)
            wrapped.append(block)
        yield
    finally:
        for block in wrapped:
            del block.forward  # the instance attribute; the class's forward is back
