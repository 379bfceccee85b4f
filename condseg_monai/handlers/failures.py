# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""Ignite handler writing the inputs that could not be read to ``failures.json`` when the run completes."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from ignite.engine import Engine, Events

from condseg_monai.data.failures import FailureLog

__all__ = ["InputFailureHandler"]

logger = logging.getLogger(__name__)


class InputFailureHandler:
    """Write ``<output_dir>/failures.json`` from a :class:`~condseg_monai.data.FailureLog` at ``COMPLETED``.

    The log is filled by :class:`~condseg_monai.data.FailureTolerantLoader` while the engine runs (each
    failure is logged as it happens). ``COMPLETED`` comes after ``EPOCH_COMPLETED``, so the file is written once
    every readable input was processed and the other reports exist. The file is written even when nothing
    failed, so that it never describes an earlier run. The handler does not stop the run: end it with
    ``"$@failure_log.raise_if_any()"`` after the engine's ``run()`` in the bundle's ``run`` list, which makes
    ``python -m monai.bundle run`` exit non-zero.

    Args:
        failure_log: the run's failure log (shared with the loader).
        output_dir: folder of ``failures.json``.
    """

    def __init__(self, failure_log: FailureLog, output_dir: str | os.PathLike) -> None:
        self.failure_log = failure_log
        self.output_dir = Path(output_dir)

    def attach(self, engine: Engine) -> None:
        """Register :meth:`completed` on ``engine``'s ``COMPLETED`` event."""
        engine.add_event_handler(Events.COMPLETED, self.completed)

    def completed(self, engine: Engine | None = None) -> None:
        """Write the failures file and log the summary."""
        path = self.failure_log.write(self.output_dir)
        if not len(self.failure_log):
            logger.info("all %d inputs were read (%s).", self.failure_log.num_inputs, path)
