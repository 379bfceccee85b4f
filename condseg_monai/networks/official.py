# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""Conversion of checkpoints saved by the official ConDSeg code into state dicts of our networks.

It builds the network a checkpoint is for to check the converted keys and shapes, so it depends on
:mod:`condseg_monai.networks.nets`; the networks do not depend on it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

import torch
from torch import nn

from condseg_monai.networks.nets.condseg import ConDSeg
from condseg_monai.networks.nets.condseg_stage1 import ConDSegStage1
from condseg_monai.networks.state_dict import format_keys, shape_mismatches, unwrap_state_dict

__all__ = ["convert_official_state_dict"]

_Rule = tuple[re.Pattern[str], Callable[[re.Match[str]], str]]


def _rule(pattern: str, repl: str | Callable[[re.Match[str]], str]) -> _Rule:
    compiled = re.compile(pattern)
    if isinstance(repl, str):
        template = repl
        return compiled, lambda m: m.expand(template)
    return compiled, repl


# Applied in order, each with re.sub semantics on the whole key (all that match are applied).
_RULES: list[_Rule] = [
    # encoder: official layer0 = Sequential(conv1, bn1, relu), layer1 = Sequential(maxpool, resnet.layer1)
    _rule(r"^layer0\.0\.", r"encoder.conv1."),
    _rule(r"^layer0\.1\.", r"encoder.bn1."),
    _rule(r"^layer1\.1\.", r"encoder.layer1."),
    _rule(r"^layer([23])\.", r"encoder.layer\1."),
    # CBR / CB: official Sequential(conv, bn[, relu]) named `conv` -> MONAI Convolution (conv, adn.N)
    _rule(r"\.conv\.0\.weight$", r".conv.weight"),
    _rule(r"\.conv\.1\.(weight|bias|running_mean|running_var|num_batches_tracked)$", r".adn.N.\1"),
    # dilated blocks: c1..c4 = branches, c5 = fuse, c6 = shortcut
    _rule(r"^(dconv[1-4])\.c([1-4])\.", lambda m: f"{m.group(1)}.branches.{int(m.group(2)) - 1}."),
    _rule(r"^(dconv[1-4])\.c5\.", r"\1.fuse."),
    _rule(r"^(dconv[1-4])\.c6\.", r"\1.shortcut."),
    _rule(r"\.sa\.conv1\.weight$", r".sa.conv.weight"),
    # SID and auxiliary head branches
    _rule(r"^decouple_layer\.cbr_(fg|bg|uc)\.", r"sid.\1."),
    _rule(r"^aux_head\.branch_(fg|bg|uc)\.", r"aux_head.\1."),
    # guides: c1 (first CBR) -> 0, preprocess.conv_i (after the i-th upsampling) -> 2 + 2i
    _rule(r"^(preprocess_(?:fg|bg)[1-4])\.c1\.", r"\1.0."),
    _rule(
        r"^(preprocess_(?:fg|bg)[1-4])\.preprocess\.conv_(\d+)\.",
        lambda m: f"{m.group(1)}.{2 + 2 * int(m.group(2))}.",
    ),
]

_KNOWN_PREFIXES = (
    r"^layer0\.[01]\.|^layer1\.1\.|^layer[23]\.|^dconv[1-4]\.|^decouple_layer\.|^aux_head\.|^preprocess_(fg|bg)[1-4]\."
    r"|^cdfa[1-4]\.|^decoder_(small|middle|large)\.|^output_block\.|^head\."
)


def _rename(key: str) -> str:
    for pattern, repl in _RULES:
        key = pattern.sub(repl, key)
    return key


def convert_official_state_dict(
    state_dict: Mapping[str, torch.Tensor], *, bgr_to_rgb: bool = True
) -> dict[str, torch.Tensor]:
    """Convert a checkpoint saved by the official ConDSeg code into a state dict for our networks.

    The kind is detected from the keys: ``head.conv_fuse.weight`` means a Stage-1 checkpoint (load it into
    :class:`ConDSegStage1`), ``output_block.*`` a full model (:class:`ConDSeg`). Widths are read from the tensor
    shapes (``in_channels``, ``out_channels``, ``feature_size``, ``num_heads`` with the official 3x3 window) and the
    result is checked, key by key and shape by shape, against a network built with them, so it always loads with
    ``strict=True``.

    The official models read BGR images (cv2) while ours read RGB: with ``bgr_to_rgb`` (default) the channel swap
    is folded into the stem convolution by reversing the input-channel axis of ``layer0.0.weight`` (3-channel
    inputs only), so ``ours(rgb) == official(bgr)``. Our outputs stay logits (the official ones are sigmoids).

    Args:
        state_dict: official state dict, optionally wrapped under "state_dict"/"model" (``module.`` prefixes
            are stripped).
        bgr_to_rgb: fold the BGR -> RGB swap into the first convolution. Defaults to True.

    Returns:
        A new dict with our key names (same tensors, except the flipped stem kernel).

    Raises:
        ValueError: unknown kind, unknown keys, missing keys or shapes that do not fit the detected configuration.
    """
    state = unwrap_state_dict(state_dict, "official state dict")
    unknown = [k for k in state if not re.match(_KNOWN_PREFIXES, k)]
    if unknown:
        raise ValueError(f"Official state dict has unknown keys: [{format_keys(unknown)}].")

    def shape_of(key: str, dim: int) -> int:
        if key not in state:
            raise ValueError(f"Official state dict lacks the key '{key}' needed to detect its configuration.")
        return int(state[key].shape[dim])

    in_channels = shape_of("layer0.0.weight", 1)
    model: nn.Module
    with torch.device("meta"):  # only keys and shapes are needed: no memory, no init cost
        if "head.conv_fuse.weight" in state:
            model = ConDSegStage1(in_channels=in_channels, out_channels=shape_of("head.conv_fuse.weight", 0))
        elif any(k.startswith("output_block.") for k in state):
            model = ConDSeg(
                in_channels=in_channels,
                out_channels=shape_of("output_block.c3.weight", 0),
                feature_size=shape_of("cdfa1.v.weight", 0),
                num_heads=max(1, shape_of("cdfa1.attn_fg.weight", 0) // 81),
                window_size=3,
            )
        else:
            raise ValueError(
                "Cannot tell the kind of the official state dict: neither 'head.conv_fuse.weight' (Stage 1) nor "
                "'output_block.*' (ConDSeg) keys found."
            )
    expected = model.state_dict()

    converted = {_rename(k): v for k, v in state.items()}
    unexpected = [k for k, new in zip(state, converted, strict=True) if new not in expected]
    missing = [k for k in expected if k not in converted]
    if unexpected or missing:
        raise ValueError(
            f"Official {type(model).__name__} state dict does not match: unknown official keys "
            f"[{format_keys(unexpected)}], missing (our names) [{format_keys(missing)}]."
        )
    wrong = shape_mismatches(converted, expected)
    if wrong:
        raise ValueError(f"Official state dict has tensors of unexpected shape: {format_keys(wrong, 4)}.")
    if bgr_to_rgb and in_channels == 3:
        converted["encoder.conv1.weight"] = converted["encoder.conv1.weight"].flip(1)
    return {k: converted[k] for k in expected}
