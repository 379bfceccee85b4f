# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""Atomic file writing, shared by the checkpoint saver, the report and datalist writers and the bundle generator.

A file is written to a temporary file in the same folder, flushed to disk and renamed over its destination
(``os.replace``, atomic on POSIX and Windows): a crash or an error while writing leaves the previous file intact
and no partial one, and a reader never sees a half-written file.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import torch

__all__ = ["atomic_open", "atomic_torch_save", "atomic_write_json", "atomic_write_text"]


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", **kwargs: Any) -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path`` for writing; on a clean exit it replaces ``path``.

    The parent folder is created. On an exception the temporary file is removed and ``path`` is left as it was.
    Permissions follow the process umask, like a plain ``open``.

    Args:
        path: the destination.
        mode: ``"w"`` (text, UTF-8 unless ``encoding`` is given) or ``"wb"``.
        kwargs: forwarded to :func:`open` (e.g. ``newline=""`` for CSV).

    Yields:
        the open temporary file.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open writes whole files: mode must be 'w' or 'wb', got {mode!r}.")
    if mode == "w":
        kwargs.setdefault("encoding", "utf-8")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # a unique name, so two writers of the same file never share a temporary file
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode, **kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; make it readable like a normal file
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    with atomic_open(path, "w") as f:
        f.write(text)
    return Path(path)


def atomic_write_json(path: str | os.PathLike, data: Any, indent: int = 2) -> Path:
    """Write ``data`` as indented JSON with a final newline to ``path`` atomically.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    return atomic_write_text(path, json.dumps(data, indent=indent) + "\n")


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` that never leaves a partially written file at ``path``."""
    with atomic_open(path, "wb") as f:
        torch.save(obj, f)
