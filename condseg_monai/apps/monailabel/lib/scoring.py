# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""MONAI Label scoring method: a per-image uncertainty score for every unlabeled datastore image, and an encoder
embedding of every datastore image for the ``diverse_uncertainty`` strategy."""

from __future__ import annotations

import logging
import os
import pickle
import time
from pathlib import Path
from typing import Any

import torch
from monai.bundle import ConfigParser
from monailabel.interfaces.datastore import Datastore
from monailabel.interfaces.tasks.scoring import ScoringMethod

from condseg_monai.files import atomic_torch_save
from condseg_monai.inference.operating_point import resolve_operating_point
from condseg_monai.inference.utils import load_model_weights
from condseg_monai.inferers.condseg import DEFAULT_TTA_FLIPS
from condseg_monai.metrics.scoring import encoder_embeddings, score_images
from condseg_monai.metrics.uncertainty_scores import SCORE_NAMES

__all__ = [
    "DEFAULT_SCORE",
    "EMBEDDINGS_FILE",
    "SCORE_KEY",
    "EmbeddingStore",
    "UncertaintyScoring",
    "file_signature",
    "refresh_datastore",
]

logger = logging.getLogger(__name__)

# image info key under which the score record is stored (``datastore.update_image_info(id, {SCORE_KEY: {...}})``)
SCORE_KEY = "condseg_uncertainty"
# the score the strategy ranks by unless --conf uncertainty_score says otherwise: the best failure detector of
# docs/benchmarks.md ("Active learning": AUROC for Dice < 0.5 and rank correlation with 1 - Dice)
DEFAULT_SCORE = "boundary_entropy"
# the embeddings of the datastore images, beside the scoring bundle's weights (they belong to those weights)
EMBEDDINGS_FILE = "datastore_embeddings.pt"
# save the embedding store after this many new embeddings (an interrupted scoring run keeps its work)
_SAVE_EVERY = 64


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


def file_signature(path: str | os.PathLike) -> str:
    """``"<size>:<mtime_ns>"`` of an image file: a changed file gets a new embedding."""
    st = os.stat(path)
    return f"{st.st_size}:{st.st_mtime_ns}"


class EmbeddingStore:
    """The encoder embeddings of the datastore images, one file (``torch.save`` of plain lists and one tensor).

    Each record is ``(image id, model_ts, file signature, vector)``: an image is embedded again only when the
    weights (``model_ts``) or the image file (:func:`file_signature`) changed, so a datastore of thousands of
    images costs one encoder pass per new or changed image between trainings. Written atomically (a reader never
    sees half a file), read with ``weights_only=True``.

    Args:
        path: the store file (``<bundle>/models/`` :data:`EMBEDDINGS_FILE` in the app).
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.records: dict[str, tuple[int, str, torch.Tensor]] = {}

    def load(self) -> EmbeddingStore:
        """Read the file (an absent or unreadable file is an empty store: everything will be embedded again)."""
        self.records = {}
        if not self.path.is_file():
            return self
        try:
            data = torch.load(self.path, map_location="cpu", weights_only=True)
            for i, ts, sig, vec in zip(data["ids"], data["model_ts"], data["signatures"], data["vectors"]):
                self.records[str(i)] = (int(ts), str(sig), vec)
        except (OSError, RuntimeError, KeyError, TypeError, ValueError, pickle.UnpicklingError) as e:
            logger.warning(f"{SCORE_KEY}: ignoring unreadable embedding store {self.path}: {e}")
            self.records = {}
        return self

    def save(self) -> None:
        ids = sorted(self.records)
        vectors = torch.stack([self.records[i][2] for i in ids]) if ids else torch.zeros(0, 0)
        data = {
            "ids": ids,
            "model_ts": [self.records[i][0] for i in ids],
            "signatures": [self.records[i][1] for i in ids],
            "vectors": vectors,
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_torch_save(data, self.path)

    def is_current(self, image_id: str, model_ts: int, signature: str) -> bool:
        record = self.records.get(image_id)
        return record is not None and record[0] == model_ts and record[1] == signature

    def put(self, image_id: str, model_ts: int, signature: str, vector: torch.Tensor) -> None:
        self.records[image_id] = (int(model_ts), signature, vector.detach().float().cpu().as_subclass(torch.Tensor))

    def latest(self) -> dict[str, torch.Tensor]:
        """``{image id: vector}`` of the most recent weights only: embeddings of different weights are not
        comparable, so during a re-embedding the not yet updated images are left out."""
        if not self.records:
            return {}
        newest = max(ts for ts, _, _ in self.records.values())
        return {i: vec for i, (ts, _, vec) in self.records.items() if ts == newest}


class UncertaintyScoring(ScoringMethod):
    """Score every unlabeled image with the bundle's network and store the score in the datastore.

    For each image of ``datastore.get_unlabeled_images()`` it runs the bundle's ``preprocessing`` and
    ``network_def`` (with ``return_aux: true``, so a ConDSeg network returns its stacked output), one pass
    per flip, and stores :func:`~condseg_monai.metrics.score_images` (the uncertainty scores of
    :func:`~condseg_monai.metrics.uncertainty_scores.uncertainty_scores` and the frame decision) as::

        image info[SCORE_KEY] = {"score": <the selected score>, "score_name": ..., "scores": {name: value},
                                 "model_ts": <mtime_ns of models/model.pt>, "ts": <unix time>}

    An image whose record has the current ``model_ts`` is skipped (request ``"force": true`` rescoring it), so the
    rescoring that MONAI Label starts after every training and every ``/activelearning`` request costs little
    until the weights change.

    Every datastore image, labeled or not, also gets an encoder embedding
    (:func:`~condseg_monai.metrics.encoder_embeddings`) in the :class:`EmbeddingStore` ``<bundle>/models/``
    :data:`EMBEDDINGS_FILE`, again only when new, changed or of older weights: the ``diverse_uncertainty``
    strategy clusters them.

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

    @property
    def embeddings_path(self) -> Path:
        return self.bundle_path / "models" / EMBEDDINGS_FILE

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
        parser["network_def"]["return_aux"] = True  # ConDSeg: the stacked output, so the SID map comes with the mask
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

    def embed_image(self, image_path: str, model_ts: int, device: str) -> torch.Tensor:
        """The ``(EMBEDDING_DIM,)`` encoder embedding of one image file (the bundle's preprocessing)."""
        network, preprocessing = self._model(model_ts, device)
        image = torch.as_tensor(preprocessing({"image": image_path})["image"])
        return encoder_embeddings(network, [image], device=device)[0]

    def update_embeddings(self, datastore: Datastore, model_ts: int, device: str, max_samples: int) -> dict[str, Any]:
        """Embed every datastore image whose embedding is missing, of older weights or of a changed file.

        Raises:
            ValueError: the scoring network has no ``encoder`` (nothing to embed with).
        """
        network, _ = self._model(model_ts, device)
        if not isinstance(getattr(network, "encoder", None), torch.nn.Module):
            raise ValueError(f"{type(network).__name__} has no `encoder` module to embed images with.")
        store = EmbeddingStore(self.embeddings_path).load()
        images = sorted(datastore.list_images())
        todo = []
        for image_id in images:
            try:
                sig = file_signature(datastore.get_image_uri(image_id))
            except OSError:
                continue  # a vanished file: the datastore will drop it
            if not store.is_current(image_id, model_ts, sig):
                todo.append((image_id, sig))
        todo = todo[:max_samples] if max_samples > 0 else todo
        stale = set(store.records) - set(images)
        for image_id in stale:  # removed from the datastore
            del store.records[image_id]
        failed: dict[str, str] = {}
        done = 0
        for image_id, sig in todo:
            try:
                vector = self.embed_image(datastore.get_image_uri(image_id), model_ts, device)
            except (OSError, RuntimeError, ValueError) as e:  # one unreadable image must not stop the others
                logger.warning(f"{SCORE_KEY}: could not embed {image_id}: {e}")
                failed[image_id] = f"{type(e).__name__}: {e}"
                continue
            store.put(image_id, model_ts, sig, vector)
            done += 1
            if done % _SAVE_EVERY == 0:
                store.save()
        if done or stale or not self.embeddings_path.is_file():
            store.save()
        return {"embedded": done, "embeddings": len(store.records), "embedding_failed": failed}

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
        try:
            embedded = self.update_embeddings(datastore, model_ts, device, max_samples)
        except ValueError as e:  # a network without an encoder: the diverse strategy falls back to the scores
            logger.warning(f"{SCORE_KEY}: no embeddings: {e}")
            embedded = {"embedded": 0, "embeddings": 0, "embedding_failed": {}, "embedding_error": str(e)}
        summary = {
            "total": len(unlabeled),
            "executed": len(scores),
            "skipped": len(unlabeled) - len(todo),
            "failed": failed,
            "score_name": self.score,
            "scores": scores,
            "model_ts": model_ts,
            **embedded,
            "latency": round(time.time() - t0, 3),
        }
        logger.info(f"{SCORE_KEY}: {summary}")
        return summary
