# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""Tests of weight loading: ImageNet ResNet-50 files, official checkpoint conversion, Stage-1 hand-over."""

from __future__ import annotations

import pytest
import torch
from network_test_utils import BN_BUFFERS, random_official_state_dict
from official_reference import _res_layer

from condseg_monai.networks import (
    ConDSeg,
    ConDSegStage1,
    ResNet50Encoder,
    convert_official_state_dict,
    load_pretrained_resnet50,
    load_stage1_encoder,
)


def _small() -> ConDSeg:
    return ConDSeg(feature_size=16, num_heads=2)


def _torchvision_resnet50_state(seed: int = 0) -> dict[str, torch.Tensor]:
    """A torchvision-format ResNet-50 state dict (random values) like ``resnet50-19c8e357.pth``.

    Built from an independent torchvision-layout bottleneck implementation (test reference); includes ``layer4``
    and ``fc`` and, like the 2017 file, no ``num_batches_tracked`` entries.
    """
    gen = torch.Generator().manual_seed(seed)
    shapes = {k: v.shape for k, v in ResNet50Encoder().state_dict().items()}
    shapes.update({f"layer4.{k}": v.shape for k, v in _res_layer(1024, 512, 3, 2).state_dict().items()})
    shapes.update({"fc.weight": torch.Size([1000, 2048]), "fc.bias": torch.Size([1000])})
    return {
        k: torch.rand(s, generator=gen) + 0.5 if k.endswith("running_var") else torch.randn(s, generator=gen)
        for k, s in shapes.items()
        if not k.endswith("num_batches_tracked")
    }


# ---------------------------------------------------------------------------------------------------------------
# ImageNet ResNet-50


def test_load_pretrained_resnet50(tmp_path):
    state = _torchvision_resnet50_state()
    assert "layer4.2.bn3.running_var" in state and "fc.weight" in state
    path = tmp_path / "resnet50.pth"
    torch.save(state, path)

    net = _small()
    load_pretrained_resnet50(net, path)
    for key, value in net.encoder.state_dict().items():
        if not key.endswith("num_batches_tracked"):
            assert torch.equal(value, state[key]), key
    # constructor argument, Stage-1 network and a bare encoder behave the same
    stage1 = ConDSegStage1(pretrained_path=path)
    assert torch.equal(stage1.encoder.layer3[5].conv3.weight, state["layer3.5.conv3.weight"])
    encoder = ResNet50Encoder()
    load_pretrained_resnet50(encoder, str(path))
    assert torch.equal(encoder.bn1.running_mean, state["bn1.running_mean"])


def test_load_pretrained_resnet50_adapts_input_channels(tmp_path):
    state = _torchvision_resnet50_state()
    path = tmp_path / "resnet50.pth"
    torch.save({"state_dict": state}, path)  # wrapped state dicts are accepted
    grey = ResNet50Encoder(in_channels=1)
    load_pretrained_resnet50(grey, path)
    torch.testing.assert_close(grey.conv1.weight, state["conv1.weight"].sum(1, keepdim=True))
    four = ResNet50Encoder(in_channels=4)
    load_pretrained_resnet50(four, path)  # timm convention: RGB kernels repeated cyclically, scaled by 3 / 4
    torch.testing.assert_close(four.conv1.weight[:, :3], state["conv1.weight"] * 0.75)
    torch.testing.assert_close(four.conv1.weight[:, 3], state["conv1.weight"][:, 0] * 0.75)
    six = ResNet50Encoder(in_channels=6)
    load_pretrained_resnet50(six, path)
    # a grey image gives the same stem response as with the original RGB kernel
    x = torch.full((1, 3, 16, 16), 0.7)
    rgb = torch.nn.functional.conv2d(x, state["conv1.weight"], padding=3)
    torch.testing.assert_close(
        torch.nn.functional.conv2d(x[:, :1].expand(1, 6, 16, 16), six.conv1.weight, padding=3), rgb
    )


def test_load_pretrained_resnet50_errors(tmp_path):
    net = _small()
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        load_pretrained_resnet50(net, tmp_path / "missing.pth")

    not_a_dict = tmp_path / "list.pth"
    torch.save([1, 2, 3], not_a_dict)
    with pytest.raises(ValueError, match="list.pth"):
        load_pretrained_resnet50(net, not_a_dict)

    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a torch file")
    with pytest.raises(ValueError, match="garbage.pth"):
        load_pretrained_resnet50(net, garbage)

    state = _torchvision_resnet50_state()
    del state["layer3.5.bn3.weight"]
    state["extra.weight"] = torch.zeros(1)
    bad_keys = tmp_path / "bad_keys.pth"
    torch.save(state, bad_keys)
    with pytest.raises(ValueError, match=r"bad_keys.pth.*layer3\.5\.bn3\.weight.*extra\.weight"):
        load_pretrained_resnet50(net, bad_keys)

    state = _torchvision_resnet50_state()
    state["layer2.0.conv2.weight"] = torch.zeros(128, 128, 1, 1)
    bad_shape = tmp_path / "bad_shape.pth"
    torch.save(state, bad_shape)
    with pytest.raises(ValueError, match=r"bad_shape.pth.*layer2\.0\.conv2\.weight"):
        load_pretrained_resnet50(net, bad_shape)

    with pytest.raises(TypeError, match="encoder"):
        load_pretrained_resnet50(torch.nn.Linear(2, 2), bad_shape)


# ---------------------------------------------------------------------------------------------------------------
# official checkpoints


@pytest.mark.parametrize("section, model_cls", [("ConDSeg", ConDSeg), ("ConDSegStage1", ConDSegStage1)])
def test_convert_official_state_dict_loads_strict(section, model_cls):
    official = random_official_state_dict(section)
    converted = convert_official_state_dict(official)
    model = model_cls()
    model.load_state_dict(converted, strict=True)
    assert list(converted) == list(model.state_dict())

    # round trip: every official tensor reappears unchanged, except the stem kernel whose BGR axis is reversed
    stem = official["layer0.0.weight"]
    torch.testing.assert_close(converted["encoder.conv1.weight"], stem.flip(1))
    official_ids = {id(v) for k, v in official.items() if k != "layer0.0.weight"}
    converted_ids = {id(v) for k, v in converted.items() if k != "encoder.conv1.weight"}
    assert official_ids == converted_ids
    assert torch.equal(model.encoder.layer3[5].bn3.running_var, official["layer3.5.bn3.running_var"])
    if section == "ConDSeg":
        # a few renames spelled out
        pairs = {
            "dconv2.c5.conv.0.weight": "dconv2.fuse.conv.weight",
            "dconv2.c6.conv.1.running_mean": "dconv2.shortcut.adn.N.running_mean",
            "dconv4.c3.1.fc2.weight": "dconv4.branches.2.1.fc2.weight",
            "decouple_layer.cbr_uc.1.conv.0.weight": "sid.uc.1.conv.weight",
            "aux_head.branch_bg.9.bias": "aux_head.bg.9.bias",
            "preprocess_fg1.c1.conv.0.weight": "preprocess_fg1.0.conv.weight",
            "preprocess_bg1.preprocess.conv_2.conv.1.bias": "preprocess_bg1.6.adn.N.bias",
            "decoder_large.sa.conv1.weight": "decoder_large.sa.conv.weight",
            "cdfa3.attn_bg.weight": "cdfa3.attn_bg.weight",
            "output_block.c3.bias": "output_block.c3.bias",
        }
        for old, new in pairs.items():
            assert converted[new] is official[old], old
    else:
        assert converted["head.conv_fuse.weight"] is official["head.conv_fuse.weight"]


def test_convert_official_state_dict_options_and_errors():
    official = random_official_state_dict("ConDSegStage1")
    no_flip = convert_official_state_dict({"model": official}, bgr_to_rgb=False)
    assert no_flip["encoder.conv1.weight"] is official["layer0.0.weight"]

    with pytest.raises(ValueError, match="unknown keys.*bogus"):
        convert_official_state_dict({**official, "bogus.weight": torch.zeros(1)})
    with pytest.raises(ValueError, match=r"head\.conv2\.conv\.weight"):
        convert_official_state_dict({k: v for k, v in official.items() if k != "head.conv2.conv.0.weight"})
    with pytest.raises(ValueError, match="kind"):
        convert_official_state_dict({k: v for k, v in official.items() if not k.startswith("head.")})
    bad_shape = dict(official)
    bad_shape["layer2.0.conv1.weight"] = torch.zeros(3, 3)
    with pytest.raises(ValueError, match=r"encoder\.layer2\.0\.conv1\.weight"):
        convert_official_state_dict(bad_shape)
    with pytest.raises(ValueError, match="state dict"):
        convert_official_state_dict({})


# ---------------------------------------------------------------------------------------------------------------
# Stage 1 -> Stage 2


def _assert_encoder_copied(model: ConDSeg, source: dict[str, torch.Tensor], buffers: bool) -> None:
    for name, p in model.encoder.named_parameters():
        assert torch.equal(p, source[f"encoder.{name}"]), name
    for name, b in model.encoder.named_buffers():
        assert torch.equal(b, source[f"encoder.{name}"]) == buffers, name


def test_load_stage1_encoder_copies_params_and_buffers(tmp_path):
    torch.manual_seed(0)
    stage1 = ConDSegStage1().train()
    stage1(torch.rand(2, 3, 32, 32))  # move the BN running statistics away from their init
    state = {k: v.clone() for k, v in stage1.state_dict().items()}

    model = _small()
    before = {k: v.clone() for k, v in model.encoder.state_dict().items()}
    load_stage1_encoder(model, state)
    _assert_encoder_copied(model, state, buffers=True)

    # official behaviour (bug kept for reproduction): parameters only, BatchNorm statistics left untouched
    model = _small()
    model.encoder.load_state_dict(before)
    load_stage1_encoder(model, state, copy_buffers=False)
    _assert_encoder_copied(model, state, buffers=False)
    for name, b in model.encoder.named_buffers():
        assert torch.equal(b, before[name]), name
    assert any(k.rsplit(".", 1)[-1] in BN_BUFFERS for k in before)

    path = tmp_path / "stage1.pt"
    torch.save({"state_dict": state}, path)
    model = _small()
    load_stage1_encoder(model, path)
    _assert_encoder_copied(model, state, buffers=True)


def test_load_stage1_encoder_official_checkpoint_and_errors(tmp_path):
    official = random_official_state_dict("ConDSegStage1")
    model = _small()
    load_stage1_encoder(model, official)
    torch.testing.assert_close(model.encoder.conv1.weight, official["layer0.0.weight"].flip(1))
    assert torch.equal(
        model.encoder.layer1[0].downsample[1].running_mean, official["layer1.1.0.downsample.1.running_mean"]
    )

    state = ConDSegStage1().state_dict()
    del state["encoder.layer2.1.bn2.running_var"]
    with pytest.raises(ValueError, match=r"encoder\.layer2\.1\.bn2\.running_var"):
        load_stage1_encoder(model, state)
    load_stage1_encoder(model, state, copy_buffers=False)  # buffers are not needed then
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        load_stage1_encoder(model, tmp_path / "nope.pt")
    with pytest.raises(TypeError, match="encoder"):
        load_stage1_encoder(torch.nn.Linear(2, 2), state)
