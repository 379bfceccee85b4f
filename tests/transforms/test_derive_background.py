# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""Tests of DeriveBackgroundd."""

from __future__ import annotations

import torch

from condseg_monai.transforms import DeriveBackgroundd


def test_background_is_complement_of_augmented_mask() -> None:
    mask = torch.zeros(1, 4, 5)
    mask[0, 1:3, 2:4] = 1.0
    flipped = {"label": mask.flip(-1)}  # e.g. after a flip: the background follows the flipped mask
    out = DeriveBackgroundd(keys="label")(flipped)
    assert torch.equal(out["label_background"], 1.0 - mask.flip(-1))
    assert torch.equal(out["label"] + out["label_background"], torch.ones(1, 4, 5))
    assert "bg" in DeriveBackgroundd(keys="label", postfix="x")({"label": mask, "bg": 0}) and "label_x" in (
        DeriveBackgroundd(keys="label", postfix="x")({"label": mask})
    )
