# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""Activation checkpointing: same outputs, gradients and BatchNorm statistics as without it."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from condseg_monai.networks import ConDSeg
from condseg_monai.networks.checkpointing import checkpoint_module, frozen_batchnorm_statistics


def _block(momentum: float | None = 0.1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4, momentum=momentum), nn.ReLU(), nn.Dropout(0.5)
    )


@pytest.mark.parametrize("momentum", [0.1, None])
def test_frozen_batchnorm_statistics_keeps_buffers_and_restores_settings(momentum):
    block = _block(momentum).train()
    reference = copy.deepcopy(block)
    before = {k: v.clone() for k, v in block.state_dict().items()}
    x = torch.rand(2, 3, 8, 8)
    torch.manual_seed(0)
    with frozen_batchnorm_statistics(block):
        out = block(x)
    for key, value in block.state_dict().items():
        assert torch.equal(value, before[key]), key
    assert block[1].momentum == momentum
    torch.manual_seed(0)  # same dropout mask
    assert torch.equal(out, reference(x)), "the frozen block must still normalise with the batch statistics"
    block(torch.rand(2, 3, 8, 8))  # outside the context the statistics update again
    assert int(block[1].num_batches_tracked) == int(before["1.num_batches_tracked"]) + 1
    assert not torch.equal(block[1].running_mean, before["1.running_mean"])


@pytest.mark.parametrize("momentum", [0.1, None])
def test_checkpoint_module_matches_plain_forward(momentum):
    torch.manual_seed(0)
    plain = _block(momentum).train()
    ckpt = copy.deepcopy(plain)
    x = torch.rand(2, 3, 8, 8, requires_grad=True)
    x2 = x.detach().clone().requires_grad_(True)
    torch.manual_seed(1)
    out_plain = plain(x)
    torch.manual_seed(1)
    out_ckpt = checkpoint_module(ckpt, x2)  # the dropout mask is replayed in the recomputation
    assert torch.equal(out_plain, out_ckpt)
    out_plain.square().sum().backward()
    out_ckpt.square().sum().backward()
    assert torch.equal(x.grad, x2.grad)
    for (name, p), q in zip(plain.named_parameters(), ckpt.parameters()):
        assert torch.equal(p.grad, q.grad), name
    # a plain torch.utils.checkpoint would have updated the statistics twice (counter 2)
    for (name, b), c in zip(plain.named_buffers(), ckpt.buffers()):
        assert torch.equal(b, c), name
    assert int(ckpt[1].num_batches_tracked) == 1


def test_condseg_use_checkpoint_is_exact():
    torch.manual_seed(0)
    plain = ConDSeg(feature_size=16).train()
    ckpt = copy.deepcopy(plain)
    ckpt.use_checkpoint = True
    x = torch.rand(2, 3, 64, 64)
    out_plain, out_ckpt = plain(x), ckpt(x)
    assert out_ckpt.shape == (2, 4, 1, 64, 64)
    assert torch.equal(out_plain, out_ckpt)
    weights = torch.rand_like(out_plain)  # different weights per output: every map's gradient counts
    (out_plain * weights).sum().backward()
    (out_ckpt * weights).sum().backward()
    for (name, p), q in zip(plain.named_parameters(), ckpt.parameters()):
        assert torch.equal(p.grad, q.grad), name
    for (name, b), c in zip(plain.named_buffers(), ckpt.buffers()):
        assert torch.equal(b, c), name


def test_condseg_use_checkpoint_saves_fewer_activations():
    # the saved-for-backward bytes are what checkpointing reduces (peak RSS is measured in bench/speed.py)
    def saved_bytes(model: nn.Module) -> int:
        storages: dict[int, int] = {}

        def pack(t: torch.Tensor) -> torch.Tensor:
            storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            model(torch.rand(1, 3, 64, 64))
        return sum(storages.values())

    torch.manual_seed(0)
    plain = ConDSeg(feature_size=16).train()
    ckpt = copy.deepcopy(plain)
    ckpt.use_checkpoint = True
    assert saved_bytes(ckpt) < 0.9 * saved_bytes(plain)  # 0.85 at this width, where the encoder dominates


def test_condseg_use_checkpoint_inactive_in_eval_and_scriptable():
    torch.manual_seed(0)
    net = ConDSeg(feature_size=16, use_checkpoint=True).eval()
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        eager = net(x)
        scripted = torch.jit.script(net)(x)
    assert torch.allclose(eager, scripted, atol=1e-6)
