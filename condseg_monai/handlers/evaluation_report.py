# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""The evaluator's report handler: the paper's metrics per image, at the model and the original resolution, and
the frame-level detection summary (sensitivity on polyp frames, specificity on polyp-free frames)."""

from __future__ import annotations

import logging
import os
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from ignite.engine import Engine, Events
from monai.data import MetaTensor

from condseg_monai.data.failures import FailureLog
from condseg_monai.metrics.detection import (
    CALIBRATION_MIN_AREAS,
    DEFAULT_MIN_AREA,
    OperatingPoint,
    choose_operating_point,
    detection_score,
    predicted_area,
    summarize_detection,
)
from condseg_monai.metrics.evaluation import RESOLUTIONS, score_case, summarize_cases
from condseg_monai.metrics.segmentation import ALL_METRIC_NAMES
from condseg_monai.reports import METRIC_LABELS, markdown_table, write_csv, write_json
from condseg_monai.transforms.loading import LoadMask

__all__ = ["EvaluationReport"]

logger = logging.getLogger(__name__)


def _filename(x: Any) -> str:
    return str(x.meta.get("filename_or_obj", "")) if isinstance(x, MetaTensor) else ""


def _declared_negative(item: Mapping[Hashable, Any], label: Any) -> bool:
    """Whether the case is a declared polyp-free image (``"negative": true`` in the datalist, no mask file)."""
    flag = item.get("negative")
    if flag is None and isinstance(label, MetaTensor):
        flag = label.meta.get("negative")
    return bool(flag) if flag is not None else False  # after decollation the flag may be a 0-dim tensor


class EvaluationReport:
    """Ignite handler that scores every evaluated image and writes ``<prefix>_per_image.csv``,
    ``<prefix>_summary.json`` and ``<prefix>_summary.md``, and prints the summary table.

    Besides the pixel metrics, every image gets the frame-level decision of
    :mod:`condseg_monai.metrics.detection` at the model resolution (columns ``has_polyp``: its ground truth has
    foreground; ``polyp_present``, ``detection_score``, ``predicted_area``), and the summary a ``detection`` block
    (sensitivity, specificity, false alarms and their area, polyp hit rate, AUROC of the score) and the number of
    images whose mask is empty. A datalist may mix polyp and polyp-free images; the pixel metrics of an empty mask
    follow the paper's eps convention (IoU = Dice = 1 for an empty prediction, 0 otherwise). The scores at every
    :data:`~condseg_monai.metrics.detection.CALIBRATION_MIN_AREAS` are kept in memory for
    :meth:`choose_operating_point` (``run calibrate``).

    Expects per-image (decollated) engine outputs holding:

    - ``pred_key``: probabilities at the model resolution ``(1, S, S)``;
    - ``label_key``: the ground truth at the model resolution (bilinear resize of the mask, soft values allowed:
      thresholded with ``> 0.5`` exactly as the official evaluation does);
    - ``original_pred_key``: probabilities resampled to the original image size (``Invertd``); optional;
    - ``original_label_key``: the original mask; when absent it is re-read from the file named in the label's
      metadata with :class:`~condseg_monai.transforms.LoadMask` (the same binarisation as training).

    Args:
        output_dir: folder for the report files.
        split: name of the evaluated split (written into the summary).
        image_size: model input size, for the report.
        threshold: prediction threshold (strict ``>``; official 0.5); ignored when ``operating_point`` is given.
        include_hd95: add HD95 (pixels at each resolution).
        pred_key / label_key / original_pred_key / original_label_key: data keys, see above.
        prefix: file-name prefix.
        print_table: print the markdown summary table to stdout at the end.
        failure_log: the run's :class:`~condseg_monai.data.FailureLog`; the summary then counts the cases
            that could not be read (``num_failed``, listed in ``failures.json``) next to the scored ones.
        operating_point: threshold and minimum area of the frame-level decision (default: ``threshold`` and
            :data:`~condseg_monai.metrics.detection.DEFAULT_MIN_AREA`).
        calibration_min_areas: the minimum areas whose scores are kept for :meth:`choose_operating_point`.
    """

    def __init__(
        self,
        output_dir: str | os.PathLike,
        split: str = "test",
        image_size: int | Sequence[int] = 256,
        threshold: float = 0.5,
        include_hd95: bool = True,
        pred_key: str = "pred",
        label_key: str = "label",
        original_pred_key: str | None = "pred_original",
        original_label_key: str | None = "label_original",
        prefix: str = "evaluation",
        print_table: bool = True,
        failure_log: FailureLog | None = None,
        operating_point: OperatingPoint | None = None,
        calibration_min_areas: Sequence[float] = CALIBRATION_MIN_AREAS,
    ) -> None:
        self.operating_point = operating_point or OperatingPoint(float(threshold), DEFAULT_MIN_AREA)
        threshold = self.operating_point.threshold
        self.calibration_min_areas = tuple(float(a) for a in calibration_min_areas)
        self.output_dir = Path(output_dir)
        self.split = split
        self.image_size = list(image_size) if isinstance(image_size, Sequence) else [int(image_size)] * 2
        self.threshold = float(threshold)
        self.include_hd95 = bool(include_hd95)
        self.pred_key = pred_key
        self.label_key = label_key
        self.original_pred_key = original_pred_key
        self.original_label_key = original_label_key
        self.prefix = prefix
        self.print_table = print_table
        self.failure_log = failure_log
        self.metric_names = [m for m in ALL_METRIC_NAMES if include_hd95 or m != "hd95"]
        self.rows: list[dict[str, Any]] = []
        self.calibration_scores: dict[float, list[float]] = {a: [] for a in self.calibration_min_areas}
        self.summary: dict[str, Any] = {}
        self._mask_loader = LoadMask()

    def attach(self, engine: Engine) -> None:
        """Register the handler's callbacks on ``engine``."""
        engine.add_event_handler(Events.EPOCH_STARTED, self.reset)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self.iteration_completed)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self.epoch_completed)

    def reset(self, engine: Engine | None = None) -> None:
        """Forget the scores of a previous run."""
        self.rows = []
        self.calibration_scores = {a: [] for a in self.calibration_min_areas}
        self.summary = {}

    def add_case(self, item: Mapping[Hashable, Any]) -> dict[str, Any]:
        """Score one decollated output dict and store the row (also returned)."""
        pred, label = item[self.pred_key], item[self.label_key]
        label_file = _filename(label)
        negative = not label_file and _declared_negative(item, label)
        row: dict[str, Any] = {
            "image": _filename(item.get("image")) or _filename(pred),
            "label": "(declared negative)" if negative else label_file,
        }
        for name, value in score_case(pred, label, self.threshold, self.include_hd95).items():
            row[f"{name}_resized"] = value
        row.update(self._detection(pred, label))
        if self.original_pred_key is not None and self.original_pred_key in item:
            pred_orig = item[self.original_pred_key]
            if self.original_label_key is not None and self.original_label_key in item:
                label_orig = item[self.original_label_key]
            elif label_file:
                label_orig = self._mask_loader(label_file)
            elif negative:
                # a declared polyp-free image without a mask file: its mask is empty at any resolution
                label_orig = torch.zeros((1, *pred_orig.shape[-2:]), dtype=torch.float32)
            else:
                raise ValueError(
                    f"cannot score at the original resolution: no '{self.original_label_key}' and the label "
                    "has no file name in its metadata."
                )
            row["height"], row["width"] = (int(s) for s in label_orig.shape[-2:])
            for name, value in score_case(pred_orig, label_orig, self.threshold, self.include_hd95).items():
                row[f"{name}_original"] = value
        self.rows.append(row)
        return row

    def _detection(self, pred: Any, label: Any) -> dict[str, Any]:
        """The frame-level columns of one image at the model resolution; keeps its calibration scores."""
        prob = torch.as_tensor(pred).detach().float().cpu()
        op = self.operating_point
        score = float(detection_score(prob, op.min_area)[0])
        for area in self.calibration_min_areas:
            self.calibration_scores[area].append(float(detection_score(prob, area)[0]))
        return {
            "has_polyp": bool((torch.as_tensor(label).detach().cpu() > 0.5).any()),
            "polyp_present": score > op.threshold,
            "detection_score": score,
            "predicted_area": float(predicted_area(prob, op.threshold)[0]),
        }

    def detection_summary(self) -> dict[str, Any]:
        """:func:`~condseg_monai.metrics.detection.summarize_detection` over the scored images."""
        return summarize_detection(
            has_polyp=[r["has_polyp"] for r in self.rows],
            present=[r["polyp_present"] for r in self.rows],
            scores=[r["detection_score"] for r in self.rows],
            areas=[r["predicted_area"] for r in self.rows],
            recalls=[r["recall_resized"] for r in self.rows],
        )

    def choose_operating_point(
        self, target_specificity: float | None = 0.95, target_sensitivity: float | None = None
    ) -> OperatingPoint:
        """Pick the operating point on the evaluated images (a validation set with polyp and polyp-free frames).

        Args:
            target_specificity: wanted share of polyp-free frames without an alarm (used unless
                ``target_sensitivity`` is given).
            target_sensitivity: wanted share of polyp frames detected; when given it replaces the specificity target.

        Returns:
            the :class:`~condseg_monai.metrics.detection.OperatingPoint` of
            :func:`~condseg_monai.metrics.detection.choose_operating_point`, ``chosen_by`` also naming the split.

        Raises:
            ValueError: no image was evaluated, or the images lack one kind of frame.
        """
        if not self.rows:
            raise ValueError("choose_operating_point: no image was evaluated.")
        if target_sensitivity is not None:
            target_specificity = None
        op = choose_operating_point(
            self.calibration_scores,
            [r["has_polyp"] for r in self.rows],
            target_specificity=target_specificity,
            target_sensitivity=target_sensitivity,
        )
        op.chosen_by.update(split=self.split, image_size=self.image_size)
        if not op.chosen_by["target_met"]:
            logger.warning("the target was not reached on split '%s': %s", self.split, op.chosen_by)
        return op

    def iteration_completed(self, engine: Engine) -> None:
        """Score every image of the batch."""
        output = engine.state.output
        items = output if isinstance(output, list) else [output]
        for item in items:
            self.add_case(item)

    @property
    def metric_columns(self) -> list[str]:
        """Metric columns present in the rows, in a fixed order."""
        cols = [f"{m}_{r}" for r in RESOLUTIONS for m in self.metric_names]
        return [c for c in cols if any(c in row for row in self.rows)]

    def build_summary(self) -> dict[str, Any]:
        """Mean over images of every metric at each resolution, plus the evaluation settings."""
        means = summarize_cases(self.rows, self.metric_columns)
        metrics: dict[str, dict[str, Any]] = {}
        for res in RESOLUTIONS:
            block = {m: means[f"{m}_{res}"] for m in self.metric_names if f"{m}_{res}" in means}
            for m in self.metric_names:
                if f"{m}_{res}_undefined" in means:
                    block[f"{m}_undefined"] = means[f"{m}_{res}_undefined"]
            if block:
                metrics[res] = block
        return {
            "split": self.split,
            "num_images": len(self.rows),
            "num_empty_masks": sum(1 for r in self.rows if not r["has_polyp"]),
            "num_failed": len(self.failure_log) if self.failure_log is not None else 0,
            "image_size": self.image_size,
            "threshold": self.threshold,
            "operating_point": {"threshold": self.operating_point.threshold, "min_area": self.operating_point.min_area},
            "detection": self.detection_summary(),
            "eps": 1e-15,
            "aggregation": "mean of per-image scores (NaN HD95 excluded)",
            "metrics": metrics,
        }

    def table(self) -> str:
        """Markdown table of the summary: one row per resolution, metrics in percent (HD95 in pixels)."""
        header = ["resolution", *[METRIC_LABELS[m] for m in self.metric_names]]
        rows = []
        for res, block in self.summary.get("metrics", {}).items():
            label = f"{self.image_size[0]}x{self.image_size[1]}" if res == "resized" else "original"
            rows.append([label, *[block.get(m, float("nan")) * (1 if m == "hd95" else 100) for m in self.metric_names]])
        return markdown_table(header, rows)

    def write(self) -> dict[str, Path]:
        """Write the per-image CSV, the summary JSON and the markdown table; return their paths."""
        columns = [
            "image",
            "label",
            "height",
            "width",
            "has_polyp",
            "polyp_present",
            "detection_score",
            "predicted_area",
            *self.metric_columns,
        ]
        paths = {
            "csv": write_csv(self.rows, self.output_dir / f"{self.prefix}_per_image.csv", columns),
            "json": write_json(self.summary, self.output_dir / f"{self.prefix}_summary.json"),
        }
        md = self.output_dir / f"{self.prefix}_summary.md"
        md.write_text(self._markdown(), encoding="utf-8")
        paths["markdown"] = md
        return paths

    def _markdown(self) -> str:
        s = self.summary
        head = (
            f"Evaluation of split '{s['split']}' ({s['num_images']} images), threshold {s['threshold']}, "
            "mean of per-image scores in %, HD95 in pixels."
        )
        if s.get("num_empty_masks"):
            head += (
                f"\n\n{s['num_empty_masks']} of the images have an empty mask (no polyp): their pixel metrics are 1 "
                "for an empty prediction and 0 for any predicted pixel."
            )
        if s.get("num_failed"):
            head += f"\n\n{s['num_failed']} more cases could not be read and are not scored (see failures.json)."
        return f"{head}\n\n{self.table()}\n\n{self.detection_table()}\n"

    def detection_table(self) -> str:
        """Markdown table of the frame-level summary (rates in percent)."""
        d = self.summary.get("detection", {})
        op = self.summary.get("operating_point", {})
        header = [
            "frames with / without polyp",
            "sensitivity",
            "specificity",
            "false alarms",
            "mean false-alarm area",
            "polyp hit rate",
            "AUROC",
        ]
        row = [
            f"{d.get('num_with_polyp', 0)} / {d.get('num_polyp_free', 0)}",
            100 * d.get("sensitivity", float("nan")),
            100 * d.get("specificity", float("nan")),
            f"{d.get('num_false_alarms', 0)}",
            100 * d.get("mean_false_alarm_area", float("nan")),
            100 * d.get("polyp_hit_rate", float("nan")),
            d.get("auroc", float("nan")),
        ]
        rule = (
            f"Frame-level detection (polyp present: at least {100 * op.get('min_area', 0):g} % of the image above "
            f"{op.get('threshold')}; rates and areas in %; hit: >= 10 % of the polyp found):"
        )
        return f"{rule}\n\n{markdown_table(header, [row])}"

    def epoch_completed(self, engine: Engine | None = None) -> None:
        """Summarise, write the files and print the table."""
        if not self.rows:
            logger.warning("EvaluationReport: no image was evaluated, nothing written.")
            return
        self.summary = self.build_summary()
        paths = self.write()
        logger.info("evaluation report written to %s", ", ".join(str(p) for p in paths.values()))
        if self.print_table:
            print(self._markdown(), flush=True)
