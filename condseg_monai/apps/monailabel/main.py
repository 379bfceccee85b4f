# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""The condseg-monai MONAI Label app (``MyApp``), built like MONAI Label's sample apps.

It serves every bundle folder under ``<app>/model/`` named by ``--conf models`` (default: all of them) with MONAI
Label's own ``BundleInferTask`` and, for fine-tuning, its ``BundleTrainTask`` extended to the datastore's
unlabeled images (:class:`~condseg_monai.apps.monailabel.lib.SemiSupervisedBundleTrainTask`), and adds the
uncertainty scoring method (:class:`~condseg_monai.apps.monailabel.lib.UncertaintyScoring`, named
``condseg_uncertainty``; it also embeds every image with the network's encoder) and the strategies
``diverse_uncertainty`` (representative, diverse and uncertain picks), ``uncertainty`` and ``foreground_random``
next to MONAI Label's ``random`` and ``first``. Bundles are only read
from ``<app>/model/``: nothing is ever downloaded. ``python -m condseg_monai.apps.monailabel`` lays out such an app
folder.

``--conf`` options (besides MONAI Label's own ``preload``, ``skip_trainers`` ...):

- ``models``: comma-separated folder names under ``<app>/model/``;
- ``scoring_model``: the bundle whose network scores the images (default: the first served bundle with a trainer);
- ``uncertainty_score``: ``boundary_entropy`` (default: the best failure detector in docs/benchmarks.md),
  ``tta_disagreement``, ``tta_dice_disagreement`` or ``sid_uncertainty``, the score the ``uncertainty`` strategy
  ranks by (all four are stored);
- ``scoring_max_samples``: score at most this many images per scoring run (default 0: all);
- ``diversity_max_clusters`` (default 50) and ``diversity_uncertainty_weight`` (default 0.5, in [0, 1]; 0: pure
  TypiClust representativeness): the ``diverse_uncertainty`` strategy;
- ``semi_supervised``: fine-tune also on the unlabeled datastore images (default ``true``), with the teacher's EMA
  warm-up ``ema_warmup_iters`` (default 50, 0: none) from ``ema_warmup_momentum`` (default 0.5).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import monailabel
from monailabel.interfaces.app import MONAILabelApp
from monailabel.interfaces.tasks.infer_v2 import InferTask
from monailabel.interfaces.tasks.scoring import ScoringMethod
from monailabel.interfaces.tasks.strategy import Strategy
from monailabel.interfaces.tasks.train import TrainTask
from monailabel.tasks.activelearning.first import First
from monailabel.tasks.activelearning.random import Random
from monailabel.tasks.infer.bundle import BundleInferTask
from monailabel.utils.others.generic import strtobool

from condseg_monai.apps.monailabel.lib import (
    DEFAULT_SCORE,
    EMBEDDINGS_FILE,
    SCORE_KEY,
    DiverseUncertainty,
    ForegroundRandom,
    SemiSupervisedBundleTrainTask,
    Uncertainty,
    UncertaintyScoring,
)
from condseg_monai.apps.monailabel.selection import DEFAULT_MAX_CLUSTERS, DEFAULT_UNCERTAINTY_WEIGHT

__all__ = ["MyApp", "conf_number", "served_bundles"]

logger = logging.getLogger(__name__)


def served_bundles(app_dir: str | Path, models: str | None) -> dict[str, str]:
    """``{name: bundle folder}`` for the comma-separated ``models`` (default: every bundle under ``model/``).

    Raises:
        ValueError: a named folder is missing or has no ``configs/inference.json`` (never downloaded).
    """
    model_dir = Path(app_dir) / "model"
    if models:
        names = [m.strip() for m in models.split(",") if m.strip()]
    else:
        names = sorted(p.name for p in model_dir.iterdir() if (p / "configs" / "inference.json").is_file())
    bundles = {}
    for name in names:
        path = model_dir / name
        if not (path / "configs" / "inference.json").is_file():
            raise ValueError(f"--conf models: {path} is not a bundle folder (no configs/inference.json)")
        bundles[name] = str(path)
    if not bundles:
        raise ValueError(f"no bundle to serve: {model_dir} holds no folder with configs/inference.json")
    return bundles


def conf_number(conf: dict[str, str], key: str, default: float, kind: type) -> Any:
    """``--conf key`` parsed as ``kind`` (``int`` or ``float``), ``default`` when absent.

    Raises:
        ValueError: the value does not parse; the message names the key.
    """
    value = conf.get(key)
    if value is None:
        return kind(default)
    try:
        return kind(value)
    except ValueError:
        raise ValueError(f"--conf {key} must be a {kind.__name__}, got {value!r}") from None


class MyApp(MONAILabelApp):
    """MONAI Label app for condseg-monai bundles with uncertainty-driven active learning."""

    def __init__(self, app_dir: str, studies: str, conf: dict[str, str]) -> None:
        self.models = served_bundles(app_dir, conf.get("models"))
        self.score_name = conf.get("uncertainty_score", DEFAULT_SCORE)
        self.scoring_max_samples = conf_number(conf, "scoring_max_samples", 0, int)
        self.diversity_max_clusters = conf_number(conf, "diversity_max_clusters", DEFAULT_MAX_CLUSTERS, int)
        self.diversity_uncertainty_weight = conf_number(
            conf, "diversity_uncertainty_weight", DEFAULT_UNCERTAINTY_WEIGHT, float
        )
        trainable = [n for n, b in self.models.items() if os.path.isfile(os.path.join(b, "configs", "train.json"))]
        self.scoring_model = conf.get("scoring_model") or (trainable or list(self.models))[0]
        if self.scoring_model not in self.models:
            raise ValueError(f"--conf scoring_model {self.scoring_model!r} is not served ({list(self.models)})")
        super().__init__(
            app_dir=app_dir,
            studies=studies,
            conf=conf,
            name="condseg-monai",
            description="ConDSeg polyp / lesion segmentation with uncertainty-driven active learning",
            version=monailabel.__version__,
        )

    def init_infers(self) -> dict[str, InferTask]:
        infers: dict[str, InferTask] = {}
        for name, path in self.models.items():
            infers[name] = BundleInferTask(path, self.conf)
            logger.info(f"+++ Adding Inferer:: {name} => {path}")
        return infers

    def init_trainers(self) -> dict[str, TrainTask]:
        trainers: dict[str, TrainTask] = {}
        if strtobool(self.conf.get("skip_trainers", "false")):
            return trainers
        for name, path in self.models.items():
            task = SemiSupervisedBundleTrainTask(path, self.conf)
            if task.is_valid():  # the generated uncertainty entry has no train.json: it shares the weights
                trainers[name] = task
                logger.info(f"+++ Adding Trainer:: {name} => {path}")
        return trainers

    def init_strategies(self) -> dict[str, Strategy]:
        diverse = DiverseUncertainty(
            Path(self.models[self.scoring_model]) / "models" / EMBEDDINGS_FILE,
            max_clusters=self.diversity_max_clusters,
            uncertainty_weight=self.diversity_uncertainty_weight,
        )
        return {
            "diverse_uncertainty": diverse,
            "uncertainty": Uncertainty(),
            "foreground_random": ForegroundRandom(),
            "random": Random(),
            "first": First(),
        }

    def init_scoring_methods(self) -> dict[str, ScoringMethod]:
        # MONAILabelApp reruns every scoring method after each training (train -> async_scoring) and at start-up
        scoring = UncertaintyScoring(
            self.models[self.scoring_model], score=self.score_name, max_samples=self.scoring_max_samples
        )
        return {SCORE_KEY: scoring}
