# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""Tests of PILWriterHW."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from monai.data import PILWriter
from PIL import Image

from condseg_monai.data import PILWriterHW


def test_writes_rows_first(tmp_path: Path) -> None:
    arr = np.zeros((1, 5, 9), np.uint8)  # (C, H, W)
    arr[0, 1, 7] = 255
    for cls, name in ((PILWriterHW, "hw.png"), (PILWriter, "monai.png")):
        writer = cls(output_dtype=np.uint8, scale=None)
        writer.set_data_array(arr, channel_dim=0, squeeze_end_dims=True)
        writer.write(tmp_path / name)
    hw = np.asarray(Image.open(tmp_path / "hw.png"))
    assert hw.shape == (5, 9) and hw[1, 7] == 255 and hw.sum() == 255
    # MONAI's own writer expects (W, H) arrays and would transpose ours
    assert np.asarray(Image.open(tmp_path / "monai.png")).shape == (9, 5)
    writer = PILWriterHW(output_dtype=np.uint8, scale=None)
    writer.set_data_array(arr, channel_dim=0, squeeze_end_dims=True)
    writer.write(tmp_path / "explicit.png", reverse_indexing=True)  # an explicit choice still wins
    assert np.asarray(Image.open(tmp_path / "explicit.png")).shape == (9, 5)
