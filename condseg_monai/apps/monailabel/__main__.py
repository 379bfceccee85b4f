# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""``python -m condseg_monai.apps.monailabel``: lay out the MONAI Label app folder (see ``layout``)."""

from __future__ import annotations

import sys

from condseg_monai.apps.monailabel.layout import main

if __name__ == "__main__":
    sys.exit(main())
