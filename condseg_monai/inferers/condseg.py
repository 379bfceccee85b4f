# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""Probability inferer for ConDSeg with optional flip test-time augmentation (TTA)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from monai.data import MetaTensor
from monai.inferers import Inferer

__all__ = ["DEFAULT_TTA_FLIPS", "ConDSegInferer"]

# The four elements of the flip group {identity, flip W, flip H, flip H and W}. Averaging over a *group* makes
# the result exactly flip-equivariant (TTA(flip(x)) == flip(TTA(x))); identity + h-flip + v-flip alone is not
# a group (h-flip then v-flip is missing), so it would only be approximately equivariant.
DEFAULT_TTA_FLIPS: tuple[tuple[int, ...], ...] = ((), (-1,), (-2,), (-2, -1))


class ConDSegInferer(Inferer):
    """Run a ConDSeg-style network and return sigmoid **probabilities**, optionally averaged over flips.

    The network may return mask logits ``(B, C, H, W)`` (eval mode) or the stacked auxiliary output
    ``(B, 4, C, H, W)`` (``return_aux=True``: ``[mask, fg, bg, uncertainty]``); the result has the same shape as
    the network output, with every map passed through a sigmoid. With ``tta=True`` the network also sees the
    flipped inputs given by ``flips``; each output is flipped back and the **probabilities** are averaged
    (not the logits), the usual flip-TTA for sigmoid segmenters.

    Args:
        tta: enable flip test-time augmentation.
        flips: spatial dims (negative, counted from the end of the *input*) flipped for each TTA pass; ``()`` is
            the identity pass. Defaults to the full flip group :data:`DEFAULT_TTA_FLIPS` (4 passes).
        sigmoid: apply a sigmoid to the network output (``False`` when the network already returns
            probabilities).

    Raises:
        ValueError: ``flips`` is empty or names a dim other than -1 / -2.

    Example::

        inferer = ConDSegInferer(tta=True)
        prob = inferer(torch.rand(1, 3, 256, 256), net.eval())  # (1, 1, 256, 256) in [0, 1]
    """

    def __init__(
        self, tta: bool = False, flips: Sequence[Sequence[int]] = DEFAULT_TTA_FLIPS, sigmoid: bool = True
    ) -> None:
        super().__init__()
        flips_ = tuple(tuple(int(d) for d in f) for f in flips)
        if not flips_:
            raise ValueError("flips must contain at least one entry (use () for the identity pass).")
        bad = [f for f in flips_ if any(d not in (-1, -2) for d in f)]
        if bad:
            raise ValueError(f"flips may only use the spatial dims -1 (W) and -2 (H), got {bad}.")
        self.tta = bool(tta)
        self.flips = flips_ if self.tta else ((),)
        self.sigmoid = bool(sigmoid)

    def _activate(self, out: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(out.float()) if self.sigmoid else out.float()

    def __call__(
        self, inputs: torch.Tensor, network: Callable[..., torch.Tensor], *args: Any, **kwargs: Any
    ) -> torch.Tensor:
        """Infer on ``inputs``.

        Args:
            inputs: ``(B, C_in, H, W)`` image batch.
            network: the model; extra ``args``/``kwargs`` are passed on to it.

        Returns:
            probabilities shaped like the network output: ``(B, C, H, W)`` or ``(B, 4, C, H, W)``. A ``MetaTensor``
            input is unwrapped for the forward passes (tracking metadata through every layer is slow) and its
            metadata is copied onto the result, as ``SimpleInferer`` would propagate it.

        Raises:
            TypeError: when the network returns something other than a tensor.
        """
        meta_source = inputs if isinstance(inputs, MetaTensor) else None
        passes = self.flip_passes(
            meta_source.as_tensor() if meta_source is not None else inputs, network, *args, **kwargs
        )
        result = passes.mean(dim=0) if len(self.flips) > 1 else passes[0]
        if meta_source is not None:
            result = MetaTensor(result)
            result.copy_meta_from(meta_source)
        return result

    def flip_passes(
        self, inputs: torch.Tensor, network: Callable[..., torch.Tensor], *args: Any, **kwargs: Any
    ) -> torch.Tensor:
        """The probabilities of every flip pass, each flipped back to the input's orientation, not yet averaged.

        ``__call__`` averages them; their spread is the flip-TTA disagreement
        (:func:`condseg_monai.metrics.uncertainty_scores.flip_disagreement_score`).

        Args:
            inputs: ``(B, C_in, H, W)`` image batch (a plain tensor).
            network: the model; extra ``args``/``kwargs`` are passed on to it.

        Returns:
            ``(T, *network output shape)`` with ``T = len(self.flips)`` in the order of ``self.flips``.

        Raises:
            TypeError: when the network returns something other than a tensor.
        """
        passes = []
        for dims in self.flips:
            x = torch.flip(inputs, dims) if dims else inputs
            out = network(x, *args, **kwargs)
            if not isinstance(out, torch.Tensor):
                raise TypeError(
                    f"the network must return one tensor in eval mode, got {type(out).__name__}; "
                    "ConDSeg returns a tuple only in training."
                )
            prob = self._activate(out)
            # input and output share the trailing (H, W) dims, so the same negative dims undo the flip
            passes.append(torch.flip(prob, dims) if dims else prob)
        return torch.stack(passes)
