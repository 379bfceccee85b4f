# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""ConDSeg data: datalists, raw-dataset preparation, datalist validation, the demo dataset, PNG writer, the
training batch sampler with negatives, and the failure-tolerant loader that records unreadable inputs."""

from __future__ import annotations

from condseg_monai.data.checks import (
    MAX_AMBIGUOUS_FRACTION,
    Problem,
    check_datalist,
    check_image,
    check_pair,
    validate_datalist,
    validate_unlabeled,
)
from condseg_monai.data.datalist import (
    SPLITS,
    UNLABELED,
    Datalist,
    DatalistEntry,
    DatasetSettings,
    UnlabeledEntry,
    load_datalist,
    read_datalist,
    write_datalist,
)
from condseg_monai.data.demo import generate_demo_dataset, is_demo_data, make_demo_pair
from condseg_monai.data.failures import (
    FAILURES_FILENAME,
    FailureLog,
    FailureTolerantLoader,
    InputFailuresError,
    collate_skipping_failures,
    describe_failure,
    failure_record,
)
from condseg_monai.data.image_writer import PILWriterHW
from condseg_monai.data.prepare import (
    DATASETS,
    IMAGE_EXTENSIONS,
    PrepareError,
    add_negatives,
    add_unlabeled,
    keep_labeled,
    labeled_budget_size,
    prepare_datalist,
)
from condseg_monai.data.sampler import NegativeBatchSampler, make_train_dataloader, negative_flags

__all__ = [
    "DATASETS",
    "FAILURES_FILENAME",
    "IMAGE_EXTENSIONS",
    "MAX_AMBIGUOUS_FRACTION",
    "SPLITS",
    "UNLABELED",
    "Datalist",
    "DatalistEntry",
    "DatasetSettings",
    "FailureLog",
    "FailureTolerantLoader",
    "InputFailuresError",
    "NegativeBatchSampler",
    "PILWriterHW",
    "PrepareError",
    "Problem",
    "UnlabeledEntry",
    "add_negatives",
    "add_unlabeled",
    "check_datalist",
    "check_image",
    "check_pair",
    "collate_skipping_failures",
    "describe_failure",
    "failure_record",
    "generate_demo_dataset",
    "is_demo_data",
    "keep_labeled",
    "labeled_budget_size",
    "load_datalist",
    "make_demo_pair",
    "make_train_dataloader",
    "negative_flags",
    "prepare_datalist",
    "read_datalist",
    "validate_datalist",
    "validate_unlabeled",
    "write_datalist",
]
