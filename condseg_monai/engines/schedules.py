# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""Per-iteration schedules of semi-supervised training, as ``iteration -> value`` callables.

Both are given to :class:`IterationStateScheduler` (ignite's ``LambdaStateScheduler`` indexed by
``engine.state.iteration``), which writes the value into ``engine.state`` each iteration, so a resumed run
continues them exactly (docs/training.md, "Semi-supervised training").
"""

from __future__ import annotations

from collections.abc import Callable, Sized

from ignite.engine import CallableEventWithFilter, Engine, Events
from ignite.handlers.state_param_scheduler import LambdaStateScheduler

from condseg_monai.losses.semi_supervised import sigmoid_rampup

__all__ = ["IterationStateScheduler", "MeanTeacherMomentum", "UnsupervisedWeightRampup", "rampup_iterations"]


class IterationStateScheduler(LambdaStateScheduler):
    """ignite's ``LambdaStateScheduler`` whose event index is the engine's iteration, not a count of its own.

    ``engine.state.<param_name> = lambda_obj(engine.state.iteration)`` at every ``event`` (by default
    ``ITERATION_STARTED``: during iteration ``t`` the value is ``lambda_obj(t)``, ``t = 1, 2, ...``). The stock
    ``LambdaStateScheduler`` counts the events it has seen itself; that count is not part of the trainer's
    checkpoint, so after ``--resume`` its schedule would start over. Reading the iteration instead makes the value
    a pure function of ``engine.state.iteration``, which the checkpoint restores: a resumed run continues the
    schedule exactly where the interrupted one was.

    Args:
        lambda_obj: ``iteration -> value``.
        param_name: the ``engine.state`` attribute to set.
        event: when to set it (``ITERATION_STARTED``: before the iteration's step and its
            ``ITERATION_COMPLETED`` handlers, e.g. ignite's ``EMAHandler`` update, read it).
        save_history: also append each value to ``engine.state.param_history[param_name]``.
        create_new: as ``LambdaStateScheduler`` (``False``: an existing attribute, e.g. ``EMAHandler``'s
            ``ema_momentum``, is taken over).
    """

    def __init__(
        self,
        lambda_obj: Callable[[int], float],
        param_name: str,
        event: str | Events | CallableEventWithFilter = Events.ITERATION_STARTED,
        save_history: bool = False,
        create_new: bool = False,
    ) -> None:
        super().__init__(lambda_obj, param_name, save_history=save_history, create_new=create_new)
        self.event = event

    def attach(self, engine: Engine, event: str | Events | CallableEventWithFilter | None = None) -> None:
        """Attach at ``event`` (default: the constructor's); MONAI's handler lists call ``attach(engine)``."""
        super().attach(engine, self.event if event is None else event)

    def __call__(self, engine: Engine) -> None:
        self.event_index = engine.state.iteration
        value = self.get_param()
        setattr(engine.state, self.param_name, value)
        if self.save_history:
            engine.state.param_history[self.param_name].append(value)  # type: ignore[attr-defined]


class MeanTeacherMomentum:
    """EMA momentum of the mean teacher for the ``iteration``-th update (``iteration = 1, 2, ...``).

    With ``warmup`` (the mean-teacher warm-up of Tarvainen & Valpola, 2017): the teacher's decay at update step
    ``t = iteration - 1`` is ``min(1 - 1 / (t + 1), ema_decay)``, i.e. ignite's ``EMAHandler`` momentum
    ``max(1 / iteration, 1 - ema_decay)``. The first update copies the student (momentum 1); until
    ``1 / iteration`` falls below ``1 - ema_decay`` the teacher is the plain average of all students so far, so it
    never lags behind a young student by design. Without ``warmup``: the constant ``1 - ema_decay`` (the
    teacher starts as the student's initial weights and follows with decay ``ema_decay`` from the first step).

    Args:
        ema_decay: the teacher's decay after the warm-up, in ``(0, 1)``.
        warmup: use the warm-up (the shipped default, setting ``ema_warmup``).
    """

    def __init__(self, ema_decay: float, warmup: bool = True) -> None:
        if not 0.0 < ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in (0, 1), got {ema_decay}.")
        self.ema_decay = float(ema_decay)
        self.warmup = bool(warmup)

    def __call__(self, iteration: int) -> float:
        momentum = 1.0 - self.ema_decay
        if self.warmup and iteration >= 1:
            return max(1.0 / iteration, momentum)
        return momentum


class UnsupervisedWeightRampup:
    """Weight of the unsupervised term at ``iteration``: ``weight * sigmoid_rampup(iteration, rampup_iterations)``.

    Args:
        weight: the weight after the ramp (``>= 0``).
        rampup_iterations: length of the sigmoid ramp in iterations (``0``: full weight from the start).
    """

    def __init__(self, weight: float, rampup_iterations: int) -> None:
        self.weight = float(weight)
        self.rampup_iterations = int(rampup_iterations)

    def __call__(self, iteration: int) -> float:
        return self.weight * sigmoid_rampup(iteration, self.rampup_iterations)


def rampup_iterations(
    rampup_epochs: float | None, max_epochs: int, train_data_loader: Sized, epoch_length: int | None = None
) -> int:
    """Length of the unsupervised weight ramp in iterations (``train#trainer#rampup_iterations``).

    Args:
        rampup_epochs: ramp length in epochs; ``None``: 20 % of ``max_epochs``.
        max_epochs: the stage's epochs.
        train_data_loader: the labeled loader (its length is the iterations per epoch).
        epoch_length: iterations per epoch when the trainer's epochs are not one pass over the loader
            (``epoch_length`` setting); ``None``: ``len(train_data_loader)``.

    Returns:
        ``round(epochs * iterations per epoch)``.
    """
    epochs = 0.2 * max_epochs if rampup_epochs is None else rampup_epochs
    per_epoch = len(train_data_loader) if epoch_length is None else epoch_length
    return round(epochs * per_epoch)
