# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""MONAI Label active-learning strategies: ``uncertainty`` (the unlabeled image with the highest stored score),
``diverse_uncertainty`` (representative, diverse and uncertain picks from the encoder embeddings) and
``foreground_random`` (random among the images the model finds a polyp in)."""

from __future__ import annotations

import logging
import math
import random
import time
from pathlib import Path
from typing import Any

import torch
from monailabel.interfaces.datastore import Datastore
from monailabel.interfaces.tasks.strategy import Strategy

from condseg_monai.apps.monailabel.lib.scoring import SCORE_KEY, EmbeddingStore, refresh_datastore
from condseg_monai.apps.monailabel.selection import (
    DEFAULT_MAX_CLUSTERS,
    DEFAULT_UNCERTAINTY_WEIGHT,
    foreground_candidates,
    select_next,
)

__all__ = ["DiverseUncertainty", "ForegroundRandom", "Uncertainty", "rank_images", "recently_served", "served_at"]

# an image served by a strategy counts as taken (an annotator has it) for this long, as MONAI Label's Epistemic
SECS_IN_DAY = 24 * 60 * 60

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


def served_at(info: dict[str, Any], strategy: str) -> float | None:
    """When ``/activelearning/<strategy>`` last served this image (MONAI Label's endpoint stores
    ``info["strategy"][strategy]["ts"]`` for every image it serves), or None."""
    ts = (info.get("strategy") or {}).get(strategy, {}).get("ts")
    return float(ts) if isinstance(ts, (int, float)) else None


def recently_served(info: dict[str, Any], strategy: str, now: int, within: int) -> bool:
    """Whether ``/activelearning/<strategy>`` served this image less than ``within`` seconds ago."""
    ts = served_at(info, strategy)
    return ts is not None and now - ts < within


class DiverseUncertainty(Strategy):
    """Next sample = a representative, not yet covered and (once there is a model) uncertain image.

    The images' encoder embeddings (written by the scoring method into ``embeddings_path``, an
    :class:`~condseg_monai.apps.monailabel.lib.scoring.EmbeddingStore`) are clustered and the pick is made by
    :func:`~condseg_monai.apps.monailabel.selection.select_next` (TypiClust's typical image of the least covered
    cluster, weighted by the stored uncertainty score): labeled images and the images this strategy served in the
    last ``reset`` seconds cover their cluster, so annotators asking one after another get different parts of the
    datastore. Until the scoring method has embedded any unlabeled image, it behaves like ``uncertainty``.

    Args:
        embeddings_path: the scoring method's embedding store.
        max_clusters: cap on the k-means clusters (``--conf diversity_max_clusters``).
        uncertainty_weight: weight of the uncertainty score in ``[0, 1]`` (``--conf diversity_uncertainty_weight``).
        reset: seconds a served image stays covered.

    Raises:
        ValueError: ``uncertainty_weight`` outside ``[0, 1]`` or ``max_clusters < 1``.
    """

    def __init__(
        self,
        embeddings_path: str | Path,
        max_clusters: int = DEFAULT_MAX_CLUSTERS,
        uncertainty_weight: float = DEFAULT_UNCERTAINTY_WEIGHT,
        reset: int = SECS_IN_DAY,
    ) -> None:
        if not 0.0 <= float(uncertainty_weight) <= 1.0:
            raise ValueError(f"diversity_uncertainty_weight must be in [0, 1], got {uncertainty_weight}.")
        if int(max_clusters) < 1:
            raise ValueError(f"diversity_max_clusters must be >= 1, got {max_clusters}.")
        super().__init__("Get a representative, diverse and uncertain unlabeled image (encoder embedding clusters)")
        self.embeddings_path = Path(embeddings_path)
        self.max_clusters = int(max_clusters)
        self.uncertainty_weight = float(uncertainty_weight)
        self.reset = int(reset)

    def __call__(self, request: dict[str, Any], datastore: Datastore) -> dict[str, Any] | None:
        refresh_datastore(datastore)
        unlabeled = set(datastore.get_unlabeled_images(request.get("label_tag"), request.get("labels")))
        if not unlabeled:
            return None
        strategy, now = request.get("strategy", "diverse_uncertainty"), int(time.time())
        infos = {i: datastore.get_image_info(i) for i in datastore.list_images()}
        served = {i for i in unlabeled if recently_served(infos[i], strategy, now, self.reset)}
        embeddings = EmbeddingStore(self.embeddings_path).load().latest()
        ids = sorted(i for i in infos if i in embeddings)
        candidates = torch.tensor([i in unlabeled and i not in served for i in ids], dtype=torch.bool)
        if not candidates.any():
            # nothing embedded yet (or everything served): the uncertainty ranking, least recently served first
            pool = sorted(unlabeled - served) or sorted(unlabeled)
            best = rank_images({i: _score(infos[i]) for i in pool})[0]
            logger.info(f"diverse_uncertainty: no embedded candidate, by score: {best}")
            return {"id": best, SCORE_KEY: infos[best].get(SCORE_KEY)}
        covered = torch.tensor([i not in unlabeled or i in served for i in ids], dtype=torch.bool)
        scores = [_score(infos[i]) for i in ids]
        uncertainty = torch.tensor([math.nan if s is None else s for s in scores], dtype=torch.float64)
        pick = select_next(
            torch.stack([embeddings[i] for i in ids]),
            candidates,
            covered,
            uncertainty if any(s is not None for s in scores) else None,
            max_clusters=self.max_clusters,
            uncertainty_weight=self.uncertainty_weight,
        )
        best = ids[pick]
        logger.info(
            f"diverse_uncertainty: selected {best} among {int(candidates.sum())} embedded candidates "
            f"({int(covered.sum())} covered, {len(unlabeled)} unlabeled)"
        )
        return {"id": best, SCORE_KEY: infos[best].get(SCORE_KEY)}


class ForegroundRandom(Strategy):
    """Next sample = a random unlabeled image among those the model finds a polyp in ("foreground-aware random").

    The fair baseline of active learning for segmentation (no method reliably beat it in nnActive): random, but
    not wasting annotations on frames with nothing to outline. The candidates are the unlabeled images whose
    stored score record says ``polyp_present`` (the bundle's frame-level decision, written by the scoring method);
    when there is none, every unlabeled image. Among them the draw is weighted by the time since the image was
    last served, as MONAI Label's ``random`` does, so annotators asking one after another rarely get the same one.

    Args:
        seed: seed of the draws (``None``: not reproducible, like MONAI Label's ``random``).
    """

    def __init__(self, seed: int | None = None) -> None:
        super().__init__("Get a random unlabeled image the model finds a polyp in")
        self._random = random.Random(seed)

    def __call__(self, request: dict[str, Any], datastore: Datastore) -> dict[str, Any] | None:
        refresh_datastore(datastore)
        images = sorted(datastore.get_unlabeled_images(request.get("label_tag"), request.get("labels")))
        if not images:
            return None
        infos = {i: datastore.get_image_info(i) for i in images}
        present = {i: (infos[i].get(SCORE_KEY) or {}).get("polyp_present") for i in images}
        pool = foreground_candidates(present, images)
        strategy, now = request.get("strategy", "foreground_random"), int(time.time())
        weights = [max(now - (served_at(infos[i], strategy) or 0), 1) for i in pool]
        best = self._random.choices(pool, weights=weights)[0]
        logger.info(f"foreground_random: selected {best} among {len(pool)} of {len(images)} unlabeled images")
        return {"id": best, SCORE_KEY: infos[best].get(SCORE_KEY)}
