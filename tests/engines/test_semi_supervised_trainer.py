# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""Unit tests of SemiSupervisedTrainer (with its BCP and CutMix modes) on tiny in-memory data (CPU)."""

from __future__ import annotations

import copy

import pytest
import torch
from ignite.engine import Events
from ignite.handlers import EMAHandler
from monai.data import DataLoader
from monai.networks.nets import BasicUNet

from condseg_monai.engines import SemiSupervisedTrainer, StrongViewPrepareBatch, unlabeled_batch_size
from condseg_monai.inferers import ConsistencyInferer
from condseg_monai.losses import (
    ConDSegLoss,
    ConfidentPseudoLabelLoss,
    DiceBCELoss,
    Stage1Loss,
    UnlabeledConsistencyLoss,
)
from condseg_monai.networks import ConDSeg, ConDSegStage1
from condseg_monai.transforms import RandIlluminationContrastAugment, UnlabeledCutMix

SIZE = 32
EXTRA_KEYS = ("sup_loss", "unsup_loss", "unsup_weight", "confident_fraction")


def _labeled(n: int = 4, seed: int = 0) -> DataLoader:
    g = torch.Generator().manual_seed(seed)
    items = []
    for _ in range(n):
        image = torch.rand(3, SIZE, SIZE, generator=g)
        label = (image[:1] > 0.5).float()
        items.append({"image": image, "label": label})
    return DataLoader(items, batch_size=2, shuffle=False, num_workers=0)


def _unlabeled(n: int = 3, batch_size: int = 2, seed: int = 1) -> DataLoader:
    g = torch.Generator().manual_seed(seed)
    items = [{"image": torch.rand(3, SIZE, SIZE, generator=g)} for _ in range(n)]
    return DataLoader(items, batch_size=batch_size, shuffle=False, num_workers=0)


def _record_outputs(trainer: SemiSupervisedTrainer) -> list[dict]:
    outputs: list[dict] = []

    @trainer.on(Events.ITERATION_COMPLETED)
    def _keep(engine) -> None:
        out = engine.state.output
        out = out[0] if isinstance(out, list) else out  # decollated per sample
        outputs.append({k: float(out[k]) for k in ("loss", *EXTRA_KEYS)})

    return outputs


def _params(net: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in net.parameters()]


def _changed(before: list[torch.Tensor], net: torch.nn.Module) -> bool:
    return any(not torch.equal(a, b) for a, b in zip(before, net.parameters()))


def test_mean_teacher_with_monai_baseline() -> None:
    """A plain MONAI network + DiceBCE: the EMA teacher follows the student, outputs carry the new scalars."""
    torch.manual_seed(0)
    net = BasicUNet(spatial_dims=2, in_channels=3, out_channels=1, features=(4, 4, 8, 8, 16, 4))
    ema = EMAHandler(net, momentum=0.5)
    opt = torch.optim.Adam(net.parameters(), 1e-2)
    trainer = SemiSupervisedTrainer(
        device="cpu",
        max_epochs=1,
        train_data_loader=_labeled(),
        network=net,
        optimizer=opt,
        loss_function=DiceBCELoss(),
        unlabeled_data_loader=_unlabeled(),
        unsupervised_loss=ConfidentPseudoLabelLoss(threshold=0.6),
        strong_augment=RandIlluminationContrastAugment().set_random_state(0),
        teacher=ema.ema_model,
        rampup_iterations=2,
    )
    ema.attach(trainer)
    outputs = _record_outputs(trainer)
    teacher_before = _params(ema.ema_model)
    trainer.run()
    assert len(outputs) == 2
    for out in outputs:
        assert out["loss"] == pytest.approx(out["sup_loss"] + out["unsup_weight"] * out["unsup_loss"], rel=1e-5)
        assert 0.0 <= out["confident_fraction"] <= 1.0
    assert outputs[0]["unsup_weight"] < outputs[1]["unsup_weight"] == pytest.approx(1.0)
    assert _changed(teacher_before, ema.ema_model), "the EMA teacher did not move"
    assert not ema.ema_model.training, "the teacher must predict in eval mode"


def _recording_pseudo_label_loss(calls: list[tuple]) -> ConfidentPseudoLabelLoss:
    """A ``ConfidentPseudoLabelLoss`` that records ``(pred shape, teacher logits, sorted keyword names)`` per call."""
    loss = ConfidentPseudoLabelLoss(threshold=0.5)
    original = loss.forward

    def forward(pred, teacher_logits, **kwargs):
        calls.append((tuple(pred.shape), teacher_logits.detach().clone(), sorted(kwargs)))
        return original(pred, teacher_logits, **kwargs)

    loss.forward = forward
    return loss


def _mixing_trainer(
    net: torch.nn.Module, loss: torch.nn.Module, unlabeled: DataLoader, calls: list[tuple], **mixing
) -> SemiSupervisedTrainer:
    """A one-iteration mean-teacher trainer (EMA teacher attached) whose pseudo-label loss records into ``calls``."""
    ema = EMAHandler(net, momentum=0.1, handle_buffers="update")
    trainer = SemiSupervisedTrainer(
        "cpu",
        1,
        _labeled(2),
        net,
        torch.optim.Adam(net.parameters(), 1e-3),
        loss,
        unlabeled,
        _recording_pseudo_label_loss(calls),
        RandIlluminationContrastAugment(),
        teacher=ema.ema_model,
        **mixing,
    )
    ema.attach(trainer)
    return trainer


def test_condseg_student_with_bcp() -> None:
    torch.manual_seed(0)
    calls: list[tuple] = []
    trainer = _mixing_trainer(ConDSeg(feature_size=16, num_heads=2), ConDSegLoss(), _unlabeled(2), calls, bcp=True)
    outputs = _record_outputs(trainer)
    trainer.run()
    # the student sees the 2 x B_u mixed images; its stacked (B, 4, C, H, W) output meets the teacher's mask logits
    assert [(c[0], tuple(c[1].shape), c[2]) for c in calls] == [
        ((4, 4, 1, SIZE, SIZE), (4, 1, SIZE, SIZE), ["region", "target"])
    ]
    assert outputs[0]["confident_fraction"] == 1.0 and outputs[0]["unsup_loss"] > 0


class _RecordingCutMix(UnlabeledCutMix):
    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.calls: list[tuple[torch.Tensor, ...]] = []

    def __call__(self, images, logits, randomize=True):
        mixed, mixed_logits = super().__call__(images, logits, randomize)
        self.calls.append((images, logits, mixed, mixed_logits))
        return mixed, mixed_logits


def test_cutmix_mixes_the_strong_views_and_the_teacher_logits_alike() -> None:
    torch.manual_seed(0)
    net = BasicUNet(spatial_dims=2, in_channels=3, out_channels=1, features=(4, 4, 8, 8, 16, 4))
    seen: list[tuple] = []
    cutmix = _RecordingCutMix(prob=1.0).set_random_state(0)
    trainer = _mixing_trainer(net, DiceBCELoss(), _unlabeled(3, batch_size=3), seen, cutmix=cutmix)
    trainer.run()
    assert len(cutmix.calls) == 1 and len(seen) == 1
    strong, teacher_logits, mixed, mixed_logits = cutmix.calls[0]
    assert strong.shape == (3, 3, SIZE, SIZE) and teacher_logits.shape == (3, 1, SIZE, SIZE)
    # the loss gets the mixed pseudo-labels (not the teacher's own), the student B_u predictions, no BCP targets
    assert seen[0][0] == (3, 1, SIZE, SIZE) and seen[0][2] == []
    torch.testing.assert_close(seen[0][1], mixed_logits, rtol=0, atol=0)
    assert not torch.equal(mixed_logits, teacher_logits) and not torch.equal(mixed, strong)
    box = cutmix.masks(3, (SIZE, SIZE)).bool()
    source = (torch.arange(3) + cutmix.shift) % 3
    torch.testing.assert_close(mixed_logits, torch.where(box, teacher_logits[source], teacher_logits), rtol=0, atol=0)


def test_stage1_mode_consistency_on_unlabeled() -> None:
    """teacher=None: the student's clean and strong views of the unlabeled batch are tied by consistency."""
    torch.manual_seed(0)
    net = ConDSegStage1()
    augment = RandIlluminationContrastAugment().set_random_state(0)
    unsup = UnlabeledConsistencyLoss()
    trainer = SemiSupervisedTrainer(
        "cpu",
        1,
        _labeled(2),
        net,
        torch.optim.Adam(net.parameters(), 1e-4),
        Stage1Loss(),
        _unlabeled(2),
        unsup,
        augment,
        inferer=ConsistencyInferer(),
        prepare_batch=StrongViewPrepareBatch(augment),
        unsupervised_weight=0.5,
    )
    outputs = _record_outputs(trainer)
    before = _params(net)
    trainer.run()
    assert outputs[0]["unsup_weight"] == 0.5 and outputs[0]["confident_fraction"] == 1.0
    assert outputs[0]["unsup_loss"] == pytest.approx(float(unsup.last_terms["consistency"]))
    assert _changed(before, net)


def test_unlabeled_loader_is_cycled_and_ratio_concatenates() -> None:
    torch.manual_seed(0)
    net = BasicUNet(spatial_dims=2, in_channels=3, out_channels=1, features=(4, 4, 8, 8, 16, 4))
    sizes: list[int] = []

    def unsup(pred, other):
        sizes.append(pred.shape[0])
        return (pred - other).abs().mean()

    trainer = SemiSupervisedTrainer(
        "cpu",
        2,
        _labeled(4),
        net,
        torch.optim.SGD(net.parameters(), 1e-3),
        DiceBCELoss(),
        _unlabeled(n=1, batch_size=1),  # one image, drawn twice per iteration, four iterations
        unsup,
        None,
        unlabeled_ratio=2,
    )
    outputs = _record_outputs(trainer)
    trainer.run()
    assert sizes == [2, 2, 2, 2]
    assert all(o["confident_fraction"] == 1.0 for o in outputs)  # a loss without the attribute reports 1


def test_teacher_synced_to_student_at_start_only_from_iteration_zero() -> None:
    net = BasicUNet(spatial_dims=2, in_channels=3, out_channels=1, features=(4, 4, 8, 8, 16, 4))
    teacher = copy.deepcopy(net)
    with torch.no_grad():
        for p in teacher.parameters():
            p.add_(1.0)
    trainer = SemiSupervisedTrainer(
        "cpu",
        1,
        _labeled(2),
        net,
        torch.optim.SGD(net.parameters(), 0.0),
        DiceBCELoss(),
        _unlabeled(2),
        ConfidentPseudoLabelLoss(),
        None,
        teacher=teacher,
    )
    trainer.run()
    for a, b in zip(teacher.parameters(), net.parameters()):
        torch.testing.assert_close(a, b)


def test_empty_unlabeled_loader_and_bad_arguments() -> None:
    net = BasicUNet(spatial_dims=2, in_channels=3, out_channels=1, features=(4, 4, 8, 8, 16, 4))
    opt = torch.optim.SGD(net.parameters(), 1e-3)
    args = ("cpu", 1, _labeled(2), net, opt, DiceBCELoss())
    trainer = SemiSupervisedTrainer(*args, [], UnlabeledConsistencyLoss(), None)
    with pytest.raises(ValueError, match="no unlabeled images"):
        trainer.run()
    with pytest.raises(ValueError, match="bcp needs a teacher"):
        SemiSupervisedTrainer(*args, _unlabeled(), UnlabeledConsistencyLoss(), None, bcp=True)
    with pytest.raises(ValueError, match="cutmix needs a teacher"):
        SemiSupervisedTrainer(*args, _unlabeled(), UnlabeledConsistencyLoss(), None, cutmix=True)
    with pytest.raises(ValueError, match="choose one"):
        SemiSupervisedTrainer(*args, _unlabeled(), ConfidentPseudoLabelLoss(), None, teacher=net, cutmix=True, bcp=True)
    with pytest.raises(ValueError, match="unlabeled_ratio"):
        SemiSupervisedTrainer(*args, _unlabeled(), UnlabeledConsistencyLoss(), None, unlabeled_ratio=0)
    with pytest.raises(ValueError, match="unsupervised_weight"):
        SemiSupervisedTrainer(*args, _unlabeled(), UnlabeledConsistencyLoss(), None, unsupervised_weight=-1)


def test_unlabeled_batch_size_keeps_an_iteration_at_one_and_a_half_supervised_ones() -> None:
    # cost model 1 + 4 B_u / (3 B) (docs/training.md): the default B_u is the largest with a cost <= 1.5
    for batch in range(1, 33):
        default = unlabeled_batch_size(batch)
        assert default >= 1
        if batch >= 3:
            assert 1 + 4 * default / (3 * batch) <= 1.5 < 1 + 4 * (default + 1) / (3 * batch), batch
    assert [unlabeled_batch_size(b) for b in (4, 8, 12, 16)] == [1, 3, 4, 6]
    assert unlabeled_batch_size(8, 8) == 8 and unlabeled_batch_size(8, 1) == 1  # an explicit setting wins
