# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""Checkpoints shared by the bundle and the inference tests.

The "red detector" (a 1x1 convolution: logit = 20 * red - 10, so the predicted mask is exactly ``red > 0.5``) has
outputs known by hand, which makes orientation and metric checks exact and fast; a small ConDSeg
(``feature_size=16, num_heads=2``) is used where the real network is the point.
"""

from __future__ import annotations

import pytest
import torch

SMALL_CONDSEG = {"feature_size": 16, "num_heads": 2}


@pytest.fixture(scope="session")
def detector_ckpt(tmp_path_factory: pytest.TempPathFactory) -> str:
    """State dict of the red detector: ``Conv2d(3, 1, 1)`` with weight (20, 0, 0) and bias -10."""
    path = tmp_path_factory.mktemp("ckpt") / "detector.pt"
    torch.save({"weight": torch.tensor([20.0, 0.0, 0.0]).reshape(1, 3, 1, 1), "bias": torch.tensor([-10.0])}, path)
    return str(path)


@pytest.fixture(scope="session")
def small_ckpt(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Untrained small ConDSeg (``feature_size=16, num_heads=2``) as a plain state dict."""
    from condseg_monai.networks import ConDSeg

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "small.pt"
    torch.save(ConDSeg(**SMALL_CONDSEG).state_dict(), path)
    return str(path)
