# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""pytest configuration for the MONAI Label tests.

``run_server_test.py`` is a stand-alone script (it starts a real server, minutes), not a pytest module, even though
its name matches pytest's ``*_test.py`` pattern: keep it out of collection.
"""

from __future__ import annotations

__all__ = ["collect_ignore"]

collect_ignore = ["run_server_test.py"]
