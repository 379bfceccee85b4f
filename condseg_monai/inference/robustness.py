# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""Robustness evaluation: the paper's metrics under deterministic corruptions, reported as drops vs clean.

One MONAI ``SupervisedEvaluator`` per condition (:func:`condition_evaluator`): the corruption is a transform
(:class:`~condseg_monai.transforms.CorruptImaged`) and the metrics are the evaluation's
:class:`~condseg_monai.handlers.PaperMetricHandler`, so robustness scores images exactly as ``evaluating`` does.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from monai.data import DataLoader, Dataset, MetaTensor
from monai.engines import SupervisedEvaluator
from monai.handlers import from_engine
from monai.utils import CommonKeys, convert_to_tensor
from torch import nn
from tqdm import tqdm

from condseg_monai.data.failures import FailureLog, failure_record
from condseg_monai.handlers.paper_metric import PaperMetricHandler
from condseg_monai.handlers.progress import ProgressBar
from condseg_monai.metrics.segmentation import PAPER_METRIC_NAMES
from condseg_monai.reports import markdown_table, nan_mean, write_csv, write_json
from condseg_monai.transforms.corruptions import CORRUPTIONS, CorruptImaged, corruption_parameter

__all__ = ["CLEAN", "condition_evaluator", "robustness_conditions", "robustness_table", "run_robustness"]

logger = logging.getLogger(__name__)

CLEAN = ("clean", 0)


def robustness_conditions(
    corruptions: Sequence[str] | None = None, severities: Sequence[int] = (1, 2, 3)
) -> list[tuple[str, int]]:
    """``[("clean", 0), (corruption, severity), ...]`` for every corruption and severity.

    Args:
        corruptions: names from :data:`~condseg_monai.transforms.CORRUPTIONS` (default: all).
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


def condition_evaluator(
    network: nn.Module,
    data: Sequence[Mapping[Hashable, Any]],
    inferer: Callable[[torch.Tensor, nn.Module], torch.Tensor],
    corruption: str,
    severity: int,
    device: str | torch.device = "cpu",
    threshold: float = 0.5,
    batch_size: int = 4,
) -> SupervisedEvaluator:
    """The evaluator of one robustness condition: :class:`~condseg_monai.transforms.CorruptImaged` as its
    preprocessing and the paper's metrics as :class:`~condseg_monai.handlers.PaperMetricHandler` s.

    After ``run()``, ``engine.state.metric_details[m]`` holds the ``(N, 1)`` per-image scores of each metric
    ``m`` of :data:`~condseg_monai.metrics.PAPER_METRIC_NAMES`, in the order of ``data``, and
    ``engine.state.metrics[m]`` their mean.

    Args:
        network: the model (weights loaded); the evaluator puts it in eval mode.
        data: preprocessed cases ``{"image": (3, S, S), "label": (1, S, S)}`` (already loaded and resized: the
            corruption applies at the model resolution).
        inferer: returns probabilities, e.g. :class:`~condseg_monai.inferers.ConDSegInferer`.
        corruption / severity: the condition (``"clean", 0`` for the clean images).
        device: device of the network.
        threshold: prediction threshold (strict ``>``).
        batch_size: images per forward pass.

    Raises:
        ValueError: unknown corruption or severity.
    """
    dataset = Dataset(data, transform=CorruptImaged(CommonKeys.IMAGE, corruption, severity))
    metrics = {
        name: PaperMetricHandler(
            metric_name=name, threshold=threshold, output_transform=from_engine([CommonKeys.PRED, CommonKeys.LABEL])
        )
        for name in PAPER_METRIC_NAMES
    }
    first = PAPER_METRIC_NAMES[0]
    desc = "robustness clean" if severity == 0 else f"robustness {corruption} s{severity}"
    return SupervisedEvaluator(
        device=torch.device(device),
        val_data_loader=DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=0),
        network=network,
        inferer=inferer,  # type: ignore[arg-type]  # any callable (inputs, network) -> probabilities
        key_val_metric={first: metrics.pop(first)},
        additional_metrics=metrics,
        val_handlers=[ProgressBar(desc=desc)],
    )


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

    Every image is read once: ``preprocessing`` (load + resize, as in evaluation). Then, for every condition of
    :func:`robustness_conditions`, a MONAI ``SupervisedEvaluator`` (:func:`condition_evaluator`) runs over the
    resized images with the condition's :class:`~condseg_monai.transforms.CorruptImaged` as preprocessing,
    ``inferer`` (probabilities) and the paper's per-image metrics against the resized label
    (:class:`~condseg_monai.handlers.PaperMetricHandler`, threshold ``> 0.5``, eps 1e-15). Means over images per
    condition; ``drop_<metric>`` = corrupted mean - clean mean (negative = worse).

    Writes ``<prefix>_per_image.csv`` (rows by image, then condition), ``<prefix>.csv`` (one row per condition),
    ``<prefix>.json`` and ``<prefix>.md`` (markdown table, also printed) into ``output_dir``.

    An image or mask that fails to load (``preprocessing`` raises) is recorded in ``failure_log`` (file and
    reason) and left out; the others are still evaluated. ``failures.json`` is always written next to the
    report; end the run with ``failure_log.raise_if_any()`` to make a failure visible in the exit status.

    The preprocessed images are kept in memory for the conditions (``3 S^2`` floats each, 0.8 MB at 256 px).

    Args:
        network: the model (weights loaded); put in eval mode here.
        data: data dicts with image and label paths.
        preprocessing: dict transform producing ``(3, S, S)`` images and ``(1, S, S)`` labels.
        inferer: returns probabilities, e.g. :class:`~condseg_monai.inferers.ConDSegInferer`.
        output_dir: report folder.
        device: device of the network.
        corruptions: corruption names (default all), see :data:`~condseg_monai.transforms.CORRUPTIONS`.
        severities: severity levels.
        threshold: prediction threshold (strict ``>``).
        batch_size: images per forward pass (images of one condition are batched together).
        image_key / label_key: data keys.
        prefix: file-name prefix.
        print_table: print the markdown table.
        failure_log: collects the unreadable cases (a new :class:`~condseg_monai.data.FailureLog` when
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
    cases: list[dict[str, torch.Tensor]] = []
    names: list[str] = []
    for item in tqdm(data, desc="robustness: reading", unit="image"):
        try:
            image, label, name = _prepare(item, preprocessing, image_key, label_key)
        except Exception as e:  # an unreadable case must not stop the others
            failure_log.add(failure_record(item, e))
            continue
        failure_log.num_read += 1
        cases.append({CommonKeys.IMAGE: image, CommonKeys.LABEL: label})
        names.append(name)
    num_images = len(cases)

    failure_log.write(out)
    if not num_images:
        raise ValueError(
            f"run_robustness: none of the {failure_log.num_inputs} images could be read (see {failure_log.path})."
        )
    # per condition: {metric: (N,) per-image scores in the order of ``cases``}
    scores: list[dict[str, list[float]]] = []
    for corruption, severity in conditions:
        evaluator = condition_evaluator(
            network, cases, inferer, corruption, severity, device=device, threshold=threshold, batch_size=batch_size
        )
        evaluator.run()
        details = evaluator.state.metric_details
        scores.append({m: [float(v) for v in details[m].reshape(-1)] for m in PAPER_METRIC_NAMES})
    # rows by image, then condition: the order of the per-image report
    per_image: list[dict[str, Any]] = []
    for i, name in enumerate(names):
        for (corruption, severity), cond_scores in zip(conditions, scores, strict=True):
            row = {"image": name, "corruption": corruption, "severity": severity}
            row.update({m: cond_scores[m][i] for m in PAPER_METRIC_NAMES})
            per_image.append(row)

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
