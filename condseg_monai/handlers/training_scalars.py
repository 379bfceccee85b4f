# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""Per-epoch loss terms and learning rates as engine metrics, for the console and TensorBoard."""

from __future__ import annotations

from collections import defaultdict

import torch
from ignite.engine import Engine, Events

__all__ = ["TrainingScalarsHandler"]


class TrainingScalarsHandler:
    """Publish the epoch mean of every loss term and the current learning rates in ``engine.state.metrics``.

    ConDSeg's composite losses record their terms of the last call in ``loss.last_terms``; this handler
    averages them over the epoch and stores them as ``{prefix}{term}`` together with the learning rates (``lr`` for a
    single parameter group, else ``lr_<name>`` from each group's ``name`` key). ``StatsHandler`` and
    ``TensorBoardStatsHandler`` then print and plot them with no extra wiring; attach this handler before
    those two so the values exist when they write.

    Args:
        loss: the loss module (anything with a ``last_terms`` mapping; others are ignored).
        optimizer: optimizer whose learning rates are logged, or ``None``.
        prefix: prefix of the metric names.
    """

    def __init__(
        self,
        loss: object,
        optimizer: torch.optim.Optimizer | None = None,
        prefix: str = "train_",
    ) -> None:
        self.loss = loss
        self.optimizer = optimizer
        self.prefix = prefix
        self._sums: dict[str, float] = defaultdict(float)
        self._count = 0

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_STARTED, self._reset)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._accumulate)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self._publish)

    def _reset(self, engine: Engine) -> None:
        self._sums.clear()
        self._count = 0

    def _accumulate(self, engine: Engine) -> None:
        terms = getattr(self.loss, "last_terms", None) or {}
        for name, value in terms.items():
            self._sums[name] += float(value)
        self._count += 1

    def _publish(self, engine: Engine) -> None:
        if self._count:
            for name, total in self._sums.items():
                engine.state.metrics[f"{self.prefix}{name}"] = total / self._count
        if self.optimizer is not None:
            groups = self.optimizer.param_groups
            for i, group in enumerate(groups):
                key = "lr" if len(groups) == 1 else f"lr_{group.get('name', f'group{i}')}"
                engine.state.metrics[key] = float(group["lr"])
