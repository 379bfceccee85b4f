# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""Crash-safe checkpointing: MONAI's ``CheckpointSaver`` with atomic writes and resumable best-metric state.

MONAI's ``CheckpointSaver`` writes in place (``atomic=False``) and, with a fixed file name, removes the old
file *before* writing the new one, so a crash while saving can leave no loadable checkpoint at all. Here
every file is written to a temporary file in the same folder, flushed to disk and moved over the old one
with ``os.replace`` (:func:`condseg_monai.files.atomic_torch_save`); the previous checkpoint stays loadable until
the new one is complete.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch.distributed as dist
from ignite.engine import Engine
from ignite.handlers.checkpoint import BaseSaveHandler
from monai.handlers import CheckpointLoader, CheckpointSaver

from condseg_monai.files import atomic_torch_save  # also public here, where it was first defined

__all__ = ["atomic_torch_save", "AtomicDiskSaver", "AtomicCheckpointSaver", "ResumeCheckpointLoader"]


class AtomicDiskSaver(BaseSaveHandler):
    """Ignite save handler writing atomically, optionally always to one fixed file name.

    Args:
        dirname: folder of the checkpoints (created if missing).
        filename: fixed file name to use instead of ignite's generated one (e.g. ``"model.pt"``).
    """

    def __init__(self, dirname: str | os.PathLike, filename: str | None = None) -> None:
        self.dirname = Path(dirname)
        self.filename = filename

    def __call__(self, checkpoint: Mapping, filename: str, metadata: Mapping | None = None) -> None:
        atomic_torch_save(checkpoint, self.dirname / (self.filename or filename))

    def remove(self, filename: str) -> None:
        # With a fixed name the new file replaces the old one atomically; deleting it first (as ignite
        # does before saving) would open a window with no checkpoint on disk.
        if self.filename is None:
            (self.dirname / filename).unlink(missing_ok=True)


class AtomicCheckpointSaver(CheckpointSaver):
    """``monai.handlers.CheckpointSaver`` whose files are written atomically.

    Accepts every argument of ``CheckpointSaver`` plus ``interval_filename``: a fixed name for the periodic
    checkpoint (e.g. ``"latest.pt"`` with ``save_interval=1``), which makes "the latest full training
    state" one well-known file that resuming can find, and ``engine_key``: when set, the engine the saver
    is attached to (and its AMP ``scaler``, if any) joins ``save_dict`` under that key, because a bundle
    config cannot reference the trainer from inside the trainer's own handler list without a reference
    cycle. In a distributed run only rank 0 writes (the saver does not attach elsewhere), so configs need
    no rank conditions for it. The saver also exposes ``state_dict()`` /
    ``load_state_dict()`` of its best-metric tracker, so a resumed run keeps comparing against the best
    score seen before the interruption instead of overwriting the best model with a worse one.
    """

    def __init__(
        self, *args: Any, interval_filename: str | None = None, engine_key: str | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.engine_key = engine_key
        fixed = {
            "_final_checkpoint": self._final_filename,
            "_key_metric_checkpoint": kwargs.get("key_metric_filename"),
            "_interval_checkpoint": interval_filename,
        }
        for attr, name in fixed.items():
            checkpoint = getattr(self, attr)
            if checkpoint is not None:
                checkpoint.save_handler = AtomicDiskSaver(self.save_dir, name)

    def attach(self, engine: Engine) -> None:
        if dist.is_available() and dist.is_initialized() and dist.get_rank() != 0:
            return
        _add_engine(self.save_dict, engine, self.engine_key)
        super().attach(engine)

    def state_dict(self) -> dict[str, Any]:
        """State of the best-metric tracker (empty when no key metric is tracked)."""
        if self._key_metric_checkpoint is None:
            return {}
        return self._key_metric_checkpoint.state_dict()

    def load_state_dict(self, state_dict: dict) -> None:
        if state_dict and self._key_metric_checkpoint is not None:
            self._key_metric_checkpoint.load_state_dict(state_dict)


class ResumeCheckpointLoader(CheckpointLoader):
    """``monai.handlers.CheckpointLoader`` that also restores the engine it is attached to.

    The counterpart of ``AtomicCheckpointSaver(engine_key=...)``: the engine (epoch, iteration) and its AMP
    scaler join ``load_dict`` under ``engine_key`` at attach time, so resuming restores the trainer's
    position together with model, optimizer, scheduler, early-stopping and best-metric states.
    """

    def __init__(self, *args: Any, engine_key: str | None = "trainer", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.engine_key = engine_key

    def attach(self, engine: Engine) -> None:
        _add_engine(self.load_dict, engine, self.engine_key)
        super().attach(engine)


def _add_engine(objects: dict, engine: Engine, key: str | None) -> None:
    if key is None:
        return
    objects[key] = engine
    scaler = getattr(engine, "scaler", None)
    if scaler is not None and hasattr(scaler, "state_dict"):
        objects[f"{key}_amp_scaler"] = scaler
