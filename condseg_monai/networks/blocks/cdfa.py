# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""Contrast-Driven Feature Aggregation (CDFA): fg/bg-guided outlook attention, and its guide preprocessing."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from condseg_monai.networks.blocks.conv import ConvBNAct

__all__ = ["CDFAPreprocess", "ContrastDrivenFeatureAggregation", "outlook_aggregate", "outlook_attention"]


def _pair_weights(attn: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """Per-pixel weight of each relative shift ``s = o_j - o_i``: ``(B, heads, K, K, H, W) -> (B, heads, S, 1, H, W)``.

    ``W_s[m] = sum_{(i, j): o_j - o_i = s} attn[m - o_i, i, j]`` over ``S = (2k - 1)^2`` shifts (zero outside).
    """
    b, heads, kk, _, h, w = attn.shape
    k = kernel_size
    span = 2 * k - 1
    # attn'_i[m] = attn[m - o_i, i, :]: translate every window slot i by o_i onto the pixel it is folded into
    # (pad on one side, crop on the other: unlike slicing a padded copy, its backward allocates no full-size zeros)
    slots = [F.pad(slot, _slot_shift(i, k)) for i, slot in enumerate(attn.unbind(2))]
    shifted = torch.stack(slots, dim=2).reshape(b * heads, kk * kk, h, w)
    # sum the pairs (i, j) sharing the relative shift o_j - o_i: a 1x1 convolution with a 0/1 kernel
    grouping = F.one_hot(_shift_index(k, attn.device), span * span).to(attn.dtype).t()[:, :, None, None]
    return F.conv2d(shifted, grouping).reshape(b, heads, span * span, 1, h, w)


def _pair_weights_backward(grad_weights: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """Gradient of :func:`_pair_weights` with respect to ``attn``: ``grad_attn[p, i, j] = grad_W[p + o_i, s(i, j)]``.

    ``(B, heads, S, 1, H, W) -> (B, heads, K, K, H, W)``.
    """
    b, heads, _, _, h, w = grad_weights.shape
    k = kernel_size
    kk = k * k
    gathered = grad_weights.reshape(b, heads, -1, h, w).index_select(2, _shift_index(k, grad_weights.device))
    slots = gathered.reshape(b, heads, kk, kk, h, w).unbind(2)
    # translate slot i back by -o_i (the inverse of the forward translation)
    return torch.stack([F.pad(slot, [-p for p in _slot_shift(i, k)]) for i, slot in enumerate(slots)], dim=2)


def _slot_shift(i: int, k: int) -> list[int]:
    """``F.pad`` amounts that translate a map by window offset ``o_i`` (unfold order)."""
    p = k // 2
    dy, dx = i // k - p, i % k - p
    return [dx, -dx, dy, -dy]


def _shift_index(k: int, device: torch.device) -> torch.Tensor:
    """``s(i, j)``: index of the relative shift ``o_j - o_i`` in the ``(2k - 1)^2`` grid, flattened over ``(i, j)``."""
    p = k // 2
    span = 2 * k - 1
    idx = torch.arange(k * k, device=device)
    row, col = idx // k, idx % k
    return ((row[None, :] - row[:, None] + 2 * p) * span + (col[None, :] - col[:, None] + 2 * p)).reshape(-1)


def outlook_aggregate(value: torch.Tensor, attn: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """Outlook (VOLO-style) aggregation with summed overlaps, without materialising unfold/fold tensors.

    Mathematically identical to ``fold(attn @ unfold(value))`` with a ``kernel_size`` window, zero padding
    ``kernel_size // 2``, stride 1 and overlapping windows **summed** (the official CDFA formulation)::

        Y[m] = sum_i sum_j attn[m - o_i, i, j] * V[m - o_i + o_j]

    where ``o_i`` are the window offsets (unfold order) and out-of-image terms are zero. Grouping the
    ``K*K`` pairs ``(i, j)`` by their relative shift ``s = o_j - o_i`` leaves ``(2k - 1)^2`` shifted
    multiply-adds of ``value`` (25 instead of 81 for k = 3), each with a per-pixel, per-head weight. Memory stays
    at a few feature maps instead of the ``K``-fold unfolded copies.

    Args:
        value: values, shape ``(B, heads, head_dim, H, W)``.
        attn: attention weights (already soft-maxed over ``j``), shape ``(B, heads, K, K, H, W)`` with
            ``K = kernel_size**2``; ``attn[b, h, i, j, y, x]`` weights window neighbour ``j`` for window output slot
            ``i`` of the window centred at ``(y, x)``.
        kernel_size: odd window size ``k``.

    Returns:
        Aggregated values, shape ``(B, heads, head_dim, H, W)``.
    """
    span = 2 * kernel_size - 1  # relative shifts o_j - o_i lie in [-2p, 2p]^2
    weights = _pair_weights(attn, kernel_size)
    # Y[m] = sum_s weights_s[m] * V[m + s]
    if not torch.jit.is_scripting() and torch.is_grad_enabled() and (value.requires_grad or weights.requires_grad):
        return _ShiftedMultiplyAdd.apply(value, weights, span)
    return _shifted_multiply_add(value, weights, span)


def outlook_attention(
    value: torch.Tensor,
    guide: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    kernel_size: int,
    scale: float = 1.0,
) -> torch.Tensor:
    """Outlook attention predicted from a guide: ``outlook_aggregate(value, softmax(scale * Linear(guide)))``.

    The per-pixel ``Linear(guide)`` (``weight``: ``(heads * K * K, C_guide)``) gives the logits
    ``(B, heads, K, K, H, W)``, soft-maxed over dim 3. With gradients it runs as one autograd function that keeps
    only ``value`` and ``guide`` for backward and recomputes the logits, the attention and the per-shift weights
    there (a 1x1 convolution and memory-bound steps): autograd through the separate steps would also keep the
    attention, the translated attention slots, the grouping convolution's input, the padded values and the shift
    weights, about three times the memory of the two inputs and the largest activations of a CDFA. Values and
    gradients are those of the separate steps.

    Args:
        value: values, shape ``(B, heads, head_dim, H, W)``.
        guide: guide feature, shape ``(B, C_guide, H, W)``.
        weight: the attention Linear's weight, shape ``(heads * K * K, C_guide)``, ``K = kernel_size**2``.
        bias: its bias ``(heads * K * K,)`` or ``None``.
        kernel_size: odd window size ``k``.
        scale: multiplies the logits before the softmax (``head_dim ** -0.5`` in CDFA).

    Returns:
        Aggregated values, shape ``(B, heads, head_dim, H, W)``.
    """
    needs_grad = value.requires_grad or guide.requires_grad or weight.requires_grad
    if bias is not None:
        needs_grad = needs_grad or bias.requires_grad
    if not torch.jit.is_scripting() and torch.is_grad_enabled() and needs_grad:
        return _OutlookAttention.apply(value, guide, weight, bias, kernel_size, scale)
    return outlook_aggregate(value, _attention(value, guide, weight, bias, kernel_size, scale), kernel_size)


def _attention(
    value: torch.Tensor,
    guide: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    kernel_size: int,
    scale: float,
) -> torch.Tensor:
    """``softmax(scale * Linear(guide))`` as ``(B, heads, K, K, H, W)``, soft-maxed over dim 3 (the neighbour j).

    The Linear is a batched matrix product over the flattened pixels, which gives the logits in ``(B, O, H*W)``
    order: the softmax then runs over a non-innermost axis, about twice as fast on CPU as over the size-9
    innermost axis that a channels-last layout would give.
    """
    b, heads, _, h, w = value.shape
    kk = kernel_size * kernel_size
    logits = torch.bmm(weight.expand(b, -1, -1), guide.flatten(2))  # (B, heads * K * K, H * W)
    if bias is not None:
        logits = logits + bias[:, None]
    return torch.softmax(logits.reshape(b, heads, kk, kk, h, w) * scale, dim=3)


def _shifted_multiply_add(value: torch.Tensor, weights: torch.Tensor, span: int) -> torch.Tensor:
    """``Y[m] = sum_s weights[:, :, s, :, m] * V[m + s]`` over a centred ``span x span`` grid of shifts ``s``.

    ``value``: ``(B, heads, d, H, W)``; ``weights``: ``(B, heads, span**2, 1, H, W)``; zero padding outside.
    """
    q = span // 2
    return _accumulate_shifts(F.pad(value, [q, q, q, q]), weights, span, value.shape[-2], value.shape[-1])


def _accumulate_shifts(value_p: torch.Tensor, weights: torch.Tensor, span: int, h: int, w: int) -> torch.Tensor:
    """The multiply-add loop of :func:`_shifted_multiply_add` on an already padded ``value_p``."""
    out = value_p.new_zeros(value_p.shape[:-2] + (h, w))
    for sy in range(span):
        for sx in range(span):
            out.addcmul_(weights[:, :, sy * span + sx], value_p[..., sy : sy + h, sx : sx + w])
    return out


def _shifted_multiply_add_backward(
    grad_out: torch.Tensor,
    value_p: torch.Tensor,
    weights: torch.Tensor,
    span: int,
    need_value: bool,
    need_weights: bool,
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Gradients of :func:`_accumulate_shifts` for the unpadded value and the weights, accumulated in place.

    Autograd through 25 slices of a padded tensor allocates and zero-fills a full padded gradient per slice; here
    the gradients accumulate in place into one buffer (about 2x faster CDFA training on CPU, same memory).
    """
    h, w = grad_out.shape[-2], grad_out.shape[-1]
    q = span // 2
    grad_out = grad_out.contiguous()
    grad_value_p = torch.zeros_like(value_p) if need_value else None
    grad_weights = torch.empty_like(weights) if need_weights else None
    # one product buffer for the 25 weight gradients: a fresh (B, heads, d, H, W) temporary per shift costs more
    # in allocation (page faults of a new large block) than the multiply itself
    product = torch.empty_like(grad_out) if need_weights else None
    for sy in range(span):
        for sx in range(span):
            s = sy * span + sx
            window = (..., slice(sy, sy + h), slice(sx, sx + w))
            if grad_weights is not None and product is not None:
                torch.mul(grad_out, value_p[window], out=product)
                torch.sum(product, dim=2, keepdim=True, out=grad_weights[:, :, s])
            if grad_value_p is not None:
                grad_value_p[window].addcmul_(weights[:, :, s], grad_out)
    grad_value = None if grad_value_p is None else grad_value_p[..., q : q + h, q : q + w]
    return grad_value, grad_weights


class _ShiftedMultiplyAdd(torch.autograd.Function):
    """:func:`_shifted_multiply_add` with a hand-written backward (:func:`_shifted_multiply_add_backward`)."""

    @staticmethod
    def forward(ctx, value: torch.Tensor, weights: torch.Tensor, span: int) -> torch.Tensor:  # type: ignore[override]
        q = span // 2
        value_p = F.pad(value, [q, q, q, q])
        out = _accumulate_shifts(value_p, weights, span, value.shape[-2], value.shape[-1])
        ctx.save_for_backward(value_p, weights)
        ctx.span = span
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None, None]:  # type: ignore[override]
        value_p, weights = ctx.saved_tensors
        grad_value, grad_weights = _shifted_multiply_add_backward(
            grad_out, value_p, weights, ctx.span, ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        )
        return grad_value, grad_weights, None


class _OutlookAttention(torch.autograd.Function):
    """:func:`outlook_attention` keeping only ``value`` and ``guide`` for backward (the rest is recomputed)."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx,
        value: torch.Tensor,
        guide: torch.Tensor,
        weight: torch.Tensor,
        bias: torch.Tensor | None,
        kernel_size: int,
        scale: float,
    ) -> torch.Tensor:
        attn = _attention(value, guide, weight, bias, kernel_size, scale)
        out = _shifted_multiply_add(value, _pair_weights(attn, kernel_size), 2 * kernel_size - 1)
        ctx.save_for_backward(value, guide, weight, bias)
        ctx.kernel_size, ctx.scale = kernel_size, scale
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out: torch.Tensor) -> tuple[torch.Tensor | None, ...]:  # type: ignore[override]
        value, guide, weight, bias = ctx.saved_tensors
        k, scale = ctx.kernel_size, ctx.scale
        span = 2 * k - 1
        q = span // 2
        attn = _attention(value, guide, weight, bias, k, scale)
        grad_value, grad_weights = _shifted_multiply_add_backward(
            grad_out, F.pad(value, [q, q, q, q]), _pair_weights(attn, k), span, ctx.needs_input_grad[0], True
        )
        grad_guide = grad_weight = grad_bias = None
        if any(ctx.needs_input_grad[1:4]):
            grad_attn = _pair_weights_backward(grad_weights, k)
            # softmax backward over dim 3, then the scale: the gradient of the logits
            grad_logits = attn * (grad_attn - (grad_attn * attn).sum(dim=3, keepdim=True))
            grad_logits = grad_logits.mul_(scale).reshape(guide.shape[0], weight.shape[0], -1)  # (B, O, H * W)
            guide_flat = guide.flatten(2)  # (B, C, H * W)
            if ctx.needs_input_grad[1]:
                grad_guide = torch.bmm(weight.t().expand(guide.shape[0], -1, -1), grad_logits).reshape(guide.shape)
            if ctx.needs_input_grad[2]:
                grad_weight = torch.bmm(grad_logits, guide_flat.transpose(1, 2)).sum(dim=0)
            if bias is not None and ctx.needs_input_grad[3]:
                grad_bias = grad_logits.sum(dim=(0, 2))
        return grad_value, grad_guide, grad_weight, grad_bias, None, None


def _pointwise_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """A per-pixel ``nn.Linear`` applied to ``(B, C, H, W)`` as a 1x1 convolution: same maths, no permutes."""
    return F.conv2d(x, weight[:, :, None, None], bias)


class CDFAPreprocess(nn.Sequential):
    """Adapt a SID feature (fg or bg) to one decoder level: ``CBR3``, then ``log2(scale)`` x ``[x2 up -> CBR3]``.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        scale: power-of-two upsampling factor (1, 2, 4 or 8 in ConDSeg).

    Shapes:
        ``(B, in_channels, h, w) -> (B, out_channels, scale * h, scale * w)``.
    """

    def __init__(self, in_channels: int, out_channels: int, scale: int = 1) -> None:
        if scale < 1 or scale & (scale - 1) != 0:
            raise ValueError(f"scale must be a power of two >= 1, got {scale}.")
        layers: list[nn.Module] = [ConvBNAct(in_channels, out_channels, 3)]
        for _ in range(int(math.log2(scale))):
            layers.append(nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True))
            layers.append(ConvBNAct(out_channels, out_channels, 3))
        super().__init__(*layers)


class ContrastDrivenFeatureAggregation(nn.Module):
    """CDFA: refine a feature with outlook attention predicted from the foreground guide, then the background one.

    ``X = input_cbr(x)``; ``V = Linear(X)``; ``Y_fg = proj(agg(V, softmax(s * Linear_fg(G_fg))))``;
    ``Y_bg = proj(agg(Y_fg, softmax(s * Linear_bg(G_bg))))``; output ``output_cbr(Y_bg)``. Each guide pixel
    predicts, per head, a ``K x K`` (``K = window_size**2``) matrix mixing its window's values (no query-key
    product), ``s = head_dim ** -0.5``, the windows are folded back with summed overlaps and ``proj`` is shared
    by both passes (the bg pass reuses ``Y_fg`` as values, with no new value projection).

    Args:
        in_channels: channels of the main input ``x``.
        channels: working width ``dim`` (``feature_size``; 128 officially), also the guide and output width.
        num_heads: attention heads; must divide ``channels``. Defaults to 4.
        window_size: odd outlook window size. Defaults to 3.

    Shapes:
        ``x: (B, in_channels, H, W)``, ``fg, bg: (B, channels, H, W)`` -> ``(B, channels, H, W)``.
    """

    def __init__(self, in_channels: int, channels: int, num_heads: int = 4, window_size: int = 3) -> None:
        super().__init__()
        if num_heads < 1 or channels % num_heads != 0:
            raise ValueError(f"num_heads ({num_heads}) must be >= 1 and divide the feature width ({channels}).")
        if window_size < 1 or window_size % 2 != 1:
            raise ValueError(f"window_size must be a positive odd number, got {window_size}.")
        self.channels = channels
        self.num_heads = num_heads
        self.head_dim = channels // num_heads
        self.window_size = window_size
        self.scale = self.head_dim**-0.5
        kk = window_size * window_size

        self.input_cbr = nn.Sequential(ConvBNAct(in_channels, channels, 3), ConvBNAct(channels, channels, 3))
        self.v = nn.Linear(channels, channels)
        self.attn_fg = nn.Linear(channels, kk * kk * num_heads)
        self.attn_bg = nn.Linear(channels, kk * kk * num_heads)
        self.proj = nn.Linear(channels, channels)
        self.output_cbr = nn.Sequential(ConvBNAct(channels, channels, 3), ConvBNAct(channels, channels, 3))

    def forward(self, x: torch.Tensor, fg: torch.Tensor, bg: torch.Tensor) -> torch.Tensor:
        x = self.input_cbr(x)
        # The attention and the aggregation run in NCHW order whatever the network's memory format: their softmax
        # and shifted multiply-adds are 2-3x faster there than channels-last; the 3x3 convolutions keep the input's
        # format (channels-last convolutions are faster on CPU). Four feature-map copies when the formats differ.
        channels_last = not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)
        x, fg, bg = x.contiguous(), fg.contiguous(), bg.contiguous()
        b, c, h, w = x.shape
        per_head = (b, self.num_heads, self.head_dim, h, w)
        k = self.window_size
        # foreground pass on V = Linear(X); softmax over j (dim 3 of the logits), scaled by head_dim ** -0.5
        value = _pointwise_linear(x, self.v.weight, self.v.bias).reshape(per_head)
        y = outlook_attention(value, fg, self.attn_fg.weight, self.attn_fg.bias, k, self.scale)
        y = _pointwise_linear(y.reshape(b, c, h, w), self.proj.weight, self.proj.bias)
        # background pass directly on Y_fg (no new value projection), same proj
        y = outlook_attention(y.reshape(per_head), bg, self.attn_bg.weight, self.attn_bg.bias, k, self.scale)
        y = _pointwise_linear(y.reshape(b, c, h, w), self.proj.weight, self.proj.bias)
        return self.output_cbr(y.contiguous(memory_format=torch.channels_last) if channels_last else y)
