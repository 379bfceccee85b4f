# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""Run ConDSeg's two training stages one after the other, each as its own MONAI ``ConfigWorkflow``."""

from __future__ import annotations

import gc
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from monai.bundle import ConfigWorkflow

from condseg_monai.files import atomic_write_json

__all__ = ["REPOSITORY", "STAGE_COMPLETED", "find_config", "run_stages"]

logger = logging.getLogger(__name__)

# written into a stage's resume folder when the stage has finished; removed when a stage (re)starts
STAGE_COMPLETED = "stage_completed.json"
# the repository folder holding this package (bundle/configs/, configs/), where relative config paths are found
REPOSITORY = Path(__file__).resolve().parents[2]


def find_config(path: str | os.PathLike, search_dirs: Sequence[str | os.PathLike] = ()) -> str:
    """The config file ``path`` names: as given (absolute, or relative to the working directory), else relative to
    each of ``search_dirs``, else relative to the :data:`REPOSITORY` (where ``configs/both_stages.json`` names
    ``bundle/configs/train.json``, ``configs/stage1.json``, ...), so the two-stage run works from any folder.

    Raises:
        FileNotFoundError: no such file in any of those places (all named).
    """
    candidates = [Path(path)]
    if not candidates[0].is_absolute():
        candidates += [Path(folder) / path for folder in [*search_dirs, REPOSITORY]]
    for candidate in candidates:
        if candidate.is_file():
            return os.fspath(candidate)
    tried = ", ".join(repr(os.fspath(c)) for c in dict.fromkeys(candidates))
    raise FileNotFoundError(f"config file not found: {os.fspath(path)!r} (looked for {tried})")


def _is_main_rank() -> bool:
    import torch.distributed as dist

    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


def run_stages(
    base_config: str | os.PathLike,
    stage_configs: Sequence[str | os.PathLike],
    meta_file: str | os.PathLike | None = None,
    logging_file: str | os.PathLike | None = None,
    shared: Mapping[str, Any] | None = None,
    per_stage: Sequence[Mapping[str, Any] | None] | None = None,
    overlays: Sequence[str | os.PathLike] = (),
    search_dirs: Sequence[str | os.PathLike] = (),
) -> list[str]:
    """Run ``[base_config, stage_config, *overlays]`` workflows in order (Stage 1 then Stage 2).

    Each stage is a complete, independent MONAI bundle run (``initialize``, ``run``, ``finalize``), exactly as
    ``python -m monai.bundle run --config_file "['<base>', '<stage>', *overlays]"`` would do; Stage 2 finds Stage
    1's best checkpoint where Stage 1 wrote it because both receive the same ``output_dir``. Under ``torchrun``
    the overlay ``bundle/configs/multi_gpu_train.json`` makes each stage distributed: only rank 0 writes, and the
    barrier at the end of Stage 1 (its ``finalize``) keeps every rank from starting Stage 2 before rank 0 has
    written Stage 1's checkpoint.

    Args:
        base_config: the shared definition (``bundle/configs/train.json``).
        stage_configs: the thin stage overrides, in the order to run them.
        meta_file: the bundle's ``metadata.json``.
        logging_file: optional logging config for the stage workflows.
        shared: settings passed to every stage (``None`` values are dropped so stage defaults apply).
        per_stage: optional settings per stage, same order as ``stage_configs`` (``None`` values dropped).
        overlays: config files merged on top of every stage (e.g. ``bundle/configs/multi_gpu_train.json``).
        search_dirs: folders where relative config paths (and ``meta_file``) are looked for when they are not
            relative to the working directory; the repository folder is always looked in last (:func:`find_config`).

    With ``resume`` set (``--resume true``) the run continues from the last completed stage: a stage that
    finished (its resume folder holds :data:`STAGE_COMPLETED`) is skipped, the first unfinished stage resumes from
    its ``latest.pt``, or starts afresh when it was killed before saving its first state (less than an epoch
    lost), and the stages after it start afresh.

    Returns:
        the best-checkpoint path of each stage, as reported by the stage's ``ckpt_dir``.
    """
    base_config = find_config(base_config, search_dirs)
    stage_configs = [find_config(path, search_dirs) for path in stage_configs]
    overlays = [find_config(path, search_dirs) for path in overlays]
    meta_file = None if meta_file is None else find_config(meta_file, search_dirs)
    per_stage = list(per_stage or [None] * len(stage_configs))
    if len(per_stage) != len(stage_configs):
        raise ValueError(f"per_stage has {len(per_stage)} entries for {len(stage_configs)} stage configs.")
    checkpoints = []
    for i, (stage_config, extra) in enumerate(zip(stage_configs, per_stage), start=1):
        files = [base_config, stage_config, *overlays]
        override = {k: v for k, v in {**(shared or {}), **(extra or {})}.items() if v is not None}
        logger.info(f"=== stage {i}/{len(stage_configs)}: {os.fspath(stage_config)} ===")

        def make_workflow(override: dict[str, Any] = override, files: list = files) -> ConfigWorkflow:
            return ConfigWorkflow(
                config_file=[os.fspath(path) for path in files],
                meta_file=None if meta_file is None else os.fspath(meta_file),
                logging_file=None if logging_file is None else os.fspath(logging_file),
                workflow_type="train",
                **override,
            )

        workflow = make_workflow()
        resume_dir = str(workflow.parser.get_parsed_content("resume_dir"))
        ckpt_dir = str(workflow.parser.get_parsed_content("ckpt_dir"))
        marker = os.path.join(resume_dir, STAGE_COMPLETED)
        if override.get("resume") and os.path.isfile(marker):
            logger.info(f"stage {i} completed in an earlier run ({marker}): skipped")
            checkpoints.append(os.path.join(ckpt_dir, "model.pt"))
            continue
        if override.get("resume") and not os.path.isfile(os.path.join(resume_dir, "latest.pt")):
            # killed before the stage saved its first state: nothing to resume, start the stage afresh
            logger.warning(
                f"stage {i}: no saved state in {resume_dir}, so it starts afresh (resume applies to it no more)"
            )
            override = {**override, "resume": False}
            workflow = make_workflow(override)
        if _is_main_rank() and os.path.isfile(marker):
            os.remove(marker)  # the stage runs again: an old marker must not survive a kill of this run
        workflow.initialize()
        workflow.run()
        workflow.finalize()
        if _is_main_rank():
            atomic_write_json(marker, {"stage": i, "config": os.fspath(stage_config)}, indent=2)
        checkpoints.append(os.path.join(ckpt_dir, "model.pt"))
        # The finished stage's network, engines and (distributed) process group sit in reference cycles: free them
        # now, not at interpreter exit, so Stage 2 does not run beside Stage 1's memory and gloo threads.
        del workflow
        gc.collect()
    for i, path in enumerate(checkpoints, start=1):
        logger.info(f"stage {i} best model: {path}")
    return checkpoints
