# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""A progress bar handler that MONAI bundle configs can attach like any MONAI handler."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ignite.engine import Engine
from ignite.handlers import ProgressBar as _IgniteProgressBar

__all__ = ["ProgressBar"]


class ProgressBar:
    """tqdm progress bar over an engine's iterations (ignite's ``ProgressBar`` with bundle-friendly args).

    MONAI engines attach handlers with ``handler.attach(engine)`` only, so the arguments ignite takes in
    ``attach`` (what to show after the bar) are given to the constructor here.

    Args:
        output_transform: maps ``engine.state.output`` to a number or dict shown after the bar, e.g.
            ``monai.handlers.from_engine(["loss"], first=True)`` for the training loss.
        desc: text in front of the bar.
        persist: keep finished bars on screen.
    """

    def __init__(
        self, output_transform: Callable[[Any], Any] | None = None, desc: str | None = None, persist: bool = False
    ) -> None:
        self.output_transform = output_transform
        self.bar = _IgniteProgressBar(persist=persist, desc=desc) if desc else _IgniteProgressBar(persist=persist)

    def attach(self, engine: Engine) -> None:
        transform = self.output_transform
        if transform is not None:
            inner = transform

            def transform(output: Any) -> Any:
                value = inner(output)
                return {"loss": float(value)} if not isinstance(value, dict) else value

        self.bar.attach(engine, output_transform=transform)
