# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""Size-aware decoder blocks and the fusion head that merges their three outputs into the mask logits."""

from __future__ import annotations

import torch
from torch import nn

from condseg_monai.networks.blocks.attention import ChannelAttention, SpatialAttention
from condseg_monai.networks.blocks.conv import ConvBNAct
from condseg_monai.networks.blocks.upsample import upsample

__all__ = ["SizeAwareDecoderBlock", "FusionHead"]


class SizeAwareDecoderBlock(nn.Module):
    """Upsample, concatenate a skip and refine with a dense-residual stack gated by channel + spatial attention.

    ``s1 = CBR1(cat[up2(x), skip])``; ``s2 = ReLU(CB3(s1) + s1)``; ``s3 = ReLU(CB3(s2) + s2 + s1)``;
    ``s4 = ReLU(CB1(s3) + s3 + s2 + s1)``; output ``SA(CA(s4))``.

    Args:
        in_channels: channels of the coarse input ``x``.
        skip_channels: channels of the skip feature.
        out_channels: output channels.

    Shapes:
        ``x: (B, in_channels, h, w)``, ``skip: (B, skip_channels, 2h, 2w)`` -> ``(B, out_channels, 2h, 2w)``.
    """

    def __init__(self, in_channels: int, skip_channels: int, out_channels: int) -> None:
        super().__init__()
        self.c1 = ConvBNAct(in_channels + skip_channels, out_channels, 1)
        self.c2 = ConvBNAct(out_channels, out_channels, 3, act=False)
        self.c3 = ConvBNAct(out_channels, out_channels, 3, act=False)
        self.c4 = ConvBNAct(out_channels, out_channels, 1, act=False)
        self.ca = ChannelAttention(out_channels)
        self.sa = SpatialAttention()

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        s1 = self.c1(torch.cat([upsample(x, 2.0), skip], dim=1))
        s2 = torch.relu(self.c2(s1) + s1)
        s3 = torch.relu(self.c3(s2) + s2 + s1)
        s4 = torch.relu(self.c4(s3) + s3 + s2 + s1)
        return self.sa(self.ca(s4))


class FusionHead(nn.Module):
    """Fuse the small / middle / large decoder outputs and predict full-resolution mask logits.

    ``cat[x_s, up2(x_m), up4(x_l)] -> CBR3(3C -> C) -> up2 -> CBR3(C -> C) -> CBR1(C -> C/2) -> Conv1x1 (bias)``.
    Returns raw logits (the official ``output_block`` ends in a sigmoid).

    Args:
        channels: channels ``C`` of each decoder output (even).
        out_channels: output (mask) channels.

    Shapes:
        ``x_s: (B, C, 2h, 2w)``, ``x_m: (B, C, h, w)``, ``x_l: (B, C, h/2, w/2)`` -> ``(B, out_channels, 4h, 4w)``.
    """

    def __init__(self, channels: int, out_channels: int) -> None:
        super().__init__()
        if channels < 2 or channels % 2 != 0:
            raise ValueError(f"channels of FusionHead must be an even number >= 2, got {channels}.")
        self.fuse = ConvBNAct(3 * channels, channels, 3)
        self.c1 = ConvBNAct(channels, channels, 3)
        self.c2 = ConvBNAct(channels, channels // 2, 1)
        self.c3 = nn.Conv2d(channels // 2, out_channels, kernel_size=1, bias=True)

    def forward(self, x_s: torch.Tensor, x_m: torch.Tensor, x_l: torch.Tensor) -> torch.Tensor:
        x = self.fuse(torch.cat([x_s, upsample(x_m, 2.0), upsample(x_l, 4.0)], dim=1))
        return self.c3(self.c2(self.c1(upsample(x, 2.0))))
