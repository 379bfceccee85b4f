# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""Keep going past unreadable inputs: record each failure (file + reason) and fail the run only at the end.

On a hospital export of thousands of frames one empty or truncated file must not stop the run. The pieces:

* :class:`FailureLog`: the list of failed inputs of one run (``failures.json``), shared by the loader, the
  report handlers and the final check :meth:`FailureLog.raise_if_any`.
* :class:`FailureTolerantLoader`: a MONAI ``DataLoader`` whose items that fail to load (any exception of the
  dataset's transform, e.g. :class:`~condseg_monai.transforms.readers.InvalidInputError`) are recorded in the
  log and left out of the batches, so the engine only ever sees readable images.
* :func:`failure_record`: the machine-readable record of one failure, also used outside engines (robustness).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Hashable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from monai.data import DataLoader, list_data_collate
from torch.utils.data import Dataset as TorchDataset

from condseg_monai.reports import write_json
from condseg_monai.transforms.readers import InvalidInputError

__all__ = [
    "FAILURES_FILENAME",
    "FAILURE_KEY",
    "FailureLog",
    "FailureTolerantLoader",
    "InputFailuresError",
    "collate_skipping_failures",
    "describe_failure",
    "failure_record",
]

logger = logging.getLogger(__name__)

FAILURES_FILENAME = "failures.json"
# data key under which a failed item (and, after collation, a batch's failures) travels out of the workers
FAILURE_KEY = "input_failures"


class InputFailuresError(RuntimeError):
    """Raised at the end of a run in which some inputs could not be read (every readable one was processed)."""


def _reason(exc: BaseException) -> BaseException:
    """The exception that says what is wrong with the file.

    MONAI's ``apply_transform`` wraps every transform error in ``RuntimeError("applying transform ...")``; our
    loaders raise :class:`InvalidInputError` naming the file (from the decoder's error). Take the first
    ``InvalidInputError`` of the cause chain, else the innermost exception.
    """
    while not isinstance(exc, InvalidInputError) and exc.__cause__ is not None:
        exc = exc.__cause__
    return exc


def describe_failure(record: Mapping[str, Any]) -> str:
    """One line for logs: the reason, prefixed by the file when the reason does not name it."""
    file, reason = str(record.get("file", "")), str(record.get("reason", ""))
    return reason if file and file in reason else f"'{file}': {reason}"


def failure_record(item: Mapping[Hashable, Any], error: BaseException | str) -> dict[str, Any]:
    """Machine-readable record of one input that failed to load.

    Args:
        item: the data dict as given to the dataset, e.g. ``{"image": path, "label": path}``.
        error: the exception raised while loading it (or a message).

    Returns:
        ``{"file": the file at fault, "reason": message, "error": exception type, "inputs": {key: path}}``.
        ``file`` is the input whose path the message names (the mask when the mask is corrupt), else the first.
    """
    inputs = {str(k): os.fspath(v) for k, v in item.items() if isinstance(v, (str, os.PathLike))}
    if isinstance(error, BaseException):
        cause = _reason(error)
        reason, kind = str(cause) or type(cause).__name__, type(cause).__name__
    else:
        reason, kind = str(error), "InvalidInputError"
    named = [p for p in inputs.values() if p in reason]
    file = named[0] if named else next(iter(inputs.values()), "")
    return {"file": file, "reason": reason, "error": kind, "inputs": inputs}


class FailureLog:
    """The inputs of one run that could not be read, written to ``<output_dir>/failures.json``.

    Args:
        records: failures found before the run (e.g. by :func:`~condseg_monai.inference.screen_eval_split`).
        filename: name of the JSON file written by :meth:`write`.

    Example::

        log = FailureLog()
        loader = FailureTolerantLoader(dataset, failure_log=log)
        ...  # run the engine over ``loader``
        log.write("predictions/")
        log.raise_if_any()
    """

    def __init__(self, records: Sequence[Mapping[str, Any]] | None = None, filename: str = FAILURES_FILENAME) -> None:
        self.filename = filename
        self.records: list[dict[str, Any]] = [dict(r) for r in (records or [])]
        self.num_read = 0  # inputs loaded successfully, counted by the loader
        self.path: Path | None = None  # where the last write went

    def __len__(self) -> int:
        return len(self.records)

    def add(self, record: Mapping[str, Any]) -> None:
        """Store one :func:`failure_record` and log it (file and reason) as a warning."""
        self.records.append(dict(record))
        logger.warning("skipped an unreadable input: %s", describe_failure(record))

    @property
    def num_inputs(self) -> int:
        """Inputs seen so far: read successfully or failed."""
        return self.num_read + len(self.records)

    def summary(self) -> dict[str, Any]:
        """The content of ``failures.json``: counts and the records in the order they failed."""
        return {"num_inputs": self.num_inputs, "num_failed": len(self.records), "failures": list(self.records)}

    def write(self, output_dir: str | os.PathLike) -> Path:
        """Write :meth:`summary` to ``<output_dir>/<filename>`` atomically (also when nothing failed, so a
        successful re-run replaces the file of an earlier run)."""
        self.path = write_json(self.summary(), Path(output_dir) / self.filename)
        if self.records:
            logger.warning("%d of %d inputs could not be read: listed in %s", len(self), self.num_inputs, self.path)
        return self.path

    def raise_if_any(self) -> None:
        """End the run with an error when some input failed (call it after everything else was written).

        Raises:
            InputFailuresError: with the count, the first few files and reasons, and the path of the JSON file.
        """
        if not self.records:
            return
        shown = "\n".join(f"  {describe_failure(r)}" for r in self.records[:10])
        more = f"\n  ... and {len(self) - 10} more" if len(self) > 10 else ""
        where = f" (all listed in {self.path})" if self.path is not None else ""
        raise InputFailuresError(
            f"{len(self)} of {self.num_inputs} inputs could not be read{where}; every other input was processed:\n"
            f"{shown}{more}"
        )


class _CatchFailures(TorchDataset):
    """View of a map-style dataset whose items that fail to load become ``{FAILURE_KEY: failure_record}``."""

    def __init__(self, dataset: Any) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> Any:
        try:
            return self.dataset[index]
        except Exception as e:  # runs in DataLoader workers: the record must be plain data
            raw = self.dataset.data[index] if hasattr(self.dataset, "data") else {}
            return {FAILURE_KEY: failure_record(raw if isinstance(raw, Mapping) else {}, e)}


def collate_skipping_failures(batch: Sequence[Any]) -> dict[Hashable, Any]:
    """``list_data_collate`` of the loaded items, with the batch's failure records under ``FAILURE_KEY``.

    Args:
        batch: data dicts from the dataset, failed items being ``{FAILURE_KEY: record}``.

    Returns:
        the collated batch of the readable items (empty dict when none) plus
        ``{FAILURE_KEY: {"records": [...], "num_read": n}}``.
    """
    failed = [b[FAILURE_KEY] for b in batch if isinstance(b, Mapping) and FAILURE_KEY in b]
    good = [b for b in batch if not (isinstance(b, Mapping) and FAILURE_KEY in b)]
    out = dict(list_data_collate(good)) if good else {}
    out[FAILURE_KEY] = {"records": failed, "num_read": len(good)}
    return out


class FailureTolerantLoader:
    """Iterate a dataset like MONAI's ``DataLoader``, recording the items that fail to load and skipping them.

    Items are dicts (MONAI dictionary transforms). A failed item is recorded in ``failure_log`` (file, reason)
    and left out of its batch; a batch of only failed items is not yielded at all, so an Ignite engine runs one
    iteration less instead of seeing an empty batch. Workers (``num_workers > 0``) are supported: the failure
    records travel with the batches.

    The loader has no ``len()`` on purpose: Ignite restarts a data iterator that ends before ``len()``
    iterations (it would process the inputs a second time); without ``len()`` MONAI's engines take the epoch
    length from the first pass, which ends the epoch cleanly. A progress bar therefore shows a count, not a total.

    Args:
        dataset: map-style dataset of dicts (MONAI ``Dataset``); its ``data`` names the files in failure records.
        failure_log: where failures go (a new :class:`FailureLog` when ``None``).
        kwargs: passed to :class:`monai.data.DataLoader` (``batch_size``, ``num_workers``, ``shuffle``, ...);
            ``collate_fn`` is not accepted (failures are split off by :func:`collate_skipping_failures`).

    Raises:
        ValueError: a ``collate_fn`` was given.
    """

    def __init__(self, dataset: Any, failure_log: FailureLog | None = None, **kwargs: Any) -> None:
        if "collate_fn" in kwargs:
            raise ValueError("FailureTolerantLoader sets its own collate_fn (collate_skipping_failures).")
        self.dataset = dataset
        self.failure_log = failure_log if failure_log is not None else FailureLog()
        self.loader = DataLoader(_CatchFailures(dataset), collate_fn=collate_skipping_failures, **kwargs)

    def __iter__(self) -> Iterator[dict[Hashable, Any]]:
        for batch in self.loader:
            info = batch.pop(FAILURE_KEY)
            for record in info["records"]:
                self.failure_log.add(record)
            self.failure_log.num_read += int(info["num_read"])
            if info["num_read"]:
                yield batch
