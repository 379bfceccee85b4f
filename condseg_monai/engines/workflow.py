# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""The decisions of the training workflow, by name: ``bundle/configs/train.json`` declares, these decide.

Each helper is one derived setting of ``train.json`` (demo or real-data defaults, the training datalist, whether
Stage 2 has a mean teacher, which network is validated and saved, the trainer's handler list, ...), so the config
reads as declarations that name them and each rule is tested once (``tests/engines/test_workflow.py``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from types import SimpleNamespace
from typing import Any

import torch

__all__ = [
    "checked_datalist",
    "ema_model",
    "evaluation_network",
    "finetunes_from",
    "is_main_rank",
    "memory_format",
    "run_defaults",
    "train_handlers",
    "training_datalist",
    "uses_amp",
    "uses_mixing",
    "uses_demo_data",
    "uses_teacher",
]

DEMO_UNLABELED = 8  # unlabeled images of the generated demo data of a semi-supervised run


def run_defaults(use_demo_data: bool, data: Mapping[str, Any], demo: Mapping[str, Any]) -> SimpleNamespace:
    """The defaults of the run: ``demo`` on the generated demo data, ``data`` otherwise.

    ``train.json`` declares both tables under ``defaults`` (the stage configs replace them with their own) and
    its settings read them (``"image_size": "$@run_defaults.image_size"``); a value given on the command line
    replaces the setting itself, so it applies on either data.

    Args:
        use_demo_data: the run trains on the generated demo data (:func:`uses_demo_data`).
        data: the defaults on real data, e.g. ``{"image_size": 256, "batch_size": 12, "max_epochs": 50}``.
        demo: the defaults on the demo data (same keys).

    Returns:
        the chosen table, its keys as attributes.
    """
    if set(data) != set(demo):
        raise ValueError(f"defaults: `data` and `demo` must set the same keys, got {sorted(data)} and {sorted(demo)}")
    return SimpleNamespace(**(demo if use_demo_data else data))


def uses_demo_data(datalist: str | None, training_data: Sequence[Mapping[str, Any]], dataset_dir: str) -> bool:
    """Whether the run trains on the generated demo data: no ``datalist`` and every training image in ``dataset_dir``.

    A caller that injects its own training list without a datalist (MONAI Label's ``BundleTrainTask`` overrides
    ``train#dataset#data``) gets the real-data defaults.
    """
    from condseg_monai.data import is_demo_data

    return datalist is None and is_demo_data(training_data, dataset_dir)


def training_datalist(datalist: str | None, dataset_dir: str, semi_supervised: bool = False) -> str:
    """The datalist to train from: ``datalist``, or the generated demo data's (written into ``dataset_dir``).

    The demo data gets :data:`DEMO_UNLABELED` unlabeled images when ``semi_supervised``. Generation is idempotent.
    """
    if datalist:
        return datalist
    from condseg_monai.data import generate_demo_dataset

    return str(generate_demo_dataset(dataset_dir, num_unlabeled=DEMO_UNLABELED if semi_supervised else 0))


def checked_datalist(datalist: str, semi_supervised: bool = False) -> str:
    """``datalist`` after :func:`~condseg_monai.data.validate_datalist` (which raises naming every bad entry)."""
    from condseg_monai.data import validate_datalist

    validate_datalist(datalist, require_unlabeled=semi_supervised)
    return datalist


def is_main_rank() -> bool:
    """True outside ``torch.distributed`` and on rank 0: the process that writes logs, previews and TensorBoard."""
    import torch.distributed as dist

    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


def uses_amp(amp: bool, device: str | torch.device) -> bool:
    """Mixed precision is used when asked for and the device is a CUDA device (setting ``amp`` is ignored on CPU)."""
    return bool(amp) and "cuda" in str(device)


def memory_format(channels_last: bool) -> torch.memory_format:
    """``torch.channels_last`` or ``torch.contiguous_format`` (setting ``channels_last``)."""
    return torch.channels_last if channels_last else torch.contiguous_format


def finetunes_from(finetune: bool, pretrained_checkpoint: str | os.PathLike) -> bool:
    """Whether training starts from ``pretrained_checkpoint``: ``finetune`` is set and the file exists."""
    return bool(finetune) and os.path.isfile(pretrained_checkpoint)


def uses_teacher(semi_supervised: bool, stage: int) -> bool:
    """Semi-supervised Stage 2 trains with a mean teacher; semi-supervised Stage 1 uses consistency instead."""
    return bool(semi_supervised) and stage == 2


def uses_mixing(mixing: bool, use_teacher: bool) -> bool:
    """Whether a mixing setting (``bcp``, ``cutmix``) applies: both mix in the teacher's pseudo-labels, so they apply
    with a teacher only (Stage 2)."""
    return bool(mixing) and bool(use_teacher)


def ema_model(ema: Any) -> torch.nn.Module | None:
    """The teacher: the ``ema_model`` of ignite's ``EMAHandler`` ``ema``, or ``None`` when it is switched off."""
    return None if ema is None else ema.ema_model


def evaluation_network(
    network: torch.nn.Module, teacher: torch.nn.Module | None, validate_with_teacher: bool = True
) -> torch.nn.Module:
    """The network that is validated, previewed and saved as the best model: the teacher if there is one and
    ``validate_with_teacher``, else the trained ``network``."""
    return teacher if teacher is not None and validate_with_teacher else network


def train_handlers(handlers: Iterable[Any], *named: Any) -> list[Any]:
    """The trainer's handlers: the ``train#handlers`` list, then the named handlers, without those switched off.

    Handlers that other keys refer to (early stopping and the EMA teacher are part of the resume state) are
    defined under their own names; a named one disabled with ``_disabled_`` resolves to ``None`` and is left out.
    """
    return [h for h in [*handlers, *named] if h is not None]
