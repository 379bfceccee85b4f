# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""Inference tools used by the MONAI bundle (``bundle/configs``): the operating point, the inference transforms,
the inferer with the uncertainty map, input listing, video inference and the robustness runner.

The other evaluation pieces live with their kind (``docs/architecture.md``, "Package map"): corruptions in
:mod:`condseg_monai.transforms`, failure-tolerant loading in :mod:`condseg_monai.data`, per-image scores and
uncertainty scores in :mod:`condseg_monai.metrics`, report writers in :mod:`condseg_monai.reports` and the MONAI
Label uncertainty entry in :mod:`condseg_monai.apps.monailabel.uncertainty_bundle`.
"""

from __future__ import annotations

from condseg_monai.inference.operating_point import (
    OPERATING_POINT_SUFFIX,
    load_operating_point,
    operating_point_path,
    resolve_operating_point,
    save_operating_point,
)
from condseg_monai.inference.robustness import (
    CLEAN,
    condition_evaluator,
    robustness_conditions,
    robustness_table,
    run_robustness,
)
from condseg_monai.inference.transforms import (
    PREDICTION_KINDS,
    ApplyOperatingPointd,
    SaveOverlayd,
    SavePredictiond,
    SplitConDSegOutputd,
    ToMONAIAxesd,
    output_stem,
)
from condseg_monai.inference.uncertainty import UncertaintyMapInferer, resolve_uncertainty_map
from condseg_monai.inference.utils import (
    IMAGE_SUFFIXES,
    VIDEO_SUFFIXES,
    is_image_file,
    is_video_file,
    list_input_images,
    list_input_videos,
    list_inputs,
    load_model_weights,
    require_file,
    screen_eval_split,
    select_eval_split,
    skip_existing_outputs,
)
from condseg_monai.inference.video import (
    FRAME_COLUMNS,
    OverlayVideoWriter,
    TemporalFilter,
    VideoFrame,
    VideoInferenceRunner,
    alarm_runs,
    iter_video_frames,
    open_video,
    temporal_filter,
    video_output_paths,
)

__all__ = [
    "CLEAN",
    "FRAME_COLUMNS",
    "IMAGE_SUFFIXES",
    "OPERATING_POINT_SUFFIX",
    "PREDICTION_KINDS",
    "ApplyOperatingPointd",
    "OverlayVideoWriter",
    "SaveOverlayd",
    "SavePredictiond",
    "SplitConDSegOutputd",
    "TemporalFilter",
    "ToMONAIAxesd",
    "UncertaintyMapInferer",
    "VIDEO_SUFFIXES",
    "VideoFrame",
    "VideoInferenceRunner",
    "alarm_runs",
    "condition_evaluator",
    "is_image_file",
    "is_video_file",
    "iter_video_frames",
    "list_input_images",
    "list_input_videos",
    "list_inputs",
    "load_model_weights",
    "load_operating_point",
    "open_video",
    "operating_point_path",
    "output_stem",
    "require_file",
    "resolve_operating_point",
    "resolve_uncertainty_map",
    "robustness_conditions",
    "robustness_table",
    "run_robustness",
    "save_operating_point",
    "screen_eval_split",
    "select_eval_split",
    "skip_existing_outputs",
    "temporal_filter",
    "video_output_paths",
]
