# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""ResNet-50 stem + layer1..layer3 feature encoder, built from MONAI's ResNet bottleneck blocks, with its
ImageNet weight loader and the input-size rule of the networks built on it."""

from __future__ import annotations

import math
from pathlib import Path

import torch
from monai.networks.nets.resnet import ResNetBottleneck
from torch import nn

from condseg_monai.networks.state_dict import format_keys, load_state_dict_file, shape_mismatches

__all__ = ["ResNet50Encoder", "check_input_size", "load_pretrained_resnet50", "resolve_encoder"]


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
        pretrained_path: optional local torchvision-format ImageNet ResNet-50 state dict
            (e.g. ``resnet50-19c8e357.pth``) loaded after the initialisation with :func:`load_pretrained_resnet50`;
            ``None`` keeps the random init.

    Shapes:
        ``(B, in_channels, H, W)`` -> ``(f1, f2, f3, f4)`` with 64 / 256 / 512 / 1024 channels at strides
        2 / 4 / 8 / 16.
    """

    out_channels: tuple[int, int, int, int] = (64, 256, 512, 1024)

    def __init__(
        self,
        in_channels: int = 3,
        layers: tuple[int, int, int] = (3, 4, 6),
        pretrained_path: str | Path | None = None,
    ) -> None:
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
        if pretrained_path is not None:
            load_pretrained_resnet50(self, pretrained_path)

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


def check_input_size(x: torch.Tensor, network: str) -> None:
    """Raise unless ``x`` is a ``(B, C, H, W)`` batch with H and W multiples of the encoder's stride (16).

    Args:
        x: the network input.
        network: the network's name, for the message.

    Raises:
        ValueError: naming the shape.
    """
    # 16 is the encoder's total stride (f4 is at 1/16): the networks upsample f1..f4 back to the input size and
    # concatenate levels, which only lines up at multiples of it. A literal, as TorchScript reads no globals.
    if x.dim() != 4 or x.shape[2] % 16 != 0 or x.shape[3] % 16 != 0:
        raise ValueError(
            f"{network} expects input of shape (B, C, H, W) with H and W multiples of 16, got {list(x.shape)}."
        )


def resolve_encoder(module: nn.Module) -> ResNet50Encoder:
    """``module`` itself when it is a :class:`ResNet50Encoder`, else its ``encoder`` attribute.

    Raises:
        TypeError: ``module`` has no ResNet-50 encoder.
    """
    if isinstance(module, ResNet50Encoder):
        return module
    encoder = getattr(module, "encoder", None)
    if isinstance(encoder, ResNet50Encoder):
        return encoder
    raise TypeError(
        "Expected a ResNet50Encoder or a model with an `encoder` ResNet50Encoder attribute, "
        f"got {type(module).__name__}."
    )


def _adapt_first_conv(weight: torch.Tensor, in_channels: int) -> torch.Tensor:
    """Adapt an RGB stem kernel ``(64, 3, k, k)`` to ``in_channels`` inputs (timm convention)."""
    if in_channels == 1:
        return weight.sum(dim=1, keepdim=True)
    # repeat the RGB filters and rescale so a grey image gives the same response
    reps = math.ceil(in_channels / weight.shape[1])
    return weight.repeat(1, reps, 1, 1)[:, :in_channels] * (weight.shape[1] / in_channels)


def load_pretrained_resnet50(encoder_or_model: nn.Module, path: str | Path) -> None:
    """Load a torchvision-format ImageNet ResNet-50 state dict (e.g. ``resnet50-19c8e357.pth``) into the encoder.

    ``layer4.*`` and ``fc.*`` entries are ignored; every other encoder tensor must be present with the right shape
    (``num_batches_tracked`` may be absent, as in the original 2017 file). If the encoder has ``in_channels != 3``
    the RGB stem kernel is adapted: summed over RGB for 1 channel, otherwise repeated and scaled by
    ``3 / in_channels``.

    Args:
        encoder_or_model: a :class:`ResNet50Encoder`, or a model with one as its ``encoder`` attribute
            (:class:`ConDSeg`, :class:`ConDSegStage1`).
        path: local ``.pth`` file (a state dict, optionally wrapped under "state_dict" or "model").

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file is unreadable, not a state dict, or has missing / unexpected keys or wrong shapes.
        TypeError: ``encoder_or_model`` has no ResNet-50 encoder.
    """
    encoder = resolve_encoder(encoder_or_model)
    source = f"ImageNet ResNet-50 file '{path}'"
    state = load_state_dict_file(path, "ImageNet ResNet-50")
    state = {k: v for k, v in state.items() if not k.startswith(("layer4.", "fc."))}
    expected = encoder.state_dict()

    missing = [k for k in expected if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        raise ValueError(
            f"{source} does not match a torchvision ResNet-50: missing keys [{format_keys(missing)}], "
            f"unexpected keys [{format_keys(unexpected)}]."
        )
    stem = state["conv1.weight"]
    if stem.ndim == 4 and stem.shape[1] == 3 and encoder.in_channels != 3:
        state["conv1.weight"] = _adapt_first_conv(stem, encoder.in_channels)
    wrong = shape_mismatches(state, expected)
    if wrong:
        raise ValueError(f"{source} has tensors of the wrong shape: {format_keys(wrong, 4)}.")
    full = dict(expected)  # keeps the current num_batches_tracked where the file has none
    full.update(state)
    encoder.load_state_dict(full, strict=True)
