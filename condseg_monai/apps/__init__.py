# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""Applications built on the package: the MONAI Label app (:mod:`condseg_monai.apps.monailabel`)."""
