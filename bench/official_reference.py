# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""Independent test-only re-implementation of the *official* ConDSeg models, following the official code's structure.

It uses the official module names (so its ``state_dict`` keys equal ``official_state_dict_keys.txt``), reads BGR
images like the official code, returns sigmoid probabilities, and implements CDFA literally with
``F.unfold`` / ``F.fold``. It is only a fidelity yardstick for :mod:`condseg_monai.networks`; it shares no code
with the package.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["OfficialConDSeg", "OfficialConDSegStage1", "official_stage2_loss", "outlook_unfold_fold"]


def _upsample(scale: int) -> nn.Upsample:
    return nn.Upsample(scale_factor=scale, mode="bilinear", align_corners=True)


class CBR(nn.Module):
    def __init__(self, in_c: int, out_c: int, k: int = 3, pad: int = 1, dil: int = 1, act: bool = True) -> None:
        super().__init__()
        layers: list[nn.Module] = [
            nn.Conv2d(in_c, out_c, k, padding=pad, dilation=dil, bias=False),
            nn.BatchNorm2d(out_c),
        ]
        if act:
            layers.append(nn.ReLU())
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class ChannelAttentionRef(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(c, c // 16, 1, bias=False)
        self.fc2 = nn.Conv2d(c // 16, c, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.fc2(F.relu(self.fc1(F.adaptive_avg_pool2d(x, 1))))
        m = self.fc2(F.relu(self.fc1(F.adaptive_max_pool2d(x, 1))))
        return x * torch.sigmoid(a + m)


class SpatialAttentionRef(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(2, 1, 7, padding=3, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = torch.cat([x.mean(1, keepdim=True), x.max(1, keepdim=True)[0]], 1)
        return x * torch.sigmoid(self.conv1(s))


class DilatedConvRef(nn.Module):
    def __init__(self, in_c: int, out_c: int) -> None:
        super().__init__()
        self.c1 = nn.Sequential(CBR(in_c, out_c, 1, 0), ChannelAttentionRef(out_c))
        self.c2 = nn.Sequential(CBR(in_c, out_c, 3, 6, 6), ChannelAttentionRef(out_c))
        self.c3 = nn.Sequential(CBR(in_c, out_c, 3, 12, 12), ChannelAttentionRef(out_c))
        self.c4 = nn.Sequential(CBR(in_c, out_c, 3, 18, 18), ChannelAttentionRef(out_c))
        self.c5 = CBR(4 * out_c, out_c, 3, 1, act=False)
        self.c6 = CBR(in_c, out_c, 1, 0, act=False)
        self.sa = SpatialAttentionRef()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.c5(torch.cat([self.c1(x), self.c2(x), self.c3(x), self.c4(x)], 1))
        return self.sa(F.relu(y + self.c6(x)))


class DecoupleLayerRef(nn.Module):
    def __init__(self, in_c: int = 1024, out_c: int = 128) -> None:
        super().__init__()
        for name in ("cbr_fg", "cbr_bg", "cbr_uc"):
            setattr(self, name, nn.Sequential(CBR(in_c, 512), CBR(512, out_c), CBR(out_c, out_c, 1, 0)))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.cbr_fg(x), self.cbr_bg(x), self.cbr_uc(x)


class AuxiliaryHeadRef(nn.Module):
    def __init__(self, c: int = 128) -> None:
        super().__init__()
        for name in ("branch_fg", "branch_bg", "branch_uc"):
            branch = nn.Sequential(
                CBR(c, 256), _upsample(2), CBR(256, 256), _upsample(2), CBR(256, 128), _upsample(2),
                CBR(128, 64), _upsample(2), CBR(64, 64), nn.Conv2d(64, 1, 1), nn.Sigmoid(),
            )  # fmt: skip
            setattr(self, name, branch)

    def forward(self, fg: torch.Tensor, bg: torch.Tensor, uc: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self.branch_fg(fg), self.branch_bg(bg), self.branch_uc(uc)


class CDFAPreprocessRef(nn.Module):
    def __init__(self, in_c: int, out_c: int, up: int) -> None:
        super().__init__()
        self.preprocess = nn.Sequential()
        self.c1 = CBR(in_c, out_c)
        for i in range(int(math.log2(up))):
            self.preprocess.add_module(f"up_{i}", _upsample(2))
            self.preprocess.add_module(f"conv_{i}", CBR(out_c, out_c))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.preprocess(self.c1(x))


def outlook_unfold_fold(value: torch.Tensor, attn: torch.Tensor, k: int) -> torch.Tensor:
    """Literal outlook aggregation. value ``(B, C, H, W)``, attn ``(B, heads, H*W, K, K)`` -> ``(B, C, H, W)``."""
    b, c, h, w = value.shape
    heads, kk = attn.shape[1], k * k
    v = F.unfold(value, k, padding=k // 2).reshape(b, heads, c // heads, kk, h * w).permute(0, 1, 4, 3, 2)
    out = (attn @ v).permute(0, 1, 4, 3, 2).reshape(b, c * kk, h * w)
    return F.fold(out, (h, w), k, padding=k // 2)  # overlapping windows are summed


class CDFARef(nn.Module):
    def __init__(self, in_c: int, dim: int = 128, num_heads: int = 4, k: int = 3) -> None:
        super().__init__()
        self.num_heads, self.k, self.scale = num_heads, k, (dim // num_heads) ** -0.5
        self.v = nn.Linear(dim, dim)
        self.attn_fg = nn.Linear(dim, k**4 * num_heads)
        self.attn_bg = nn.Linear(dim, k**4 * num_heads)
        self.proj = nn.Linear(dim, dim)
        self.input_cbr = nn.Sequential(CBR(in_c, dim), CBR(dim, dim))
        self.output_cbr = nn.Sequential(CBR(dim, dim), CBR(dim, dim))

    def _attn(self, linear: nn.Linear, g: torch.Tensor) -> torch.Tensor:
        b, _, h, w = g.shape
        a = linear(g.permute(0, 2, 3, 1)).reshape(b, h * w, self.num_heads, self.k**2, self.k**2)
        return (a.permute(0, 2, 1, 3, 4) * self.scale).softmax(-1)

    def forward(self, x: torch.Tensor, fg: torch.Tensor, bg: torch.Tensor) -> torch.Tensor:
        x = self.input_cbr(x)
        v = self.v(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        y = outlook_unfold_fold(v, self._attn(self.attn_fg, fg), self.k)
        y = self.proj(y.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        y = outlook_unfold_fold(y, self._attn(self.attn_bg, bg), self.k)
        y = self.proj(y.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        return self.output_cbr(y)


class DecoderBlockRef(nn.Module):
    def __init__(self, c: int = 128) -> None:
        super().__init__()
        self.up = _upsample(2)
        self.c1 = CBR(2 * c, c, 1, 0)
        self.c2 = CBR(c, c, act=False)
        self.c3 = CBR(c, c, act=False)
        self.c4 = CBR(c, c, 1, 0, act=False)
        self.ca = ChannelAttentionRef(c)
        self.sa = SpatialAttentionRef()

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        s1 = self.c1(torch.cat([self.up(x), skip], 1))
        s2 = F.relu(self.c2(s1) + s1)
        s3 = F.relu(self.c3(s2) + s2 + s1)
        s4 = F.relu(self.c4(s3) + s3 + s2 + s1)
        return self.sa(self.ca(s4))


class OutputBlockRef(nn.Module):
    def __init__(self, c: int = 128) -> None:
        super().__init__()
        self.fuse = CBR(3 * c, c)
        self.c1 = CBR(c, c)
        self.c2 = CBR(c, 64, 1, 0)
        self.c3 = nn.Conv2d(64, 1, 1)

    def forward(self, xs: torch.Tensor, xm: torch.Tensor, xl: torch.Tensor) -> torch.Tensor:
        x = self.fuse(torch.cat([xs, _upsample(2)(xm), _upsample(4)(xl)], 1))
        return torch.sigmoid(self.c3(self.c2(self.c1(_upsample(2)(x)))))


class Bottleneck(nn.Module):
    """torchvision's ResNet v1.5 bottleneck (stride on the 3x3 conv)."""

    def __init__(self, in_c: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_c, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, 4 * planes, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(4 * planes)
        self.relu = nn.ReLU()
        self.downsample = None
        if stride != 1 or in_c != 4 * planes:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_c, 4 * planes, 1, stride, bias=False), nn.BatchNorm2d(4 * planes)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + (x if self.downsample is None else self.downsample(x)))


def _res_layer(in_c: int, planes: int, blocks: int, stride: int) -> nn.Sequential:
    return nn.Sequential(Bottleneck(in_c, planes, stride), *[Bottleneck(4 * planes, planes) for _ in range(blocks - 1)])


class _Backbone(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.layer0 = nn.Sequential(nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU())
        self.layer1 = nn.Sequential(nn.MaxPool2d(3, 2, 1), _res_layer(64, 64, 3, 1))
        self.layer2 = _res_layer(256, 128, 4, 2)
        self.layer3 = _res_layer(512, 256, 6, 2)

    def features(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        f1 = self.layer0(x)
        f2 = self.layer1(f1)
        f3 = self.layer2(f2)
        return f1, f2, f3, self.layer3(f3)


class OfficialConDSeg(_Backbone):
    """Reference full model: BGR input in [0, 1], returns ``(mask, fg, bg, uc)`` sigmoid probabilities."""

    def __init__(self) -> None:
        super().__init__()
        for i, c in enumerate((64, 256, 512, 1024), start=1):
            setattr(self, f"dconv{i}", DilatedConvRef(c, 128))
        self.decouple_layer = DecoupleLayerRef(1024, 128)
        for level, up in ((4, 1), (3, 2), (2, 4), (1, 8)):
            setattr(self, f"preprocess_fg{level}", CDFAPreprocessRef(128, 128, up))
            setattr(self, f"preprocess_bg{level}", CDFAPreprocessRef(128, 128, up))
        self.aux_head = AuxiliaryHeadRef(128)
        self.cdfa4 = CDFARef(128)
        self.cdfa3 = CDFARef(256)
        self.cdfa2 = CDFARef(256)
        self.cdfa1 = CDFARef(256)
        self.decoder_small = DecoderBlockRef()
        self.decoder_middle = DecoderBlockRef()
        self.decoder_large = DecoderBlockRef()
        self.output_block = OutputBlockRef()

    def forward(self, bgr: torch.Tensor) -> tuple[torch.Tensor, ...]:
        f1, f2, f3, f4 = self.features(bgr)
        e1, e2, e3, e4 = self.dconv1(f1), self.dconv2(f2), self.dconv3(f3), self.dconv4(f4)
        fg, bg, uc = self.decouple_layer(f4)
        m_fg, m_bg, m_uc = self.aux_head(fg, bg, uc)
        up = _upsample(2)
        o4 = self.cdfa4(e4, self.preprocess_fg4(fg), self.preprocess_bg4(bg))
        o3 = self.cdfa3(torch.cat([e3, up(o4)], 1), self.preprocess_fg3(fg), self.preprocess_bg3(bg))
        o2 = self.cdfa2(torch.cat([e2, up(o3)], 1), self.preprocess_fg2(fg), self.preprocess_bg2(bg))
        o1 = self.cdfa1(torch.cat([e1, up(o2)], 1), self.preprocess_fg1(fg), self.preprocess_bg1(bg))
        mask = self.output_block(self.decoder_small(o2, o1), self.decoder_middle(o3, o2), self.decoder_large(o4, o3))
        return mask, m_fg, m_bg, m_uc


class Stage1HeadRef(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        for i, c in enumerate((64, 256, 512, 1024), start=1):
            setattr(self, f"conv{i}", CBR(c, 64, 1, 0))
        self.conv_fuse = nn.Conv2d(256, 1, 1, bias=False)

    def forward(self, feats: tuple[torch.Tensor, ...]) -> torch.Tensor:
        ups = [getattr(self, f"conv{i + 1}")(_upsample(2 ** (i + 1))(f)) for i, f in enumerate(feats)]
        return torch.sigmoid(self.conv_fuse(torch.cat(ups, 1)))


class OfficialConDSegStage1(_Backbone):
    """Reference Stage-1 model: BGR input, returns sigmoid probabilities."""

    def __init__(self) -> None:
        super().__init__()
        self.head = Stage1HeadRef()

    def forward(self, bgr: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(bgr))


def _official_dice_bce(p: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """The official DiceBCE on model *probabilities*: it applies its own sigmoid again (the double sigmoid)."""
    s = torch.sigmoid(p)
    dice = 1.0 - (2.0 * (s * t).sum() + 1.0) / (s.sum() + t.sum() + 1.0)
    return F.binary_cross_entropy(s, t) + dice


def official_stage2_loss(outputs: tuple[torch.Tensor, ...], y: torch.Tensor) -> torch.Tensor:
    """The official Stage-2 training loss of :class:`OfficialConDSeg`'s ``(mask, fg, bg, uc)`` probabilities.

    ``DiceBCE(M, y) + b1 * DiceBCE(M_fg, y) + b2 * DiceBCE(M_bg, 1 - y) + L_compl`` with
    ``b = 1 / (tanh(sum(M) / (H * W)) + 1e-15)`` summed over the batch and not detached, and ``L_compl`` the mean
    pairwise product of the softmax over the three stacked probabilities (used by the side-by-side benchmark).
    """
    mask, fg, bg, uc = outputs
    hw = y.shape[-2] * y.shape[-1]
    beta_fg = 1.0 / (torch.tanh(fg.sum() / hw) + 1e-15)
    beta_bg = 1.0 / (torch.tanh(bg.sum() / hw) + 1e-15)
    p = torch.softmax(torch.stack([fg, bg, uc], dim=0), dim=0)
    compl = (p[0] * p[1] + p[0] * p[2] + p[1] * p[2]).mean()
    return (
        _official_dice_bce(mask, y)
        + beta_fg * _official_dice_bce(fg, y)
        + beta_bg * _official_dice_bce(bg, 1.0 - y)
        + compl
    )
