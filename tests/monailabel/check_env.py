# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""Sanity check of the MONAI Label environment, run by ``setup_env.sh`` after a build.

Imports the packages the server needs at start-up (torchvision's compiled ops included) and checks that every
installed distribution's requirements are met, except monailabel's ``sam2`` which is left out on purpose (see
``requirements.txt``). ``pip check`` cannot do this: pip 26 crashes on itk 5.4.7's malformed wheel tag.
Exits non-zero with the list of problems.
"""

from __future__ import annotations

import sys
from importlib.metadata import PackageNotFoundError, distributions, version

from packaging.requirements import Requirement

__all__ = ["unmet_requirements", "main"]

EXPECTED_MISSING = {"sam2"}


def unmet_requirements() -> list[str]:
    """Return one line per unmet requirement of an installed distribution (extras ignored)."""
    problems = []
    for dist in distributions():
        for spec in dist.requires or []:
            req = Requirement(spec)
            if req.name in EXPECTED_MISSING or (req.marker is not None and not req.marker.evaluate({"extra": ""})):
                continue
            try:
                found: str | None = version(req.name)
            except PackageNotFoundError:
                found = None
            if found is None or not req.specifier.contains(found, prereleases=True):
                problems.append(f"{dist.metadata['Name']} requires {spec!r}, found {found}")
    return problems


def main() -> int:
    import monai
    import monailabel
    import numpy
    import pydicom
    import torch
    import torchvision
    from monailabel.tasks.infer.bundle import BundleInferTask  # noqa: F401  (loads torchvision's C++ ops)

    print(
        f"monailabel {monailabel.__version__}, monai {monai.__version__}, torch {torch.__version__}, "
        f"torchvision {torchvision.__version__}, numpy {numpy.__version__}, pydicom {pydicom.__version__}"
    )
    problems = unmet_requirements()
    if problems:
        print("inconsistent environment:\n  " + "\n  ".join(problems), file=sys.stderr)
        return 1
    print(f"all requirements met (except {sorted(EXPECTED_MISSING)}, left out on purpose)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
