# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""Fixtures for the inference tests."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True, scope="module")
def _single_torch_thread():
    """Run torch on one thread: on a busy 2-core machine two OpenMP threads make small convolutions ~50x slower."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
