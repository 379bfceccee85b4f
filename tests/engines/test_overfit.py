# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""Both stages' losses go down when overfitting a few images with the real pieces of the workflows."""

from __future__ import annotations

import torch
from monai.utils import set_determinism

from condseg_monai.data import load_datalist
from condseg_monai.engines import StrongViewPrepareBatch
from condseg_monai.inferers import ConsistencyInferer
from condseg_monai.losses import ConDSegLoss, Stage1Loss
from condseg_monai.networks import ConDSeg, ConDSegStage1
from condseg_monai.transforms import RandIlluminationContrastAugment, condseg_eval_transforms


def _batch(datalist: str) -> tuple[torch.Tensor, torch.Tensor]:
    load = condseg_eval_transforms(image_size=32)
    items = [load(d) for d in load_datalist(datalist, "training")[:2]]
    image = torch.stack([torch.as_tensor(i["image"]) for i in items]).float()
    label = torch.stack([torch.as_tensor(i["label"]) for i in items]).float()
    return image, label


def _fit(network, loss_fn, inferer, image, label, steps: int = 25) -> list[float]:
    opt = torch.optim.Adam(network.parameters(), lr=1e-3)
    network.train()
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = loss_fn(inferer(image, network), label)
        loss.backward()
        opt.step()
        losses.append(float(loss))
    return losses


def test_stage2_loss_decreases(tiny_datalist: str) -> None:
    set_determinism(seed=0)
    image, label = _batch(tiny_datalist)
    net = ConDSeg(feature_size=16, num_heads=2)
    losses = _fit(net, ConDSegLoss(), lambda x, n: n(x), image, label)
    assert losses[-1] < 0.7 * losses[0], losses
    set_determinism(seed=None)


def test_stage1_loss_decreases_with_strong_views(tiny_datalist: str) -> None:
    set_determinism(seed=0)
    image, label = _batch(tiny_datalist)
    net = ConDSegStage1()
    views = StrongViewPrepareBatch(RandIlluminationContrastAugment().set_random_state(seed=0))
    inferer = ConsistencyInferer()
    losses = _fit(net, Stage1Loss(), lambda x, n: inferer(x, n, **views({"image": x})[3]), image, label)
    assert losses[-1] < 0.7 * losses[0], losses
    set_determinism(seed=None)
