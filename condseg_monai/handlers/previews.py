# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""Pictures of what the model segments, written after every validation (TensorBoard + PNG files)."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

import torch
from ignite.engine import Engine, Events
from torch.utils.data import Dataset

from condseg_monai.inferers import ConDSegInferer
from condseg_monai.metrics.uncertainty_scores import flip_disagreement_map, mask_probability, sid_uncertainty_map
from condseg_monai.visualize import GREEN, RED, heatmap, make_grid, overlay_contours, save_png

__all__ = ["PREVIEW_COLUMNS", "SID_COLUMN", "SegmentationPreviewHandler"]

# the column titles drawn above the preview grid (every network), and the extra one of ConDSeg
PREVIEW_COLUMNS: tuple[str, ...] = ("image", "ground truth", "probability", "flip disagreement", "contours")
SID_COLUMN = "SID head (not uncertainty)"


class SegmentationPreviewHandler:
    """After each validation, segment a few fixed validation images and show the result.

    One row per image; the columns, titled in the picture (:data:`PREVIEW_COLUMNS`):

    1. ``image``: the input;
    2. ``ground truth``: the label;
    3. ``probability``: the predicted mask probability of the plain forward pass, grey scale;
    4. ``flip disagreement``: where the model might be wrong.
       :func:`~condseg_monai.metrics.uncertainty_scores.flip_disagreement_map` of the four flip passes
       (:meth:`ConDSegInferer.flip_passes <condseg_monai.inferers.ConDSegInferer.flip_passes>`: identity,
       horizontal, vertical, both, each flipped back), twice the per-pixel standard deviation of their
       probabilities, as a heat map: blue 0 where the passes agree, yellow 0.5, red 1 where half of them say polyp
       and half not. Any network; a model that is sure of a pixel predicts it the same in every orientation;
    5. ``contours``: the input with the ground truth (green) and predicted (red) contours;
    6. ConDSeg only, :data:`SID_COLUMN`: ``sigmoid(M_uc)`` of the plain pass, the output of ConDSeg's auxiliary
       SID "uncertainty" head, as a heat map. It shows what that head learns during training; it is not an
       uncertainty: the head has no target (the official method trains it only through the weak complementarity
       loss), it is a learned region map, and its image mean did not find failures (AUROC 0.50,
       ``docs/benchmarks.md``, "Active learning").

    The grid goes to TensorBoard as ``{tag}`` and to ``{output_dir}/epoch_XXXX.png`` plus
    ``{output_dir}/latest.png``.

    Args:
        network: the network being trained (ConDSeg: its ``return_aux`` flag is used to get the SID map).
        dataset: the validation dataset; items are dicts with ``image`` ``(3, H, W)`` and ``label``.
        output_dir: folder of the PNG files; ``None`` writes none.
        summary_writer: a TensorBoard ``SummaryWriter``; ``None`` writes to TensorBoard nothing.
        num_images: how many images (the first ones of ``dataset``).
        tag: TensorBoard tag.
        device: device to run the previews on (default: the network's).
    """

    def __init__(
        self,
        network: torch.nn.Module,
        dataset: Dataset,
        output_dir: str | os.PathLike | None = None,
        summary_writer: object | None = None,
        num_images: int = 4,
        tag: str = "validation/previews",
        device: str | torch.device | None = None,
    ) -> None:
        self.network = network
        self.dataset = dataset
        self.output_dir = output_dir
        self.summary_writer = summary_writer
        self.num_images = num_images
        self.tag = tag
        self.device = device
        self.logger = logging.getLogger(__name__)
        self.inferer = ConDSegInferer(tta=True)  # the flip group: sigmoid probabilities of every pass

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_COMPLETED, self)

    def _samples(self) -> Sequence[dict]:
        n = min(self.num_images, len(self.dataset))  # type: ignore[arg-type]
        return [self.dataset[i] for i in range(n)]

    @torch.no_grad()
    def panels(self) -> tuple[list[str], list[list[torch.Tensor]]]:
        """The column titles and the rows of ``(3, H, W)`` panels, with the network in eval mode.

        Returns:
            ``(titles, rows)``: :data:`PREVIEW_COLUMNS` (plus :data:`SID_COLUMN` for ConDSeg) and one row of panels
            per image, in that order.
        """
        net = self.network
        module = getattr(net, "module", net)  # DistributedDataParallel
        device = self.device or next(net.parameters()).device
        was_training = net.training
        has_aux = hasattr(module, "return_aux")
        prior_aux = bool(getattr(module, "return_aux", False))
        identity = self.inferer.flips.index(())
        rows = []
        try:
            net.eval()
            if has_aux:
                module.return_aux = True
            for item in self._samples():
                image = torch.as_tensor(item["image"]).float()
                label = torch.as_tensor(item["label"]).float()
                # (T, 1, C, H, W), or ConDSeg's (T, 1, 4, C, H, W): the flips, each mapped back to the input
                passes = self.inferer.flip_passes(image[None].to(device), net).float().cpu()
                prob = mask_probability(passes[identity])[0, :1]
                pred = (prob > 0.5).float()
                row = [
                    image,
                    label[:1].expand(3, -1, -1),
                    prob.expand(3, -1, -1),
                    heatmap(flip_disagreement_map(passes)[0, :1]),
                    overlay_contours(image, [label[:1], pred], colors=(GREEN, RED)),
                ]
                if has_aux:
                    row.append(heatmap(sid_uncertainty_map(passes[identity])[0, :1]))
                rows.append(row)
        finally:
            if has_aux:
                module.return_aux = prior_aux
            net.train(was_training)
        titles = [*PREVIEW_COLUMNS, *([SID_COLUMN] if has_aux else [])]
        return titles, rows

    def render(self) -> torch.Tensor:
        """The titled preview grid ``(3, H', W')``: the :meth:`panels` tiled by ``make_grid``."""
        titles, rows = self.panels()
        return make_grid(rows, titles=titles)

    def __call__(self, engine: Engine) -> None:
        if min(self.num_images, len(self.dataset)) < 1:  # type: ignore[arg-type]
            return  # num_preview_images 0 (a valid setting) switches the pictures off
        grid = self.render()
        epoch = engine.state.epoch
        if self.summary_writer is not None:
            self.summary_writer.add_image(self.tag, grid, global_step=epoch)
            self.summary_writer.flush()
        if self.output_dir is not None:
            save_png(grid, os.path.join(self.output_dir, f"epoch_{epoch:04d}.png"))
            save_png(grid, os.path.join(self.output_dir, "latest.png"))
