# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""Score a model over a list of images: the per-image uncertainty scores of active learning, and optionally each
image's Dice and the frame-level decision.

:func:`score_images` is the one implementation behind the MONAI Label scoring task
(:class:`condseg_monai.apps.monailabel.lib.scoring.UncertaintyScoring`) and the active-learning benchmark
(``bench/active_learning.py``), so the scores that rank images for annotation are the scores that were measured.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from condseg_monai.inferers.condseg import DEFAULT_TTA_FLIPS
from condseg_monai.metrics.detection import OperatingPoint, detection_score, predicted_area
from condseg_monai.metrics.segmentation import binary_segmentation_metrics
from condseg_monai.metrics.uncertainty_scores import uncertainty_scores
from condseg_monai.networks.nets.condseg import condseg_mask

__all__ = ["EMBEDDING_DIM", "encoder_embeddings", "score_images"]

# the length of :func:`encoder_embeddings`' vectors (a fixed random projection of the pooled encoder features)
EMBEDDING_DIM = 128


def _device_of(network: nn.Module) -> torch.device:
    param = next(network.parameters(), None)
    return param.device if param is not None else torch.device("cpu")


def score_images(
    network: nn.Module,
    images: Sequence[torch.Tensor] | torch.Tensor,
    labels: Sequence[torch.Tensor] | torch.Tensor | None = None,
    operating_point: OperatingPoint | None = None,
    batch_size: int = 8,
    flips: Sequence[Sequence[int]] = DEFAULT_TTA_FLIPS,
    radius: int = 2,
    threshold: float = 0.5,
    device: str | torch.device | None = None,
) -> dict[str, list[float]]:
    """Per-image scores of ``network`` on ``images``, in batches of ``batch_size``.

    Every image gets the scores of :func:`~condseg_monai.metrics.uncertainty_scores.uncertainty_scores` (one
    forward pass per flip; ``sid_uncertainty`` only for a network returning ConDSeg's stacked output). A network
    with a ``return_aux`` attribute (ConDSeg) is called with ``return_aux=True`` meanwhile, so that the SID map
    comes with the mask, and its setting is restored afterwards. With ``labels`` or ``operating_point`` one plain
    forward pass more gives the mask logits (:func:`~condseg_monai.networks.condseg_mask`) for:

    - ``dice``: Dice of the prediction (threshold 0.5 on the probability) against the label
      (:func:`~condseg_monai.metrics.binary_segmentation_metrics`, the paper's per-image Dice);
    - ``detection_score`` / ``predicted_area``: the frame-level decision of the bundle's inference at
      ``operating_point`` (:func:`~condseg_monai.metrics.detection_score` at its ``min_area``,
      :func:`~condseg_monai.metrics.predicted_area` at its ``threshold``); a polyp is present when
      ``detection_score > operating_point.threshold``.

    Labels are never needed for the uncertainty scores (unlabeled images can be scored).

    Args:
        network: the model, returning logits ``(B, 1, H, W)`` or ConDSeg's stacked ``(B, 4, 1, H, W)``; it is put
            in eval mode for the call (and back in training mode if it was).
        images: ``N`` preprocessed images ``(C_in, H, W)`` of one size, or a tensor ``(N, C_in, H, W)``.
        labels: optional ``N`` ground-truth masks ``(1, H, W)`` (soft values thresholded at 0.5), or ``(N, 1, H, W)``.
        operating_point: optional threshold and minimum area of the frame-level decision.
        batch_size: images per forward pass.
        flips: the TTA flips of the uncertainty scores (at least two).
        radius: band half-width of ``boundary_entropy``.
        threshold: mask threshold of ``boundary_entropy``.
        device: where to run (default: the device of ``network``'s parameters); results are on the CPU.

    Returns:
        ``{name: N floats}`` in image order: the names of :data:`~condseg_monai.metrics.SCORE_NAMES` that apply,
        then ``dice`` (with ``labels``), then ``detection_score`` and ``predicted_area`` (with ``operating_point``).

    Raises:
        ValueError: ``batch_size < 1``, or ``labels`` of another length than ``images``.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
    if labels is not None and len(labels) != len(images):
        raise ValueError(f"got {len(images)} images but {len(labels)} labels.")
    device = torch.device(device) if device is not None else _device_of(network)
    was_training = network.training
    prior_aux = getattr(network, "return_aux", None)
    network.eval()
    if prior_aux is not None:
        network.return_aux = True  # the stacked output: the SID score needs the uncertainty map
    out: dict[str, list[float]] = {}
    try:
        for start in range(0, len(images), batch_size):
            x = torch.stack(list(images[start : start + batch_size])).to(device)
            for name, values in uncertainty_scores(network, x, flips=flips, radius=radius, threshold=threshold).items():
                out.setdefault(name, []).extend(values.cpu().tolist())
            if labels is None and operating_point is None:
                continue
            with torch.no_grad():
                logits = condseg_mask(network(x)).float()
            if labels is not None:
                y = torch.stack(list(labels[start : start + batch_size])).to(device)
                dice = binary_segmentation_metrics(logits, y, logits=True)["dice"]
                out.setdefault("dice", []).extend(dice.cpu().tolist())
            if operating_point is not None:
                prob = torch.sigmoid(logits)
                scores = detection_score(prob, operating_point.min_area)
                areas = predicted_area(prob, operating_point.threshold)
                out.setdefault("detection_score", []).extend(scores.cpu().tolist())
                out.setdefault("predicted_area", []).extend(areas.cpu().tolist())
    finally:
        if prior_aux is not None:
            network.return_aux = prior_aux
        network.train(was_training)
    return out


def _projection(in_features: int, out_features: int) -> torch.Tensor:
    """The fixed ``(in_features, out_features)`` Gaussian projection of :func:`encoder_embeddings`.

    Drawn from its own seeded generator, so every process (the MONAI Label scoring subprocess, the server, the
    benchmark) projects the same way and stored embeddings stay comparable.
    """
    generator = torch.Generator().manual_seed(in_features * 7919 + out_features)
    return torch.randn(in_features, out_features, generator=generator, dtype=torch.float64) / out_features**0.5


def encoder_embeddings(
    network: nn.Module,
    images: Sequence[torch.Tensor] | torch.Tensor,
    batch_size: int = 8,
    dim: int = EMBEDDING_DIM,
    device: str | torch.device | None = None,
) -> torch.Tensor:
    """One vector per image from the network's own encoder: what active learning clusters images by.

    The deepest feature map of ``network.encoder`` (ConDSeg's ResNet-50 stage 4, ``(B, 2048, H/32, W/32)``) is
    averaged over space, L2-normalised and projected to ``dim`` by a fixed seeded Gaussian matrix (a
    Johnson-Lindenstrauss projection: distances are kept up to a small factor, and thousands of images fit in a
    few MB). Nothing is downloaded: the embedding follows the model being trained.

    Args:
        network: a model with an ``encoder`` returning a sequence of feature maps (ConDSeg, MONAI's FlexibleUNet)
            or one ``(B, C, h, w)`` map; put in eval mode for the call (and back in training mode if it was).
        images: ``N`` preprocessed images ``(C_in, H, W)`` of one size, or a tensor ``(N, C_in, H, W)``.
        batch_size: images per forward pass.
        dim: the embedding length (the projection is the identity when it equals the pooled feature length).
        device: where to run (default: the device of ``network``'s parameters).

    Returns:
        ``(N, dim)`` float32 on the CPU.

    Raises:
        ValueError: the network has no ``encoder``, or ``batch_size < 1``.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
    encoder = getattr(network, "encoder", None)
    if not isinstance(encoder, nn.Module):
        raise ValueError(f"{type(network).__name__} has no `encoder` module to embed images with.")
    device = torch.device(device) if device is not None else _device_of(network)
    was_training = network.training
    network.eval()
    pooled = []
    try:
        with torch.no_grad():
            for start in range(0, len(images), batch_size):
                # a plain tensor: a MONAI MetaTensor would carry its metadata into every feature map and the result
                x = torch.stack(list(images[start : start + batch_size])).as_subclass(torch.Tensor).to(device)
                features = encoder(x)
                deepest = features[-1] if isinstance(features, (list, tuple)) else features
                pooled.append(deepest.float().mean(dim=(-2, -1)).cpu().double())
    finally:
        network.train(was_training)
    if not pooled:
        return torch.zeros(0, dim)
    z = torch.nn.functional.normalize(torch.cat(pooled), dim=1)
    if z.shape[1] != dim:
        z = z @ _projection(z.shape[1], dim)
    return z.float()
