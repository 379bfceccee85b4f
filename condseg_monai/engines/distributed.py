# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""Process-group life cycle of the multi-GPU workflows (``bundle/configs/multi_gpu_train.json``).

Why this is more than ``init_process_group`` / ``destroy_process_group``: ``destroy_process_group`` shuts the
backend down and forgets the group, but the C++ ``ProcessGroupGloo`` object (and its worker threads
``pt_gloo_runloop`` and ``gloo_tcp_loop``) lives on as long as anything references it, and the
``DistributedDataParallel`` wrapper held by the bundle's config parser and the Ignite engines (reference cycles)
does. Those objects are then only destroyed during interpreter finalisation, where the gloo worker threads and the
tensors of their pending work objects are torn down without a live interpreter: every so often the process aborts
with ``terminate called without an active exception`` (SIGABRT) *after* a successful training, and ``torchrun``
reports the job as failed. :func:`init_distributed` therefore registers an exit handler that destroys the group if
still needed and collects the garbage cycles while the interpreter is fully alive, so the last reference to the
process group goes away and its threads are joined before the interpreter shuts down.

Nesting: the one-command two-stage training (``configs/both_stages.json`` + this overlay) runs each stage as a workflow
inside the top-level workflow, all in one process. The group is created once, by the outermost workflow, and kept
across the stages (destroying and re-creating a gloo group between stages races with the peers' teardown); each
:func:`init_distributed` is paired with one :func:`finalize_distributed`, and only the outermost one destroys it.
"""

from __future__ import annotations

import atexit
import gc
import logging

import torch.distributed as dist

__all__ = ["finalize_distributed", "init_distributed", "release_process_groups"]

logger = logging.getLogger(__name__)

_exit_handler_registered = False
_open_workflows = 0  # init_distributed calls not yet paired with finalize_distributed


def release_process_groups() -> None:
    """Destroy the process group if one is initialized, then collect garbage cycles.

    After this, no Python object keeps a destroyed group's C++ backend (and its threads) alive unless it is still
    reachable; the training workflows' objects are unreachable once the bundle run has returned.
    """
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
    gc.collect()


def init_distributed(backend: str) -> bool:
    """Initialise the default process group from the ``torchrun`` environment unless it already exists.

    Call it once per workflow (its ``initialize``): the one-command two-stage training initialises the group at the
    top level and each stage's workflow then finds it initialised.

    Args:
        backend: ``"nccl"`` or ``"gloo"``.

    Returns:
        ``True`` (so that configs can list the call in ``initialize``).
    """
    global _exit_handler_registered, _open_workflows
    if not dist.is_available():
        raise RuntimeError("torch.distributed is not available in this PyTorch build; multi-GPU training needs it.")
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    if not _exit_handler_registered:
        atexit.register(release_process_groups)
        _exit_handler_registered = True
    _open_workflows += 1
    return True


def finalize_distributed() -> None:
    """End of a distributed workflow: wait for every rank (rank 0 may still be saving); the outermost workflow then
    destroys the group.

    The barrier matters for the two-stage training too: Stage 2 reads the checkpoint that rank 0 wrote at the end
    of Stage 1, and no rank passes this point before rank 0 has finished writing.
    """
    global _open_workflows
    _open_workflows = max(0, _open_workflows - 1)
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        if _open_workflows == 0:
            dist.destroy_process_group()
