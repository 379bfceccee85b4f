# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""Activation checkpointing: same outputs, gradients and BatchNorm statistics as without it."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn
from torch.profiler import ProfilerActivity, profile
from torch.utils.checkpoint import CheckpointPolicy

from condseg_monai.networks import ConDSeg
from condseg_monai.networks.checkpointing import (
    checkpoint_module,
    checkpointed_blocks,
    frozen_batchnorm_statistics,
    save_spatial_convolutions,
)


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


def _live_bytes_after_forward(model: nn.Module, x: torch.Tensor) -> int:
    """Bytes allocated during the forward and still held at its end: what backward keeps (plus the output).

    Counted by the profiler's allocator events, so tensors kept by selective checkpointing's cache count too (a
    saved-tensors hook would only see those that autograd itself saves).
    """
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        out = model(x)  # alive until the profiler stops, with the graph and what it keeps
    live = sum(e.self_cpu_memory_usage for e in prof.events())
    del out
    return live


def test_condseg_use_checkpoint_keeps_less_memory_for_backward():
    torch.manual_seed(0)
    plain = ConDSeg(feature_size=16).train()
    ckpt = copy.deepcopy(plain)
    ckpt.use_checkpoint = True
    x = torch.rand(1, 3, 64, 64)
    # 0.38 at this width and size (0.49 for the full network at 256x256): well apart from 1
    assert _live_bytes_after_forward(ckpt, x) < 0.6 * _live_bytes_after_forward(plain, x)


def test_checkpointed_blocks_wraps_for_the_context_only():
    block = _block()
    calls = []
    block[2].register_forward_hook(lambda *_: calls.append(1))  # the ReLU: recomputed in backward when wrapped
    x = torch.rand(2, 3, 8, 8, requires_grad=True)
    with checkpointed_blocks([block]):
        assert "forward" in vars(block)  # the instance attribute that routes calls through checkpoint_module
        block(x).sum().backward()
    assert len(calls) == 2
    assert "forward" not in vars(block)  # the class's forward again
    calls.clear()
    block(x).sum().backward()
    assert len(calls) == 1
    assert set(block.state_dict()) == set(_block().state_dict())


def test_spatial_convolutions_are_kept_the_rest_recomputed():
    conv3 = torch.ops.aten.convolution.default
    w3, w1 = torch.zeros(4, 3, 3, 3), torch.zeros(4, 3, 1, 1)
    assert save_spatial_convolutions(None, conv3, torch.zeros(1), w3) == CheckpointPolicy.MUST_SAVE
    assert save_spatial_convolutions(None, conv3, torch.zeros(1), w1) == CheckpointPolicy.PREFER_RECOMPUTE
    assert save_spatial_convolutions(None, torch.ops.aten.relu.default, w3) == CheckpointPolicy.PREFER_RECOMPUTE


def test_condseg_use_checkpoint_inactive_in_eval_and_scriptable():
    torch.manual_seed(0)
    net = ConDSeg(feature_size=16, use_checkpoint=True).eval()
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        eager = net(x)
        scripted = torch.jit.script(net)(x)
    assert torch.allclose(eager, scripted, atol=1e-6)
