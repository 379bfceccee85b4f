# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""Convolution + BatchNorm (+ ReLU) unit, the "CBR" / "CB" building block of ConDSeg."""

from __future__ import annotations

from monai.networks.blocks import Convolution

__all__ = ["ConvBNAct"]


class ConvBNAct(Convolution):
    """2D ``Conv (no bias) -> BatchNorm -> ReLU`` ("CBR"), or without the ReLU ("CB") when ``act=False``.

    A thin specialisation of MONAI's :class:`~monai.networks.blocks.Convolution`, so the state-dict keys are
    ``conv.weight`` and ``adn.N.*``. Padding keeps the spatial size ("same" padding, dilation aware).

    Args:
        in_channels: number of input channels.
        out_channels: number of output channels.
        kernel_size: convolution kernel size. Defaults to 3.
        dilation: convolution dilation. Defaults to 1.
        act: append a ReLU (CBR) when True, otherwise stop after the BatchNorm (CB). Defaults to True.

    Shapes:
        ``(B, in_channels, H, W) -> (B, out_channels, H, W)``.
    """

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int = 3, dilation: int = 1, act: bool = True
    ) -> None:
        if kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd to keep the spatial size, got {kernel_size}.")
        super().__init__(
            spatial_dims=2,
            in_channels=in_channels,
            out_channels=out_channels,
            kernel_size=kernel_size,
            dilation=dilation,
            bias=False,
            # in-place ReLU is safe here: BatchNorm's backward does not need its output
            act=("relu", {"inplace": True}) if act else None,
            norm="batch",
        )
