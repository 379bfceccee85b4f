# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""CBAM-style channel and spatial attention gates used by the dilated blocks and the decoders."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ChannelAttention", "SpatialAttention"]


class ChannelAttention(nn.Module):
    """Channel attention: a shared MLP on global average- and max-pooled features, summed, sigmoid-gated.

    The MLP is two bias-free 1x1 convolutions ``C -> hidden -> C`` with a ReLU in between. The official code
    always uses ``hidden = C // 16`` (8 for 128 channels); we keep that and clamp it to at least 1 so that
    narrow test networks still work.

    Args:
        channels: number of channels ``C``.
        reduction: channel reduction ratio of the MLP. Defaults to 16.

    Shapes:
        ``(B, C, H, W) -> (B, C, H, W)``.
    """

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        hidden = max(1, channels // reduction)
        self.fc1 = nn.Conv2d(channels, hidden, kernel_size=1, bias=False)
        self.fc2 = nn.Conv2d(hidden, channels, kernel_size=1, bias=False)

    def _mlp(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(torch.relu(self.fc1(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        attn = self._mlp(F.adaptive_avg_pool2d(x, 1)) + self._mlp(F.adaptive_max_pool2d(x, 1))
        return x * torch.sigmoid(attn)


class SpatialAttention(nn.Module):
    """Spatial attention: a bias-free 7x7 convolution on the channel-wise ``[mean, max]`` maps, sigmoid-gated.

    Args:
        kernel_size: size of the convolution kernel. Defaults to 7.

    Shapes:
        ``(B, C, H, W) -> (B, C, H, W)``.
    """

    def __init__(self, kernel_size: int = 7) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel_size=kernel_size, padding=kernel_size // 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        return x * torch.sigmoid(self.conv(pooled))
