# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""Helpers for the training-workflow tests: config paths, small settings, the real bundle entry point."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TRAIN_JSON = REPO / "bundle" / "configs" / "train.json"
META_JSON = REPO / "bundle" / "configs" / "metadata.json"
STAGE1_JSON = REPO / "configs" / "stage1.json"
STAGE2_JSON = REPO / "configs" / "stage2.json"
BOTH_STAGES_JSON = REPO / "configs" / "both_stages.json"

# Small enough for 2 CPU cores: narrow ConDSeg, 32x32 images, one worker-less loader.
FAST = {
    "image_size": 32,
    "feature_size": 16,
    "num_workers": 0,
    "batch_size": 2,
    "val_batch_size": 2,
    "num_preview_images": 1,
    "max_epochs": 1,
}


def config_files(*paths: Path) -> str:
    return "[" + ",".join(f"'{p}'" for p in paths) + "]"


def bundle_cli(run_id: str, configs: list[Path], overrides: dict, cwd: Path = REPO, **kwargs) -> list[str]:
    """Argument list of ``python -m monai.bundle run <run_id> ...`` with ``--key value`` overrides."""
    args = [
        sys.executable,
        "-m",
        "monai.bundle",
        "run",
        run_id,
        "--meta_file",
        str(META_JSON),
        "--config_file",
        config_files(*configs),
    ]
    for key, value in overrides.items():
        args += [f"--{key}", str(value)]
    return args


def run_bundle(
    run_id: str, configs: list[Path], overrides: dict, timeout: float = 600, cwd: Path = REPO
) -> subprocess.CompletedProcess:
    """Run the real ``monai.bundle`` entry point in a subprocess (as users do, from ``cwd``) and return the result."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2")}
    return subprocess.run(
        bundle_cli(run_id, configs, overrides),
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
