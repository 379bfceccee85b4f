# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""Inferers: how the networks are run on a batch (MONAI ``Inferer`` subclasses)."""

from __future__ import annotations

from .condseg import DEFAULT_TTA_FLIPS, ConDSegInferer
from .consistency import ConsistencyInferer

__all__ = ["DEFAULT_TTA_FLIPS", "ConDSegInferer", "ConsistencyInferer"]
