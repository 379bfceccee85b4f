# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""ConDSeg (Lei et al., AAAI 2025): contrast-driven medical image segmentation network, ResNet-50 variant."""

from __future__ import annotations

from enum import IntEnum
from pathlib import Path

import torch
from torch import nn

from condseg_monai.networks.blocks.cdfa import CDFAPreprocess, ContrastDrivenFeatureAggregation
from condseg_monai.networks.blocks.decoder import FusionHead, SizeAwareDecoderBlock
from condseg_monai.networks.blocks.decoupling import AuxiliaryHead, SemanticInformationDecoupling
from condseg_monai.networks.blocks.dilated import DilatedConvBlock
from condseg_monai.networks.blocks.upsample import upsample
from condseg_monai.networks.checkpointing import checkpointed_blocks
from condseg_monai.networks.encoder import ResNet50Encoder, check_input_size

__all__ = ["CHECKPOINTED_BLOCKS", "ConDSeg", "ConDSegOutput", "condseg_mask"]

# The blocks that ``use_checkpoint`` checkpoints (selectively: their k x k convolution outputs are kept), chosen by
# memory saved per second of recomputation (docs/benchmarks.md): the encoder, SID, the high-resolution dilated,
# guide and decoder blocks, the fusion head and the three auxiliary branches. cdfa1, cdfa2 and decoder_small are
# left out: their recomputation (attention, gates, residual sums) costs 0.15-0.9 s per step at 256x256, batch 4.
CHECKPOINTED_BLOCKS = (
    "encoder",
    "dconv1",
    "dconv2",
    "sid",
    "preprocess_fg1",
    "preprocess_bg1",
    "preprocess_fg2",
    "preprocess_bg2",
    "decoder_middle",
    "output_block",
    "aux_head.fg",
    "aux_head.bg",
    "aux_head.uc",
)


class ConDSegOutput(IntEnum):
    """Index of each map along dim 1 of the stacked ``(B, 4, out_channels, H, W)`` training output."""

    MASK = 0
    FOREGROUND = 1
    BACKGROUND = 2
    UNCERTAINTY = 3


def condseg_mask(output: torch.Tensor, batched: bool = True) -> torch.Tensor:
    """The mask map of a network output: the :attr:`ConDSegOutput.MASK` map of ConDSeg's stacked output, or the
    output itself when it is a plain mask (eval-mode ConDSeg, any other segmenter).

    The one place that reads the mask out of the stacked layout, for logits and probabilities alike (indexing
    commutes with the sigmoid). ``batched`` is explicit because the shapes alone are ambiguous: a decollated
    stacked output ``(4, C, H, W)`` looks like a plain batch of four images.

    Args:
        output: with ``batched``: ``(B, 4, C, H, W)`` stacked or ``(B, C, H, W)`` plain; without: one image,
            ``(4, C, H, W)`` stacked (e.g. after ``decollate_batch``) or ``(C, H, W)`` plain.
        batched: whether dim 0 of ``output`` is the batch.

    Returns:
        ``(B, C, H, W)`` (``batched``) or ``(C, H, W)``: a view of ``output``'s mask map, or ``output`` itself
        (the same object) when it is plain.

    Raises:
        ValueError: ``output`` has neither layout (wrong number of dimensions, or a stack of other than 4 maps).
    """
    stacked_ndim = 5 if batched else 4
    dim = 1 if batched else 0
    if output.ndim == stacked_ndim - 1:
        return output
    if output.ndim != stacked_ndim or output.shape[dim] != len(ConDSegOutput):
        layout = "(B, {}C, H, W)" if batched else "({}C, H, W)"
        raise ValueError(
            f"expected ConDSeg's stacked output {layout.format(f'{len(ConDSegOutput)}, ')} or a plain mask "
            f"{layout.format('')}, got {tuple(output.shape)}."
        )
    return output[:, ConDSegOutput.MASK] if batched else output[ConDSegOutput.MASK]


class ConDSeg(nn.Module):
    """ConDSeg segmentation network (Stage 2 of the paper), returning raw logits.

    ResNet-50 encoder (``f1..f4``) -> one :class:`DilatedConvBlock` per level (``e1..e4``); Semantic Information
    Decoupling of raw ``f4`` into fg / bg / uncertainty features (plus the auxiliary head that decodes them to
    full-resolution maps, training only); per-level fg / bg guides (:class:`CDFAPreprocess`); four
    :class:`ContrastDrivenFeatureAggregation` modules applied top-down; three size-aware decoders and a fusion
    head. See ``docs/architecture.md`` for shapes.

    Output contract (all raw logits, no sigmoid):

    - ``self.training or self.return_aux``: one tensor ``(B, 4, out_channels, H, W)`` stacking
      ``[mask, foreground, background, uncertainty]`` (indices :attr:`MASK`, :attr:`FOREGROUND`,
      :attr:`BACKGROUND`, :attr:`UNCERTAINTY`, also :class:`ConDSegOutput`);
    - otherwise: mask logits ``(B, out_channels, H, W)``; the auxiliary head is then not evaluated (it does not
      feed the segmentation path).

    Args:
        spatial_dims: number of spatial dimensions; only 2 is supported.
        in_channels: input channels (RGB in [0, 1] for the ImageNet encoder, no normalisation). Defaults to 3.
        out_channels: output channels of the mask and of each auxiliary map. Defaults to 1.
        feature_size: width ``f`` of the dilated blocks, SID outputs, guides, CDFAs and decoders (128 officially).
            The other widths scale with it: SID hidden ``4f``, auxiliary head ``2f, 2f, f, f/2, f/2``, fusion head
            ``f/2`` before the last convolution, channel-attention hidden ``max(1, f // 16)``. Must be even.
        num_heads: CDFA attention heads; must divide ``feature_size``. Defaults to 4.
        window_size: odd CDFA outlook window. Defaults to 3.
        pretrained_path: optional local torchvision-format ImageNet ResNet-50 state dict
            (e.g. ``resnet50-19c8e357.pth``) loaded into the encoder; ``None`` keeps a random init.
        return_aux: also return the auxiliary maps in eval mode (e.g. to read the uncertainty map). A plain bool
            attribute that may be toggled after construction.
        use_checkpoint: selective activation checkpointing in training of the blocks in
            :data:`CHECKPOINTED_BLOCKS` (:func:`~condseg_monai.networks.checkpointing.checkpoint_module`): only their
            k x k convolution outputs are kept for backward, the cheap memory-bound layers are recomputed from them.
            At 256x256, batch 4 this lowers the training peak memory by about 1.7 GB (4.9 -> 3.25 GB) for about
            1 s more per step (docs/benchmarks.md). Outputs, gradients and BatchNorm statistics are unchanged. No
            effect in eval mode or without gradients. A plain bool attribute.

    Raises:
        ValueError: ``spatial_dims != 2``, bad widths, or (in ``forward``) H or W not a multiple of 16.

    Example::

        net = ConDSeg(out_channels=1).eval()
        logits = net(torch.rand(1, 3, 256, 256))  # (1, 1, 256, 256)
    """

    MASK: int = int(ConDSegOutput.MASK)
    FOREGROUND: int = int(ConDSegOutput.FOREGROUND)
    BACKGROUND: int = int(ConDSegOutput.BACKGROUND)
    UNCERTAINTY: int = int(ConDSegOutput.UNCERTAINTY)

    def __init__(
        self,
        spatial_dims: int = 2,
        in_channels: int = 3,
        out_channels: int = 1,
        feature_size: int = 128,
        num_heads: int = 4,
        window_size: int = 3,
        pretrained_path: str | Path | None = None,
        return_aux: bool = False,
        use_checkpoint: bool = False,
    ) -> None:
        super().__init__()
        if spatial_dims != 2:
            raise ValueError(f"ConDSeg only supports spatial_dims=2 (2D images), got spatial_dims={spatial_dims}.")
        if out_channels < 1:
            raise ValueError(f"out_channels must be >= 1, got {out_channels}.")
        if feature_size < 2 or feature_size % 2 != 0:
            raise ValueError(f"feature_size must be an even number >= 2, got {feature_size}.")
        if num_heads < 1 or feature_size % num_heads != 0:
            raise ValueError(f"num_heads ({num_heads}) must be >= 1 and divide feature_size ({feature_size}).")
        f = feature_size
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.feature_size = feature_size
        self.return_aux = bool(return_aux)
        self.use_checkpoint = bool(use_checkpoint)

        self.encoder = ResNet50Encoder(in_channels=in_channels, pretrained_path=pretrained_path)
        c1, c2, c3, c4 = ResNet50Encoder.out_channels
        self.dconv1 = DilatedConvBlock(c1, f)
        self.dconv2 = DilatedConvBlock(c2, f)
        self.dconv3 = DilatedConvBlock(c3, f)
        self.dconv4 = DilatedConvBlock(c4, f)

        self.sid = SemanticInformationDecoupling(c4, f)
        self.aux_head = AuxiliaryHead(f, out_channels)

        # guides for levels 4..1 (1/16 .. 1/2 resolution): upsampling x1, x2, x4, x8
        self.preprocess_fg4 = CDFAPreprocess(f, f, 1)
        self.preprocess_bg4 = CDFAPreprocess(f, f, 1)
        self.preprocess_fg3 = CDFAPreprocess(f, f, 2)
        self.preprocess_bg3 = CDFAPreprocess(f, f, 2)
        self.preprocess_fg2 = CDFAPreprocess(f, f, 4)
        self.preprocess_bg2 = CDFAPreprocess(f, f, 4)
        self.preprocess_fg1 = CDFAPreprocess(f, f, 8)
        self.preprocess_bg1 = CDFAPreprocess(f, f, 8)

        self.cdfa4 = ContrastDrivenFeatureAggregation(f, f, num_heads, window_size)
        self.cdfa3 = ContrastDrivenFeatureAggregation(2 * f, f, num_heads, window_size)
        self.cdfa2 = ContrastDrivenFeatureAggregation(2 * f, f, num_heads, window_size)
        self.cdfa1 = ContrastDrivenFeatureAggregation(2 * f, f, num_heads, window_size)

        self.decoder_small = SizeAwareDecoderBlock(f, f, f)
        self.decoder_middle = SizeAwareDecoderBlock(f, f, f)
        self.decoder_large = SizeAwareDecoderBlock(f, f, f)
        self.output_block = FusionHead(f, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Segment a batch.

        Args:
            x: ``(B, in_channels, H, W)`` image, H and W multiples of 16.

        Returns:
            ``(B, 4, out_channels, H, W)`` stacked ``[mask, fg, bg, uncertainty]`` logits when
            ``self.training or self.return_aux``, else ``(B, out_channels, H, W)`` mask logits.
        """
        if not torch.jit.is_tracing():  # a traced graph is specialised to the traced shape anyway
            check_input_size(x, "ConDSeg")
        if self.use_checkpoint and self.training and torch.is_grad_enabled() and not torch.jit.is_scripting():
            return self._checkpointed_forward(x)
        return self._forward(x)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        f1, f2, f3, f4 = self.encoder(x)
        e1, e2, e3, e4 = self.dconv1(f1), self.dconv2(f2), self.dconv3(f3), self.dconv4(f4)

        f_fg, f_bg, f_uc = self.sid(f4)

        out4 = self.cdfa4(e4, self.preprocess_fg4(f_fg), self.preprocess_bg4(f_bg))
        out3 = self.cdfa3(torch.cat([e3, upsample(out4)], dim=1), self.preprocess_fg3(f_fg), self.preprocess_bg3(f_bg))
        out2 = self.cdfa2(torch.cat([e2, upsample(out3)], dim=1), self.preprocess_fg2(f_fg), self.preprocess_bg2(f_bg))
        out1 = self.cdfa1(torch.cat([e1, upsample(out2)], dim=1), self.preprocess_fg1(f_fg), self.preprocess_bg1(f_bg))

        d_s = self.decoder_small(out2, out1)
        d_m = self.decoder_middle(out3, out2)
        d_l = self.decoder_large(out4, out3)
        mask = self.output_block(d_s, d_m, d_l)

        if self.training or self.return_aux:
            m_fg, m_bg, m_uc = self.aux_head(f_fg, f_bg, f_uc)
            return torch.stack([mask, m_fg, m_bg, m_uc], dim=1)
        return mask

    # TorchScript skips this (training-only) helper; it is left unannotated because TorchScript cannot read the
    # string annotations of this module for unused methods (argument and result are tensors).
    @torch.jit.unused
    def _checkpointed_forward(self, x):
        """The forward with each block of :data:`CHECKPOINTED_BLOCKS` under selective activation checkpointing."""
        with checkpointed_blocks([self.get_submodule(name) for name in CHECKPOINTED_BLOCKS]):
            return self._forward(x)
