# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""bench/compare.py: the side-by-side training step of ours against the official layout, on tiny inputs."""

from __future__ import annotations

import compare
import harness
import speed
import torch


def test_official_objective_is_the_official_loss_on_its_probabilities() -> None:
    torch.manual_seed(0)
    model = compare.build_model("official")
    from official_reference import official_stage2_loss

    forward, loss_fn = speed.training_objective("official", model)
    x, y = torch.rand(2, 3, 32, 32), (torch.rand(2, 1, 32, 32) > 0.5).float()
    model.train()
    pred = forward(x)
    assert pred.shape == (2, 4, 1, 32, 32) and pred.min() >= 0 and pred.max() <= 1  # sigmoid maps, stacked
    loss = loss_fn(pred, y)
    assert torch.equal(loss, official_stage2_loss(pred.unbind(1), y))
    # the double sigmoid keeps each DiceBCE above its floor (BCE >= 0.31, Dice term > 0), so the sum is > 0.6
    assert 0.6 < loss.item() < 10
    loss.backward()
    assert all(p.grad is not None for p in model.decouple_layer.parameters())  # the aux terms reach SID


def test_condseg_is_benchmarked_as_the_bundle_builds_and_trains_it() -> None:
    net = compare.build_model("condseg")
    config = harness.bundle_components(2, ["network_def", "loss"])
    assert type(net) is type(config["network_def"]) and net.use_checkpoint
    assert not compare.build_model("condseg_plain").use_checkpoint
    assert sum(p.numel() for p in net.parameters()) == sum(p.numel() for p in config["network_def"].parameters())
    _, loss = speed.training_objective("condseg", net)
    assert type(loss) is type(config["loss"]) and loss.beta_max == config["loss"].beta_max
    forward, stage1_loss = speed.training_objective("stage1", compare.build_model("stage1"))
    assert type(stage1_loss).__name__ == "Stage1Loss"


def test_side_by_side_table(tmp_path) -> None:
    out = tmp_path / "compare.json"
    args = ["--size", "32", "--repeats", "2", "--warmup", "0", "--threads", "1", "--skip-memory"]
    info = compare.main([*args, "--models", "official", "condseg", "--measurements", "train_b4", "--out", str(out)])
    for name in ("official", "condseg"):
        seconds = info["models"][name]["seconds"]
        assert list(seconds) == ["train_b4"] and len(seconds["train_b4"]) == 2 and min(seconds["train_b4"]) > 0
    assert info["models"]["official"]["parameters"] == info["models"]["condseg"]["parameters"] == 45_552_786
    # ConDSeg runs channels_last as train.json trains it, the official layout NCHW; the record and the table say so
    assert info["models"]["condseg"]["channels_last"] and not info["models"]["official"]["channels_last"]
    table = compare.format_tables(info)
    assert "| ConDSeg (Stage 2) (channels_last) |" in table and "| official ConDSeg layout (reference) |" in table
    ratio = (
        info["models"]["official"]["median_seconds"]["train_b4"]
        / info["models"]["condseg"]["median_seconds"]["train_b4"]
    )
    assert "| train_b4: s per step |" in table and f"{ratio:.2f}x |" in table
    assert out.is_file()
