# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""Shared helpers for the network tests: the official key/shape list and random official checkpoints."""

from __future__ import annotations

import ast
from pathlib import Path

import torch
from torch import nn

# A copy of /work/shared/docs/official_state_dict_keys.txt (key names and shapes of the official checkpoints),
# kept beside the tests so they do not depend on files outside the repository.
KEYS_FILE = Path(__file__).resolve().parent / "official_state_dict_keys.txt"

BN_BUFFERS = ("running_mean", "running_var", "num_batches_tracked")


def parse_official_keys() -> dict[str, list[tuple[str, tuple[int, ...]]]]:
    """Return ``{"ConDSeg": [(key, shape), ...], "ConDSegStage1": [...]}`` in file order."""
    sections: dict[str, list[tuple[str, tuple[int, ...]]]] = {}
    current = None
    for line in KEYS_FILE.read_text().splitlines():
        if line.startswith("## "):
            current = line.split()[1].rstrip(":")
            sections[current] = []
        elif line and not line.startswith("#"):
            key, shape = line.split("\t")
            sections[current].append((key, tuple(ast.literal_eval(shape))))
    return sections


def random_official_state_dict(section: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random tensors with the official key names and shapes (positive ``running_var``, integer counters)."""
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in parse_official_keys()[section]:
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(int(torch.randint(1, 100, (1,), generator=gen)))
        elif key.endswith("running_var"):
            state[key] = torch.rand(shape, generator=gen) + 0.5
        else:
            state[key] = torch.randn(shape, generator=gen)
    return state


def randomize_batchnorm(model: nn.Module, calibrate_with: torch.Tensor | None = None) -> None:
    """Give every BatchNorm non-trivial affine parameters and running statistics.

    With ``calibrate_with``, the running statistics are set to the batch statistics of one forward pass (so that
    activations keep a healthy scale through the deep random network and outputs are not all ~0.5).
    """
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.copy_(torch.rand(m.weight.shape, generator=gen) + 0.5)
                m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=gen))
                m.reset_running_stats()
                m.momentum = None  # cumulative average: one pass sets the batch statistics
        if calibrate_with is not None:
            model.train()
            model(calibrate_with)
    model.eval()
