# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""Tests of the ConDSeg network: output contract, validation, parameter counts, gradients and export."""

from __future__ import annotations

from collections import defaultdict

import pytest
import torch
from network_test_utils import BN_BUFFERS, parse_official_keys

from condseg_monai.networks import ChannelAttention, ConDSeg, ConDSegOutput, condseg_mask


def _small(**kwargs) -> ConDSeg:
    return ConDSeg(feature_size=16, num_heads=2, **kwargs)


@pytest.mark.parametrize("batch, size, out_channels", [(1, (32, 32), 1), (2, (64, 48), 1), (1, (48, 32), 3)])
def test_output_shapes_train_eval_and_return_aux(batch, size, out_channels):
    torch.manual_seed(0)
    net = _small(out_channels=out_channels)
    x = torch.rand(batch, 3, *size)
    out = net.train()(x)
    assert out.shape == (batch, 4, out_channels, *size)
    net.eval()
    with torch.no_grad():
        mask = net(x)
        assert mask.shape == (batch, out_channels, *size)
        net.return_aux = True
        stacked = net(x)
    assert stacked.shape == (batch, 4, out_channels, *size)
    # the mask slot of the stacked output is the eval mask (same weights, same BN statistics)
    torch.testing.assert_close(stacked[:, ConDSeg.MASK], mask)
    # outputs are logits: not restricted to [0, 1]
    assert (stacked < 0).any()


def test_output_index_constants():
    assert (ConDSeg.MASK, ConDSeg.FOREGROUND, ConDSeg.BACKGROUND, ConDSeg.UNCERTAINTY) == (0, 1, 2, 3)
    assert [int(m) for m in ConDSegOutput] == [0, 1, 2, 3]
    assert ConDSegOutput.UNCERTAINTY == ConDSeg.UNCERTAINTY


def test_condseg_mask_of_stacked_and_plain_outputs():
    maps = torch.stack([torch.full((2, 1, 3, 3), float(i)) for i in range(len(ConDSegOutput))], dim=1)  # (B, 4, ...)
    assert torch.equal(condseg_mask(maps), maps[:, ConDSegOutput.MASK])
    assert condseg_mask(maps).shape == (2, 1, 3, 3)
    assert torch.equal(condseg_mask(maps[0], batched=False), maps[0, ConDSegOutput.MASK])  # decollated (4, C, H, W)
    plain = torch.rand(4, 1, 3, 3)  # a batch of four plain masks: the same shape as one decollated stacked output
    assert condseg_mask(plain) is plain
    one = plain[0]  # one plain (C, H, W) mask
    assert condseg_mask(one, batched=False) is one
    with pytest.raises(ValueError, match="stacked"):
        condseg_mask(torch.rand(2, 3, 1, 3, 3))  # a stack of three maps
    with pytest.raises(ValueError, match="stacked"):
        condseg_mask(torch.rand(3, 3))
    with pytest.raises(ValueError, match="stacked"):
        condseg_mask(torch.rand(2, 3, 1, 3, 3), batched=False)


def test_condseg_mask_matches_the_eval_output():
    net = _small().eval()
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        plain = net(x)
        net.return_aux = True
        stacked = net(x)
    torch.testing.assert_close(condseg_mask(stacked), plain)


def test_eval_skips_auxiliary_head():
    net = _small().eval()
    calls = []
    net.aux_head.register_forward_hook(lambda *_: calls.append(1))
    with torch.no_grad():
        net(torch.rand(1, 3, 32, 32))
        assert not calls
        net.return_aux = True
        net(torch.rand(1, 3, 32, 32))
    assert calls == [1]


def test_input_validation():
    net = _small().eval()
    with pytest.raises(ValueError, match=r"multiples of 16.*\[1, 3, 40, 64\]"):
        net(torch.rand(1, 3, 40, 64))
    with pytest.raises(ValueError, match="multiples of 16"):
        net(torch.rand(1, 3, 64, 72))
    with pytest.raises(ValueError, match="spatial_dims"):
        ConDSeg(spatial_dims=3)
    with pytest.raises(ValueError, match="num_heads"):
        ConDSeg(feature_size=16, num_heads=3)
    with pytest.raises(ValueError, match="feature_size"):
        ConDSeg(feature_size=15, num_heads=1)


# module prefixes: ours -> official (keys file)
_GROUPS = {
    "encoder": ("encoder", ("layer",)),
    "dconv": ("dconv", ("dconv",)),
    "sid": ("sid", ("decouple_layer",)),
    "aux_head": ("aux_head", ("aux_head",)),
    "preprocess": ("preprocess", ("preprocess",)),
    "cdfa": ("cdfa", ("cdfa",)),
    "decoders": ("decoder", ("decoder",)),
    "output": ("output_block", ("output_block",)),
}
_EXPECTED = {
    "encoder": 8_543_296,
    "dconv": 9_288_072,
    "sid": 15_979_008,
    "aux_head": 3_875_523,
    "preprocess": 2_954_240,
    "cdfa": 3_272_224,
    "decoders": 1_041_702,
    "output": 598_721,
}


def test_parameter_counts_match_official():
    with torch.device("meta"):
        net = ConDSeg()
    ours: dict[str, int] = defaultdict(int)
    for name, p in net.named_parameters():
        group = next(g for g, (prefix, _) in _GROUPS.items() if name.startswith(prefix))
        ours[group] += p.numel()
    official: dict[str, int] = defaultdict(int)
    for key, shape in parse_official_keys()["ConDSeg"]:
        if key.rsplit(".", 1)[-1] in BN_BUFFERS:
            continue
        group = next(g for g, (_, prefixes) in _GROUPS.items() if key.startswith(prefixes))
        official[group] += torch.Size(shape).numel()
    assert dict(ours) == _EXPECTED
    assert dict(official) == _EXPECTED
    assert sum(p.numel() for p in net.parameters()) == 45_552_786 == sum(_EXPECTED.values())


def test_width_scaling():
    with torch.device("meta"):
        net = ConDSeg(feature_size=32, num_heads=4, window_size=5)
    assert net.sid.fg[0].conv.weight.shape == (128, 1024, 3, 3)  # hidden 4f
    assert [net.aux_head.fg[i].conv.out_channels for i in (0, 2, 4, 6, 8)] == [64, 64, 32, 16, 16]
    assert net.cdfa1.attn_fg.weight.shape == (5**4 * 4, 32)
    assert net.output_block.c3.weight.shape == (1, 16, 1, 1)


def test_gradients_reach_every_parameter():
    torch.manual_seed(0)
    net = _small().train()
    # channel attention at this width has a 1-unit hidden ReLU that random init may kill (zero gradient by design,
    # not a wiring problem): make it alive, the pooled inputs are non-negative post-ReLU features
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, ChannelAttention):
                m.fc1.weight.abs_()
    out = net(torch.rand(2, 3, 32, 32))
    (out * torch.randn_like(out)).sum().backward()
    no_grad = [n for n, p in net.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert no_grad == []


def test_trace_and_script_match_eager():
    torch.manual_seed(0)
    net = _small().eval()
    x = torch.rand(1, 3, 32, 48)
    with torch.no_grad():
        expected = net(x)
        traced = torch.jit.trace(net, x)
        torch.testing.assert_close(traced(x), expected)
        scripted = torch.jit.script(net)
        torch.testing.assert_close(scripted(x), expected)
        scripted.return_aux = True
        assert scripted(x).shape == (1, 4, 1, 32, 48)
        with pytest.raises(Exception, match="multiples of 16"):
            scripted(torch.rand(1, 3, 40, 48))
