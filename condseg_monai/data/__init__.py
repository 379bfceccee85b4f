# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0

from __future__ import annotations
