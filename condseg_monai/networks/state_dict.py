# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""Reading and checking state dicts, shared by every weight loader of the package.

The ImageNet loader (:mod:`condseg_monai.networks.encoder`), the official-checkpoint converter
(:mod:`condseg_monai.networks.official`) and the Stage-1 hand-over (:mod:`condseg_monai.networks.handover`) read
files and report mismatches the same way. This module imports no network, so each loader can sit beside the
network it fills without an import cycle.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch

__all__ = ["format_keys", "load_state_dict_file", "shape_mismatches", "unwrap_state_dict"]

_WRAPPER_KEYS = ("state_dict", "model")


def unwrap_state_dict(obj: object, source: str) -> dict[str, torch.Tensor]:
    """Return the tensor mapping inside ``obj``.

    Args:
        obj: a state dict, optionally wrapped under "state_dict" or "model"; ``module.`` key prefixes (saved from
            DataParallel / DDP wrappers) are stripped.
        source: what ``obj`` is, for error messages (e.g. ``"Stage-1 file 'best.pt'"``).

    Returns:
        A new ``{key: tensor}`` dict.

    Raises:
        ValueError: ``obj`` is not a non-empty mapping of string keys to tensors.
    """
    if isinstance(obj, Mapping):
        for key in _WRAPPER_KEYS:
            if key in obj and isinstance(obj[key], Mapping):
                obj = obj[key]
                break
    if not isinstance(obj, Mapping) or not obj:
        raise ValueError(f"{source} does not contain a (non-empty) state dict, got {type(obj).__name__}.")
    bad = [k for k, v in obj.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise ValueError(f"{source} is not a state dict of tensors: bad entries {bad[:5]}.")
    return {k.removeprefix("module."): v for k, v in obj.items()}


def load_state_dict_file(path: str | Path, what: str) -> dict[str, torch.Tensor]:
    """Read a state dict file on the CPU with ``torch.load(weights_only=True)`` and unwrap it.

    Args:
        path: the ``.pth`` / ``.pt`` file.
        what: what the file holds, for error messages (e.g. ``"ImageNet ResNet-50"``).

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file is unreadable or holds no state dict (see :func:`unwrap_state_dict`).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} file not found: '{path}'.")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # unpickling errors come in many types
        raise ValueError(f"Could not read {what} file '{path}' with torch.load(weights_only=True): {e}") from e
    return unwrap_state_dict(obj, f"{what} file '{path}'")


def format_keys(keys: list[str], n: int = 8) -> str:
    """The first ``n`` of ``keys`` joined by commas, with the total count when some are left out."""
    return ", ".join(keys[:n]) + (f" ... ({len(keys)} in total)" if len(keys) > n else "")


def shape_mismatches(state: Mapping[str, torch.Tensor], expected: Mapping[str, torch.Tensor]) -> list[str]:
    """``"key: got vs expected"`` for every tensor of ``state`` whose shape differs from ``expected``'s.

    Every key of ``state`` must be in ``expected`` (check the key sets first).
    """
    return [
        f"{k}: {tuple(v.shape)} vs expected {tuple(expected[k].shape)}"
        for k, v in state.items()
        if v.shape != expected[k].shape
    ]
