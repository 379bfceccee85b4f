# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""Plain report writing shared by evaluation and robustness: CSV, JSON and markdown tables.

Every file goes through the atomic writers of :mod:`condseg_monai.files` (the one home of atomic writes); this
module only adds the report formats on top: NaN as ``null`` in JSON, 6-decimal floats in CSV, the paper's column
titles in markdown tables.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from condseg_monai.files import atomic_open, atomic_write_json

__all__ = ["METRIC_LABELS", "markdown_table", "nan_mean", "to_jsonable", "write_csv", "write_json"]

# column titles used in printed tables (the paper's names)
METRIC_LABELS: dict[str, str] = {
    "iou": "mIoU",
    "dice": "mDSC",
    "recall": "Recall",
    "precision": "Precision",
    "f2": "F2",
    "accuracy": "Accuracy",
    "hd95": "HD95 (px)",
}


def nan_mean(values: Sequence[float]) -> float:
    """Mean of the non-NaN values (NaN when there is none)."""
    kept = [float(v) for v in values if not math.isnan(float(v))]
    return sum(kept) / len(kept) if kept else float("nan")


def to_jsonable(value: Any) -> Any:
    """Turn NaN/inf floats into ``None`` (JSON has no NaN), recursively through dicts and lists."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    return value


def write_json(data: Mapping[str, Any], path: str | os.PathLike) -> Path:
    """Write ``data`` as indented JSON (NaN -> null), atomically."""
    return atomic_write_json(path, to_jsonable(data), indent=2)


def write_csv(rows: Sequence[Mapping[str, Any]], path: str | os.PathLike, columns: Sequence[str] | None = None) -> Path:
    """Write dict rows as CSV (columns: ``columns`` or the keys of the first row; floats with 6 decimals)."""
    cols = list(columns) if columns is not None else (list(rows[0].keys()) if rows else [])
    with atomic_open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=cols, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: (f"{v:.6f}" if isinstance(v, float) else v) for k, v in row.items()})
    return Path(path)


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub-markdown table; floats are printed with 2 decimals, NaN as ``n/a``."""

    def cell(v: Any) -> str:
        if isinstance(v, float):
            return "n/a" if math.isnan(v) else f"{v:.2f}"
        return str(v)

    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)
