# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""The benchmark scripts import each other as top-level modules (``bench/`` is their ``sys.path[0]``)."""

from __future__ import annotations

import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))
