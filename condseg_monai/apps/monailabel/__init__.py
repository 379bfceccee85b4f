# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""The condseg-monai MONAI Label 0.8.5 app: segmentation and uncertainty-map inference, fine-tuning, an uncertainty
scoring task and the ``uncertainty`` active-learning strategy.

Lay out an app folder with ``python -m condseg_monai.apps.monailabel --bundle bundle --out apps/condseg`` (see
:mod:`condseg_monai.apps.monailabel.layout`), then ``monailabel start_server --app apps/condseg ...``
(``docs/monai_label.md``, "Active learning"). Only ``layout`` imports without MONAI Label; ``main`` and ``lib``
need the MONAI Label environment.
"""
