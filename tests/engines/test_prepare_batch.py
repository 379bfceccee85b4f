# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""StrongViewPrepareBatch: MONAI's batch preparation plus the strong view, without gradient."""

from __future__ import annotations

import torch
from monai.engines import SupervisedTrainer
from monai.utils import set_determinism

from condseg_monai.engines import StrongViewPrepareBatch
from condseg_monai.inferers import ConsistencyInferer
from condseg_monai.losses import Stage1Loss
from condseg_monai.networks import ConDSegStage1
from condseg_monai.transforms import RandIlluminationContrastAugment


def test_returns_the_batch_and_its_strong_view_for_the_inferer() -> None:
    image = torch.rand(2, 3, 8, 8, requires_grad=True)
    label = torch.zeros(2, 1, 8, 8)
    images, labels, args, kwargs = StrongViewPrepareBatch(lambda x: x * 0.5)({"image": image, "label": label})
    assert torch.equal(images, image) and torch.equal(labels, label) and args == ()
    assert set(kwargs) == {ConsistencyInferer.STRONG_VIEW_KEY}
    assert torch.equal(kwargs["strong"], image * 0.5) and not kwargs["strong"].requires_grad


def test_stage1_trainer_step_equals_augmenting_by_hand() -> None:
    """One SupervisedTrainer step with the pair equals the step written out: same draw, same loss and weights."""
    batch = {"image": torch.rand(2, 3, 32, 32), "label": (torch.rand(2, 1, 32, 32) > 0.5).float()}
    results = []
    for by_hand in (False, True):
        set_determinism(seed=0)
        net = ConDSegStage1()
        opt = torch.optim.SGD(net.parameters(), lr=0.1)
        augment = RandIlluminationContrastAugment().set_random_state(seed=4)
        if by_hand:
            opt.zero_grad()
            with torch.no_grad():
                strong = augment(batch["image"])
            loss = Stage1Loss()(torch.stack([net(batch["image"]), net(strong)], dim=1), batch["label"])
            loss.backward()
            opt.step()
        else:
            trainer = SupervisedTrainer(
                "cpu", 1, [batch], net, opt, Stage1Loss(), inferer=ConsistencyInferer(),
                prepare_batch=StrongViewPrepareBatch(augment), decollate=False,
            )  # fmt: skip
            trainer.run()
            loss = trainer.state.output["loss"]
        results.append((float(loss), [p.detach().clone() for p in net.parameters()]))
    set_determinism(seed=None)
    assert results[0][0] == results[1][0]
    assert all(torch.equal(a, b) for a, b in zip(results[0][1], results[1][1]))
