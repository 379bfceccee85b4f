# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""Fixtures of the training-workflow tests."""

from __future__ import annotations

import pytest

from condseg_monai.data import generate_demo_dataset


@pytest.fixture(scope="session")
def tiny_datalist(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Four training, two validation and two test demo pairs (48x64)."""
    out = tmp_path_factory.mktemp("tiny_demo")
    return str(generate_demo_dataset(out, num_train=4, num_val=2, num_test=2, image_size=(48, 64), seed=3))
