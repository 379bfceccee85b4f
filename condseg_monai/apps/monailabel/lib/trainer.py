# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""Fine-tuning from MONAI Label that also learns from the datastore's unlabeled images.

:class:`SemiSupervisedBundleTrainTask` is MONAI Label's own ``BundleTrainTask`` (same request, same labeled /
validation split, same overrides) plus three things:

- the datastore's images without a final label become the ``unlabeled`` list of a datalist written for the run, and
  the bundle's semi-supervised mode is switched on (``semi_supervised: true``, docs/training.md: Stage 2's mean
  teacher on the unlabeled images), when there is at least one such image and ``--conf semi_supervised`` is not
  ``false``;
- the labeled training and validation lists MONAI Label would inject go into that datalist too, and the bundle reads
  all of them from it after its datalist check (unreadable images, masks of the wrong size or not binary, an
  unlabeled image that is also labeled), so a bad file is named before training starts, with or without unlabeled
  images;
- the request's ``max_epochs`` is also the bundle's ``max_epochs`` setting (MONAI Label only sets the trainer's),
  so the ramp-up of the unlabeled loss (20 % of ``max_epochs``) fits the fine-tune, and the teacher gets ignite's
  EMA warm-up (``--conf ema_warmup_iters``, default 50; 0: none): with ``ema_decay`` 0.99 a fine-tune of a few
  dozen iterations would otherwise save a teacher that is still mostly the weights it started from.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from monailabel.interfaces.datastore import Datastore
from monailabel.tasks.train.bundle import BundleTrainTask
from monailabel.utils.others.generic import strtobool

from condseg_monai.data import Datalist, write_datalist

__all__ = ["DATALIST_NAME", "SemiSupervisedBundleTrainTask", "datastore_unlabeled"]

logger = logging.getLogger(__name__)

# written under <bundle>/runs/finetune/ (train.json's default output_dir) for every fine-tune
DATALIST_NAME = "monailabel_datalist.json"


def datastore_unlabeled(datastore: Datastore) -> list[dict[str, str]]:
    """``[{"image": path}]`` of every datastore image without a final label, in id order."""
    return [{"image": datastore.get_image_uri(i)} for i in sorted(datastore.get_unlabeled_images())]


class SemiSupervisedBundleTrainTask(BundleTrainTask):
    """``BundleTrainTask`` for condseg-monai bundles that fine-tunes semi-supervised on the unlabeled images.

    Args:
        path: the bundle folder.
        conf: the app's ``--conf`` options; read here: ``semi_supervised`` (default ``true``),
            ``ema_warmup_iters`` (default 50), ``ema_warmup_momentum`` (default 0.5).
        kwargs: passed to ``BundleTrainTask``.

    Raises:
        ValueError: a ``--conf`` value that is not a number where one is expected, or out of range.
    """

    def __init__(self, path: str, conf: dict[str, str], **kwargs: Any) -> None:
        super().__init__(path, conf, **kwargs)
        self.semi_supervised = strtobool(conf.get("semi_supervised", "true"))
        try:
            self.ema_warmup_iters = int(conf.get("ema_warmup_iters", "50"))
            self.ema_warmup_momentum = float(conf.get("ema_warmup_momentum", "0.5"))
        except ValueError as e:
            raise ValueError(f"--conf ema_warmup_iters / ema_warmup_momentum: {e}") from e
        if self.ema_warmup_iters < 0 or not 0.0 < self.ema_warmup_momentum <= 1.0:
            raise ValueError(
                f"--conf ema_warmup_iters must be >= 0 and ema_warmup_momentum in (0, 1], got "
                f"{self.ema_warmup_iters} and {self.ema_warmup_momentum}."
            )
        self._unlabeled: list[dict[str, str]] = []

    def __call__(self, request: dict[str, Any], datastore: Datastore) -> dict:
        # BundleTrainTask builds the overrides in __call__ and hands them to _update_overrides, which has no
        # datastore: keep this run's unlabeled images for it
        self._unlabeled = datastore_unlabeled(datastore) if self.semi_supervised else []
        try:
            return super().__call__(request, datastore)
        finally:
            self._unlabeled = []

    def _update_overrides(self, overrides: dict[str, Any]) -> dict[str, Any]:
        # MONAI Label's labeled lists move into the datalist, the one source the bundle reads the run's images
        # from (train.json's checked_datalist), instead of also being injected as a second copy
        train = list(overrides.pop(self.const.key_train_dataset_data(), []))
        validation = list(overrides.pop(self.const.key_validate_dataset_data(), None) or [])
        datalist = Datalist(training=train, validation=validation, unlabeled=self._unlabeled)
        path = write_datalist(datalist, os.path.join(self.bundle_path, "runs", "finetune", DATALIST_NAME))
        overrides["datalist"] = str(path)
        overrides["max_epochs"] = overrides[self.const.key_train_trainer_max_epochs()]
        if self._unlabeled:
            overrides["semi_supervised"] = True
            if self.ema_warmup_iters:
                overrides["train#ema#momentum_warmup"] = self.ema_warmup_momentum
                overrides["train#ema#warmup_iters"] = self.ema_warmup_iters
            logger.info(f"Fine-tuning semi-supervised: {len(train)} labeled, {len(self._unlabeled)} unlabeled images")
        else:
            logger.info(f"Fine-tuning supervised on {len(train)} labeled images (no unlabeled image used)")
        return overrides
