# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""Iteration-indexed state schedules: the mean-teacher EMA warm-up and the unsupervised weight ramp."""

from __future__ import annotations

import math

import pytest
import torch
from ignite.engine import Engine, Events
from ignite.handlers import EMAHandler

from condseg_monai.engines import (
    IterationStateScheduler,
    MeanTeacherMomentum,
    UnsupervisedWeightRampup,
    rampup_iterations,
)


def test_mean_teacher_momentum_sequence() -> None:
    """decay_t = min(1 - 1/(t + 1), ema_decay) at update step t = iteration - 1: momentum max(1/iteration, 0.01)."""
    schedule = MeanTeacherMomentum(0.99)
    assert [schedule(i) for i in range(1, 6)] == pytest.approx([1.0, 1 / 2, 1 / 3, 1 / 4, 1 / 5])
    assert schedule(100) == pytest.approx(0.01) and schedule(101) == pytest.approx(0.01)
    assert schedule(1000) == pytest.approx(0.01)
    for t in range(0, 300):  # the textbook decay form
        assert 1.0 - schedule(t + 1) == pytest.approx(min(1.0 - 1.0 / (t + 1), 0.99))
    constant = MeanTeacherMomentum(0.99, warmup=False)
    assert [constant(i) for i in range(1, 50)] == pytest.approx([0.01] * 49)
    with pytest.raises(ValueError, match="ema_decay"):
        MeanTeacherMomentum(1.0)


def test_unsupervised_weight_rampup_and_its_length() -> None:
    ramp = UnsupervisedWeightRampup(2.0, 10)
    assert ramp(0) == pytest.approx(2.0 * math.exp(-5)) and ramp(5) == pytest.approx(2.0 * math.exp(-1.25))
    assert ramp(10) == ramp(50) == 2.0
    assert UnsupervisedWeightRampup(1.0, 0)(0) == 1.0
    assert rampup_iterations(None, 50, range(7)) == 70  # 20 % of max_epochs
    assert rampup_iterations(1.5, 50, range(4)) == 6
    assert rampup_iterations(0, 50, range(4)) == 0
    assert rampup_iterations(None, 10, range(9), epoch_length=100) == 200  # epochs of epoch_length iterations


def _engine(values: list[float], name: str, schedule, max_epochs: int = 1) -> Engine:
    engine = Engine(lambda e, b: None)
    IterationStateScheduler(schedule, name, create_new=True).attach(engine)
    engine.add_event_handler(Events.ITERATION_COMPLETED, lambda e: values.append(getattr(e.state, name)))
    return engine


def test_schedule_follows_the_iteration_across_a_resume() -> None:
    """The value is a function of engine.state.iteration (restored by the checkpoint), not of the handler's own
    event count: a fresh handler on a resumed engine continues the schedule where it was."""
    first: list[float] = []
    engine = _engine(first, "ema_momentum", MeanTeacherMomentum(0.9))
    engine.run(range(3), max_epochs=1)
    assert first == pytest.approx([1.0, 0.5, 1 / 3])
    state = engine.state_dict()
    resumed: list[float] = []
    again = _engine(resumed, "ema_momentum", MeanTeacherMomentum(0.9))  # a new process: new handler, count 0
    again.load_state_dict({**state, "max_epochs": 4})
    again.run(range(3), max_epochs=4)
    assert resumed == pytest.approx([1 / 4, 1 / 5, 1 / 6, 1 / 7, 1 / 8, 1 / 9, 0.1, 0.1, 0.1])


def test_warm_up_makes_the_teacher_the_student_after_the_first_update() -> None:
    """With ignite's EMAHandler: momentum 1 at the first update, so the teacher equals the student exactly."""
    torch.manual_seed(0)
    student = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Conv2d(4, 1, 1))
    ema = EMAHandler(student, momentum=0.01, handle_buffers="update")
    with torch.no_grad():  # a teacher far from the student, so the first update must overwrite it completely
        for p in ema.ema_model.parameters():
            p.add_(10.0)
    opt = torch.optim.SGD(student.parameters(), lr=0.1)

    def step(engine: Engine, batch: torch.Tensor) -> None:
        opt.zero_grad()
        student(batch).mean().backward()
        opt.step()
        student.train()

    engine = Engine(step)
    ema.attach(engine)
    IterationStateScheduler(MeanTeacherMomentum(0.99), "ema_momentum").attach(engine)
    snapshots: list[tuple[float, bool]] = []

    @engine.on(Events.ITERATION_COMPLETED)
    def _compare(e: Engine) -> None:  # registered after the EMA update
        teacher, current = ema.ema_model.state_dict(), student.state_dict()
        snapshots.append((e.state.ema_momentum, all(torch.equal(teacher[k], current[k]) for k in current)))

    engine.run([torch.rand(2, 3, 8, 8) for _ in range(3)], max_epochs=1)
    assert snapshots[0] == (1.0, True)
    assert snapshots[1][0] == 0.5 and not snapshots[1][1]
