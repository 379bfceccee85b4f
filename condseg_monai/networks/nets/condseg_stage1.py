# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""ConDSeg Stage 1 ("Consistency Reinforcement") network: the encoder plus a light multi-level fusion head."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from condseg_monai.networks.blocks.conv import ConvBNAct
from condseg_monai.networks.blocks.upsample import upsample
from condseg_monai.networks.encoder import ResNet50Encoder, check_input_size

__all__ = ["ConDSegStage1", "Stage1Head"]


class Stage1Head(nn.Module):
    """Upsample f1..f4 to full resolution, CBR1 each to ``width`` channels, concatenate, bias-free 1x1 conv.

    The official head upsamples *before* its 1x1 convolutions. A 1x1 convolution commutes exactly with bilinear
    interpolation (both are linear and act on different axes), so we convolve at the feature's own resolution
    and upsample the ``width``-channel result before BatchNorm + ReLU: the same function (up to float rounding,
    BatchNorm statistics included) for a fraction of the cost (e.g. the 1024 -> 64 conv runs at 1/16 resolution).

    Args:
        in_channels: channels of f1..f4.
        out_channels: output channels.
        width: channels of each projected level. Defaults to 64.

    Shapes:
        ``f_i: (B, in_channels[i], H / s_i, W / s_i)`` with ``s = (2, 4, 8, 16)`` -> ``(B, out_channels, H, W)``.
    """

    def __init__(
        self, in_channels: tuple[int, int, int, int] = (64, 256, 512, 1024), out_channels: int = 1, width: int = 64
    ) -> None:
        super().__init__()
        self.conv1 = ConvBNAct(in_channels[0], width, 1)
        self.conv2 = ConvBNAct(in_channels[1], width, 1)
        self.conv3 = ConvBNAct(in_channels[2], width, 1)
        self.conv4 = ConvBNAct(in_channels[3], width, 1)
        self.conv_fuse = nn.Conv2d(4 * width, out_channels, kernel_size=1, bias=False)

    def forward(self, f1: torch.Tensor, f2: torch.Tensor, f3: torch.Tensor, f4: torch.Tensor) -> torch.Tensor:
        # conv at low resolution -> upsample -> BatchNorm + ReLU (``adn``), see the class docstring
        feats = [
            self.conv1.adn(upsample(self.conv1.conv(f1), 2.0)),
            self.conv2.adn(upsample(self.conv2.conv(f2), 4.0)),
            self.conv3.adn(upsample(self.conv3.conv(f3), 8.0)),
            self.conv4.adn(upsample(self.conv4.conv(f4), 16.0)),
        ]
        return self.conv_fuse(torch.cat(feats, dim=1))


class ConDSegStage1(nn.Module):
    """Stage-1 network of ConDSeg: :class:`ResNet50Encoder` + :class:`Stage1Head`, returning mask logits.

    The encoder's state-dict keys (``encoder.*``) are identical to those of :class:`ConDSeg`, so a trained
    Stage-1 encoder hands over with :func:`load_stage1_encoder`.

    Args:
        spatial_dims: number of spatial dimensions; only 2 is supported.
        in_channels: input channels. Defaults to 3.
        out_channels: output channels. Defaults to 1.
        pretrained_path: optional local torchvision-format ImageNet ResNet-50 state dict for the encoder.

    Shapes:
        ``(B, in_channels, H, W)`` with H, W multiples of 16 -> ``(B, out_channels, H, W)`` logits (train and eval).
    """

    def __init__(
        self,
        spatial_dims: int = 2,
        in_channels: int = 3,
        out_channels: int = 1,
        pretrained_path: str | Path | None = None,
    ) -> None:
        super().__init__()
        if spatial_dims != 2:
            raise ValueError(
                f"ConDSegStage1 only supports spatial_dims=2 (2D images), got spatial_dims={spatial_dims}."
            )
        if out_channels < 1:
            raise ValueError(f"out_channels must be >= 1, got {out_channels}.")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.encoder = ResNet50Encoder(in_channels=in_channels, pretrained_path=pretrained_path)
        self.head = Stage1Head(ResNet50Encoder.out_channels, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return ``(B, out_channels, H, W)`` mask logits for a ``(B, in_channels, H, W)`` image."""
        if not torch.jit.is_tracing():
            check_input_size(x, "ConDSegStage1")
        f1, f2, f3, f4 = self.encoder(x)
        return self.head(f1, f2, f3, f4)
