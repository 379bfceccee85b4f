# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""The independent re-implementation of the official ConDSeg (``bench/official_reference.py``) is shared by the
fidelity tests here and the side-by-side speed benchmarks; it lives in ``bench/`` so that the benchmarks never
import from the tests."""

from __future__ import annotations

import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))
