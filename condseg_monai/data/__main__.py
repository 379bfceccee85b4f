# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""``python -m condseg_monai.data``: see :mod:`condseg_monai.data.cli`."""

from __future__ import annotations

import sys

from condseg_monai.data.cli import main

__all__: list[str] = []

if __name__ == "__main__":
    sys.exit(main())
