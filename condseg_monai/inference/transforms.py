# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""Inference post-processing transforms: split the auxiliary output, apply the operating point, save masks/maps,
draw overlays."""

from __future__ import annotations

import logging
import os
from collections.abc import Hashable, Mapping
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform, SaveImaged

from condseg_monai.data.image_writer import PILWriterHW
from condseg_monai.metrics.detection import OperatingPoint, detection_score
from condseg_monai.networks.nets.condseg import ConDSegOutput, condseg_mask
from condseg_monai.transforms.loading import LoadImageRGB
from condseg_monai.transforms.readers import file_stem as output_stem  # output_stem: public here, the readers' rule
from condseg_monai.transforms.readers import is_nifti
from condseg_monai.visualize import overlay_contours, save_png

__all__ = [
    "PREDICTION_KINDS",
    "ApplyOperatingPointd",
    "SaveOverlayd",
    "SavePredictiond",
    "SplitConDSegOutputd",
    "ToMONAIAxesd",
    "output_stem",
]

logger = logging.getLogger(__name__)

PREDICTION_KINDS: tuple[str, ...] = ("mask", "probability")


def _source_file(img: Any, key: Hashable) -> str:
    meta = img.meta if isinstance(img, MetaTensor) else {}
    name = meta.get("filename_or_obj")
    if not name:
        raise ValueError(f"'{key}' carries no 'filename_or_obj' metadata: cannot name the output file.")
    return str(name)


class SplitConDSegOutputd(MapTransform):
    """Split the inferer's output into the mask probability and the uncertainty map.

    Three forms of ``d[key]`` (one image, after decollation):

    - ``(C, H, W)``: a plain mask output (eval-mode ConDSeg, any other segmenter): nothing happens;
    - ``{"pred": (C, H, W), "uncertainty": (C, H, W)}``: the output of
      :class:`~condseg_monai.inference.UncertaintyMapInferer` with an uncertainty map: ``"pred"`` goes to ``key``
      and ``"uncertainty"`` to ``uncertainty_key``;
    - ``(4, C, H, W)``: ConDSeg's stacked ``[mask, fg, bg, uncertainty]`` (``return_aux=True`` with a plain
      inferer): the mask map goes to ``key`` and the SID map (index 3) to ``uncertainty_key``.

    The results are ``MetaTensor`` with the output's metadata so that ``Invertd``/``SaveImaged`` can use them.

    Args:
        keys: key(s) of the inferer output (``"pred"``).
        uncertainty_key: where to put the uncertainty map; ``None`` drops it.
        allow_missing_keys: don't raise for missing keys.
    """

    def __init__(
        self,
        keys: KeysCollection = "pred",
        uncertainty_key: str | None = "uncertainty",
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.uncertainty_key = uncertainty_key

    @staticmethod
    def _with_meta(img: Any, like: Any) -> MetaTensor:
        meta = dict(like.meta) if isinstance(like, MetaTensor) else {}
        ops = list(like.applied_operations) if isinstance(like, MetaTensor) else []
        return MetaTensor(torch.as_tensor(img), meta=meta, applied_operations=ops)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            out = d[key]
            if isinstance(out, Mapping):  # UncertaintyMapInferer: {"pred": ..., "uncertainty": ...}
                if set(out) != {"pred", "uncertainty"}:
                    raise ValueError(f"'{key}' is a dict with keys {sorted(out)}: expected 'pred' and 'uncertainty'.")
                d[key] = self._with_meta(out["pred"], out["pred"])
                if self.uncertainty_key is not None:
                    d[self.uncertainty_key] = self._with_meta(out["uncertainty"], out["uncertainty"])
                continue
            if out.ndim != 4:  # (C, H, W): plain mask output
                continue
            if out.shape[0] != len(ConDSegOutput):
                raise ValueError(f"'{key}' has shape {tuple(out.shape)}: expected (4, C, H, W) or (C, H, W).")
            d[key] = self._with_meta(condseg_mask(out, batched=False), out)
            if self.uncertainty_key is not None:
                d[self.uncertainty_key] = self._with_meta(out[ConDSegOutput.UNCERTAINTY], out)
        return d


class SavePredictiond(SaveImaged):
    """``SaveImaged`` that writes PNG for 2D picture inputs and NIfTI for NIfTI inputs, named after the input.

    Output: ``<output_dir>/<input stem>_<output_postfix>.png`` (or ``.nii.gz`` when the input file was NIfTI, with
    the input's affine). ``kind="mask"``: binary ``{0, 1}`` maps become PNG 0/255 and NIfTI uint8 0/1;
    ``kind="probability"``: maps in ``[0, 1]`` become 8-bit PNG (``round(255 p)``) and float32 NIfTI. NIfTI
    outputs are 2D ``(H, W)`` arrays in the input's voxel order.
    PNGs are written in the project's ``(H, W)`` axis order (:class:`condseg_monai.data.PILWriterHW`), so they
    have the same orientation as the input picture. Being a ``SaveImaged``, MONAI Label drops it from the
    post-processing it runs.

    Args:
        keys: keys of channel-first ``(1, H, W)`` maps at the input's resolution (after ``Invertd``).
        output_dir: output folder (created when needed).
        output_postfix: file-name postfix, e.g. ``"mask"``.
        kind: ``"mask"`` or ``"probability"``.
        print_log: log every written file.
        allow_missing_keys: don't raise for missing keys.

    Raises:
        ValueError: unknown ``kind``.
    """

    def __init__(
        self,
        keys: KeysCollection,
        output_dir: str | os.PathLike = "./",
        output_postfix: str = "mask",
        kind: str = "mask",
        print_log: bool = False,
        allow_missing_keys: bool = False,
    ) -> None:
        if kind not in PREDICTION_KINDS:
            raise ValueError(f"kind must be one of {PREDICTION_KINDS}, got {kind!r}.")
        common = {
            "output_dir": os.fspath(output_dir),
            "output_postfix": output_postfix,
            "resample": False,
            "squeeze_end_dims": True,
            "separate_folder": False,
            "print_log": print_log,
        }
        super().__init__(
            keys,
            output_ext=".png",
            writer=PILWriterHW,
            output_dtype=np.uint8,
            scale=255,
            allow_missing_keys=allow_missing_keys,
            **common,
        )
        self.kind = kind
        self.output_dir = Path(output_dir)
        self.output_postfix = output_postfix
        self.print_log = print_log

    def _write_nifti(self, img: torch.Tensor, source: str) -> Path:
        """Write ``(1, H, W)`` as a 2D NIfTI with the image's current affine (the input's, after ``Invertd``).

        Written with nibabel directly: MONAI 1.6.1's ``NibabelWriter`` fails on 2D data with ``resample=False``
        (its resampler gets no spatial size), and the data needs no resampling here anyway.
        """
        array = torch.as_tensor(img).detach().cpu().float().numpy().reshape(img.shape[-2:])
        array = (array > 0.5).astype(np.uint8) if self.kind == "mask" else array.astype(np.float32)
        affine = img.affine.detach().cpu().double().numpy() if isinstance(img, MetaTensor) else np.eye(4)
        path = self.output_dir / f"{output_stem(source)}_{self.output_postfix}.nii.gz"
        path.parent.mkdir(parents=True, exist_ok=True)
        nib.save(nib.Nifti1Image(array, affine), str(path))
        if self.print_log:
            logger.info("file written: %s.", path)
        return path

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            img = d[key]
            source = _source_file(img, key)
            if is_nifti(source):
                self._write_nifti(img, source)
            else:
                self.saver(img=img)
        return d


class ApplyOperatingPointd(MapTransform):
    """Probability map -> binary mask at the model's operating point, with the frame-level decision.

    Pixels with probability ``> threshold`` form the mask; a frame whose mask covers less than ``min_area`` of it
    is called polyp-free and its mask is emptied (the rule of :mod:`condseg_monai.metrics.detection`, applied at
    the mask's own resolution). The decision, the image-level score and the area before emptying are recorded in
    the image's metadata as ``polyp_present``, ``detection_score`` and ``predicted_area`` (and returned under the
    same keys), for the writers and for MONAI Label's result.

    Args:
        keys: key(s) of ``(1, H, W)`` probabilities.
        operating_point: the :class:`~condseg_monai.metrics.detection.OperatingPoint` (e.g. from
            :func:`~condseg_monai.inference.resolve_operating_point`).
        clear_below_min_area: empty the mask of frames called polyp-free (default); ``False`` keeps the pixels.
        allow_missing_keys: don't raise for missing keys.
    """

    def __init__(
        self,
        keys: KeysCollection = "pred",
        operating_point: OperatingPoint | None = None,
        clear_below_min_area: bool = True,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.operating_point = operating_point or OperatingPoint()
        self.clear_below_min_area = bool(clear_below_min_area)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        op = self.operating_point
        for key in self.key_iterator(d):
            prob = d[key]
            score = float(detection_score(prob, op.min_area)[0])
            # float64: a float32 comparison would round the threshold to the nearest float32 and so move pixels that
            # lie between the two across it (the evaluation and the decision compare with the exact threshold)
            mask = prob.double() > op.threshold
            present = score > op.threshold
            area = float(mask.float().mean())
            if not present and self.clear_below_min_area:
                mask = torch.zeros_like(mask)
            mask = mask.to(torch.float32)
            decision = {"polyp_present": bool(present), "detection_score": score, "predicted_area": area}
            if isinstance(mask, MetaTensor):
                mask.meta.update(decision)
            d[key] = mask
            d.update(decision)
        return d


class SaveOverlayd(MapTransform):
    """Write ``<output_dir>/<input stem>_<output_postfix>.png``: the input picture with the predicted contour.

    The original image is re-read from the file named in the mask's metadata (so it is drawn at full
    resolution and never resampled). The contour is drawn in green, about 1 px per 256 px of image size.

    Args:
        keys: key(s) of the binary ``(1, H, W)`` mask at the input's resolution (after ``Invertd``).
        output_dir: output folder (created when needed).
        output_postfix: file-name postfix.
        color: RGB contour colour in ``[0, 1]``.
        allow_missing_keys: don't raise for missing keys.
    """

    def __init__(
        self,
        keys: KeysCollection = "pred",
        output_dir: str | os.PathLike = "./",
        output_postfix: str = "overlay",
        color: tuple[float, float, float] = (0.0, 1.0, 0.0),
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.output_dir = Path(output_dir)
        self.output_postfix = output_postfix
        self.color = tuple(float(c) for c in color)
        self.loader = LoadImageRGB()

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            mask = d[key]
            source = _source_file(mask, key)
            image = torch.as_tensor(self.loader(source))
            mask_hw = torch.as_tensor(mask).detach().float().cpu().reshape(mask.shape[-2:])
            if tuple(mask_hw.shape) != tuple(image.shape[-2:]):
                raise ValueError(
                    f"'{key}' is {tuple(mask_hw.shape)} but '{source}' is {tuple(image.shape[-2:])}: "
                    "put SaveOverlayd after Invertd."
                )
            thickness = max(1, round(min(image.shape[-2:]) / 256))
            picture = overlay_contours(image, [mask_hw], colors=[self.color], thickness=thickness)
            save_png(picture, self.output_dir / f"{output_stem(source)}_{self.output_postfix}.png")
        return d


class ToMONAIAxesd(MapTransform):
    """Hand a 2D ``(H, W)`` prediction over in MONAI's PIL axis order ``(W, H)``, for MONAI Label.

    Our loaders keep image rows first (``(H, W)``); MONAI's ``PILReader`` (and so MONAI Label) uses ``(W, H)``.
    MONAI Label's writer transposes the prediction before writing it with ITK, and its ``Restored`` compares the
    prediction's last axis with the last entry of the image's ``spatial_shape``. This transform transposes the
    prediction and reverses ``spatial_shape`` in the reference image's metadata, so both steps see the layout they
    expect and the written mask has the input's orientation. Put it at the very end of the post-processing (after
    every saver): it only concerns consumers that follow MONAI's convention.

    Args:
        keys: key(s) of 2D ``(H, W)`` predictions (after ``SqueezeDimd``).
        ref_key: key of the input image whose metadata ``spatial_shape`` is reversed (``None``: leave it).
        allow_missing_keys: don't raise for missing keys.

    Raises:
        ValueError: a prediction that is not 2D.
    """

    def __init__(self, keys: KeysCollection = "pred", ref_key: str | None = "image", allow_missing_keys: bool = False):
        super().__init__(keys, allow_missing_keys)
        self.ref_key = ref_key

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            pred = d[key]
            if pred.ndim != 2:
                raise ValueError(f"'{key}' must be 2D (H, W) here (after SqueezeDimd), got shape {tuple(pred.shape)}.")
            d[key] = pred.T if isinstance(pred, np.ndarray) else pred.transpose(0, 1)
        ref = d.get(self.ref_key) if self.ref_key is not None else None
        if isinstance(ref, MetaTensor) and "spatial_shape" in ref.meta:
            shape = [int(v) for v in np.asarray(ref.meta["spatial_shape"]).reshape(-1)]
            ref.meta["spatial_shape"] = np.asarray(shape[:-2] + shape[-2:][::-1])
        return d
