# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""Per-epoch loss terms and learning rates as engine metrics, for the console and TensorBoard."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

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

    Semi-supervised runs add the epoch means of scalar entries of ``engine.state.output`` (``output_keys``, e.g.
    ``unsup_loss``, ``unsup_weight``, ``confident_fraction``, published as ``{prefix}{key}``) and the terms of the
    unsupervised loss (``unsupervised_loss``, published as ``{prefix}unsup_{term}``).

    Args:
        loss: the loss module (anything with a ``last_terms`` mapping; others are ignored).
        optimizer: optimizer whose learning rates are logged, or ``None``.
        prefix: prefix of the metric names.
        output_keys: scalar keys of ``engine.state.output`` to average (missing keys are skipped).
        unsupervised_loss: a second loss whose ``last_terms`` are averaged, or ``None``.
    """

    def __init__(
        self,
        loss: object,
        optimizer: torch.optim.Optimizer | None = None,
        prefix: str = "train_",
        output_keys: Sequence[str] = (),
        unsupervised_loss: object | None = None,
    ) -> None:
        self.loss = loss
        self.optimizer = optimizer
        self.prefix = prefix
        self.output_keys = tuple(output_keys)
        self.unsupervised_loss = unsupervised_loss
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
        unsup_terms = getattr(self.unsupervised_loss, "last_terms", None) or {}
        for name, value in unsup_terms.items():
            self._sums[f"unsup_{name}"] += float(value)
        if self.output_keys:
            output = engine.state.output
            output = output[0] if isinstance(output, list) and output else output  # decollated: one per sample
            for key in self.output_keys:
                if isinstance(output, dict) and key in output:
                    self._sums[key] += float(output[key])
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
