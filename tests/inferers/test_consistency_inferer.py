# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""ConsistencyInferer: both views through the network, stacked in the CLEAN / STRONG order."""

from __future__ import annotations

import pytest
import torch

from condseg_monai.inferers import ConsistencyInferer


def test_views_are_stacked_clean_then_strong_with_one_pass_each() -> None:
    calls: list[torch.Tensor] = []

    def network(x: torch.Tensor) -> torch.Tensor:
        calls.append(x)
        return 2.0 * x[:, :1]

    x = torch.rand(3, 3, 8, 8, dtype=torch.float64)
    strong = 1.0 - x
    out = ConsistencyInferer()(x, network, strong=strong)
    assert out.shape == (3, 2, 1, 8, 8)
    assert torch.equal(out[:, ConsistencyInferer.CLEAN], 2.0 * x[:, :1])
    assert torch.equal(out[:, ConsistencyInferer.STRONG], 2.0 * strong[:, :1])
    assert len(calls) == 2  # two forward passes: BatchNorm sees each view's own statistics


def test_missing_or_misshaped_strong_view_is_refused() -> None:
    x = torch.rand(2, 3, 8, 8)
    with pytest.raises(ValueError, match="StrongViewPrepareBatch"):
        ConsistencyInferer()(x, lambda t: t)
    with pytest.raises(ValueError, match="shape"):
        ConsistencyInferer()(x, lambda t: t, strong=x[:1])
