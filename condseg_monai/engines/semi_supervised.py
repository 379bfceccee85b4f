# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""Semi-supervised training on unlabeled images (an extension, not in the paper; see ``docs/deviations.md``).

:class:`SemiSupervisedTrainer` is MONAI's ``SupervisedTrainer`` plus one unlabeled batch per iteration:

* **Stage-1 mode** (``teacher=None``): the student sees the unlabeled batch clean and strongly augmented, and
  the unsupervised loss (ConDSeg's consistency term) ties the two views.
* **mean-teacher mode** (``teacher`` = an EMA copy of the student, e.g. ``ignite.handlers.EMAHandler``'s
  ``ema_model``): the teacher predicts on the weakly augmented unlabeled view; the student, on the strong
  colour/blur view of the *same* images (identical geometry), is trained towards the teacher's confident
  pixels. Optionally with CutMix between the unlabeled images (:class:`~condseg_monai.transforms.UnlabeledCutMix`)
  or bidirectional copy-paste (:class:`~condseg_monai.transforms.BidirectionalCopyPaste`).

The unsupervised term is added inside the trainer's own loss call, so AMP, gradient accumulation and the
iteration events are exactly MONAI's.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import torch
from ignite.engine import Engine, Events
from monai.engines import SupervisedTrainer
from monai.utils import CommonKeys as Keys
from monai.utils import convert_to_tensor

from condseg_monai.engines.schedules import IterationStateScheduler, UnsupervisedWeightRampup
from condseg_monai.losses.semi_supervised import mask_logits
from condseg_monai.transforms.mixing import BidirectionalCopyPaste, UnlabeledCutMix

__all__ = ["SemiSupervisedTrainer", "load_unlabeled", "make_trainer", "unlabeled_batch_size"]

logger = logging.getLogger(__name__)


class SemiSupervisedTrainer(SupervisedTrainer):
    """``monai.engines.SupervisedTrainer`` that also learns from an unlabeled data loader.

    Per iteration: the labeled batch goes through ``inferer`` and ``loss_function`` exactly as in
    ``SupervisedTrainer``; ``unlabeled_ratio`` batches are drawn from ``unlabeled_data_loader`` (cycled endlessly)
    and concatenated; the total loss is ``L_sup + w(t) L_unsup`` with
    ``w(t) = unsupervised_weight * sigmoid_rampup(t, rampup_iterations)``, ``t`` the trainer iteration. ``w(t)`` is
    an engine-state parameter: an :class:`~condseg_monai.engines.IterationStateScheduler` (ignite's
    ``LambdaStateScheduler`` indexed by ``engine.state.iteration``, so resuming continues the ramp) sets
    ``engine.state.unsup_weight`` at every ``ITERATION_STARTED`` and the step reads it. The unlabeled views go
    through ``network`` directly (one forward pass per view, so BatchNorm sees each view's own statistics):

    * ``teacher=None`` (Stage-1 mode): ``L_unsup = unsupervised_loss(network(strong_augment(x_u)), network(x_u))``
      (e.g. :class:`~condseg_monai.losses.UnlabeledConsistencyLoss`; both views get gradients);
    * ``teacher`` given (mean-teacher mode): the teacher, in eval mode and without gradient, predicts the mask
      logits ``t`` on ``x_u`` (the weak view: the loader's geometric augmentation), and
      ``L_unsup = unsupervised_loss(network(strong_augment(x_u)), t)`` (e.g.
      :class:`~condseg_monai.losses.ConfidentPseudoLabelLoss`). ``strong_augment`` only changes colour and
      blur, so the two views share their geometry pixel for pixel. The teacher is not updated here: attach
      ``ignite.handlers.EMAHandler`` (whose ``ema_model`` is the teacher) to this trainer.
    * ``cutmix`` (mean-teacher mode only): the strong views are mixed by :class:`UnlabeledCutMix` (a box of
      another image of the unlabeled batch pasted in) and the teacher's logits with the same boxes, so
      ``L_unsup = unsupervised_loss(network(cutmix(strong_augment(x_u))), cutmix(t))``;
    * ``bcp`` (mean-teacher mode only): the student sees the strong view of the two
      :class:`BidirectionalCopyPaste` mixtures of the labeled and unlabeled batches instead, and
      ``L_unsup = unsupervised_loss(network(strong_augment(mixed)), [t, t], target=gt, region=region)``.

    ``engine.state.output`` holds the usual keys (``LOSS`` is the total) plus ``sup_loss``, ``unsup_loss``,
    ``unsup_weight`` and ``confident_fraction`` (0-dim tensors; the last is read from the unsupervised loss's
    ``confident_fraction`` attribute, 1 when it has none).

    When training starts from iteration 0 (not when resuming) the teacher is reset to the student's weights,
    so weights loaded at start (fine-tuning ``CheckpointLoader``) reach the teacher too.

    Args:
        device: training device.
        max_epochs: number of epochs.
        train_data_loader: labeled loader (dicts with ``image``, ``label``).
        network: the student network (ConDSeg, ConDSegStage1 or any MONAI network returning logits).
        optimizer: optimizer of the student.
        loss_function: supervised loss ``loss(pred, label)``.
        unlabeled_data_loader: any re-iterable of dicts with ``image`` ``(B, 3, H, W)`` in [0, 1].
        unsupervised_loss: ``loss(student_pred, other_logits, **bcp_kwargs) -> 0-dim tensor``.
        strong_augment: batch strong augmentation ``(B, 3, H, W) -> (B, 3, H, W)``, e.g.
            :class:`~condseg_monai.transforms.RandIlluminationContrastAugment`; ``None`` for none.
        teacher: EMA teacher module, or ``None`` for Stage-1 mode.
        unsupervised_weight: maximal weight of the unsupervised term (``>= 0``).
        rampup_iterations: iterations of the sigmoid weight ramp (``0``: full weight from the start).
        unlabeled_ratio: number of unlabeled batches per labeled batch (``>= 1``).
        bcp: ``True`` or a :class:`BidirectionalCopyPaste` to mix labeled and unlabeled images (needs a teacher).
        cutmix: ``True`` or an :class:`UnlabeledCutMix` to mix the unlabeled images among themselves (needs a
            teacher; not with ``bcp``).
        epoch_length: iterations per epoch, default ``len(train_data_loader)``.
        inferer: inferer of the labeled batch (e.g. :class:`~condseg_monai.inferers.ConsistencyInferer` in Stage 1).
        sync_teacher_at_start: copy the student into the teacher when a run starts at iteration 0.
        kwargs: other ``SupervisedTrainer`` arguments.

    Raises:
        ValueError: bad weights or ratio, ``bcp`` or ``cutmix`` without a teacher, or both.

    Example::

        ema = ignite.handlers.EMAHandler(net, momentum=0.01)
        trainer = SemiSupervisedTrainer(
            "cpu", 10, labeled_loader, net, opt, DiceBCELoss(), unlabeled_loader,
            ConfidentPseudoLabelLoss(threshold=0.9), RandIlluminationContrastAugment(), teacher=ema.ema_model,
        )
        ema.attach(trainer)
        trainer.run()
    """

    def __init__(
        self,
        device: str | torch.device,
        max_epochs: int,
        train_data_loader: Iterable,
        network: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        loss_function: Callable,
        unlabeled_data_loader: Iterable[Mapping[str, Any]],
        unsupervised_loss: Callable[..., torch.Tensor],
        strong_augment: Callable[[torch.Tensor], torch.Tensor] | None,
        teacher: torch.nn.Module | None = None,
        unsupervised_weight: float = 1.0,
        rampup_iterations: int = 0,
        unlabeled_ratio: int = 1,
        bcp: bool | BidirectionalCopyPaste = False,
        cutmix: bool | UnlabeledCutMix = False,
        epoch_length: int | None = None,
        inferer: Any = None,
        sync_teacher_at_start: bool = True,
        **kwargs: Any,
    ) -> None:
        if unsupervised_weight < 0:
            raise ValueError(f"unsupervised_weight must be >= 0, got {unsupervised_weight}.")
        if rampup_iterations < 0:
            raise ValueError(f"rampup_iterations must be >= 0, got {rampup_iterations}.")
        if int(unlabeled_ratio) != unlabeled_ratio or unlabeled_ratio < 1:
            raise ValueError(f"unlabeled_ratio must be a positive integer, got {unlabeled_ratio}.")
        if bcp and teacher is None:
            raise ValueError("bcp needs a teacher (mean-teacher mode): its pseudo-labels are the unlabeled targets.")
        if cutmix and teacher is None:
            raise ValueError("cutmix needs a teacher (mean-teacher mode): its pseudo-labels are mixed with the images.")
        if cutmix and bcp:
            raise ValueError("cutmix and bcp are two ways of mixing the unlabeled images; choose one.")
        super().__init__(
            device=device,
            max_epochs=max_epochs,
            train_data_loader=train_data_loader,
            network=network,
            optimizer=optimizer,
            loss_function=loss_function,
            epoch_length=epoch_length,
            inferer=inferer,
            **kwargs,
        )
        self.unlabeled_data_loader = unlabeled_data_loader
        self.unsupervised_loss = unsupervised_loss
        self.strong_augment = strong_augment
        self.teacher = teacher
        self.unsupervised_weight = float(unsupervised_weight)
        self.rampup_iterations = int(rampup_iterations)
        self.unlabeled_ratio = int(unlabeled_ratio)
        self.bcp: BidirectionalCopyPaste | None = (
            bcp if isinstance(bcp, BidirectionalCopyPaste) else (BidirectionalCopyPaste() if bcp else None)
        )
        self.cutmix: UnlabeledCutMix | None = (
            cutmix if isinstance(cutmix, UnlabeledCutMix) else (UnlabeledCutMix() if cutmix else None)
        )
        self._unlabeled_iter: Iterator | None = None
        self._unlabeled_passes = 0
        self.unsupervised_weight_schedule = UnsupervisedWeightRampup(self.unsupervised_weight, self.rampup_iterations)
        IterationStateScheduler(self.unsupervised_weight_schedule, "unsup_weight", create_new=True).attach(self)
        if teacher is not None and sync_teacher_at_start:
            # registered after the train handlers, so it runs after their checkpoint loaders at STARTED
            self.add_event_handler(Events.STARTED, self._sync_teacher)

    # ---- unlabeled data -------------------------------------------------------------------------------------
    def _restart_unlabeled(self) -> Iterator:
        sampler = getattr(self.unlabeled_data_loader, "sampler", None)
        if hasattr(sampler, "set_epoch"):  # DistributedSampler: a new shuffle each pass
            sampler.set_epoch(self._unlabeled_passes)
        self._unlabeled_passes += 1
        self._unlabeled_iter = iter(self.unlabeled_data_loader)
        return self._unlabeled_iter

    def _next_unlabeled_batch(self) -> Mapping[str, Any]:
        it = self._unlabeled_iter if self._unlabeled_iter is not None else self._restart_unlabeled()
        try:
            return next(it)
        except StopIteration:
            try:
                return next(self._restart_unlabeled())
            except StopIteration:
                raise ValueError("unlabeled_data_loader yielded no batch: it has no unlabeled images.") from None

    def draw_unlabeled(self) -> torch.Tensor:
        """Draw ``unlabeled_ratio`` unlabeled batches and return their images ``(B_u, 3, H, W)`` on the device."""
        images = []
        for _ in range(self.unlabeled_ratio):
            batch = self._next_unlabeled_batch()
            if not isinstance(batch, Mapping) or Keys.IMAGE not in batch:
                raise KeyError(
                    f"unlabeled batches must be dicts with an {Keys.IMAGE!r} key, got {type(batch).__name__}."
                )
            images.append(convert_to_tensor(batch[Keys.IMAGE], track_meta=False))
        x = images[0] if len(images) == 1 else torch.cat(images)
        return x.to(self.state.device, non_blocking=self.non_blocking)

    # ---- teacher --------------------------------------------------------------------------------------------
    def _sync_teacher(self, engine: Engine) -> None:
        if self.teacher is not None and engine.state.iteration == 0:
            student = getattr(self.network, "module", self.network)  # DistributedDataParallel
            self.teacher.load_state_dict(student.state_dict())

    def _augment(self, x: torch.Tensor) -> torch.Tensor:
        if self.strong_augment is None:
            return x
        with torch.no_grad():
            return self.strong_augment(x)

    # ---- one iteration --------------------------------------------------------------------------------------
    def unsupervised_step(
        self, unlabeled: torch.Tensor, labeled: torch.Tensor | None = None, label: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The unsupervised loss of one unlabeled batch (student forward passes included, with gradient).

        Args:
            unlabeled: unlabeled images ``(B_u, 3, H, W)`` (the weak view).
            labeled: labeled images ``(B_l, 3, H, W)`` (BCP only).
            label: their masks ``(B_l, C, H, W)`` (BCP only).

        Returns:
            0-dim tensor.
        """
        if self.teacher is None:
            clean = self.network(unlabeled)
            strong = self.network(self._augment(unlabeled))
            return self.unsupervised_loss(strong, clean)
        with torch.no_grad():
            self.teacher.eval()
            teacher_logits = mask_logits(self.teacher(unlabeled))
        if self.bcp is None:
            strong = self._augment(unlabeled)
            if self.cutmix is not None:
                strong, teacher_logits = self.cutmix(strong, teacher_logits)
            return self.unsupervised_loss(self.network(strong), teacher_logits)
        if labeled is None or label is None:
            raise ValueError("bcp needs the labeled images and masks of the iteration.")
        mixed, target, region = self.bcp(convert_to_tensor(labeled, track_meta=False), label, unlabeled)
        pred = self.network(self._augment(mixed))
        return self.unsupervised_loss(
            pred, torch.cat([teacher_logits, teacher_logits]), target=convert_to_tensor(target), region=region
        )

    def current_unsupervised_weight(self, iteration: int | None = None) -> float:
        """``unsupervised_weight * sigmoid_rampup(iteration, rampup_iterations)`` (default: the current iteration)."""
        it = self.state.iteration if iteration is None else iteration
        return self.unsupervised_weight_schedule(it)

    def _iteration(self, engine: SupervisedTrainer, batchdata: dict[str, torch.Tensor]) -> dict:
        unlabeled = self.draw_unlabeled()
        supervised = self.loss_function

        def total_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
            # called by SupervisedTrainer inside its autocast region, after the labeled forward pass
            sup = supervised(pred, target).mean()
            unsup = self.unsupervised_step(unlabeled, engine.state.output[Keys.IMAGE], target).mean()
            # set at ITERATION_STARTED by the weight schedule; computed here when the step runs outside an engine run
            weight = getattr(engine.state, "unsup_weight", None)
            weight = self.current_unsupervised_weight() if weight is None else float(weight)
            fraction = getattr(self.unsupervised_loss, "confident_fraction", None)
            fraction = torch.ones(()) if fraction is None else torch.as_tensor(fraction).detach().float()
            engine.state.output.update(
                sup_loss=sup.detach(),
                unsup_loss=unsup.detach(),
                unsup_weight=torch.tensor(weight),
                confident_fraction=fraction,
            )
            return sup + weight * unsup

        self.loss_function = total_loss
        try:
            return super()._iteration(engine, batchdata)
        finally:
            self.loss_function = supervised


def unlabeled_batch_size(batch_size: int, unlabeled: int | None = None) -> int:
    """Images per unlabeled batch: ``unlabeled`` when given, else ``max(1, 3 * batch_size // 8)``.

    Why 3/8: per labeled image a supervised step costs about 3 forward passes (forward + backward); per
    unlabeled image the student's forward + backward on the strong view and the teacher's forward cost about 4.
    A semi-supervised iteration therefore costs ``1 + 4 B_u / (3 B)`` supervised ones, and ``B_u = 3 B / 8``
    keeps it at 1.5x (measured 1.43x at 3 of 8, 2.06x at 8 of 8; docs/benchmarks.md). At that size the unlabeled
    images cost no accuracy measurable over three seeds (docs/benchmarks.md, label efficiency).

    Args:
        batch_size: the labeled batch size ``B``.
        unlabeled: an explicit ``unlabeled_batch_size`` setting (``None``: the default above).
    """
    if unlabeled is not None:
        return int(unlabeled)
    return max(1, 3 * int(batch_size) // 8)


def load_unlabeled(datalist: str, enabled: bool = True) -> list[dict[str, Any]]:
    """The datalist's ``unlabeled`` images for a semi-supervised run (``[]`` when ``enabled`` is false).

    Raises:
        ValueError: ``enabled`` and the datalist has no ``unlabeled`` images (a semi-supervised run would
            silently train supervised otherwise).
    """
    if not enabled:
        return []
    from condseg_monai.data import load_datalist

    data = load_datalist(datalist, "unlabeled")
    if not data:
        raise ValueError(
            f"semi_supervised: the datalist {str(datalist)!r} has no `unlabeled` images, so semi-supervised training "
            "has nothing to learn from. Add an `unlabeled` list of images to the datalist (docs/training.md, "
            "'Semi-supervised training') or run without configs/semi_supervised.json / with semi_supervised false."
        )
    logger.info(f"semi-supervised: {len(data)} unlabeled images from {datalist}")
    return data


def make_trainer(
    semi_supervised: bool = False,
    unlabeled_data_loader: Iterable[Mapping[str, Any]] | None = None,
    unsupervised_loss: Callable[..., torch.Tensor] | None = None,
    strong_augment: Callable[[torch.Tensor], torch.Tensor] | None = None,
    teacher: torch.nn.Module | None = None,
    unsupervised_weight: float = 1.0,
    rampup_iterations: int = 0,
    unlabeled_ratio: int = 1,
    bcp: bool | BidirectionalCopyPaste = False,
    cutmix: bool | UnlabeledCutMix = False,
    **kwargs: Any,
) -> SupervisedTrainer:
    """The bundle's ``train#trainer``: a plain ``SupervisedTrainer``, or a :class:`SemiSupervisedTrainer`.

    One config entry serves both modes, so overrides such as ``train#trainer#max_epochs`` (MONAI Label) keep
    working. With ``semi_supervised`` false every semi-supervised argument is ignored and the trainer is exactly
    ``monai.engines.SupervisedTrainer(**kwargs)``.

    Args:
        semi_supervised: build the :class:`SemiSupervisedTrainer`.
        unlabeled_data_loader: see :class:`SemiSupervisedTrainer` (required when ``semi_supervised``).
        unsupervised_loss: see :class:`SemiSupervisedTrainer` (required when ``semi_supervised``).
        strong_augment: see :class:`SemiSupervisedTrainer`.
        teacher: see :class:`SemiSupervisedTrainer`.
        unsupervised_weight: see :class:`SemiSupervisedTrainer`.
        rampup_iterations: see :class:`SemiSupervisedTrainer`.
        unlabeled_ratio: see :class:`SemiSupervisedTrainer`.
        bcp: see :class:`SemiSupervisedTrainer`.
        cutmix: see :class:`SemiSupervisedTrainer`.
        kwargs: ``SupervisedTrainer`` arguments.

    Raises:
        ValueError: ``semi_supervised`` without an unlabeled loader or an unsupervised loss.
    """
    if not semi_supervised:
        return SupervisedTrainer(**kwargs)
    if unlabeled_data_loader is None or unsupervised_loss is None:
        raise ValueError("semi_supervised needs unlabeled_data_loader and unsupervised_loss.")
    return SemiSupervisedTrainer(
        unlabeled_data_loader=unlabeled_data_loader,
        unsupervised_loss=unsupervised_loss,
        strong_augment=strong_augment,
        teacher=teacher,
        unsupervised_weight=unsupervised_weight,
        rampup_iterations=rampup_iterations,
        unlabeled_ratio=unlabeled_ratio,
        bcp=bcp,
        cutmix=cutmix,
        **kwargs,
    )
