# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""MONAI Label active-learning strategy ``uncertainty``: the unlabeled image with the highest stored score."""

from __future__ import annotations

import logging
import math
from typing import Any

from monailabel.interfaces.datastore import Datastore
from monailabel.interfaces.tasks.strategy import Strategy

from condseg_monai.apps.monailabel.lib.scoring import SCORE_KEY, refresh_datastore

__all__ = ["Uncertainty", "rank_images"]

logger = logging.getLogger(__name__)


def _score(info: dict[str, Any]) -> float | None:
    record = info.get(SCORE_KEY)
    score = record.get("score") if isinstance(record, dict) else None
    if isinstance(score, bool) or not isinstance(score, (int, float)) or not math.isfinite(score):
        return None
    return float(score)


def rank_images(scores: dict[str, float | None]) -> list[str]:
    """Order image ids for labelling: scored images by score, highest first, then the images without a score.

    Ties (equal scores) and the unscored images are ordered by image id, so the order is deterministic.
    """
    scored = sorted((-s, i) for i, s in scores.items() if s is not None)
    unscored = sorted(i for i, s in scores.items() if s is None)
    return [i for _, i in scored] + unscored


class Uncertainty(Strategy):
    """Next sample = the unlabeled image with the highest uncertainty score (:class:`UncertaintyScoring`).

    Only ``datastore.get_unlabeled_images()`` are considered, so a labeled image is never returned. Images without
    a score (added since the last scoring, or that failed to score) come after every scored one, in id order: the
    strategy then behaves like ``first`` until the scoring has caught up. Equal scores go to the smaller id.
    """

    def __init__(self) -> None:
        super().__init__("Get the unlabeled image with the highest condseg uncertainty score")

    def __call__(self, request: dict[str, Any], datastore: Datastore) -> dict[str, Any] | None:
        refresh_datastore(datastore)  # scores are written by a scoring subprocess (see refresh_datastore)
        images = datastore.get_unlabeled_images(request.get("label_tag"), request.get("labels"))
        if not images:
            return None
        infos = {i: datastore.get_image_info(i) for i in images}
        ranked = rank_images({i: _score(info) for i, info in infos.items()})
        best = ranked[0]
        logger.info(f"uncertainty: selected {best} ({_score(infos[best])}); top 5 {ranked[:5]}")
        return {"id": best, SCORE_KEY: infos[best].get(SCORE_KEY)}
