# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""Derive the MONAI Label "uncertainty" model folder from the main bundle (one source of truth).

MONAI Label 0.8.5 reads one ``configs/inference.json`` per model folder and returns one label map per model, so an
uncertainty map is served as a second model entry (e.g. ``polyp_condseg_uncertainty``). That folder is
*generated* from the main bundle's ``configs/{metadata,inference}.json``: only settings are patched
(``save_uncertainty: true``, ``uncertainty_map``, ``label_output: "uncertainty"``, ``threshold``; the output
``channel_def`` becomes ``{"0": "background", "1": "uncertain"}``), and ``models/model.pt`` is a relative symlink
to the main bundle's weights, so a fine-tune of the main entry updates both. There is no ``train.json``, so MONAI
Label creates no trainer for it.

What the served map means (``uncertainty_map``, :data:`~condseg_monai.metrics.uncertainty_scores.UNCERTAINTY_MAPS`):

- ``"flip_disagreement"`` (default): ``flip_disagreement_map > threshold``, where the map is twice the per-pixel
  standard deviation of the mask probability over the four flip passes (identity, horizontal, vertical, both;
  :func:`~condseg_monai.metrics.uncertainty_scores.flip_disagreement_map`). A pixel is marked where the prediction
  changes when the picture is flipped; the image mean of this map found failures better than chance (AUROC 0.65,
  ``docs/benchmarks.md``, "Active learning"). At the default 0.5, one confident pass of four against the other
  three (0.87) or an even split (1) is marked; small wobbles of the probability are not. It costs four forward
  passes per image;
- ``"sid"``: ``sigmoid(M_uc) > threshold``, ConDSeg's SID "uncertainty" head. The head has no target; it is
  trained only by the weak complementarity loss (one of the foreground / background / uncertainty maps should
  dominate each pixel), so the map is a learned region, not an uncertainty, and its image mean did not find
  failures (AUROC 0.50 in the same benchmark).

Neither is a calibrated error probability: use the region to decide where to look twice.

Command line::

    python -m condseg_monai.apps.monailabel.uncertainty_bundle --bundle bundle --out DIR [--map sid]

with ``DIR`` the MONAI Label model folder, e.g. ``apps/monaibundle/model/polyp_condseg_uncertainty``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from condseg_monai.files import atomic_write_json
from condseg_monai.metrics.uncertainty_scores import UNCERTAINTY_MAPS, check_uncertainty_map

__all__ = [
    "DEFAULT_UNCERTAINTY_MAP",
    "DEFAULT_UNCERTAINTY_MODEL",
    "UNCERTAINTY_LABEL",
    "main",
    "make_uncertainty_bundle",
    "uncertainty_inference_config",
    "uncertainty_metadata",
]

logger = logging.getLogger(__name__)

DEFAULT_UNCERTAINTY_MODEL = "polyp_condseg_uncertainty"
UNCERTAINTY_LABEL = "uncertain"

DEFAULT_UNCERTAINTY_MAP = "flip_disagreement"

# settings of bundle/configs/inference.json this generator relies on (label_output selects the served map,
# uncertainty_map which map it is)
_REQUIRED_SETTINGS = ("label_output", "save_uncertainty", "uncertainty_map", "threshold")

# per map: (display name suffix, what a served pixel means, what the map is and is not)
_MAP_TEXTS: dict[str, tuple[str, str, str]] = {
    "flip_disagreement": (
        "flip disagreement region",
        "the flip disagreement map",
        "the flip disagreement map of the model: twice the per-pixel standard deviation of its mask probability over "
        "four flip passes (identity, horizontal, vertical, both). It marks where the prediction changes when the "
        "picture is flipped, i.e. where the segmentation might be wrong (its image mean found failures with AUROC "
        "0.65 in the project's benchmark); it runs the network four times per image. It is not a calibrated error "
        "probability, and a model can be consistently wrong.",
    ),
    "sid": (
        "SID uncertainty region",
        "sigmoid(M_uc)",
        "the SID map of ConDSeg, sigmoid(M_uc). The uncertainty head has no target and is trained only by the weak "
        "complementarity loss, so the region is a learned map, not an uncertainty and not a failure detector "
        "(AUROC 0.50 in the project's benchmark).",
    ),
}
# files copied unchanged when present (configs other than these two and train/evaluate configs are not needed)
_COPIED = (Path("configs", "logging.conf"), Path("LICENSE"))


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ValueError(f"bundle_dir: {path} does not exist.")
    with open(path, encoding="utf-8") as f:
        content = json.load(f)
    if not isinstance(content, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(content).__name__}.")
    return content


def _check_threshold(threshold: float) -> float:
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)):
        raise TypeError(f"threshold must be a number, got {type(threshold).__name__}.")
    if not 0.0 < float(threshold) < 1.0:
        raise ValueError(f"threshold must lie in (0, 1) (it applies to the uncertainty map), got {threshold}.")
    return float(threshold)


def uncertainty_inference_config(
    inference: dict[str, Any], threshold: float = 0.5, uncertainty_map: str = DEFAULT_UNCERTAINTY_MAP
) -> dict[str, Any]:
    """Patch the settings of a main-bundle ``inference.json`` so that ``pred`` is the binarised uncertainty map.

    Args:
        inference: the parsed main ``configs/inference.json`` (not modified).
        threshold: threshold on the uncertainty map, in ``(0, 1)``.
        uncertainty_map: which map, one of :data:`~condseg_monai.metrics.uncertainty_scores.UNCERTAINTY_MAPS`.

    Returns:
        A new config: ``save_uncertainty`` true (the inferer returns the map), ``uncertainty_map`` set,
        ``label_output`` ``"uncertainty"`` (the postprocessing moves the map into ``pred`` after ``Invertd``) and
        ``threshold`` set. Everything else is unchanged.

    Raises:
        ValueError: the config lacks one of the settings ``label_output``, ``save_uncertainty``,
            ``uncertainty_map``, ``threshold`` (an older bundle), or ``uncertainty_map`` is unknown.
    """
    missing = [k for k in _REQUIRED_SETTINGS if k not in inference]
    if missing:
        raise ValueError(
            f"inference.json has no setting(s) {missing}: the uncertainty entry needs a bundle whose postprocessing "
            "selects its output with 'label_output' and its map with 'uncertainty_map' "
            "(see bundle/configs/inference.json)."
        )
    patched = dict(inference)
    patched.update(
        save_uncertainty=True,
        uncertainty_map=check_uncertainty_map(uncertainty_map),
        label_output="uncertainty",
        threshold=_check_threshold(threshold),
    )
    return patched


def uncertainty_metadata(
    metadata: dict[str, Any],
    name: str | None = None,
    threshold: float = 0.5,
    uncertainty_map: str = DEFAULT_UNCERTAINTY_MAP,
) -> dict[str, Any]:
    """Patch a main-bundle ``metadata.json`` for the uncertainty entry: labels ``background`` / ``uncertain``.

    Args:
        metadata: the parsed main ``configs/metadata.json`` (not modified).
        name: the bundle's display ``name``; default ``"<main name> - <map> region"``.
        threshold: the threshold on the map, quoted in the descriptions.
        uncertainty_map: the served map, one of :data:`~condseg_monai.metrics.uncertainty_scores.UNCERTAINTY_MAPS`
            (the descriptions say what it is).

    Returns:
        A new metadata dict whose ``network_data_format.outputs.pred.channel_def`` is
        ``{"0": "background", "1": "uncertain"}`` (MONAI Label's label names) and whose texts describe the map.

    Raises:
        ValueError: the metadata has no ``network_data_format.outputs.pred``, or ``uncertainty_map`` is unknown.
    """
    suffix, value, meaning = _MAP_TEXTS[check_uncertainty_map(uncertainty_map)]
    patched = json.loads(json.dumps(metadata))  # deep copy of plain JSON
    try:
        pred = patched["network_data_format"]["outputs"]["pred"]
    except (KeyError, TypeError) as e:
        raise ValueError("metadata.json has no network_data_format.outputs.pred.") from e
    pred["channel_def"] = {"0": "background", "1": UNCERTAINTY_LABEL}
    base = str(metadata.get("name", "ConDSeg"))
    patched["name"] = name if name is not None else f"{base} - {suffix}"
    patched["description"] = (
        f"Second view of '{base}' for MONAI Label: {value} > {threshold}, written back at the input's original "
        f"resolution. It shares the weights of the segmentation model. The map is {meaning} Use the region to decide "
        "where to look twice. Generated by condseg_monai.apps.monailabel.uncertainty_bundle; do not edit by hand."
    )
    patched["pred_classes"] = f"single channel: 1 where {value} > {threshold} (uncertain), 0 elsewhere"
    return patched


def _link_weights(source: Path, target: Path, copy: bool) -> str:
    """Point ``target`` at ``source`` with a relative symlink (or copy it); returns what was done."""
    if target.is_symlink() or target.exists():
        target.unlink()
    target.parent.mkdir(parents=True, exist_ok=True)
    if not copy:
        # abspath, not resolve(): keep a linked main bundle's own path (model/<main>/...), so the link follows it
        relative = os.path.relpath(os.path.abspath(source), os.path.abspath(target.parent))
        try:
            target.symlink_to(relative)
            if not source.exists():
                logger.warning(
                    "%s -> %s: the source has no weights yet (dangling link until it is trained).", target, relative
                )
            return f"symlink -> {relative}"
        except OSError as e:  # e.g. Windows without the symlink privilege
            logger.warning("cannot symlink %s (%s): copying the weights instead.", target, e)
    if not source.is_file():
        logger.warning("%s does not exist: %s left without weights.", source, target)
        return "no weights (source missing)"
    shutil.copy2(source, target)
    return "copy"


def make_uncertainty_bundle(
    bundle_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    name: str | None = None,
    threshold: float = 0.5,
    copy_weights: bool = False,
    uncertainty_map: str = DEFAULT_UNCERTAINTY_MAP,
) -> Path:
    """Write the MONAI Label uncertainty model folder derived from the bundle at ``bundle_dir``.

    Layout of ``out_dir``: ``configs/metadata.json`` and ``configs/inference.json`` (patched copies, see
    :func:`uncertainty_metadata` and :func:`uncertainty_inference_config`), ``configs/logging.conf`` and
    ``LICENSE`` when the source has them, and ``models/model.pt``: a relative symlink to
    ``<bundle_dir>/models/model.pt`` (created even when the source has no weights yet, with a warning), or a copy
    with ``copy_weights=True`` or where symlinks are impossible. Files from an earlier run are replaced; a
    ``configs/train.json`` left in ``out_dir`` is removed so that MONAI Label gives the entry no trainer.

    Args:
        bundle_dir: the main bundle folder (with ``configs/inference.json`` and ``configs/metadata.json``).
        out_dir: the folder to write, e.g. ``<app>/model/polyp_condseg_uncertainty`` (its name is the model name
            in MONAI Label).
        name: display ``name`` in the metadata (default derived from the main bundle's name and the map).
        threshold: threshold on the uncertainty map, in ``(0, 1)``.
        copy_weights: copy ``models/model.pt`` instead of linking it (the copy does not follow fine-tuning).
        uncertainty_map: the served map: ``"flip_disagreement"`` (default, any network) or ``"sid"`` (ConDSeg's
            SID head, a learned region map).

    Returns:
        ``out_dir`` as a ``Path``.

    Raises:
        ValueError: ``bundle_dir`` lacks the configs, ``out_dir`` is ``bundle_dir``, the configs lack the
            needed settings, or ``uncertainty_map`` is unknown.
    """
    src, out = Path(bundle_dir), Path(out_dir)
    if not src.is_dir():
        raise ValueError(f"bundle_dir: {src} is not a folder.")
    if out.resolve() == src.resolve():
        raise ValueError(f"out_dir must differ from bundle_dir ({src}): the main bundle is never modified.")
    inference = uncertainty_inference_config(_read_json(src / "configs" / "inference.json"), threshold, uncertainty_map)
    metadata = uncertainty_metadata(
        _read_json(src / "configs" / "metadata.json"), name, inference["threshold"], inference["uncertainty_map"]
    )

    atomic_write_json(out / "configs" / "inference.json", inference, indent=4)
    atomic_write_json(out / "configs" / "metadata.json", metadata, indent=4)
    for relative in _COPIED:
        if (src / relative).is_file():
            (out / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src / relative, out / relative)
    for trainer_config in ("train.json", "train.yaml", "multi_gpu_train.json", "multi_gpu_train.yaml"):
        (out / "configs" / trainer_config).unlink(missing_ok=True)
    how = _link_weights(src / "models" / "model.pt", out / "models" / "model.pt", copy_weights)
    logger.info("uncertainty model folder written to %s (models/model.pt: %s).", out, how)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``python -m condseg_monai.apps.monailabel.uncertainty_bundle --bundle bundle --out DIR``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", required=True, type=Path, help="main bundle folder (e.g. bundle)")
    parser.add_argument(
        "--out",
        required=True,
        type=Path,
        help=f"folder to write, e.g. apps/monaibundle/model/{DEFAULT_UNCERTAINTY_MODEL}",
    )
    parser.add_argument("--name", default=None, help="display name in metadata.json (default: derived)")
    parser.add_argument(
        "--map",
        dest="uncertainty_map",
        choices=UNCERTAINTY_MAPS,
        default=DEFAULT_UNCERTAINTY_MAP,
        help=f"the served map (default {DEFAULT_UNCERTAINTY_MAP}; sid: ConDSeg's SID head, a learned region map)",
    )
    parser.add_argument("--threshold", type=float, default=0.5, help="threshold on the map (default 0.5)")
    parser.add_argument("--copy", action="store_true", help="copy models/model.pt instead of a relative symlink")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        out = make_uncertainty_bundle(
            args.bundle, args.out, args.name, args.threshold, args.copy, uncertainty_map=args.uncertainty_map
        )
    except (ValueError, TypeError, OSError) as e:
        parser.error(str(e))
    print(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
