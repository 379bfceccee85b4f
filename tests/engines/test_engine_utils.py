# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""Optimizer parameter groups and the resume-file lookup used by the bundle configs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from condseg_monai.engines import encoder_param_groups, resume_checkpoint_path, scored_prediction
from condseg_monai.inferers import ConsistencyInferer
from condseg_monai.networks import ConDSegOutput


class _Net(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.encoder = torch.nn.Linear(2, 2)
        self.head = torch.nn.Linear(2, 1)


def test_encoder_gets_its_own_rate() -> None:
    net = _Net()
    groups = encoder_param_groups(net, lr=1e-4, encoder_lr=1e-5)
    assert [(g["name"], g["lr"], len(g["params"])) for g in groups] == [("encoder", 1e-5, 2), ("decoder", 1e-4, 2)]
    torch.optim.Adam(groups)  # accepted as-is


def test_equal_rates_or_no_encoder_give_one_group() -> None:
    assert [g["name"] for g in encoder_param_groups(_Net(), 1e-4, 1e-4)] == ["all"]
    plain = torch.nn.Linear(2, 1)
    (group,) = encoder_param_groups(plain, 1e-4, 1e-5)
    assert group["lr"] == 1e-4 and len(group["params"]) == 2


def test_resume_path_requires_the_file_only_when_resuming(tmp_path: Path) -> None:
    assert resume_checkpoint_path(tmp_path, resume=False) == str(tmp_path / "latest.pt")
    with pytest.raises(FileNotFoundError, match="resume"):
        resume_checkpoint_path(tmp_path, resume=True)


def test_scored_prediction_picks_the_named_map() -> None:
    condseg = torch.stack([torch.full((1, 4, 4), float(i)) for i in range(len(ConDSegOutput))])  # (4, C, H, W)
    assert torch.equal(scored_prediction(condseg), condseg[ConDSegOutput.MASK])
    views = torch.stack([torch.full((1, 4, 4), 7.0), torch.full((1, 4, 4), -7.0)])  # Stage 1: (2, C, H, W)
    assert float(scored_prediction(views).mean()) == 7.0 and ConsistencyInferer.CLEAN == 0
    plain = torch.rand(1, 4, 4)
    assert scored_prediction(plain) is plain
    with pytest.raises(ValueError, match="Stage-1"):
        scored_prediction(torch.zeros(3, 1, 4, 4))
