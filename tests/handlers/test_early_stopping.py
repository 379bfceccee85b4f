# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""The official early-stopping rule and its resumable state."""

from __future__ import annotations

import pytest
from ignite.engine import Engine, Events

from condseg_monai.handlers import EarlyStopping


def _run(scores: list[float], patience: int) -> tuple[int, EarlyStopping]:
    """Train for len(scores) epochs; validation i reports scores[i]. Returns epochs actually run."""
    trainer = Engine(lambda e, b: None)
    validator = Engine(lambda e, b: None)
    it = iter(scores)
    validator.add_event_handler(Events.EPOCH_COMPLETED, lambda e: e.state.metrics.__setitem__("val_miou", next(it)))
    trainer.add_event_handler(Events.EPOCH_COMPLETED, lambda e: validator.run([0]))
    stopper = EarlyStopping(validator, "val_miou", patience=patience)
    stopper.attach(trainer)
    trainer.run([0], max_epochs=len(scores))
    return trainer.state.epoch, stopper


def test_stops_after_patience_strictly_worse_validations() -> None:
    epochs, stopper = _run([0.5, 0.4, 0.3, 0.9, 0.9], patience=2)
    assert epochs == 3
    assert stopper.counter == 2 and stopper.best_score == 0.5


def test_equal_scores_neither_count_nor_reset() -> None:
    epochs, stopper = _run([0.5, 0.5, 0.5, 0.5], patience=1)
    assert epochs == 4 and stopper.counter == 0
    epochs, stopper = _run([0.5, 0.4, 0.5, 0.4], patience=3)
    assert epochs == 4 and stopper.counter == 2  # the equal 0.5 did not reset the count


def test_improvement_resets_counter() -> None:
    epochs, stopper = _run([0.5, 0.4, 0.6, 0.5, 0.55], patience=3)
    assert epochs == 5 and stopper.counter == 2 and stopper.best_score == 0.6


def test_state_dict_round_trip_and_validation() -> None:
    _, stopper = _run([0.5, 0.4], patience=5)
    other = EarlyStopping(Engine(lambda e, b: None), "val_miou", patience=5)
    other.load_state_dict(stopper.state_dict())
    assert (other.counter, other.best_score) == (1, 0.5)
    with pytest.raises(ValueError, match="patience"):
        EarlyStopping(Engine(lambda e, b: None), "x", patience=-1)


def test_unknown_metric_name_is_reported() -> None:
    trainer, validator = Engine(lambda e, b: None), Engine(lambda e, b: None)
    trainer.add_event_handler(Events.EPOCH_COMPLETED, lambda e: validator.run([0]))
    EarlyStopping(validator, "val_dice", patience=1).attach(trainer)
    with pytest.raises(KeyError, match="val_dice"):
        trainer.run([0], max_epochs=1)
