# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""MONAI Label scoring method: a per-image uncertainty score for every unlabeled datastore image."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

import torch
from monai.bundle import ConfigParser
from monailabel.interfaces.datastore import Datastore
from monailabel.interfaces.tasks.scoring import ScoringMethod

from condseg_monai.inference.operating_point import resolve_operating_point
from condseg_monai.inference.utils import load_model_weights
from condseg_monai.inferers.condseg import DEFAULT_TTA_FLIPS
from condseg_monai.metrics.scoring import score_images
from condseg_monai.metrics.uncertainty_scores import SCORE_NAMES

__all__ = ["DEFAULT_SCORE", "SCORE_KEY", "UncertaintyScoring", "refresh_datastore"]

logger = logging.getLogger(__name__)

# image info key under which the score record is stored (``datastore.update_image_info(id, {SCORE_KEY: {...}})``)
SCORE_KEY = "condseg_uncertainty"
# the score the strategy ranks by unless --conf uncertainty_score says otherwise: the best failure detector of
# docs/benchmarks.md ("Active learning": AUROC for Dice < 0.5 and rank correlation with 1 - Dice)
DEFAULT_SCORE = "boundary_entropy"


def refresh_datastore(datastore: Datastore) -> None:
    """Re-read the datastore file when the datastore can (``LocalDatastore.refresh``).

    MONAI Label runs a background scoring task in a **subprocess** with its own datastore object, which writes the
    scores to the datastore file; the server's object sees them only after a reload (automatic only with
    ``MONAI_LABEL_DATASTORE_AUTO_RELOAD``, which a deployment may turn off). Refreshing before reading keeps the
    strategy right either way, and refreshing before writing keeps the server from overwriting newer scores.
    """
    refresh = getattr(datastore, "refresh", None)
    if callable(refresh):
        refresh()


class UncertaintyScoring(ScoringMethod):
    """Score every unlabeled image with the bundle's network and store the score in the datastore.

    For each image of ``datastore.get_unlabeled_images()`` it runs the bundle's ``preprocessing`` and
    ``network_def`` (with ``save_uncertainty: true``, so a ConDSeg network returns its stacked output), one pass
    per flip, and stores :func:`~condseg_monai.metrics.score_images` (the uncertainty scores of
    :func:`~condseg_monai.metrics.uncertainty_scores.uncertainty_scores` and the frame decision) as::

        image info[SCORE_KEY] = {"score": <the selected score>, "score_name": ..., "scores": {name: value},
                                 "model_ts": <mtime_ns of models/model.pt>, "ts": <unix time>}

    An image whose record has the current ``model_ts`` is skipped (request ``"force": true`` rescoring it), so the
    rescoring that MONAI Label starts after every training and every ``/activelearning`` request costs little
    until the weights change.

    Args:
        bundle_path: the bundle folder (``configs/inference.json``, ``models/model.pt``).
        score: which of :data:`~condseg_monai.metrics.uncertainty_scores.SCORE_NAMES` becomes ``"score"``.
        max_samples: score at most this many images per call (0: all).
        device: default device when the request names none.

    Raises:
        ValueError: unknown ``score``.
    """

    def __init__(self, bundle_path: str | Path, score: str = DEFAULT_SCORE, max_samples: int = 0, device=None):
        if score not in SCORE_NAMES:
            raise ValueError(f"score must be one of {SCORE_NAMES}, got {score!r}.")
        super().__init__(f"Per-image uncertainty ({score}) of {Path(bundle_path).name} for the uncertainty strategy")
        self.bundle_path = Path(bundle_path)
        self.score = score
        self.max_samples = int(max_samples)
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self._cache: tuple[tuple[int, str], torch.nn.Module, Any] | None = None

    @property
    def weights(self) -> Path:
        return self.bundle_path / "models" / "model.pt"

    def info(self) -> dict[str, Any]:
        return {**super().info(), "key": SCORE_KEY, "score": self.score, "scores": list(SCORE_NAMES)}

    def _model(self, model_ts: int, device: str) -> tuple[torch.nn.Module, Any]:
        """The network (eval mode, current weights) and the preprocessing, rebuilt when the weights change."""
        if self._cache is not None and self._cache[0] == (model_ts, device):
            return self._cache[1], self._cache[2]
        parser = ConfigParser()
        parser.read_config(str(self.bundle_path / "configs" / "inference.json"))
        parser["bundle_root"] = str(self.bundle_path)
        parser["device"] = device
        parser["save_uncertainty"] = True  # ConDSeg: return_aux, so the SID map comes with the mask
        network = parser.get_parsed_content("network_def", instantiate=True)
        load_model_weights(network, self.weights, map_location=device)
        network = network.to(device).eval()
        preprocessing = parser.get_parsed_content("preprocessing", instantiate=True)
        self._cache = ((model_ts, device), network, preprocessing)
        return network, preprocessing

    def score_image(self, image_path: str, model_ts: int, device: str) -> dict[str, Any]:
        """The score record of one image file (what is stored under :data:`SCORE_KEY`).

        The scores come from :func:`~condseg_monai.metrics.score_images`, the scoring the active-learning
        benchmark measures; the frame-level decision is the bundle inference's (one plain pass, the model's
        operating point).
        """
        network, preprocessing = self._model(model_ts, device)
        image = preprocessing({"image": image_path})["image"]
        x = torch.as_tensor(image)  # as_tensor drops MetaTensor metadata, not needed here
        op = resolve_operating_point(self.weights)
        scores = score_images(network, [x], operating_point=op, flips=DEFAULT_TTA_FLIPS, device=device)
        if self.score not in scores:
            names = [n for n in SCORE_NAMES if n in scores]
            raise ValueError(f"score {self.score!r} needs ConDSeg's stacked output; this network gives {names}")
        values = {k: float(scores[k][0]) for k in SCORE_NAMES if k in scores}
        frame_score = float(scores["detection_score"][0])
        return {
            "score": values[self.score],
            "score_name": self.score,
            "scores": values,
            "polyp_present": frame_score > op.threshold,
            "detection_score": frame_score,
            "predicted_area": float(scores["predicted_area"][0]),
            "model_ts": model_ts,
            "ts": int(time.time()),
        }

    def __call__(self, request: dict[str, Any], datastore: Datastore) -> dict[str, Any]:
        t0 = time.time()
        device = str(request.get("device") or self.device)
        if device.startswith("cuda") and not torch.cuda.is_available():
            device = "cpu"  # MONAI Label clients default to "cuda"; score anyway on a CPU-only server
        force = bool(request.get("force", False))
        max_samples = int(request.get("max_samples", self.max_samples))
        model_ts = os.stat(self.weights).st_mtime_ns  # follows a symlink to the shared weights

        refresh_datastore(datastore)
        unlabeled = sorted(datastore.get_unlabeled_images())
        todo = [
            i
            for i in unlabeled
            if force or (datastore.get_image_info(i).get(SCORE_KEY) or {}).get("model_ts") != model_ts
        ]
        todo = todo[:max_samples] if max_samples > 0 else todo
        logger.info(f"{SCORE_KEY}: {len(unlabeled)} unlabeled images, scoring {len(todo)} on {device}")

        scores: dict[str, float] = {}
        failed: dict[str, str] = {}
        for image_id in todo:
            try:
                record = self.score_image(datastore.get_image_uri(image_id), model_ts, device)
            except (OSError, RuntimeError, ValueError) as e:  # one unreadable image must not stop the others
                logger.warning(f"{SCORE_KEY}: could not score {image_id}: {e}")
                failed[image_id] = f"{type(e).__name__}: {e}"
                continue
            refresh_datastore(datastore)  # another process may have written the file meanwhile
            datastore.update_image_info(image_id, {SCORE_KEY: record})
            scores[image_id] = record["score"]
        summary = {
            "total": len(unlabeled),
            "executed": len(scores),
            "skipped": len(unlabeled) - len(todo),
            "failed": failed,
            "score_name": self.score,
            "scores": scores,
            "model_ts": model_ts,
            "latency": round(time.time() - t0, 3),
        }
        logger.info(f"{SCORE_KEY}: {summary}")
        return summary
