# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""The training previews (``condseg_monai.handlers.previews``): columns, the flip disagreement panel, files."""

from __future__ import annotations

import torch
from ignite.engine import Engine

from condseg_monai.handlers import SegmentationPreviewHandler
from condseg_monai.handlers.previews import PREVIEW_COLUMNS, SID_COLUMN
from condseg_monai.visualize import heatmap

H, W = 16, 16
BLUE = torch.tensor([0.0, 0.0, 1.0])  # heatmap(0): the passes agree


class _Net(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class _Corner(torch.nn.Module):
    """Not flip-equivariant: logits +30 at the top-left pixel, -30 elsewhere, whatever the input.

    Flipped back, its four flip passes put the hot pixel in the four corners, so the passes differ exactly there.
    With ``return_aux`` (ConDSeg's attribute) it returns the stacked ``(B, 4, C, H, W)`` layout, whose SID map is a
    constant logit 2, the same in every pass: a panel showing it would never be blue.
    """

    def __init__(self, with_aux: bool = False) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(()))  # a parameter, for the handler's device lookup
        if with_aux:
            self.return_aux = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = torch.full((x.shape[0], 1, *x.shape[-2:]), -30.0) + self.weight
        logits[..., 0, 0] = 30.0
        if not getattr(self, "return_aux", False):
            return logits
        return torch.stack([logits, logits, -logits, torch.full_like(logits, 2.0)], dim=1)


class _PixelWise(torch.nn.Module):
    """Flip-equivariant (each output pixel depends on its own input pixel only, element-wise: no rounding)."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x[:, :1] * 8 - 4) * self.weight


def _dataset(n: int = 2) -> list[dict]:
    return [{"image": torch.rand(3, H, W), "label": (torch.rand(1, H, W) > 0.5).float()} for _ in range(n)]


def _blue_except(panel: torch.Tensor, where: torch.Tensor) -> None:
    """``panel`` is the heat map's blue (value 0) outside ``where`` and never blue inside it."""
    blue = (panel == BLUE[:, None, None]).all(dim=0)
    assert torch.equal(blue, ~where), f"non-blue pixels at {(~blue).nonzero().tolist()}"


def test_flip_disagreement_panel_is_non_zero_exactly_where_the_passes_differ() -> None:
    titles, rows = SegmentationPreviewHandler(_Corner(), _dataset(), num_images=2).panels()
    assert titles == list(PREVIEW_COLUMNS) and len(rows) == 2
    corners = torch.zeros(H, W, dtype=torch.bool)
    corners[[0, 0, -1, -1], [0, -1, 0, -1]] = True
    for row in rows:
        assert len(row) == len(PREVIEW_COLUMNS) and all(p.shape == (3, H, W) for p in row)
        panel = row[PREVIEW_COLUMNS.index("flip disagreement")]
        _blue_except(panel, corners)
        # one of the four confident passes says "polyp" in each corner: 2 * std = sqrt(3) / 2 there
        torch.testing.assert_close(panel[:, 0, 0], heatmap(torch.full((1, 1), 3**0.5 / 2))[:, 0, 0])
        # the probability panel is the plain pass: only the top-left pixel is foreground
        prob = row[PREVIEW_COLUMNS.index("probability")][0]
        assert float(prob[0, 0]) == 1.0 and float(prob.flatten()[1:].max()) < 1e-12


def test_flip_equivariant_network_gives_a_blank_disagreement_panel() -> None:
    """Not a constant: the same handler shows nothing for a model whose flipped passes agree exactly."""
    _, rows = SegmentationPreviewHandler(_PixelWise(), _dataset(), num_images=2).panels()
    for row in rows:
        _blue_except(row[PREVIEW_COLUMNS.index("flip disagreement")], torch.zeros(H, W, dtype=torch.bool))


def test_condseg_gets_the_sid_map_as_its_own_titled_column_and_return_aux_is_restored() -> None:
    net = _Corner(with_aux=True)
    net.train()
    titles, rows = SegmentationPreviewHandler(net, _dataset(1), num_images=1).panels()
    assert titles == [*PREVIEW_COLUMNS, SID_COLUMN]
    (row,) = rows
    corners = torch.zeros(H, W, dtype=torch.bool)
    corners[[0, 0, -1, -1], [0, -1, 0, -1]] = True
    # the uncertainty column is the flip map of the mask, not the (constant) SID map
    _blue_except(row[PREVIEW_COLUMNS.index("flip disagreement")], corners)
    assert torch.equal(row[-1], heatmap(torch.sigmoid(torch.full((1, H, W), 2.0))))
    assert net.return_aux is False and net.training, "the handler must leave the network as it found it"


def test_zero_preview_images_writes_nothing(tmp_path):
    """num_preview_images 0 is a valid setting: the handler must switch itself off, not crash validation."""
    handler = SegmentationPreviewHandler(_Net(), _dataset(), output_dir=tmp_path, num_images=0)
    engine = Engine(lambda e, b: None)
    engine.state.epoch = 1
    handler(engine)
    assert list(tmp_path.iterdir()) == []


def test_previews_written(tmp_path):
    handler = SegmentationPreviewHandler(_Net(), _dataset(), output_dir=tmp_path, num_images=2)
    engine = Engine(lambda e, b: None)
    engine.state.epoch = 3
    handler(engine)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["epoch_0003.png", "latest.png"]


def test_rendered_grid_has_the_titles_above_the_panels() -> None:
    handler = SegmentationPreviewHandler(_Corner(), _dataset(2), num_images=2)
    titles, rows = handler.panels()
    grid = handler.render()
    pad, ncol = 2, len(titles)
    assert grid.shape[0] == 3 and grid.shape[2] == ncol * (W + pad) + pad
    strip = grid.shape[1] - (len(rows) * (H + pad) + pad)
    assert strip > pad, "a title strip above the panels"
    assert (grid[:, :strip] < 0.5).any(), "the titles are drawn (dark text on white)"
    # the panels follow the strip unchanged: the first row's flip disagreement panel
    column = PREVIEW_COLUMNS.index("flip disagreement")
    y, x = strip + pad, pad + column * (W + pad)
    assert torch.equal(grid[:, y : y + H, x : x + W], rows[0][column])
