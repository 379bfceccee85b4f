# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""ConDSeg (AAAI 2025) as MONAI networks, transforms, losses, metrics and bundle workflows."""

from __future__ import annotations

__version__ = "0.1.0"
