# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""Activation checkpointing that leaves BatchNorm running statistics exactly as without it.

``torch.utils.checkpoint`` recomputes a block's forward during backward. In training mode that second forward
would update every BatchNorm's running mean/variance a second time with the same batch (as if ``momentum`` were
about doubled) and count the batch twice, so the evaluation-mode network would drift from the one trained
without checkpointing. Here the recomputation runs with the running-statistics update switched off, so
checkpointing changes memory and time only: outputs, gradients and buffers are the same.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.utils.checkpoint import checkpoint

__all__ = ["checkpoint_module", "frozen_batchnorm_statistics"]


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


def checkpoint_module(module: nn.Module, *args: torch.Tensor, function: Callable[..., Any] | None = None) -> Any:
    """``module(*args)`` without keeping its intermediate activations for backward; they are recomputed then.

    Non-reentrant ``torch.utils.checkpoint`` (RNG state preserved) with BatchNorm statistics frozen during the
    recomputation (see :func:`frozen_batchnorm_statistics`). Use it in training mode with gradients enabled; it is
    pointless (but harmless) otherwise.

    Args:
        module: the checkpointed block (its BatchNorm layers are frozen during the recomputation).
        args: the block's tensor inputs.
        function: run ``function(*args)`` instead of ``module(*args)``, e.g. a part of ``module``'s forward.
    """
    return checkpoint(
        module if function is None else function,
        *args,
        use_reentrant=False,
        context_fn=lambda: (contextlib.nullcontext(), frozen_batchnorm_statistics(module)),
    )
