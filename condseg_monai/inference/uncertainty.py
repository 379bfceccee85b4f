# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""The bundle's prediction together with a per-pixel uncertainty map (``save_uncertainty``, ``uncertainty_map``).

``bundle/configs/inference.json`` runs :class:`UncertaintyMapInferer`: without ``save_uncertainty`` it is the
plain :class:`~condseg_monai.inferers.ConDSegInferer`; with it, it also returns the map named by the setting
``uncertainty_map`` (:data:`~condseg_monai.metrics.uncertainty_scores.UNCERTAINTY_MAPS`):

- ``"flip_disagreement"`` (default, any network):
  :func:`~condseg_monai.metrics.uncertainty_scores.flip_disagreement_map` of the four flip passes, which are run
  whatever ``tta`` is;
- ``"sid"`` (ConDSeg only, ``return_aux``): ConDSeg's SID head
  :func:`~condseg_monai.metrics.uncertainty_scores.sid_uncertainty_map`, a learned region map, not an uncertainty.

The prediction is the same in every case: the flip-averaged probability with ``tta``, the plain pass without.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from monai.data import MetaTensor

from condseg_monai.inferers import DEFAULT_TTA_FLIPS, ConDSegInferer
from condseg_monai.metrics.uncertainty_scores import (
    check_uncertainty_map,
    flip_disagreement_map,
    mask_probability,
    sid_uncertainty_map,
)

__all__ = ["UncertaintyMapInferer", "resolve_uncertainty_map"]


def resolve_uncertainty_map(save_uncertainty: bool, uncertainty_map: str) -> str | None:
    """The uncertainty map a run computes: ``uncertainty_map`` when ``save_uncertainty`` is on, else none.

    ``uncertainty_map`` is validated either way, so a misspelt value fails at once and not only when the map is
    switched on.

    Args:
        save_uncertainty: the bundle setting ``save_uncertainty``.
        uncertainty_map: the bundle setting ``uncertainty_map``, one of
            :data:`~condseg_monai.metrics.uncertainty_scores.UNCERTAINTY_MAPS`.

    Returns:
        ``uncertainty_map`` or ``None``.

    Raises:
        ValueError: ``uncertainty_map`` is not a known map (the message names the setting).
    """
    name = check_uncertainty_map(uncertainty_map)
    return name if save_uncertainty else None


class UncertaintyMapInferer(ConDSegInferer):
    """:class:`~condseg_monai.inferers.ConDSegInferer` that also returns a per-pixel uncertainty map.

    With ``uncertainty_map=None`` it is a plain ``ConDSegInferer``: one tensor of probabilities. Otherwise it
    returns ``{"pred": (B, C, H, W) mask probabilities, "uncertainty": (B, C, H, W) map}``, both ``MetaTensor``
    with the input's metadata when the input has it (``SplitConDSegOutputd`` unpacks the dict after
    decollation):

    - ``"flip_disagreement"``: the network runs on every flip of ``flips`` (whatever ``tta`` is);
      ``"uncertainty"`` is :func:`~condseg_monai.metrics.uncertainty_scores.flip_disagreement_map` of the passes,
      and ``"pred"`` is their mean with ``tta``, else the identity pass: bit for bit what ``ConDSegInferer``
      returns, so switching the map on never changes the mask;
    - ``"sid"``: the network must return ConDSeg's stacked output (``return_aux=True``); ``"pred"`` is its mask
      map and ``"uncertainty"`` its SID map, both flip-averaged with ``tta``.

    Args:
        tta: average the mask probability over ``flips`` (test-time augmentation).
        flips: the flip group, see :class:`~condseg_monai.inferers.ConDSegInferer`; it must contain the identity
            ``()`` (the plain pass without ``tta``).
        sigmoid: apply a sigmoid to the network output.
        uncertainty_map: ``None``, or one of :data:`~condseg_monai.metrics.uncertainty_scores.UNCERTAINTY_MAPS`.

    Raises:
        ValueError: unknown ``uncertainty_map``; ``flips`` without the identity or with a single entry for
            ``"flip_disagreement"``.
    """

    def __init__(
        self,
        tta: bool = False,
        flips: Sequence[Sequence[int]] = DEFAULT_TTA_FLIPS,
        sigmoid: bool = True,
        uncertainty_map: str | None = None,
    ) -> None:
        super().__init__(tta=tta, flips=flips, sigmoid=sigmoid)
        self.uncertainty_map = None if uncertainty_map is None else check_uncertainty_map(uncertainty_map)
        # the flip group of the disagreement map, run whatever ``tta`` is (``self.flips`` is the TTA set)
        self.map_inferer = ConDSegInferer(tta=True, flips=flips, sigmoid=sigmoid)
        flips_ok = () in self.map_inferer.flips and len(self.map_inferer.flips) >= 2
        if self.uncertainty_map == "flip_disagreement" and not flips_ok:
            raise ValueError(
                f"the flip disagreement map needs at least two flips including the identity (), got {flips}."
            )

    def predict(
        self, inputs: torch.Tensor, network: Callable[..., torch.Tensor], *args: Any, **kwargs: Any
    ) -> torch.Tensor:
        """The prediction alone, without the map's extra passes (``ConDSegInferer.__call__``; videos use it)."""
        return super().__call__(inputs, network, *args, **kwargs)

    def __call__(
        self, inputs: torch.Tensor, network: Callable[..., torch.Tensor], *args: Any, **kwargs: Any
    ) -> torch.Tensor | dict[str, torch.Tensor]:
        """Infer on ``inputs``.

        Args:
            inputs: ``(B, C_in, H, W)`` image batch.
            network: the model; extra ``args``/``kwargs`` are passed on to it.

        Returns:
            without ``uncertainty_map``: probabilities shaped like the network output; with it:
            ``{"pred": (B, C, H, W), "uncertainty": (B, C, H, W)}``, values in [0, 1].

        Raises:
            ValueError: ``"sid"`` and the network does not return ConDSeg's stacked output.
        """
        if self.uncertainty_map is None:
            return self.predict(inputs, network, *args, **kwargs)
        meta_source = inputs if isinstance(inputs, MetaTensor) else None
        x = meta_source.as_tensor() if meta_source is not None else inputs
        if self.uncertainty_map == "sid":
            prob = super().__call__(x, network, *args, **kwargs)
            outputs = {"pred": mask_probability(prob), "uncertainty": sid_uncertainty_map(prob)}
        else:
            passes = self.map_inferer.flip_passes(x, network, *args, **kwargs)
            # the same reduction as ConDSegInferer.__call__ on the same passes: the mask is unchanged by the map
            prob = passes.mean(dim=0) if len(self.flips) > 1 else passes[self.map_inferer.flips.index(())]
            outputs = {"pred": mask_probability(prob), "uncertainty": flip_disagreement_map(passes)}
        if meta_source is None:
            return outputs
        wrapped = {}
        for key, value in outputs.items():
            wrapped[key] = MetaTensor(value)
            wrapped[key].copy_meta_from(meta_source)
        return wrapped
