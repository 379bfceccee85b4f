# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""Weight loading: ImageNet ResNet-50 files, official ConDSeg checkpoints, and the Stage-1 -> Stage-2 hand-over."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from pathlib import Path

import torch
from torch import nn

from condseg_monai.networks.encoder import ResNet50Encoder

__all__ = ["convert_official_state_dict", "load_pretrained_resnet50", "load_stage1_encoder"]

_WRAPPER_KEYS = ("state_dict", "model")


def _unwrap(obj: object, source: str) -> dict[str, torch.Tensor]:
    """Return the tensor mapping inside ``obj`` (optionally wrapped under "state_dict"/"model", "module." prefixes)."""
    if isinstance(obj, Mapping):
        for key in _WRAPPER_KEYS:
            if key in obj and isinstance(obj[key], Mapping):
                obj = obj[key]
                break
    if not isinstance(obj, Mapping) or not obj:
        raise ValueError(f"{source} does not contain a (non-empty) state dict, got {type(obj).__name__}.")
    bad = [k for k, v in obj.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise ValueError(f"{source} is not a state dict of tensors: bad entries {bad[:5]}.")
    # checkpoints saved from DataParallel/DDP wrappers
    return {k.removeprefix("module."): v for k, v in obj.items()}


def _load_file(path: str | Path, what: str) -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} file not found: '{path}'.")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # unpickling errors come in many types
        raise ValueError(f"Could not read {what} file '{path}' with torch.load(weights_only=True): {e}") from e
    return _unwrap(obj, f"{what} file '{path}'")


def _short(keys: list[str], n: int = 8) -> str:
    return ", ".join(keys[:n]) + (f" ... ({len(keys)} in total)" if len(keys) > n else "")


def _shape_mismatches(state: Mapping[str, torch.Tensor], expected: Mapping[str, torch.Tensor]) -> list[str]:
    """``"key: got vs expected"`` for every tensor of ``state`` whose shape differs from ``expected``'s."""
    return [
        f"{k}: {tuple(v.shape)} vs expected {tuple(expected[k].shape)}"
        for k, v in state.items()
        if v.shape != expected[k].shape
    ]


def _adapt_first_conv(weight: torch.Tensor, in_channels: int) -> torch.Tensor:
    """Adapt an RGB stem kernel ``(64, 3, k, k)`` to ``in_channels`` inputs (timm convention)."""
    if in_channels == 1:
        return weight.sum(dim=1, keepdim=True)
    # repeat the RGB filters and rescale so a grey image gives the same response
    reps = math.ceil(in_channels / weight.shape[1])
    return weight.repeat(1, reps, 1, 1)[:, :in_channels] * (weight.shape[1] / in_channels)


def _resolve_encoder(module: nn.Module) -> ResNet50Encoder:
    if isinstance(module, ResNet50Encoder):
        return module
    encoder = getattr(module, "encoder", None)
    if isinstance(encoder, ResNet50Encoder):
        return encoder
    raise TypeError(
        "Expected a ResNet50Encoder or a model with an `encoder` ResNet50Encoder attribute, "
        f"got {type(module).__name__}."
    )


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
    encoder = _resolve_encoder(encoder_or_model)
    source = f"ImageNet ResNet-50 file '{path}'"
    state = _load_file(path, "ImageNet ResNet-50")
    state = {k: v for k, v in state.items() if not k.startswith(("layer4.", "fc."))}
    expected = encoder.state_dict()

    missing = [k for k in expected if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        raise ValueError(
            f"{source} does not match a torchvision ResNet-50: missing keys [{_short(missing)}], "
            f"unexpected keys [{_short(unexpected)}]."
        )
    stem = state["conv1.weight"]
    if stem.ndim == 4 and stem.shape[1] == 3 and encoder.in_channels != 3:
        state["conv1.weight"] = _adapt_first_conv(stem, encoder.in_channels)
    wrong = _shape_mismatches(state, expected)
    if wrong:
        raise ValueError(f"{source} has tensors of the wrong shape: {_short(wrong, 4)}.")
    full = dict(expected)  # keeps the current num_batches_tracked where the file has none
    full.update(state)
    encoder.load_state_dict(full, strict=True)


# ----------------------------------------------------------------------------------------------------------------
# official checkpoint conversion

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
    state = _unwrap(state_dict, "official state dict")
    unknown = [k for k in state if not re.match(_KNOWN_PREFIXES, k)]
    if unknown:
        raise ValueError(f"Official state dict has unknown keys: [{_short(unknown)}].")

    from condseg_monai.networks.nets.condseg import ConDSeg
    from condseg_monai.networks.nets.condseg_stage1 import ConDSegStage1

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
            f"Official {type(model).__name__} state dict does not match: unknown official keys [{_short(unexpected)}], "
            f"missing (our names) [{_short(missing)}]."
        )
    wrong = _shape_mismatches(converted, expected)
    if wrong:
        raise ValueError(f"Official state dict has tensors of unexpected shape: {_short(wrong, 4)}.")
    if bgr_to_rgb and in_channels == 3:
        converted["encoder.conv1.weight"] = converted["encoder.conv1.weight"].flip(1)
    return {k: converted[k] for k in expected}


# ----------------------------------------------------------------------------------------------------------------
# Stage 1 -> Stage 2


def load_stage1_encoder(
    model: nn.Module, stage1: Mapping[str, torch.Tensor] | str | Path, copy_buffers: bool = True
) -> None:
    """Initialise ``model.encoder`` from a trained Stage-1 network (the Stage-1 -> Stage-2 hand-over).

    Copies every encoder parameter and, with ``copy_buffers`` (default), the BatchNorm buffers
    (``running_mean``, ``running_var``, ``num_batches_tracked``) too. ``copy_buffers=False`` reproduces the
    official ``train.py``, which copies ``named_parameters()`` only and so leaves the encoder's BatchNorm
    statistics at their previous (ImageNet) values: a bug, kept only for exact reproduction.

    Args:
        model: a :class:`ConDSeg` (or any module with an ``encoder`` :class:`ResNet50Encoder`).
        stage1: a :class:`ConDSegStage1` state dict (ours, or an official Stage-1 checkpoint, recognised by its
            ``layer0.*`` keys and converted with :func:`convert_official_state_dict`), or a path to a file with one.
            Any state dict with ``encoder.*`` keys works (e.g. a full ConDSeg one).
        copy_buffers: also copy the BatchNorm buffers. Defaults to True.

    Raises:
        FileNotFoundError: ``stage1`` is a path that does not exist.
        ValueError: encoder keys are missing or have the wrong shape.
        TypeError: ``model`` has no ResNet-50 encoder.
    """
    encoder = _resolve_encoder(model)
    if isinstance(stage1, (str, Path)):
        source = f"Stage-1 file '{stage1}'"
        state = _load_file(stage1, "Stage-1")
    else:
        source = "Stage-1 state dict"
        state = _unwrap(stage1, source)
    if any(k.startswith("layer0.") for k in state):
        state = convert_official_state_dict(state)

    targets = dict(encoder.named_parameters())
    if copy_buffers:
        targets.update(encoder.named_buffers())
    missing = [f"encoder.{name}" for name in targets if f"encoder.{name}" not in state]
    if missing:
        raise ValueError(f"{source} lacks encoder keys: [{_short(missing)}].")
    wrong = [
        f"encoder.{n}: {tuple(state['encoder.' + n].shape)} vs {tuple(t.shape)}"
        for n, t in targets.items()
        if state[f"encoder.{n}"].shape != t.shape
    ]
    if wrong:
        raise ValueError(f"{source} has encoder tensors of the wrong shape: {_short(wrong, 4)}.")
    with torch.no_grad():
        for name, tensor in targets.items():
            tensor.copy_(state[f"encoder.{name}"])
