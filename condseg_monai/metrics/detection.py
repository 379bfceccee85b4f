# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""Frame-level polyp detection from a segmentation: the per-frame decision, its score and the run's summary.

A colonoscopy is judged per frame: is there a polyp on this frame or not? The decision rule, from the
prediction alone:

    a frame shows a polyp  <=>  at least ``k = max(1, ceil(min_area * H * W))`` pixels have probability
    ``> threshold``

(``min_area`` is a fraction of the frame, so the rule does not depend on the resolution). Its image-level
score is the ``k``-th largest pixel probability: the decision is exactly ``score > threshold``, so sweeping
the threshold over the scores traces the rule's ROC curve (with ``min_area`` at its smallest, ``k = 1`` and the
score is the maximum probability). :class:`OperatingPoint` holds the pair ``(threshold, min_area)``;
:func:`choose_operating_point` picks it on a validation set for a target specificity or sensitivity.

Summaries (:func:`summarize_detection`): sensitivity on frames whose ground truth has foreground, specificity on
frames without, the share of false-alarm frames and their mean false-positive area, the share of polyp frames
where at least 10 % of the polyp is found, and the AUROC of the score (``monai.metrics.compute_roc_auc``) when
both kinds of frames are present.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from monai.metrics import compute_roc_auc
from monai.utils import convert_to_tensor

__all__ = [
    "CALIBRATION_MIN_AREAS",
    "DEFAULT_MIN_AREA",
    "HIT_RECALL",
    "OperatingPoint",
    "choose_operating_point",
    "detection_score",
    "min_area_pixels",
    "polyp_present",
    "predicted_area",
    "summarize_detection",
]

# Default minimum predicted area: 0.1 % of the frame (65 pixels at 256 x 256, 4 at 64 x 64). Kvasir-SEG's and
# CVC-ClinicDB's smallest polyps cover about 0.5 % of their frames, so the rule ignores specks, not polyps.
DEFAULT_MIN_AREA = 0.001
# The minimum areas :func:`choose_operating_point` tries (fractions of the frame).
CALIBRATION_MIN_AREAS: tuple[float, ...] = (0.0, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02)
# A polyp frame counts as a "hit" when the prediction covers at least this share of the polyp (pixel recall).
HIT_RECALL = 0.1


def _as_maps(prob: torch.Tensor) -> torch.Tensor:
    """``(H, W)``, ``(1, H, W)`` or ``(B, 1, H, W)`` -> ``(B, H*W)`` float tensor (metadata dropped)."""
    t = convert_to_tensor(prob, track_meta=False)
    if not torch.is_floating_point(t):
        t = t.float()
    if t.ndim == 2:
        t = t[None]
    if t.ndim == 4:
        if t.shape[1] != 1:
            raise ValueError(f"expected one channel, got a prediction of shape {tuple(t.shape)}.")
        t = t[:, 0]
    if t.ndim != 3:
        raise ValueError(f"expected (H, W), (1, H, W) or (B, 1, H, W), got {tuple(t.shape)}.")
    return t.flatten(1)


def min_area_pixels(min_area: float, num_pixels: int) -> int:
    """``k = max(1, ceil(min_area * num_pixels))``: the number of pixels the rule asks for.

    Raises:
        ValueError: ``min_area`` outside [0, 1).
    """
    if not 0.0 <= float(min_area) < 1.0:
        raise ValueError(f"min_area is a fraction of the frame in [0, 1), got {min_area}.")
    # the tolerance keeps float round-off from adding a pixel: 0.07 * 100 is 7.000000000000001 in float64
    return max(1, math.ceil(float(min_area) * num_pixels - 1e-9))


def detection_score(prob: torch.Tensor, min_area: float = DEFAULT_MIN_AREA) -> torch.Tensor:
    """Image-level score of each frame: its ``k``-th largest pixel probability (``k`` from ``min_area``).

    Args:
        prob: probabilities ``(H, W)``, ``(1, H, W)`` or ``(B, 1, H, W)``.
        min_area: minimum predicted area as a fraction of the frame.

    Returns:
        ``(B,)`` scores in [0, 1] (``B = 1`` for a single map).
    """
    flat = _as_maps(prob)
    k = min_area_pixels(min_area, flat.shape[1])
    return torch.topk(flat, k, dim=1).values[:, -1]


def predicted_area(prob: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """Share of each frame's pixels with probability ``> threshold``, ``(B,)`` float64."""
    flat = _as_maps(prob)
    return (flat > threshold).double().mean(dim=1)


@dataclass(frozen=True)
class OperatingPoint:
    """The decision rule's two parameters, and how they were chosen.

    Attributes:
        threshold: pixel probability threshold (strict ``>``), used for the masks and the decision.
        min_area: minimum predicted area (fraction of the frame) for "polyp present".
        chosen_by: how it was chosen (target, validation counts and rates), empty for a default.
    """

    threshold: float = 0.5
    min_area: float = DEFAULT_MIN_AREA
    chosen_by: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 0.0 < float(self.threshold) < 1.0:
            raise ValueError(f"threshold must be in (0, 1), got {self.threshold}.")
        min_area_pixels(self.min_area, 1)  # validates the range

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "operating point") -> OperatingPoint:
        """Build from :meth:`to_dict`'s output; errors name ``source`` and the bad key.

        Raises:
            ValueError: a missing, unknown or out-of-range key.
        """
        unknown = set(data) - {"threshold", "min_area", "chosen_by"}
        if unknown:
            raise ValueError(f"{source}: unknown keys {sorted(unknown)}.")
        if "threshold" not in data or "min_area" not in data:
            raise ValueError(f"{source}: needs 'threshold' and 'min_area'.")
        try:
            return cls(float(data["threshold"]), float(data["min_area"]), dict(data.get("chosen_by") or {}))
        except (TypeError, ValueError) as e:
            raise ValueError(f"{source}: {e}") from e


def polyp_present(prob: torch.Tensor, operating_point: OperatingPoint) -> torch.Tensor:
    """The per-frame decision ``(B,)`` bool: ``detection_score(prob, min_area) > threshold``."""
    return detection_score(prob, operating_point.min_area) > operating_point.threshold


def _rate(hits: int, total: int) -> float:
    return hits / total if total else float("nan")


def summarize_detection(
    has_polyp: Sequence[bool],
    present: Sequence[bool],
    scores: Sequence[float],
    areas: Sequence[float],
    recalls: Sequence[float] | None = None,
) -> dict[str, Any]:
    """Frame-level summary of a run.

    Args:
        has_polyp: per frame, whether its ground truth has foreground.
        present: per frame, the decision "polyp present".
        scores: per frame, the image-level score (for the AUROC).
        areas: per frame, the predicted area (fraction of the frame).
        recalls: per frame, the pixel recall of the prediction (for ``polyp_hit_rate``); optional.

    Returns:
        ``num_with_polyp``, ``num_polyp_free``, ``sensitivity`` (polyp frames called present), ``specificity``
        (polyp-free frames called free), ``false_alarm_rate`` (``1 - specificity``), ``num_false_alarms``,
        ``mean_false_alarm_area`` (mean predicted area of the false-alarm frames), ``mean_polyp_free_area``
        (over all polyp-free frames), ``polyp_hit_rate`` (polyp frames with pixel recall >= 10 %) and ``auroc``
        (NaN unless both kinds are present). Rates are NaN when their denominator is 0.
    """
    n = len(has_polyp)
    if not (len(present) == len(scores) == len(areas) == n) or (recalls is not None and len(recalls) != n):
        raise ValueError("has_polyp, present, scores, areas (and recalls) need one value per frame.")
    pos = [i for i in range(n) if has_polyp[i]]
    neg = [i for i in range(n) if not has_polyp[i]]
    false_alarms = [i for i in neg if present[i]]
    out: dict[str, Any] = {
        "num_with_polyp": len(pos),
        "num_polyp_free": len(neg),
        "sensitivity": _rate(sum(bool(present[i]) for i in pos), len(pos)),
        "specificity": _rate(len(neg) - len(false_alarms), len(neg)),
        "false_alarm_rate": _rate(len(false_alarms), len(neg)),
        "num_false_alarms": len(false_alarms),
        "mean_false_alarm_area": _rate(sum(float(areas[i]) for i in false_alarms), len(false_alarms)),
        "mean_polyp_free_area": _rate(sum(float(areas[i]) for i in neg), len(neg)),
    }
    if recalls is not None:
        out["polyp_hit_rate"] = _rate(sum(float(recalls[i]) >= HIT_RECALL for i in pos), len(pos))
    y_score = torch.tensor([float(s) for s in scores], dtype=torch.float64)
    y_true = torch.tensor([int(bool(h)) for h in has_polyp])
    out["auroc"] = float(compute_roc_auc(y_score, y_true)) if pos and neg else float("nan")
    return out


def _rates_at(pos: torch.Tensor, neg: torch.Tensor, threshold: float) -> tuple[float, float]:
    return float((pos > threshold).double().mean()), float((neg <= threshold).double().mean())


def choose_operating_point(
    scores: Mapping[float, Sequence[float]],
    has_polyp: Sequence[bool],
    target_specificity: float | None = None,
    target_sensitivity: float | None = None,
    max_threshold: float = 0.99,
) -> OperatingPoint:
    """Pick ``(threshold, min_area)`` on a validation set for a target specificity or sensitivity.

    For every candidate ``min_area`` (the keys of ``scores``) the threshold is the lowest one reaching the target
    specificity (a quantile of the polyp-free frames' scores), or the highest one keeping the target sensitivity;
    thresholds below 0.5 are raised to 0.5 (a lower mask threshold would only grow the masks) and above
    ``max_threshold`` capped. Among the candidates the one with the best other rate wins (ties: the lower
    threshold, whose masks are fuller, then the smaller area). When no candidate reaches the target the one
    closest to it is returned and ``chosen_by["target_met"]`` is false.

    Args:
        scores: ``{min_area: per-frame detection scores}`` (:func:`detection_score` at each ``min_area``).
        has_polyp: per frame, whether its ground truth has foreground.
        target_specificity: wanted share of polyp-free frames without an alarm, in (0, 1].
        target_sensitivity: wanted share of polyp frames with a detection, in (0, 1]; exactly one target.
        max_threshold: the highest threshold allowed (masks above it are mostly empty).

    Returns:
        the chosen :class:`OperatingPoint`, ``chosen_by`` holding the target, the validation counts and the
        validation sensitivity / specificity it reaches.

    Raises:
        ValueError: not exactly one target, a target outside (0, 1], no score lists, lists of another length than
            ``has_polyp``, or no frame of the kind the target needs (polyp-free frames for a specificity target,
            polyp frames for a sensitivity target; both are needed to rank the candidates).
    """
    if (target_specificity is None) == (target_sensitivity is None):
        raise ValueError("give exactly one of target_specificity and target_sensitivity.")
    target = float(target_specificity if target_specificity is not None else target_sensitivity)  # type: ignore[arg-type]
    name = "target_specificity" if target_specificity is not None else "target_sensitivity"
    if not 0.0 < target <= 1.0:
        raise ValueError(f"{name} must be in (0, 1], got {target}.")
    if not scores:
        raise ValueError("scores: no candidate min_area.")
    labels = torch.tensor([bool(h) for h in has_polyp])
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError(
            f"choosing an operating point needs frames with and without a polyp; the validation set has {n_pos} "
            f"with and {n_neg} without (add polyp-free frames, e.g. prepare --negatives-dir)."
        )
    candidates = []
    for min_area, values in scores.items():
        s = torch.tensor([float(v) for v in values], dtype=torch.float64)
        if s.numel() != labels.numel():
            raise ValueError(f"scores[{min_area}] has {s.numel()} values for {labels.numel()} frames.")
        pos, neg = s[labels], s[~labels]
        if target_specificity is not None:
            # specificity(t) = share of neg <= t: the smallest t reaching the target is a quantile of neg
            k = max(1, math.ceil(target * n_neg - 1e-9))
            t = float(torch.sort(neg).values[k - 1])
        else:
            # sensitivity(t) = share of pos > t: keep the ceil(target * n_pos) highest-scored polyp frames
            k = max(1, math.ceil(target * n_pos - 1e-9))
            t = float(torch.sort(pos, descending=True).values[k - 1])
            t = math.nextafter(t, -math.inf)  # strict >: a frame scored exactly t must stay detected
        t = min(max(t, 0.5), max_threshold)
        sens, spec = _rates_at(pos, neg, t)
        met = (spec if target_specificity is not None else sens) >= target - 1e-12
        other = sens if target_specificity is not None else spec
        reached = spec if target_specificity is not None else sens
        candidates.append((met, other if met else reached, -t, -float(min_area), float(min_area), t, sens, spec))
    met, _, _, _, min_area, t, sens, spec = max(candidates)
    return OperatingPoint(
        threshold=t,
        min_area=min_area,
        chosen_by={
            name: target,
            "target_met": bool(met),
            "validation_with_polyp": n_pos,
            "validation_polyp_free": n_neg,
            "validation_sensitivity": sens,
            "validation_specificity": spec,
        },
    )
