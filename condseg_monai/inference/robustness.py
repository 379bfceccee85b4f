# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""Robustness evaluation: the paper's metrics under deterministic corruptions, reported as drops vs clean."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from monai.data import MetaTensor
from monai.utils import convert_to_tensor
from torch import nn
from tqdm import tqdm

from condseg_monai.inference.corruptions import CORRUPTIONS, corrupt, corruption_parameter
from condseg_monai.inference.failures import FailureLog, failure_record
from condseg_monai.inference.report import markdown_table, nan_mean, write_csv, write_json
from condseg_monai.metrics.segmentation import PAPER_METRIC_NAMES, binary_segmentation_metrics

__all__ = ["CLEAN", "robustness_conditions", "robustness_table", "run_robustness"]

logger = logging.getLogger(__name__)

CLEAN = ("clean", 0)


def robustness_conditions(
    corruptions: Sequence[str] | None = None, severities: Sequence[int] = (1, 2, 3)
) -> list[tuple[str, int]]:
    """``[("clean", 0), (corruption, severity), ...]`` for every corruption and severity.

    Args:
        corruptions: names from :data:`~condseg_monai.inference.corruptions.CORRUPTIONS` (default: all).
        severities: severity levels (1..3).

    Raises:
        ValueError: unknown corruption or severity, or nothing selected.
    """
    names = list(CORRUPTIONS) if corruptions is None else [str(c) for c in corruptions]
    if not names or not severities:
        raise ValueError("select at least one corruption and one severity.")
    conditions = [CLEAN]
    for name in names:
        for sev in severities:
            corruption_parameter(name, int(sev))  # validates both
            conditions.append((name, int(sev)))
    return conditions


def _prepare(
    item: Mapping[Hashable, Any], preprocessing: Callable, image_key: str, label_key: str
) -> tuple[torch.Tensor, torch.Tensor, str]:
    """Preprocess one data dict; return the plain image and label tensors and the image file name."""
    d = preprocessing(dict(item))
    image, label = d[image_key], d[label_key]
    name = str(image.meta.get("filename_or_obj", "")) if isinstance(image, MetaTensor) else str(item.get(image_key, ""))
    image = convert_to_tensor(image, dtype=torch.float32, track_meta=False)
    label = convert_to_tensor(label, dtype=torch.float32, track_meta=False)
    return image, label, name


@torch.no_grad()
def run_robustness(
    network: nn.Module,
    data: Sequence[Mapping[Hashable, Any]],
    preprocessing: Callable[[dict], dict],
    inferer: Callable[[torch.Tensor, nn.Module], torch.Tensor],
    output_dir: str | os.PathLike,
    device: str | torch.device = "cpu",
    corruptions: Sequence[str] | None = None,
    severities: Sequence[int] = (1, 2, 3),
    threshold: float = 0.5,
    batch_size: int = 4,
    image_key: str = "image",
    label_key: str = "label",
    prefix: str = "robustness",
    print_table: bool = True,
    failure_log: FailureLog | None = None,
) -> dict[str, Any]:
    """Evaluate ``network`` on clean and corrupted versions of every image and report the metric drops.

    For each image: ``preprocessing`` (load + resize, as in evaluation), then every condition of
    :func:`robustness_conditions` applied to the resized image, ``inferer`` (probabilities), and the paper's
    per-image metrics against the resized label (threshold ``> 0.5``, eps 1e-15). Means over images per condition;
    ``drop_<metric>`` = corrupted mean - clean mean (negative = worse).

    Writes ``<prefix>_per_image.csv``, ``<prefix>.csv`` (one row per condition), ``<prefix>.json`` and
    ``<prefix>.md`` (markdown table, also printed) into ``output_dir``.

    An image or mask that fails to load (``preprocessing`` raises) is recorded in ``failure_log`` (file and
    reason) and left out; the others are still evaluated. ``failures.json`` is always written next to the
    report; end the run with ``failure_log.raise_if_any()`` to make a failure visible in the exit status.

    Args:
        network: the model (weights loaded); put in eval mode here.
        data: data dicts with image and label paths.
        preprocessing: dict transform producing ``(3, S, S)`` images and ``(1, S, S)`` labels.
        inferer: returns probabilities, e.g. :class:`~condseg_monai.inferers.ConDSegInferer`.
        output_dir: report folder.
        device: device of the network.
        corruptions: corruption names (default all), see :data:`CORRUPTIONS`.
        severities: severity levels.
        threshold: prediction threshold (strict ``>``).
        batch_size: images per forward pass (conditions of one image are batched together).
        image_key / label_key: data keys.
        prefix: file-name prefix.
        print_table: print the markdown table.
        failure_log: collects the unreadable cases (a new :class:`~condseg_monai.inference.FailureLog` when
            ``None``; pass the run's log to include failures found earlier).

    Returns:
        the summary dict written to ``<prefix>.json``.

    Raises:
        ValueError: empty ``data``, no readable image, or bad corruption settings.
    """
    failure_log = failure_log if failure_log is not None else FailureLog()
    if not data and not len(failure_log):
        raise ValueError("run_robustness needs at least one image (data is empty).")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
    conditions = robustness_conditions(corruptions, severities)
    out = Path(output_dir)
    network.eval()
    per_image: list[dict[str, Any]] = []
    num_images = 0
    for item in tqdm(data, desc="robustness", unit="image"):
        try:
            image, label, name = _prepare(item, preprocessing, image_key, label_key)
        except Exception as e:  # an unreadable case must not stop the others
            failure_log.add(failure_record(item, e))
            continue
        failure_log.num_read += 1
        num_images += 1
        variants = torch.stack([corrupt(image, c, s) for c, s in conditions])
        probs = torch.cat([inferer(chunk.to(device), network).float().cpu() for chunk in variants.split(batch_size)])
        labels = label.reshape(1, 1, *label.shape[-2:]).expand(len(conditions), -1, -1, -1)
        scores = binary_segmentation_metrics(probs.reshape(labels.shape), labels, threshold=threshold)
        for i, (corruption, severity) in enumerate(conditions):
            row = {"image": name, "corruption": corruption, "severity": severity}
            row.update({m: float(scores[m][i]) for m in PAPER_METRIC_NAMES})
            per_image.append(row)

    failure_log.write(out)
    if not num_images:
        raise ValueError(
            f"run_robustness: none of the {failure_log.num_inputs} images could be read (see {failure_log.path})."
        )
    summary_rows = []
    clean = {
        m: nan_mean([r[m] for r in per_image if (r["corruption"], r["severity"]) == CLEAN]) for m in PAPER_METRIC_NAMES
    }
    for corruption, severity in conditions:
        rows = [r for r in per_image if r["corruption"] == corruption and r["severity"] == severity]
        means = {m: nan_mean([r[m] for r in rows]) for m in PAPER_METRIC_NAMES}
        param = "" if severity == 0 else f"{CORRUPTIONS[corruption][0]}={corruption_parameter(corruption, severity)}"
        entry: dict[str, Any] = {"corruption": corruption, "severity": severity, "parameter": param, **means}
        entry.update({f"drop_{m}": means[m] - clean[m] for m in PAPER_METRIC_NAMES})
        summary_rows.append(entry)

    columns = ["corruption", "severity", "parameter", *PAPER_METRIC_NAMES, *[f"drop_{m}" for m in PAPER_METRIC_NAMES]]
    write_csv(per_image, out / f"{prefix}_per_image.csv", ["image", "corruption", "severity", *PAPER_METRIC_NAMES])
    write_csv(summary_rows, out / f"{prefix}.csv", columns)
    summary = {
        "num_images": num_images,
        "num_failed": len(failure_log),
        "threshold": threshold,
        "resolution": "model input size (corruptions applied after the resize)",
        "corruptions": {c: {"parameter": CORRUPTIONS[c][0], "levels": list(CORRUPTIONS[c][1])} for c in CORRUPTIONS},
        "conditions": summary_rows,
    }
    write_json(summary, out / f"{prefix}.json")
    table = robustness_table(summary_rows)
    failed = f" ({len(failure_log)} more could not be read, see failures.json)" if len(failure_log) else ""
    text = (
        f"Robustness on {num_images} images{failed}: mean of per-image scores in %, drop = corrupted - clean "
        f"(percentage points).\n\n{table}\n"
    )
    (out / f"{prefix}.md").write_text(text, encoding="utf-8")
    logger.info("robustness report written to %s", out)
    if print_table:
        print(text, flush=True)
    return summary


def robustness_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """Markdown table of condition means and drops (percent / percentage points)."""
    header = ["condition", "parameter", "mIoU", "drop mIoU", "mDSC", "drop mDSC", "Recall", "Precision"]
    body = []
    for r in rows:
        cond = "clean" if r["severity"] == 0 else f"{r['corruption']} s{r['severity']}"
        body.append(
            [
                cond,
                r["parameter"] or "-",
                100 * r["iou"],
                100 * r["drop_iou"],
                100 * r["dice"],
                100 * r["drop_dice"],
                100 * r["recall"],
                100 * r["precision"],
            ]
        )
    return markdown_table(header, body)
