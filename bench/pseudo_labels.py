# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""How good are a teacher's pseudo-labels? The bundle's confidence rule applied to labeled images it never trained on.

For every checkpoint (``--ckpt NAME=model.pt``, e.g. the teacher a semi-supervised bundle run saved) and every set
of labeled images (``--set NAME=FOLDER`` with ``images/`` + ``masks/``, or ``NAME=DATALIST.json:KEY``), the images
go through the bundle's evaluation transforms at ``--size`` and the network (the bundle's ``network_def``, with a
``bench/configs/<network>.json`` overlay for a MONAI baseline); a pixel gets a pseudo-label where the teacher is
confident, exactly as in training (:func:`condseg_monai.losses.pseudo_label`, ``max(p, 1 - p) >= --threshold``,
plus each class's most confident ``--class-balanced-fraction`` of the pixels of a batch of ``--batch-size`` images;
defaults: a semi-supervised run's, ``configs/semi_supervised.json`` over ``bundle/configs/train.json``, and 3 images,
the unlabeled batch of ``bench/label_efficiency.py``'s batches of 8). Reported per checkpoint and set (in %):

- ``confident``: share of all pixels with a pseudo-label (what the training log calls ``confident_fraction``);
- ``accuracy``: share of the pseudo-labels that agree with the mask;
- ``wrong``: share of all pixels trained on with a wrong label;
- ``fg_pseudo`` / ``fg_true``: share of the confident pixels that the pseudo-label / the mask calls polyp.

Usage (the diagnostic of docs/benchmarks.md, "A hospital's own frames")::

    python bench/pseudo_labels.py --network basic_unet --size 64 --out runs/pseudo_labels \\
        --ckpt seed0=runs/le_harness/basic_unet64_target/runs/basic_unet_semi_f0.1_seed0/stage2/model.pt \\
        --set kvasir_test=runs/le_harness/basic_unet64_target/full.json:test \\
              target_frames=runs/le_harness/basic_unet64_target/target/train
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import harness  # bench/ is sys.path[0] when run as a script
import torch

from condseg_monai.data import load_datalist
from condseg_monai.engines import unlabeled_batch_size
from condseg_monai.losses import mask_logits, pseudo_label
from condseg_monai.transforms import condseg_eval_transforms

__all__ = ["RULE_SETTINGS", "main", "pseudo_label_quality", "read_set", "semi_defaults"]

# the bundle settings that decide which pixels get a pseudo-label
RULE_SETTINGS = ("confidence_threshold", "class_balanced_fraction", "background_fraction")


def read_set(spec: str, out: Path, name: str) -> list[dict[str, Any]]:
    """The labeled images of ``FOLDER`` (``images/`` + ``masks/``) or ``DATALIST.json:KEY`` (``training``,
    ``validation`` or ``test``).

    Raises:
        ValueError: no such folder / datalist / split, an empty split, or an entry without a mask.
    """
    if ":" in spec and spec.split(":", 1)[0].endswith(".json"):
        path, key = spec.split(":", 1)
        try:  # the product's reader: paths relative to the datalist's folder become absolute
            entries = load_datalist(path, key, required=True)
        except (FileNotFoundError, ValueError) as e:
            raise ValueError(f"set '{name}': {e}") from e
    else:
        if not (Path(spec) / "images").is_dir():
            raise ValueError(f"'{spec}' is neither a DATALIST.json:KEY nor a folder with images/ and masks/.")
        entries = json.loads(harness.folder_datalist(Path(spec), out, name).read_text())["test"]
    missing = [e["image"] for e in entries if not e.get("label")]
    if missing:
        raise ValueError(f"set '{name}': {len(missing)} images without a mask, e.g. '{missing[0]}'.")
    return [{"image": e["image"], "label": e["label"]} for e in entries]


@torch.no_grad()
def pseudo_label_quality(
    network: torch.nn.Module,
    entries: Sequence[Mapping[str, Any]],
    size: int,
    threshold: float,
    batch_size: int = 16,
    class_balanced_fraction: float | None = None,
    background_fraction: float | None = None,
) -> dict[str, float]:
    """Confident share, accuracy and foreground shares (fractions in [0, 1]) of ``network``'s pseudo-labels.

    The quotas count per batch of ``batch_size`` images, as in training.
    """
    prep = condseg_eval_transforms(size, track_meta=False)
    network.eval()
    counts = dict.fromkeys(("pixels", "confident", "correct", "fg_pseudo", "fg_true"), 0)
    for start in range(0, len(entries), batch_size):
        items = [prep(dict(e)) for e in entries[start : start + batch_size]]
        image = torch.stack([i["image"] for i in items])
        truth = torch.stack([i["label"] for i in items]) > 0.5
        logits = mask_logits(network(image))
        target, confident = pseudo_label(logits, threshold, class_balanced_fraction, background_fraction)
        confident, target = confident > 0.5, target > 0.5
        counts["pixels"] += confident.numel()
        counts["confident"] += int(confident.sum())
        counts["correct"] += int((confident & (target == truth)).sum())
        counts["fg_pseudo"] += int((confident & target).sum())
        counts["fg_true"] += int((confident & truth).sum())
    used = max(counts["confident"], 1)
    return {
        "images": len(entries),
        "confident": counts["confident"] / counts["pixels"],
        "accuracy": counts["correct"] / used,
        "wrong": (counts["confident"] - counts["correct"]) / counts["pixels"],
        "fg_pseudo": counts["fg_pseudo"] / used,
        "fg_true": counts["fg_true"] / used,
    }


def semi_defaults() -> dict[str, Any]:
    """The pseudo-label settings (``RULE_SETTINGS``) of a semi-supervised bundle run with its defaults
    (``configs/semi_supervised.json`` over ``bundle/configs/train.json``)."""
    train = json.loads((harness.REPO / "bundle" / "configs" / "train.json").read_text())
    settings = {**train, **json.loads((harness.REPO / "configs" / "semi_supervised.json").read_text())}
    return {key: settings[key] for key in RULE_SETTINGS}


def _network(name: str, ckpt: Path) -> torch.nn.Module:
    network = harness.bundle_components(2, ("network_def",), {"use_checkpoint": False}, network=name)["network_def"]
    state = torch.load(ckpt, map_location="cpu", weights_only=True)
    network.load_state_dict(state.get("model", state))
    return network


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ckpt", nargs="+", required=True, metavar="NAME=MODEL.PT")
    parser.add_argument("--set", nargs="+", required=True, metavar="NAME=FOLDER|DATALIST.json:KEY", dest="sets")
    parser.add_argument("--network", default="condseg", choices=harness.NETWORKS)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--threshold", type=float, default=None, help="default: the semi-supervised run's")
    parser.add_argument("--class-balanced-fraction", type=float, default=None, help="default: the run's")
    parser.add_argument("--background-fraction", type=float, default=None, help="default: the run's")
    parser.add_argument("--batch-size", type=int, default=unlabeled_batch_size(8), help="unlabeled images per batch")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    defaults = semi_defaults()
    threshold = defaults["confidence_threshold"] if args.threshold is None else args.threshold
    fractions = {}
    for key in ("class_balanced_fraction", "background_fraction"):
        value = getattr(args, key)
        fractions[key] = defaults[key] if value is None else value
        if fractions[key] is not None and not 0 < fractions[key] <= 1:
            parser.error(f"--{key.replace('_', '-')} must be in (0, 1], got {fractions[key]}.")
    if not 0.5 <= threshold <= 1:
        parser.error(f"--threshold must be in [0.5, 1], got {threshold}.")
    if args.batch_size < 1:
        parser.error(f"--batch-size must be >= 1, got {args.batch_size}.")
    args.out.mkdir(parents=True, exist_ok=True)
    try:
        ckpts = harness.parse_pairs(args.ckpt, "--ckpt")
        sets = {n: read_set(s, args.out, n) for n, s in harness.parse_pairs(args.sets, "--set").items()}
    except ValueError as e:
        parser.error(str(e))
    for name, path in ckpts.items():
        if not Path(path).is_file():
            parser.error(f"--ckpt {name}: '{path}' does not exist.")
    results = {c: {s: pseudo_label_quality(_network(args.network, Path(p)), e, args.size, threshold, args.batch_size,
                                           **fractions)
                   for s, e in sets.items()} for c, p in ckpts.items()}  # fmt: skip
    head = "| checkpoint | set | images | confident | accuracy | wrong | fg_pseudo | fg_true |"
    rule = (
        f"Threshold {threshold}, class-balanced fraction {fractions['class_balanced_fraction']}, background fraction"
        f" {fractions['background_fraction']}, batches of {args.batch_size}."
    )
    lines = [rule, "", head, "|" + "---|" * 8]
    for c, per_set in results.items():
        for s, r in per_set.items():
            cells = [f"{100 * r[k]:.1f}" for k in ("confident", "accuracy")] + [f"{100 * r['wrong']:.2f}"]
            cells += [f"{100 * r[k]:.1f}" for k in ("fg_pseudo", "fg_true")]
            lines.append(f"| {c} | {s} | {r['images']} | " + " | ".join(cells) + " |")
    settings = {"threshold": threshold, **fractions, "batch_size": args.batch_size}
    harness.write_results({**settings, "results": results}, args.out / "results.json")
    (args.out / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
