from __future__ import annotations

import torch
from ignite.engine import Engine

from condseg_monai.handlers import SegmentationPreviewHandler


class _Net(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


def _dataset(n: int = 2) -> list[dict]:
    return [{"image": torch.rand(3, 16, 16), "label": (torch.rand(1, 16, 16) > 0.5).float()} for _ in range(n)]


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
