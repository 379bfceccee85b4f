# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""A MONAI ``PILWriter`` for arrays in the project's ``(H, W)`` (rows first) axis convention."""

from __future__ import annotations

from typing import Any

from monai.config import PathLike
from monai.data import PILWriter

__all__ = ["PILWriterHW"]


class PILWriterHW(PILWriter):
    """``PILWriter`` that writes ``(H, W)`` arrays without swapping axes.

    MONAI's ``PILWriter`` swaps the first two axes on write (``reverse_indexing=True``) to undo the ``(W, H)``
    order of MONAI's ``PILReader``. Our loaders (:class:`condseg_monai.transforms.LoadImageRGBd`) keep rows
    first, so predictions must be written unswapped. Use it with MONAI's ``SaveImaged``::

        SaveImaged(keys="pred", output_ext=".png", writer="condseg_monai.data.PILWriterHW",
                   output_dtype=numpy.uint8, scale=255, squeeze_end_dims=True, separate_folder=False)

    An explicit ``reverse_indexing`` passed to :meth:`write` still wins.
    """

    def write(self, filename: PathLike, verbose: bool = False, **kwargs: Any) -> None:
        """Write the image to ``filename``; see ``monai.data.PILWriter.write``."""
        kwargs.setdefault("reverse_indexing", False)
        super().write(filename, verbose=verbose, **kwargs)
