# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""The multi-dilation feature enhancement block ("Dil. Conv" in the paper figure, ``dilated_conv`` officially)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from condseg_monai.networks.blocks.attention import ChannelAttention, SpatialAttention
from condseg_monai.networks.blocks.conv import ConvBNAct

__all__ = ["DilatedConvBlock"]


class DilatedConvBlock(nn.Module):
    """Four parallel branches (1x1, then 3x3 with dilations 6/12/18), each gated by channel attention.

    ``concat(branches) -> CB3 -> + CB1(x) shortcut -> ReLU -> spatial attention``.

    Args:
        in_channels: number of input channels.
        out_channels: number of output channels (and of every branch).
        dilations: dilation rates of the three 3x3 branches. Defaults to ``(6, 12, 18)`` at every level, as
            in the official code (at 16x16 the d=18 branch only sees its centre tap).

    Shapes:
        ``(B, in_channels, H, W) -> (B, out_channels, H, W)``.
    """

    def __init__(self, in_channels: int, out_channels: int, dilations: Sequence[int] = (6, 12, 18)) -> None:
        super().__init__()
        branches = [nn.Sequential(ConvBNAct(in_channels, out_channels, 1), ChannelAttention(out_channels))]
        for d in dilations:
            branches.append(
                nn.Sequential(ConvBNAct(in_channels, out_channels, 3, dilation=d), ChannelAttention(out_channels))
            )
        self.branches = nn.ModuleList(branches)
        self.fuse = ConvBNAct(out_channels * len(branches), out_channels, 3, act=False)
        self.shortcut = ConvBNAct(in_channels, out_channels, 1, act=False)
        self.sa = SpatialAttention()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = [branch(x) for branch in self.branches]
        y = torch.relu(self.fuse(torch.cat(outs, dim=1)) + self.shortcut(x))
        return self.sa(y)
