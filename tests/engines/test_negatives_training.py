# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""End-to-end Stage-2 training through the bundle on a datalist with declared negatives (``negatives_per_batch``)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch
from bundle_runner import FAST, STAGE2_JSON, TRAIN_JSON
from ignite.engine import Events
from monai.bundle import ConfigWorkflow
from PIL import Image


def _with_negatives(tiny_datalist: str, folder: Path) -> Path:
    """The tiny demo datalist (4 training, 2 validation pairs) plus 2 training and 1 validation negatives without
    masks: textured images without any blob, at the demo size (48x64)."""
    data = json.loads(Path(tiny_datalist).read_text())
    base = Path(tiny_datalist).parent
    for split in ("training", "validation", "test"):
        for entry in data[split]:
            entry.update({k: str(base / v) for k, v in entry.items() if k in ("image", "label")})
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    for i, split in enumerate(("training", "training", "validation")):
        path = folder / f"negative_{i}.png"
        Image.fromarray(rng.integers(60, 200, size=(48, 64, 3), dtype=np.uint8)).save(path)
        data[split].append({"image": str(path), "negative": True})
    out = folder / "datalist.json"
    out.write_text(json.dumps(data))
    return out


def test_stage2_with_one_negative_per_batch(tmp_path: Path, tiny_datalist: str) -> None:
    datalist = _with_negatives(tiny_datalist, tmp_path / "data")
    overrides = {
        **FAST,
        "datalist": str(datalist),
        "output_dir": str(tmp_path / "run"),
        "device": "cpu",
        "stage1_checkpoint": None,  # Stage 2 from random weights: no Stage-1 run needed here
        "batch_size": 3,  # 1 negative + 2 positives: the 4 positives make an epoch of 2 iterations
        "negatives_per_batch": 1,
        "use_checkpoint": False,
    }
    wf = ConfigWorkflow(config_file=[str(TRAIN_JSON), str(STAGE2_JSON)], workflow_type="train", **overrides)
    wf.initialize()
    trainer = wf.parser.get_parsed_content("train#trainer")
    loss_fn = wf.parser.get_parsed_content("loss")
    seen: dict[str, list] = {"negative": [], "foreground": [], "loss": [], "beta_fg": []}

    @trainer.on(Events.ITERATION_STARTED)
    def _batch(engine) -> None:
        batch = engine.state.batch
        seen["negative"].append(batch["negative"].tolist())
        seen["foreground"].append(batch["label"].flatten(1).sum(1).tolist())

    @trainer.on(Events.ITERATION_COMPLETED)
    def _loss(engine) -> None:
        output = engine.state.output
        seen["loss"].append(float((output[0] if isinstance(output, list) else output)["loss"]))
        seen["beta_fg"].append(float(loss_fn.last_terms["beta_fg"]))

    wf.run()
    wf.finalize()
    assert trainer.state.epoch_length == 2 and trainer.state.iteration == 2
    assert seen["negative"] == [[False, False, True]] * 2, "each batch: 2 positives, then exactly 1 negative"
    for flags, foreground in zip(seen["negative"], seen["foreground"]):
        assert all(fg == 0 for neg, fg in zip(flags, foreground) if neg), "a negative's mask must be all zero"
    assert all(math.isfinite(v) for v in seen["loss"]) and len(seen["loss"]) == 2
    assert all(0 < b <= 10.0 for b in seen["beta_fg"]), seen["beta_fg"]
    # validation ran over the negative too and saved a model
    assert (tmp_path / "run" / "stage2" / "model.pt").is_file()
    assert all(torch.isfinite(p).all() for p in wf.parser.get_parsed_content("network").parameters())
