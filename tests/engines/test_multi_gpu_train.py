# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""multi_gpu_train.json under torchrun: two CPU processes with gloo for one tiny epoch."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch
from bundle_runner import META_JSON, REPO, STAGE1_JSON, TRAIN_JSON, config_files

MULTI_GPU_JSON = REPO / "bundle" / "configs" / "multi_gpu_train.json"


def test_two_process_gloo_epoch(tmp_path: Path, tiny_datalist: str) -> None:
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nnodes=1",
        "--nproc_per_node=2",
        "-m",
        "monai.bundle",
        "run",
        "training",
        "--meta_file",
        str(META_JSON),
        "--config_file",
        config_files(TRAIN_JSON, STAGE1_JSON, MULTI_GPU_JSON),
        "--datalist",
        tiny_datalist,
        "--output_dir",
        str(tmp_path),
        "--device",
        "cpu",
        "--max_epochs",
        "1",
        "--image_size",
        "32",
        "--num_workers",
        "0",
        "--batch_size",
        "1",
        "--val_batch_size",
        "1",
        "--num_preview_images",
        "1",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    result = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]
    log = result.stdout + result.stderr
    assert "gloo" in log or "Saved checkpoint" in log
    stage = tmp_path / "stage1"
    state = torch.load(stage / "latest.pt", weights_only=True)
    # 4 training images over 2 ranks with batch 1: each rank does 2 iterations in the epoch
    assert state["trainer"]["iteration"] == 2
    assert (stage / "model.pt").is_file()
    assert len(list((stage / "tensorboard").iterdir())) == 1, "only rank 0 may write TensorBoard events"
