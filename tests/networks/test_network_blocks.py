# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""Tests of the ConDSeg building blocks, including the fast CDFA aggregation against unfold/fold."""

from __future__ import annotations

import pytest
import torch
from network_test_utils import randomize_batchnorm
from official_reference import CDFARef, outlook_unfold_fold

from condseg_monai.networks.blocks import (
    AuxiliaryHead,
    CDFAPreprocess,
    ChannelAttention,
    ContrastDrivenFeatureAggregation,
    ConvBNAct,
    DilatedConvBlock,
    FusionHead,
    SemanticInformationDecoupling,
    SizeAwareDecoderBlock,
    SpatialAttention,
    outlook_aggregate,
    outlook_attention,
)


@pytest.mark.parametrize("kernel_size", [1, 3, 5])
@pytest.mark.parametrize("size", [(5, 7), (16, 16), (2, 3)])
def test_outlook_aggregate_matches_unfold_fold(kernel_size, size):
    torch.manual_seed(0)
    h, w = size
    kk = kernel_size**2
    value = torch.randn(2, 3, 4, h, w)
    attn = torch.randn(2, 3, kk, kk, h, w).softmax(dim=3)
    fast = outlook_aggregate(value, attn, kernel_size)
    ref_attn = attn.reshape(2, 3, kk, kk, h * w).permute(0, 1, 4, 2, 3)  # (B, heads, HW, K, K)
    ref = outlook_unfold_fold(value.reshape(2, 12, h, w), ref_attn, kernel_size).reshape(2, 3, 4, h, w)
    assert fast.shape == value.shape
    torch.testing.assert_close(fast, ref, atol=1e-5, rtol=1e-5)


def test_outlook_aggregate_gradients_match_reference():
    torch.manual_seed(0)
    value = torch.randn(1, 2, 3, 6, 5, dtype=torch.float64, requires_grad=True)
    logits = torch.randn(1, 2, 9, 9, 6, 5, dtype=torch.float64, requires_grad=True)
    out = outlook_aggregate(value, logits.softmax(dim=3), 3)
    ref = outlook_unfold_fold(
        value.reshape(1, 6, 6, 5), logits.softmax(dim=3).reshape(1, 2, 9, 9, 30).permute(0, 1, 4, 2, 3), 3
    )
    weight = torch.randn(1, 6, 6, 5, dtype=torch.float64)
    g_fast = torch.autograd.grad((out.reshape(1, 6, 6, 5) * weight).sum(), (value, logits))
    g_ref = torch.autograd.grad((ref * weight).sum(), (value, logits))
    for a, b in zip(g_fast, g_ref, strict=True):
        torch.testing.assert_close(a, b)


def _literal_outlook_attention(value, guide, weight, bias, k, scale):
    """Linear -> scale -> softmax -> unfold/fold, step by step, for value ``(B, heads, d, H, W)``."""
    b, heads, d, h, w = value.shape
    logits = torch.einsum("oc,bchw->bohw", weight, guide) + bias[:, None, None]
    attn = (logits.reshape(b, heads, k * k, k * k, h * w) * scale).softmax(dim=3).permute(0, 1, 4, 2, 3)
    return outlook_unfold_fold(value.reshape(b, heads * d, h, w), attn, k).reshape(b, heads, d, h, w)


@pytest.mark.parametrize("kernel_size", [1, 3])
@pytest.mark.parametrize("channels_last", [False, True])
def test_outlook_attention_values_and_gradients_match_the_literal_steps(kernel_size, channels_last):
    torch.manual_seed(0)
    kk, heads, d, c = kernel_size**2, 2, 3, 5
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    value = torch.randn(2, heads, d, 6, 7, dtype=torch.float64, requires_grad=True)
    guide = torch.randn(2, c, 6, 7, dtype=torch.float64).contiguous(memory_format=fmt).requires_grad_()
    weight = torch.randn(heads * kk * kk, c, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(heads * kk * kk, dtype=torch.float64, requires_grad=True)
    inputs = (value, guide, weight, bias)
    out = outlook_attention(*inputs, kernel_size, 0.7)
    ref = _literal_outlook_attention(*inputs, kernel_size, 0.7)
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
    grad_out = torch.randn_like(out)
    fast = torch.autograd.grad(out, inputs, grad_out)
    slow = torch.autograd.grad(ref, inputs, grad_out)
    for name, a, b in zip(("value", "guide", "weight", "bias"), fast, slow, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10, msg=name)
    with torch.no_grad():  # the no-grad path (inference, scripting) gives the same values
        torch.testing.assert_close(outlook_attention(*inputs, kernel_size, 0.7), ref, rtol=1e-12, atol=1e-12)


def test_outlook_attention_keeps_only_value_and_guide_for_backward():
    torch.manual_seed(0)
    value = torch.randn(1, 4, 8, 16, 16, requires_grad=True)
    guide = torch.randn(1, 32, 16, 16, requires_grad=True)
    weight, bias = torch.randn(4 * 81, 32, requires_grad=True), torch.randn(4 * 81, requires_grad=True)
    kept: list[torch.Tensor] = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: kept.append(t) or t, lambda t: t):
        outlook_attention(value, guide, weight, bias, 3, 0.5)
    # the inputs themselves (no new memory): not the (1, 4, 9, 9, 16, 16) attention, its 81 translated slots or
    # the padded values that the separate steps keep
    assert {t.data_ptr() for t in kept} == {t.data_ptr() for t in (value, guide, weight, bias)}


def test_cdfa_matches_literal_reference_module():
    """Our CDFA (1x1 convs + fast aggregation) equals the literal Linear + unfold/fold module with the same weights."""
    torch.manual_seed(0)
    ref = CDFARef(256, dim=128, num_heads=4).eval()
    ours = ContrastDrivenFeatureAggregation(256, 128, num_heads=4).eval()
    randomize_batchnorm(ref)
    # same module names inside CDFA; only the CBR internals are named differently (MONAI Convolution)
    state = {k.replace(".conv.0.", ".conv.").replace(".conv.1.", ".adn.N."): v for k, v in ref.state_dict().items()}
    ours.load_state_dict(state, strict=True)
    x, fg, bg = torch.randn(1, 256, 8, 12), torch.randn(1, 128, 8, 12), torch.randn(1, 128, 8, 12)
    with torch.no_grad():
        torch.testing.assert_close(ours(x, fg, bg), ref(x, fg, bg), atol=1e-5, rtol=1e-4)


def test_cdfa_rejects_bad_heads_and_window():
    with pytest.raises(ValueError, match="num_heads"):
        ContrastDrivenFeatureAggregation(16, 16, num_heads=3)
    with pytest.raises(ValueError, match="window_size"):
        ContrastDrivenFeatureAggregation(16, 16, num_heads=2, window_size=2)


def test_cdfa_parameter_layout():
    cdfa = ContrastDrivenFeatureAggregation(32, 16, num_heads=2, window_size=3)
    assert cdfa.attn_fg.weight.shape == (3**4 * 2, 16)
    assert cdfa.head_dim == 8
    assert cdfa(torch.rand(2, 32, 8, 8), torch.rand(2, 16, 8, 8), torch.rand(2, 16, 8, 8)).shape == (2, 16, 8, 8)


def test_conv_bn_act_variants():
    cbr, cb = ConvBNAct(4, 8, 3, dilation=6), ConvBNAct(4, 8, 1, act=False)
    assert cbr.conv.padding == (6, 6) and cbr.conv.bias is None
    x = torch.randn(2, 4, 9, 9)
    assert (cbr(x) >= 0).all()
    assert (cb(x) < 0).any()
    assert sorted(cb.state_dict()) == sorted(
        [
            "conv.weight",
            "adn.N.weight",
            "adn.N.bias",
            "adn.N.running_mean",
            "adn.N.running_var",
            "adn.N.num_batches_tracked",
        ]
    )
    with pytest.raises(ValueError, match="odd"):
        ConvBNAct(4, 8, 2)


def test_attention_gates():
    x = torch.randn(2, 32, 6, 6)
    ca, sa = ChannelAttention(32), SpatialAttention()
    assert ca.fc1.weight.shape == (2, 32, 1, 1)  # hidden = C // 16
    assert ChannelAttention(8).fc1.weight.shape == (1, 8, 1, 1)  # clamped to >= 1 for narrow networks
    # gates are in (0, 1): the output keeps the sign and does not grow in magnitude
    for gate in (ca, sa):
        y = gate(x)
        assert y.shape == x.shape
        assert (y.abs() <= x.abs() + 1e-6).all() and (torch.sign(y) == torch.sign(x)).all()


def test_block_shapes():
    assert DilatedConvBlock(8, 16)(torch.rand(2, 8, 12, 12)).shape == (2, 16, 12, 12)
    fg, bg, uc = SemanticInformationDecoupling(32, 16)(torch.rand(2, 32, 2, 2))
    assert fg.shape == bg.shape == uc.shape == (2, 16, 2, 2)
    aux = AuxiliaryHead(16, out_channels=3)(fg, bg, uc)
    assert [a.shape for a in aux] == [(2, 3, 32, 32)] * 3
    assert CDFAPreprocess(16, 16, 8)(fg).shape == (2, 16, 16, 16)
    assert len(CDFAPreprocess(16, 16, 4)) == 5  # CBR, (up, CBR) x 2
    with pytest.raises(ValueError, match="power of two"):
        CDFAPreprocess(16, 16, 3)
    assert SizeAwareDecoderBlock(16, 16, 16)(torch.rand(2, 16, 4, 4), torch.rand(2, 16, 8, 8)).shape == (2, 16, 8, 8)
    head = FusionHead(16, 2)
    out = head(torch.rand(2, 16, 8, 8), torch.rand(2, 16, 4, 4), torch.rand(2, 16, 2, 2))
    assert out.shape == (2, 2, 16, 16)
    with pytest.raises(ValueError, match="even"):
        FusionHead(15, 1)
