# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""PaperMetricHandler inside a MONAI SupervisedEvaluator, with MetricsSaver output and bundle-config use."""

from __future__ import annotations

import csv

import pytest
import torch
from monai.bundle import ConfigParser
from monai.data import DataLoader, Dataset
from monai.engines import SupervisedEvaluator
from monai.handlers import MetricsSaver, from_engine
from monai.transforms import Activationsd

from condseg_monai.handlers import PaperMetricHandler
from condseg_monai.metrics import PAPER_METRIC_NAMES, binary_segmentation_metrics


def _data(n: int = 5) -> list[dict]:
    g = torch.Generator().manual_seed(0)
    items = []
    for i in range(n):
        label = torch.zeros(1, 16, 16)
        label[:, 4 : 8 + i, 3:10] = 1
        logits = (label * 2 - 1) * 3 + torch.randn(1, 16, 16, generator=g) * 2.5  # noisy "network output"
        items.append({"image": logits, "label": label, "name": f"img{i}.png"})
    return items


def test_handler_in_supervised_evaluator_with_metrics_saver(tmp_path):
    data = _data()
    # batch size 2 over 5 images: the last batch is smaller, so per-image and per-batch means differ
    loader = DataLoader(Dataset(data), batch_size=2, num_workers=0)
    transform = from_engine(["pred", "label"])
    evaluator = SupervisedEvaluator(
        device=torch.device("cpu"),
        val_data_loader=loader,
        network=torch.nn.Identity(),  # the image already holds logits
        postprocessing=Activationsd(keys="pred", sigmoid=True),
        key_val_metric={"val_miou": PaperMetricHandler("iou", output_transform=transform)},
        additional_metrics={
            f"val_{n}": PaperMetricHandler(n, output_transform=transform) for n in PAPER_METRIC_NAMES[1:]
        },
        val_handlers=[
            MetricsSaver(
                save_dir=str(tmp_path),
                metrics="*",
                metric_details="*",
                batch_transform=lambda batch: [{"filename_or_obj": b["name"]} for b in batch],  # decollated
                summary_ops=["mean", "notnans"],
            )
        ],
    )
    evaluator.run()
    logits = torch.stack([d["image"] for d in data])
    labels = torch.stack([d["label"] for d in data])
    ref = binary_segmentation_metrics(torch.sigmoid(logits), labels)
    metrics = evaluator.state.metrics
    assert metrics["val_miou"] == pytest.approx(ref["iou"].mean().item(), rel=1e-9)
    for name in PAPER_METRIC_NAMES[1:]:
        assert metrics[f"val_{name}"] == pytest.approx(ref[name].mean().item(), rel=1e-9)
    assert 0.0 < metrics["val_miou"] < 1.0  # the noise makes the task non-trivial
    assert evaluator.state.metric_details["val_miou"].shape == (5, 1)

    with open(tmp_path / "val_miou_raw.csv") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["filename", "class0", "mean"]
    assert [r[0] for r in rows[1:]] == [d["name"] for d in data]
    assert [float(r[1]) for r in rows[1:]] == pytest.approx(ref["iou"].tolist(), abs=1e-4)  # 4 decimals in csv
    summary = (tmp_path / "val_dice_summary.csv").read_text()
    assert "notnans" in summary and f"{ref['dice'].mean().item():.4f}" in summary
    assert (tmp_path / "metrics.csv").read_text().startswith("val_miou,")


def test_handler_from_bundle_config():
    config = {
        "imports": ["$import monai"],
        "key_metric": {
            "val_miou": {
                "_target_": "condseg_monai.handlers.PaperMetricHandler",
                "metric_name": "iou",
                "output_transform": "$monai.handlers.from_engine(['pred', 'label'])",
            }
        },
    }
    parser = ConfigParser(config)
    handler = parser.get_parsed_content("key_metric#val_miou")
    assert isinstance(handler, PaperMetricHandler)
    assert handler.metric_fn.metric_name == "iou" and handler.metric_fn.threshold == 0.5
    with pytest.raises(ValueError, match="metric_name"):
        PaperMetricHandler("miou")
