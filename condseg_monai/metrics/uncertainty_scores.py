# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""Per-image uncertainty scores for active learning (which unlabeled image should an annotator label next), and the
per-pixel maps behind two of them (what the bundle's inference writes as ``<stem>_uncertainty``).

Every score maps a batch of **probabilities** to one number per image, ``(B,)``, higher = more uncertain:

- :func:`sid_uncertainty_score`: the mean of ConDSeg's SID uncertainty map ``sigmoid(M_uc)`` (needs the stacked
  ``(B, 4, C, H, W)`` output of ``return_aux=True``, indexed with :class:`~condseg_monai.networks.ConDSegOutput`);
- :func:`boundary_entropy_score`: the mean binary entropy of the mask probability in a band around the predicted
  boundary (any sigmoid segmenter);
- :func:`flip_disagreement_score`: how much the flip-TTA passes disagree (any model):
  the per-pixel standard deviation over the passes, averaged over the image;
- :func:`flip_dice_disagreement_score`: how much the flip-TTA passes' *masks* disagree: one minus the mean pairwise
  Dice between the thresholded passes. Agreement among several predictions was the best and most robust per-case
  failure score in a benchmark of failure detection for medical segmentation (Zenk et al., 2024): a wrong mask
  tends to move when the input is flipped, a right one does not.

The per-pixel maps, ``(B, C, H, W)`` in [0, 1], one name each in :data:`UNCERTAINTY_MAPS`:

- :func:`flip_disagreement_map` (``"flip_disagreement"``): twice the per-pixel standard deviation of the flip
  passes; half its image mean is :func:`flip_disagreement_score`. Where the model would draw a different mask if
  the picture were flipped: the picture to show for "where might the model be wrong" (its image mean found the
  failures with AUROC 0.65 in ``docs/benchmarks.md``, "Active learning");
- :func:`sid_uncertainty_map` (``"sid"``): ConDSeg's SID "uncertainty" head ``sigmoid(M_uc)``; its image mean is
  :func:`sid_uncertainty_score`. The head has no target (the official method trains it only through the weak
  complementarity loss): a learned region map, not a calibrated uncertainty and not a failure detector (AUROC 0.50
  in the same benchmark).

:func:`uncertainty_scores` runs a network once per flip (with :meth:`ConDSegInferer.flip_passes
<condseg_monai.inferers.ConDSegInferer.flip_passes>`) and returns all scores that apply to its output. The scores
rank images of one model against each other; they are not calibrated error probabilities (``docs/monai_label.md``,
"Active learning").
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from condseg_monai.inferers.condseg import DEFAULT_TTA_FLIPS, ConDSegInferer
from condseg_monai.networks.nets.condseg import ConDSegOutput, condseg_mask

__all__ = [
    "SCORE_NAMES",
    "UNCERTAINTY_MAPS",
    "binary_entropy",
    "boundary_band",
    "boundary_entropy_score",
    "check_uncertainty_map",
    "flip_dice_disagreement_score",
    "flip_disagreement_map",
    "flip_disagreement_score",
    "mask_probability",
    "sid_uncertainty_map",
    "sid_uncertainty_score",
    "uncertainty_scores",
]

# the keys of :func:`uncertainty_scores`, in a fixed order (the MONAI Label scoring task stores all of them)
SCORE_NAMES: tuple[str, ...] = ("tta_disagreement", "tta_dice_disagreement", "boundary_entropy", "sid_uncertainty")

# the per-pixel maps (the bundle setting ``uncertainty_map``): flip_disagreement_map, sid_uncertainty_map
UNCERTAINTY_MAPS: tuple[str, ...] = ("flip_disagreement", "sid")


def _is_stacked(prob: torch.Tensor) -> bool:
    return prob.ndim == 5 and prob.shape[1] == len(ConDSegOutput)


def mask_probability(prob: torch.Tensor) -> torch.Tensor:
    """The mask map of a network's (activated) output.

    Args:
        prob: ``(B, C, H, W)`` mask probabilities, or ConDSeg's stacked ``(B, 4, C, H, W)`` output.

    Returns:
        ``(B, C, H, W)``: ``prob`` itself, or its :attr:`ConDSegOutput.MASK` map
        (:func:`~condseg_monai.networks.condseg_mask`).

    Raises:
        ValueError: for any other shape.
    """
    return condseg_mask(prob)


def check_uncertainty_map(name: object) -> str:
    """Validate the name of a per-pixel uncertainty map (the bundle setting ``uncertainty_map``).

    Args:
        name: one of :data:`UNCERTAINTY_MAPS`.

    Returns:
        ``name``.

    Raises:
        ValueError: any other value, naming the setting ``uncertainty_map``.
    """
    if not isinstance(name, str) or name not in UNCERTAINTY_MAPS:
        raise ValueError(f"uncertainty_map must be one of {UNCERTAINTY_MAPS}, got {name!r}.")
    return name


def sid_uncertainty_map(prob: torch.Tensor) -> torch.Tensor:
    """ConDSeg's SID "uncertainty" map ``sigmoid(M_uc)``: the output of its auxiliary uncertainty head.

    A learned region map, not an uncertainty estimate: the head has no target, the official method trains it only
    through the weak complementarity loss (``docs/monai_label.md``, section 7), and its image mean did not find the
    failures (AUROC 0.50, ``docs/benchmarks.md``, "Active learning"). :func:`flip_disagreement_map` is the map to
    show for "where might the model be wrong".

    Args:
        prob: ConDSeg's stacked output after a sigmoid, ``(B, 4, C, H, W)`` (``return_aux=True``).

    Returns:
        ``(B, C, H, W)`` in [0, 1]: a view of the :attr:`ConDSegOutput.UNCERTAINTY` map.

    Raises:
        ValueError: when ``prob`` is not a stacked ConDSeg output (other networks have no SID branch).
    """
    if not _is_stacked(prob):
        raise ValueError(
            f"the SID map needs ConDSeg's stacked (B, {len(ConDSegOutput)}, C, H, W) output (return_aux=True), "
            f"got {tuple(prob.shape)}."
        )
    return prob[:, ConDSegOutput.UNCERTAINTY]


def sid_uncertainty_score(prob: torch.Tensor) -> torch.Tensor:
    """Mean SID uncertainty probability per image: the image mean of :func:`sid_uncertainty_map`.

    Args:
        prob: ConDSeg's stacked output after a sigmoid, ``(B, 4, C, H, W)`` (``return_aux=True``).

    Returns:
        ``(B,)`` in [0, 1]: the mean of the :attr:`ConDSegOutput.UNCERTAINTY` map over ``C, H, W``.

    Raises:
        ValueError: when ``prob`` is not a stacked ConDSeg output (other networks have no SID branch).
    """
    return sid_uncertainty_map(prob).flatten(1).mean(dim=1)


def binary_entropy(prob: torch.Tensor) -> torch.Tensor:
    """Binary entropy in bits, ``-(p log2 p + (1 - p) log2 (1 - p))``, element-wise.

    Exactly 0 at ``p`` in {0, 1} and 1 at ``p = 0.5`` (``torch.special.entr`` defines ``0 log 0 = 0``).
    """
    return (torch.special.entr(prob) + torch.special.entr(1 - prob)) / math.log(2.0)


def boundary_band(mask: torch.Tensor, radius: int = 2) -> torch.Tensor:
    """Pixels within ``radius`` (chessboard distance) of the boundary of a binary mask, inside or outside.

    The band is ``dilate(mask) & ~erode(mask)`` with a ``(2 radius + 1)`` square: a pixel is in it when its
    neighbourhood holds both foreground and background. The image border is not a boundary.

    Args:
        mask: ``(B, C, H, W)`` boolean (or 0/1) mask.
        radius: half-width of the band in pixels, >= 1.

    Returns:
        ``(B, C, H, W)`` boolean band; all False where the mask is empty or full.

    Raises:
        ValueError: ``radius < 1``.
    """
    if radius < 1:
        raise ValueError(f"radius must be >= 1, got {radius}.")
    m = mask.float()
    k = 2 * radius + 1
    # max_pool pads with -inf, so outside the image counts as neither foreground nor background
    dilated = F.max_pool2d(m, k, stride=1, padding=radius) > 0.5
    eroded = -F.max_pool2d(-m, k, stride=1, padding=radius) > 0.5
    return dilated & ~eroded


def boundary_entropy_score(prob: torch.Tensor, radius: int = 2, threshold: float = 0.5) -> torch.Tensor:
    """Mean binary entropy of the mask probability near the predicted boundary, per image.

    The predicted mask is ``prob >= threshold``; the band is :func:`boundary_band` of it. An image whose band is
    empty (nothing or everything predicted) gets the mean entropy over all its pixels instead, so an image where
    the model hesitates everywhere below the threshold still scores high.

    Args:
        prob: ``(B, C, H, W)`` mask probabilities, or ConDSeg's stacked output (its mask map is used).
        radius: band half-width in pixels.
        threshold: probability at which a pixel is predicted foreground.

    Returns:
        ``(B,)`` in [0, 1] (bits).
    """
    p = mask_probability(prob)
    entropy = binary_entropy(p).flatten(1)
    band = boundary_band(p >= threshold, radius).flatten(1).to(entropy.dtype)
    in_band = band.sum(dim=1)
    band_mean = (entropy * band).sum(dim=1) / in_band.clamp_min(1)
    return torch.where(in_band > 0, band_mean, entropy.mean(dim=1))


def _pass_masks(passes: torch.Tensor) -> torch.Tensor:
    """The mask maps ``(T, B, C, H, W)`` of ``T >= 2`` passes (plain or stacked ConDSeg passes)."""
    if passes.shape[0] < 2:
        raise ValueError(f"need at least two passes to measure disagreement, got {passes.shape[0]}.")
    return torch.stack([mask_probability(p) for p in passes])


def flip_disagreement_map(passes: torch.Tensor) -> torch.Tensor:
    """Per-pixel disagreement of test-time-augmentation passes: twice the standard deviation over the passes.

    With ``p_1 .. p_T`` the mask probabilities of one pixel in the ``T`` passes and ``m`` their mean, the map is
    ``2 * sqrt(mean_t (p_t - m) ** 2)`` (the population standard deviation, doubled so that the range is [0, 1]:
    values in [0, 1] have a standard deviation of at most 0.5). It is 0 where every pass predicts the same
    probability, 1 where half of the passes say 1 and half 0, and ``sqrt(3) / 2`` (0.87) where one of four confident
    passes contradicts the other three. High values mark pixels whose prediction changes when the picture is
    flipped, which a model that is sure of a pixel should not do. Half the image mean of this map is
    :func:`flip_disagreement_score` (the ``tta_disagreement`` score, which found failures with AUROC 0.65 in
    ``docs/benchmarks.md``, "Active learning"). It is not a calibrated error probability.

    Args:
        passes: ``(T, B, C, H, W)`` mask probabilities of ``T >= 2`` passes, each already mapped back to the input's
            orientation (:meth:`ConDSegInferer.flip_passes`), or ``(T, B, 4, C, H, W)`` stacked ConDSeg passes
            (their mask maps are used).

    Returns:
        ``(B, C, H, W)`` in [0, 1], in the dtype of ``passes``.

    Raises:
        ValueError: fewer than two passes.
    """
    return 2 * _pass_masks(passes).std(dim=0, unbiased=False)


def flip_disagreement_score(passes: torch.Tensor) -> torch.Tensor:
    """Disagreement of test-time-augmentation passes: the per-pixel standard deviation, averaged per image.

    Half the image mean of :func:`flip_disagreement_map` (exactly the mean standard deviation: the factor 2 is a
    power of two, so it cancels without rounding).

    Args:
        passes: ``(T, B, C, H, W)`` mask probabilities of ``T >= 2`` passes, each already mapped back to the input's
            orientation (:meth:`ConDSegInferer.flip_passes`), or ``(T, B, 4, C, H, W)`` stacked ConDSeg passes
            (their mask maps are used).

    Returns:
        ``(B,)`` in [0, 0.5]: 0 when every pass predicts the same probabilities (a flip-equivariant model).

    Raises:
        ValueError: fewer than two passes.
    """
    return flip_disagreement_map(passes).flatten(1).mean(dim=1) / 2


def flip_dice_disagreement_score(passes: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """One minus the mean pairwise Dice between the masks of test-time-augmentation passes.

    Each pass's mask is its probability ``> threshold``; for every pair of passes ``(i, j)``, ``i < j``, the Dice
    ``2 |A_i & A_j| / (|A_i| + |A_j|)`` (1 when both masks are empty: they agree that there is nothing); the score
    is ``1 - mean`` over the ``T (T - 1) / 2`` pairs (channels pooled).

    Args:
        passes: ``(T, B, C, H, W)`` mask probabilities of ``T >= 2`` passes, each mapped back to the input's
            orientation, or ``(T, B, 4, C, H, W)`` stacked ConDSeg passes (their mask maps are used).
        threshold: mask threshold (strictly greater, as the bundle's inference).

    Returns:
        ``(B,)`` in [0, 1]: 0 when every pass predicts the same mask, 1 when no two passes share a pixel.

    Raises:
        ValueError: fewer than two passes.
    """
    masks = _pass_masks(passes).gt(threshold).flatten(2).double()  # (T, B, N)
    sizes = masks.sum(dim=2)  # (T, B)
    dices = []
    for i in range(masks.shape[0]):
        for j in range(i + 1, masks.shape[0]):
            inter = (masks[i] * masks[j]).sum(dim=1)
            total = sizes[i] + sizes[j]
            dices.append(torch.where(total > 0, 2 * inter / total.clamp_min(1), torch.ones_like(total)))
    return (1 - torch.stack(dices).mean(dim=0)).to(passes.dtype)


def uncertainty_scores(
    network: Callable[..., torch.Tensor],
    inputs: torch.Tensor,
    flips: Sequence[Sequence[int]] = DEFAULT_TTA_FLIPS,
    radius: int = 2,
    threshold: float = 0.5,
) -> dict[str, torch.Tensor]:
    """All scores that apply to ``network``'s output on ``inputs``, from one forward pass per flip.

    ``boundary_entropy`` and ``sid_uncertainty`` are computed on the flip-averaged probabilities (what the
    bundle's TTA inference predicts); ``sid_uncertainty`` is present only when the network returns ConDSeg's
    stacked output (``return_aux=True``).

    Args:
        network: the model in eval mode, returning logits ``(B, C, H, W)`` or ``(B, 4, C, H, W)``.
        inputs: ``(B, C_in, H, W)`` preprocessed images.
        flips: the TTA flips (at least two, e.g. the full flip group :data:`DEFAULT_TTA_FLIPS`).
        radius: band half-width for :func:`boundary_entropy_score`.
        threshold: mask threshold for :func:`boundary_entropy_score` and :func:`flip_dice_disagreement_score`.

    Returns:
        ``{name: (B,) float tensor}`` with keys from :data:`SCORE_NAMES`, in that order.
    """
    with torch.no_grad():
        passes = ConDSegInferer(tta=True, flips=flips).flip_passes(inputs, network)
    mean = passes.mean(dim=0)
    scores = {
        "tta_disagreement": flip_disagreement_score(passes),
        "tta_dice_disagreement": flip_dice_disagreement_score(passes, threshold=threshold),
        "boundary_entropy": boundary_entropy_score(mean, radius=radius, threshold=threshold),
    }
    if _is_stacked(mean):
        scores["sid_uncertainty"] = sid_uncertainty_score(mean)
    return scores
