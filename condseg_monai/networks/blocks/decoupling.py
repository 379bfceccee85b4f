# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""Semantic Information Decoupling (SID) and its auxiliary foreground / background / uncertainty head."""

from __future__ import annotations

import torch
from torch import nn

from condseg_monai.networks.blocks.conv import ConvBNAct

__all__ = ["SemanticInformationDecoupling", "AuxiliaryHead"]


def _sid_branch(in_channels: int, hidden_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        ConvBNAct(in_channels, hidden_channels, 3),
        ConvBNAct(hidden_channels, out_channels, 3),
        ConvBNAct(out_channels, out_channels, 1),
    )


class SemanticInformationDecoupling(nn.Module):
    """Split the deepest encoder feature into foreground, background and uncertainty features.

    Three branches with separate weights, each ``CBR3(in -> hidden) -> CBR3(hidden -> out) -> CBR1(out -> out)``
    (official: 1024 -> 512 -> 128 -> 128, i.e. ``hidden = 4 * out``).

    Args:
        in_channels: channels of the input feature (raw ``f4``, 1024 for ResNet-50).
        out_channels: channels of each output feature (``feature_size``).
        hidden_channels: width of the first convolution. Defaults to ``4 * out_channels``.

    Shapes:
        ``(B, in_channels, H, W) -> 3 x (B, out_channels, H, W)`` as ``(fg, bg, uc)``.
    """

    def __init__(self, in_channels: int, out_channels: int, hidden_channels: int | None = None) -> None:
        super().__init__()
        hidden = 4 * out_channels if hidden_channels is None else hidden_channels
        self.fg = _sid_branch(in_channels, hidden, out_channels)
        self.bg = _sid_branch(in_channels, hidden, out_channels)
        self.uc = _sid_branch(in_channels, hidden, out_channels)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.fg(x), self.bg(x), self.uc(x)


def _aux_branch(channels: int, out_channels: int) -> nn.Sequential:
    # widths 2f, 2f, f, f/2, f/2 (official 256, 256, 128, 64, 64); the odd indices are the x2 upsamplings,
    # which keeps the official index layout (0, 2, 4, 6, 8 = CBR, 9 = final conv)
    widths = [2 * channels, 2 * channels, channels, channels // 2, channels // 2]
    layers: list[nn.Module] = []
    in_c = channels
    for i, width in enumerate(widths):
        layers.append(ConvBNAct(in_c, width, 3))
        if i < len(widths) - 1:
            layers.append(nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True))
        in_c = width
    layers.append(nn.Conv2d(in_c, out_channels, kernel_size=1, bias=True))
    return nn.Sequential(*layers)


class AuxiliaryHead(nn.Module):
    """Decode the three SID features to full-resolution foreground / background / uncertainty logits.

    Each branch upsamples x16 with four ``CBR3 -> x2 bilinear`` steps, a final CBR3 and a 1x1 convolution with
    bias. Returns raw logits (the official code applies a sigmoid).

    Args:
        channels: channels of the SID features (``feature_size``, must be even).
        out_channels: channels of each auxiliary map. Defaults to 1.

    Shapes:
        ``3 x (B, channels, h, w) -> 3 x (B, out_channels, 16h, 16w)``.
    """

    def __init__(self, channels: int, out_channels: int = 1) -> None:
        super().__init__()
        if channels < 2 or channels % 2 != 0:
            raise ValueError(f"channels of AuxiliaryHead must be an even number >= 2, got {channels}.")
        self.fg = _aux_branch(channels, out_channels)
        self.bg = _aux_branch(channels, out_channels)
        self.uc = _aux_branch(channels, out_channels)

    def forward(
        self, f_fg: torch.Tensor, f_bg: torch.Tensor, f_uc: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.fg(f_fg), self.bg(f_bg), self.uc(f_uc)
