# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""Scoring a model over a list of images (condseg_monai.metrics.scoring.score_images) and embedding them
(encoder_embeddings)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from condseg_monai.metrics import (
    EMBEDDING_DIM,
    SCORE_NAMES,
    OperatingPoint,
    binary_segmentation_metrics,
    detection_score,
    encoder_embeddings,
    predicted_area,
    score_images,
    uncertainty_scores,
)
from condseg_monai.metrics.scoring import _projection
from condseg_monai.networks import ConDSeg


class _RedDetector(nn.Module):
    """Logit = 20 * red - 10 (the mask is ``red > 0.5``); with ``return_aux`` the stacked ConDSeg layout."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 1, 1)
        with torch.no_grad():
            self.conv.weight.copy_(torch.tensor([20.0, 0.0, 0.0]).reshape(1, 3, 1, 1))
            self.conv.bias.fill_(-10.0)
        self.return_aux = False
        self.calls_with_aux: list[bool] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls_with_aux.append(self.return_aux)
        mask = self.conv(x)
        if not self.return_aux:
            return mask
        maps = [mask, mask, -mask, torch.zeros_like(mask)]  # uncertainty logit 0: sigmoid 0.5
        return torch.stack(maps, dim=1)


def _images(n: int) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    images, labels = [], []
    for i in range(n):
        image, label = torch.zeros(3, 16, 16), torch.zeros(1, 16, 16)
        image[0, 2 : 6 + i, 2 : 6 + i] = 1.0
        label[0, 2:8, 2:8] = 1.0
        images.append(image)
        labels.append(label)
    return images, labels


def test_scores_match_the_functions_they_are_made_of() -> None:
    net = _RedDetector()
    images, labels = _images(5)
    op = OperatingPoint(threshold=0.5, min_area=0.01)
    out = score_images(net, images, labels=labels, operating_point=op, batch_size=2)
    assert list(out) == [*SCORE_NAMES, "dice", "detection_score", "predicted_area"]
    assert all(len(v) == 5 and all(isinstance(x, float) for x in v) for v in out.values())
    # the same numbers as the building blocks on the whole batch
    x, y = torch.stack(images), torch.stack(labels)
    net.return_aux = True
    expected = uncertainty_scores(net, x)
    net.return_aux = False
    for name in SCORE_NAMES:
        assert out[name] == pytest.approx(expected[name].tolist(), abs=1e-6)
    with torch.no_grad():
        logits = net(x)
    assert out["dice"] == pytest.approx(binary_segmentation_metrics(logits, y, logits=True)["dice"].tolist())
    prob = torch.sigmoid(logits)
    assert out["detection_score"] == pytest.approx(detection_score(prob, op.min_area).tolist())
    assert out["predicted_area"] == pytest.approx(predicted_area(prob, op.threshold).tolist())
    assert out["dice"][2] == pytest.approx(1.0)  # its red square is the label


def test_return_aux_and_training_mode_are_restored() -> None:
    net = _RedDetector().train()
    images, _ = _images(2)
    out = score_images(net, torch.stack(images))
    assert list(out) == list(SCORE_NAMES), "no dice or frame columns without labels and operating point"
    assert all(net.calls_with_aux), "the scores are computed on the stacked output"
    assert net.return_aux is False and net.training


def test_plain_network_has_no_sid_score() -> None:
    net = nn.Conv2d(3, 1, 1)
    images, labels = _images(3)
    out = score_images(net, images, labels=labels)
    assert list(out) == ["tta_disagreement", "tta_dice_disagreement", "boundary_entropy", "dice"]


def test_condseg_stacked_and_plain_give_the_same_dice() -> None:
    torch.manual_seed(0)
    net = ConDSeg(feature_size=16, num_heads=2).eval()
    images, labels = _images(2)
    images = [torch.nn.functional.interpolate(i[None], size=64)[0] for i in images]
    labels = [torch.nn.functional.interpolate(m[None], size=64)[0] for m in labels]
    out = score_images(net, images, labels=labels)
    assert tuple(out)[: len(SCORE_NAMES)] == SCORE_NAMES
    with torch.no_grad():
        plain = net(torch.stack(images))
    dice = binary_segmentation_metrics(plain, torch.stack(labels), logits=True)["dice"]
    assert out["dice"] == pytest.approx(dice.tolist(), abs=1e-6)
    assert net.return_aux is False


def test_rejects_bad_arguments() -> None:
    images, labels = _images(2)
    with pytest.raises(ValueError, match="batch_size"):
        score_images(nn.Conv2d(3, 1, 1), images, batch_size=0)
    with pytest.raises(ValueError, match="labels"):
        score_images(nn.Conv2d(3, 1, 1), images, labels=labels[:1])


class _PoolingEncoderNet(nn.Module):
    """``encoder`` returns two maps; the deepest is the input's 3 channels at half resolution."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = _TwoStageEncoder()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :1]


class _TwoStageEncoder(nn.Module):
    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [x, torch.nn.functional.avg_pool2d(x, 2)]


def test_encoder_embeddings_pool_normalise_and_project_the_deepest_map() -> None:
    g = torch.Generator().manual_seed(0)
    images = torch.rand(5, 3, 8, 8, generator=g, dtype=torch.float64).float()
    net = _PoolingEncoderNet().train()
    # dim = the pooled length: no projection, the normalised channel means
    z = encoder_embeddings(net, images, batch_size=2, dim=3)
    means = images.double().mean(dim=(2, 3))
    expected = means / means.norm(dim=1, keepdim=True)
    assert z.shape == (5, 3) and z.dtype == torch.float32
    assert torch.allclose(z.double(), expected, atol=1e-6)  # float32 output of float64 values: rounding only
    assert net.training, "training mode restored"
    # another dim: the fixed seeded projection, the same in every call (stored embeddings stay comparable)
    z16 = encoder_embeddings(net, list(images), dim=16)
    assert torch.allclose(z16.double(), expected @ _projection(3, 16), atol=1e-6)
    assert torch.equal(_projection(3, 16), _projection(3, 16))


def test_encoder_embeddings_of_condseg_and_errors() -> None:
    net = ConDSeg(feature_size=16)
    z = encoder_embeddings(net, torch.rand(2, 3, 32, 32))
    assert z.shape == (2, EMBEDDING_DIM) and torch.isfinite(z).all()
    with pytest.raises(ValueError, match="no `encoder`"):
        encoder_embeddings(nn.Conv2d(3, 1, 1), torch.rand(1, 3, 8, 8))
    with pytest.raises(ValueError, match="batch_size"):
        encoder_embeddings(net, torch.rand(1, 3, 32, 32), batch_size=0)
