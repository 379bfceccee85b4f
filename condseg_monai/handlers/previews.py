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

from condseg_monai.visualize import GREEN, RED, heatmap, make_grid, overlay_contours, save_png

__all__ = ["SegmentationPreviewHandler"]


class SegmentationPreviewHandler:
    """After each validation, segment a few fixed validation images and show the result.

    One row per image: the input, the ground truth, the predicted probability, the SID uncertainty map
    (ConDSeg only; networks without auxiliary outputs get a blank panel) and the input with the ground
    truth (green) and predicted (red) contours. The grid goes to TensorBoard as ``{tag}`` and to
    ``{output_dir}/epoch_XXXX.png`` plus ``{output_dir}/latest.png``.

    Args:
        network: the network being trained (ConDSeg: its ``return_aux`` flag is used to get the maps).
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

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_COMPLETED, self)

    def _samples(self) -> Sequence[dict]:
        n = min(self.num_images, len(self.dataset))  # type: ignore[arg-type]
        return [self.dataset[i] for i in range(n)]

    @torch.no_grad()
    def render(self) -> torch.Tensor:
        """Build the preview grid ``(3, H', W')`` with the network in eval mode."""
        net = self.network
        module = getattr(net, "module", net)  # DistributedDataParallel
        device = self.device or next(net.parameters()).device
        was_training = net.training
        has_aux = hasattr(module, "return_aux")
        prior_aux = bool(getattr(module, "return_aux", False))
        rows = []
        try:
            net.eval()
            if has_aux:
                module.return_aux = True
            for item in self._samples():
                image = torch.as_tensor(item["image"]).float()
                label = torch.as_tensor(item["label"]).float()
                out = net(image[None].to(device)).float().cpu()
                if has_aux:  # (1, 4, C, H, W): mask, fg, bg, uncertainty
                    prob, unc = torch.sigmoid(out[0, 0, :1]), torch.sigmoid(out[0, 3, :1])
                    unc_panel = heatmap(unc)
                else:
                    prob, unc_panel = torch.sigmoid(out[0, :1]), torch.ones_like(image)
                pred = (prob > 0.5).float()
                rows.append(
                    [
                        image,
                        label[:1].expand(3, -1, -1),
                        prob.expand(3, -1, -1),
                        unc_panel,
                        overlay_contours(image, [label[:1], pred], colors=(GREEN, RED)),
                    ]
                )
        finally:
            if has_aux:
                module.return_aux = prior_aux
            net.train(was_training)
        return make_grid(rows)

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
