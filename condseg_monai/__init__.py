# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""ConDSeg (AAAI 2025) as MONAI networks, transforms, losses, metrics and bundle workflows.

Subpackages load on first attribute access, so a bundle config's ``"$import condseg_monai"`` makes
``condseg_monai.networks.ConDSeg`` and friends available without importing everything up front.
"""

from __future__ import annotations

import importlib
from types import ModuleType

__version__ = "0.1.0"

_SUBPACKAGES = (
    "data",
    "engines",
    "handlers",
    "inference",
    "losses",
    "metrics",
    "networks",
    "transforms",
    "visualize",
)

__all__ = ["__version__", *_SUBPACKAGES]


def __getattr__(name: str) -> ModuleType:
    if name in _SUBPACKAGES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
