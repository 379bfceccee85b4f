# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""The picture helpers (``condseg_monai.visualize``): the preview grid and its column titles."""

from __future__ import annotations

import pytest
import torch

from condseg_monai.visualize import make_grid, title_strip


def test_grid_with_titles_puts_the_strip_above_the_unchanged_grid() -> None:
    rows = [[torch.zeros(3, 8, 10), torch.full((3, 8, 10), 0.5)], [torch.ones(3, 8, 10)]]
    plain = make_grid(rows)
    assert plain.shape == (3, 2 * (8 + 2) + 2, 2 * (10 + 2) + 2)
    titled = make_grid(rows, titles=["a", "b"])
    strip = titled.shape[1] - plain.shape[1]
    assert strip > 0 and torch.equal(titled[:, strip:], plain)
    with pytest.raises(ValueError, match="2 columns"):
        make_grid(rows, titles=["only one"])


def test_title_strip_wraps_long_titles_and_stays_in_its_column() -> None:
    one_line = title_strip(["x"], panel_width=64)
    wrapped = title_strip(["a title much wider than one panel"], panel_width=64)
    assert one_line.shape[0] == 3 and one_line.shape[2] == wrapped.shape[2] == 64 + 2 * 2
    assert wrapped.shape[1] > one_line.shape[1], "a long title wraps to more lines"
    assert (wrapped < 0.5).any() and float(wrapped.min()) >= 0.0 and float(wrapped.max()) <= 1.0
    two = title_strip(["left", "right"], panel_width=32, pad=2)
    # nothing is drawn in the padding between the columns (text is clipped to its column)
    assert torch.equal(two[:, :, 34:36], torch.ones_like(two[:, :, 34:36]))
