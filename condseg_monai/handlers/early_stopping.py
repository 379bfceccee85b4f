# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""Early stopping on a validation metric, with a state that survives resuming."""

from __future__ import annotations

import logging
import math
from typing import Any

from ignite.engine import Engine, Events

__all__ = ["EarlyStopping"]


class EarlyStopping:
    """Stop training when a validation metric has not improved for ``patience`` validations.

    Attach it to the **trainer** and give it the validator: it listens to the validator's completed runs, so
    it needs no back-reference from the evaluator to the trainer (which bundle configs cannot express
    without a cycle). The rule is the official ConDSeg one: the counter grows when the score is strictly
    below the best, resets when the best improves, and an equal score changes nothing.

    Args:
        validator: the evaluator whose ``state.metrics[metric_name]`` is watched.
        metric_name: name of the watched metric (higher is better), e.g. ``"val_miou"``.
        patience: number of validations without improvement before stopping; ``0`` disables stopping.
        min_delta: an improvement must exceed the best by more than this.
    """

    def __init__(self, validator: Engine, metric_name: str, patience: int, min_delta: float = 0.0) -> None:
        if patience < 0:
            raise ValueError(f"`patience` must be >= 0, got {patience}.")
        self.validator = validator
        self.metric_name = metric_name
        self.patience = patience
        self.min_delta = min_delta
        self.counter = 0
        self.best_score = -math.inf
        self.logger = logging.getLogger(__name__)
        self._trainer: Engine | None = None

    def attach(self, trainer: Engine) -> None:
        self._trainer = trainer
        self.validator.add_event_handler(Events.EPOCH_COMPLETED, self._on_validated)

    def _on_validated(self, validator: Engine) -> None:
        if self.metric_name not in validator.state.metrics:
            raise KeyError(
                f"early stopping watches '{self.metric_name}', but the validator computes "
                f"{sorted(validator.state.metrics)}; fix the metric name in the config."
            )
        score = float(validator.state.metrics[self.metric_name])
        if score > self.best_score + self.min_delta:
            self.best_score = score
            self.counter = 0
        elif score < self.best_score:
            self.counter += 1
        if self.patience and self.counter >= self.patience and self._trainer is not None:
            self.logger.info(
                f"early stopping: {self.metric_name} has not improved on {self.best_score:.4f} "
                f"for {self.counter} validations."
            )
            self._trainer.terminate()

    def state_dict(self) -> dict[str, Any]:
        return {"counter": self.counter, "best_score": self.best_score}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.counter = int(state_dict["counter"])
        self.best_score = float(state_dict["best_score"])
