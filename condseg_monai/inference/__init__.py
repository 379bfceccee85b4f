# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""Inference, evaluation and robustness tools used by the MONAI bundle (``bundle/configs``)."""

from __future__ import annotations

from condseg_monai.inference.corruptions import CORRUPTIONS, CorruptImaged, corrupt, corruption_parameter
from condseg_monai.inference.evaluation import RESOLUTIONS, score_case, summarize_cases
from condseg_monai.inference.failures import (
    FAILURES_FILENAME,
    FailureLog,
    FailureTolerantLoader,
    InputFailuresError,
    collate_skipping_failures,
    failure_record,
)
from condseg_monai.inference.operating_point import (
    OPERATING_POINT_SUFFIX,
    load_operating_point,
    operating_point_path,
    resolve_operating_point,
    save_operating_point,
)
from condseg_monai.inference.report import markdown_table, write_csv, write_json
from condseg_monai.inference.robustness import CLEAN, robustness_conditions, robustness_table, run_robustness
from condseg_monai.inference.transforms import (
    PREDICTION_KINDS,
    ApplyOperatingPointd,
    SaveOverlayd,
    SavePredictiond,
    SplitConDSegOutputd,
    ToMONAIAxesd,
    output_stem,
)
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
    "CORRUPTIONS",
    "FAILURES_FILENAME",
    "FRAME_COLUMNS",
    "IMAGE_SUFFIXES",
    "OPERATING_POINT_SUFFIX",
    "PREDICTION_KINDS",
    "RESOLUTIONS",
    "ApplyOperatingPointd",
    "CorruptImaged",
    "FailureLog",
    "FailureTolerantLoader",
    "InputFailuresError",
    "OverlayVideoWriter",
    "SaveOverlayd",
    "SavePredictiond",
    "SplitConDSegOutputd",
    "TemporalFilter",
    "ToMONAIAxesd",
    "VIDEO_SUFFIXES",
    "VideoFrame",
    "VideoInferenceRunner",
    "alarm_runs",
    "collate_skipping_failures",
    "corrupt",
    "corruption_parameter",
    "failure_record",
    "is_image_file",
    "is_video_file",
    "iter_video_frames",
    "list_input_images",
    "list_input_videos",
    "list_inputs",
    "load_model_weights",
    "load_operating_point",
    "markdown_table",
    "open_video",
    "operating_point_path",
    "output_stem",
    "require_file",
    "resolve_operating_point",
    "robustness_conditions",
    "robustness_table",
    "run_robustness",
    "save_operating_point",
    "score_case",
    "screen_eval_split",
    "select_eval_split",
    "skip_existing_outputs",
    "summarize_cases",
    "temporal_filter",
    "video_output_paths",
    "write_csv",
    "write_json",
]
