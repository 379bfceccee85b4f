# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""ResNet-50 stem + layer1..layer3 feature encoder, built from MONAI's ResNet bottleneck blocks."""

from __future__ import annotations

import torch
from monai.networks.nets.resnet import ResNetBottleneck
from torch import nn

__all__ = ["ResNet50Encoder"]


class ResNet50Encoder(nn.Module):
    """The ConDSeg encoder: a torchvision-layout ResNet-50 without ``layer4``, pooling and classifier.

    Built from MONAI's :class:`~monai.networks.nets.resnet.ResNetBottleneck` (stride on the 3x3 convolution,
    "ResNet v1.5", like torchvision) with bias-free downsampling shortcuts, so the state-dict keys are exactly
    torchvision's (``conv1``, ``bn1``, ``layer1.0.conv1``, ..., ``layer1.0.downsample.0/1``) and an ImageNet
    ``resnet50-19c8e357.pth`` file loads directly (see :func:`load_pretrained_resnet50`). Weights are
    initialised like torchvision (Kaiming-normal fan-out convolutions, BatchNorm 1/0).

    Args:
        in_channels: input channels of the stem convolution. Defaults to 3.
        layers: bottleneck blocks in layer1..layer3. Defaults to ``(3, 4, 6)`` (ResNet-50).

    Shapes:
        ``(B, in_channels, H, W)`` -> ``(f1, f2, f3, f4)`` with 64 / 256 / 512 / 1024 channels at strides
        2 / 4 / 8 / 16.
    """

    out_channels: tuple[int, int, int, int] = (64, 256, 512, 1024)

    def __init__(self, in_channels: int = 3, layers: tuple[int, int, int] = (3, 4, 6)) -> None:
        super().__init__()
        if in_channels < 1:
            raise ValueError(f"in_channels must be >= 1, got {in_channels}.")
        self.in_channels = in_channels
        self.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self._in_planes = 64
        self.layer1 = self._make_layer(64, layers[0], stride=1)
        self.layer2 = self._make_layer(128, layers[1], stride=2)
        self.layer3 = self._make_layer(256, layers[2], stride=2)

        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def _make_layer(self, planes: int, blocks: int, stride: int) -> nn.Sequential:
        out_planes = planes * ResNetBottleneck.expansion
        downsample = None
        if stride != 1 or self._in_planes != out_planes:
            downsample = nn.Sequential(
                nn.Conv2d(self._in_planes, out_planes, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(out_planes),
            )
        layers = [ResNetBottleneck(self._in_planes, planes, spatial_dims=2, stride=stride, downsample=downsample)]
        self._in_planes = out_planes
        layers += [ResNetBottleneck(out_planes, planes, spatial_dims=2) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        f1 = self.relu(self.bn1(self.conv1(x)))
        f2 = self.layer1(self.maxpool(f1))
        f3 = self.layer2(f2)
        f4 = self.layer3(f3)
        return f1, f2, f3, f4
