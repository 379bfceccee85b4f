# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""Label efficiency through the bundle: supervised on a labeled subset, semi-supervised with the unlabeled rest,
the control without the unlabeled loss, and all labels.

Every arm is the bundle's own training workflow (:mod:`harness`: ``python -m monai.bundle run training``; ConDSeg
with both stage configs, MONAI BasicUNet with ``bench/configs/basic_unet.json``) with its shipped defaults; the arms
differ only in the datalist and the semi-supervised overlay:

- ``sup``: the labeled subset only (``prepare folder --labeled-fraction F``: ``floor(F x n + 0.5)`` of the ``n``
  training pairs, seeded by ``--split-seed``; the other training images become the datalist's ``unlabeled``);
- ``semi``: the same datalist with ``configs/semi_supervised.json`` as shipped (Stage 1: clean / strong-view
  consistency on the unlabeled images; Stage 2 and BasicUNet: mean teacher; the saved model is the teacher);
- ``semi_off``: the control: ``semi`` with ``--unsupervised_weight 0``, i.e. the same trainer, teacher and teacher
  selection without any loss on the unlabeled images (what the unlabeled images add, not the weight averaging);
- ``full``: every training pair labeled (the ceiling at this budget).

``--target FOLDER`` is a hospital's own frames (``images/`` + ``masks/``, ids consecutive within a video sequence,
e.g. CVC-ClinicDB): it is cut once into two blocks of whole sequences (:func:`split_by_sequence`), the first the
hospital's unlabeled frames, the second its evaluation set (reported as the ``target`` set), and two arms more:

- ``semi_target``: ``semi`` with the target's unlabeled frames added to the unlabeled pool (the recipe for a team
  adapting the model to its own hospital);
- ``target_labels``: ``sup`` with the target's first block *labeled* (what annotating them would give: the ceiling
  of the adaptation).

``--target-validation N`` sets the last whole sequences of the target's first block (``N`` to ``2N`` frames) aside,
labeled, and adds them to every arm's validation split: the bundle then selects on the hospital's frames too, as
the recipe in docs/training.md tells a hospital to do (they are neither trained on nor reported).

``--known-negatives FOLDER`` is a hospital's polyp-free frames used as what they are, frames known to hold nothing:
a seeded ``--known-negatives-count`` of them (:func:`split_negatives`) go into the datalist as declared negatives
(``prepare --negatives-dir``: empty masks, a fifth in validation, so the bundle's selection scores them too), the
rest is evaluated as the ``polyp_free_heldout`` set (false alarms on frames never trained on); arms:

- ``sup_neg``, ``semi_neg``, ``semi_off_neg``, ``semi_target_neg``: the arm of that name on its datalist plus the
  known negatives (``--negatives-per-batch``: the bundle's ``negatives_per_batch``, how many of each labeled batch
  are negatives).

``--unlabeled-dir`` adds another source of unlabeled images (``prepare --unlabeled-dir``, e.g. a hospital's own
frames); ``--negatives-dir`` adds polyp-free frames to that pool as plain unlabeled images (what a hospital's
unlabeled pool is mostly made of).

Every arm of a network and seed runs the same number of iterations (``--steps``; ConDSeg: ``--stage1-steps`` more
in Stage 1), batch size and seed. The bundle selects its model on the validation split (``model.pt``: best
validation mIoU, every ``--eval-every`` iterations); it is reported on the test split (``--test-count`` images
never used for training or selection: the paper's metrics, clean and under the robustness corruptions at
``--severities``) and on every ``--cross NAME=FOLDER`` set (another hospital's frames: mIoU and per-frame
sensitivity; polyp-free frames: false alarms), all by the bundle's ``evaluating`` / ``robustness`` runs.

Results go to ``--out`` (``results.json``, rewritten after every run, so an interrupted benchmark continues where
it stopped; ``results.md``); ``label_efficiency.py merge DIR [DIR ...] --out OUT`` makes one table of runs made
side by side into several ``--out`` folders with the same settings; ``label_efficiency.py rescore DIR [DIR ...]``
re-reads each run's kept reports (nothing trained or evaluated again) into ``results.json``, e.g. after a column was
added. Besides the per-set columns, the tables give the mean share of a polyp-free frame the model marks (the size
of its false alarms) and the AUROC of the image-level score between each polyp set and each polyp-free set (pooled
frames; :func:`collect_cross`). Usage::

    python bench/label_efficiency.py --data ../shared/data/kvasir-seg --out runs/label_efficiency/kvasir64 \\
        --models condseg basic_unet --fractions 0.1 --arms sup semi semi_off full --seeds 0 1 2 \\
        --size 64 --stage1-steps 200 --steps 400 --eval-every 50 \\
        --cross cvc=../shared/data/cvc-clinicdb polyp_free=../shared/data/polyp-free
"""

from __future__ import annotations

import argparse
import json
import math
import random
import shutil
import statistics
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import harness  # bench/ is sys.path[0] when run as a script

__all__ = [
    "ARMS",
    "arm_spec",
    "collect_cross",
    "gap_closed",
    "main",
    "merge",
    "rescore",
    "split_by_sequence",
    "split_negatives",
    "summarise",
]

# <arm>_neg: <arm> on its datalist plus the known negatives (--known-negatives)
NEGATIVE_ARMS = ("sup_neg", "semi_neg", "semi_off_neg", "semi_target_neg")
ARMS = ("sup", "semi", "semi_off", "full", "semi_target", "target_labels", *NEGATIVE_ARMS)
TARGET_ARMS = ("semi_target", "target_labels", "semi_target_neg")
SEMI_ARMS = ("semi", "semi_off", "semi_target")  # and their _neg arms
HELDOUT_NEGATIVES = "polyp_free_heldout"  # the cross set of the known-negatives frames not trained on
LABELS = {"condseg": "ConDSeg (Stage 1 + 2)", "basic_unet": "MONAI BasicUNet"}
SEMI_CONFIG = harness.REPO / "configs" / "semi_supervised.json"
# bundle settings the semi arms may override (--unlabeled-batch-size, ...)
SEMI_SETTINGS = (
    "unlabeled_batch_size",
    "confidence_threshold",
    "class_balanced_fraction",
    "background_fraction",
    "unsupervised_dice_weight",
    "unsupervised_weight",
    "cutmix",
    "ema_decay",
)


def arm_spec(arm: str, network: str, seed: int, args: argparse.Namespace) -> harness.TrainSpec:
    """The bundle settings of one arm (everything but the datalist)."""
    if arm not in ARMS:
        raise ValueError(f"arm must be one of {ARMS}, got {arm!r}.")
    base = arm.removesuffix("_neg")
    semi = base in SEMI_ARMS
    overrides: dict[str, Any] = {"feature_size": args.feature_size}
    for key in SEMI_SETTINGS:  # getattr: Namespaces built before an option existed
        if semi and getattr(args, key, None) is not None:
            overrides[key] = getattr(args, key)
    if arm in NEGATIVE_ARMS and getattr(args, "negatives_per_batch", None) is not None:
        overrides["negatives_per_batch"] = args.negatives_per_batch
    if base == "semi_off":
        overrides["unsupervised_weight"] = 0.0
    return harness.TrainSpec(
        network=network,
        iterations=args.steps,
        stage1_iterations=args.stage1_steps,
        eval_every=args.eval_every,
        image_size=args.size,
        batch_size=args.batch_size,
        seed=seed,
        configs=[str(SEMI_CONFIG)] if semi else [],
        overrides=overrides,
    )


def collect_cross(run_dir: Path, names: Sequence[str]) -> dict[str, Any]:
    """The frame-level results of one run's ``eval_<name>`` reports: ``cross`` (per set,
    :func:`harness.read_detection`) and ``auroc`` (``"<polyp set> vs <polyp-free set>"``: the AUROC of the bundle's
    image-level score over both sets' frames pooled, :func:`harness.pooled_detection`; a ranking of frames that no
    operating point changes, so it separates models even where all of them alarm on every polyp-free frame)."""
    cross = {
        s: harness.read_detection(json.loads((run_dir / f"eval_{s}" / "evaluation_summary.json").read_text()))
        for s in names
    }
    polyp = [s for s in names if cross[s]["sensitivity"] is not None]
    free = [s for s in names if cross[s]["sensitivity"] is None and cross[s]["specificity"] is not None]
    csv = {s: run_dir / f"eval_{s}" / "evaluation_per_image.csv" for s in names}
    auroc = {f"{p} vs {n}": harness.pooled_detection([csv[p], csv[n]])["auroc"] for p in polyp for n in free}
    return {"cross": cross, "auroc": auroc}


def rescore(out: Path) -> Path:
    """Re-read every run of ``out/results.json`` from its kept reports (``out/runs/<run>/eval_*``; nothing is trained
    or evaluated again): results written before a column existed get it."""
    path = out / "results.json"
    data = json.loads(path.read_text())
    for run in data["runs"]:
        name = f"{run['network']}_{run['arm']}_f{run['fraction']:g}_seed{run['seed']}"
        run.update(collect_cross(out / "runs" / name, list(run["cross"])))
    harness.write_results(data, path)
    (out / "results.md").write_text(summarise(data["runs"]) + "\n")
    return out / "results.md"


def gap_closed(sup: float, semi: float, full: float) -> float | None:
    """Share of the supervised arm's gap to all labels that the semi-supervised arm closes (``None``: no gap)."""
    gap = full - sup
    return (semi - sup) / gap if gap > 0 else None


def _mean(values: Sequence[float | None]) -> float | None:
    vals = [v for v in values if v is not None and math.isfinite(v)]
    return statistics.fmean(vals) if vals else None


def summarise(runs: Sequence[Mapping[str, Any]]) -> str:
    """Markdown tables per network and labeled fraction: mean ± sample std over seeds (in %) of every arm, and the
    share of the in-domain gap to all labels the semi-supervised arm closes (means over seeds)."""
    lines: list[str] = []
    for network in sorted({r["network"] for r in runs}, key=lambda n: (n != "condseg", n)):
        for fraction in sorted({r["fraction"] for r in runs if r["network"] == network and r["arm"] != "full"}):
            rows = [r for r in runs if r["network"] == network and (r["fraction"] == fraction or r["arm"] == "full")]
            sets = sorted({s for r in rows for s in r["cross"]})
            free = {s for s in sets if all(r["cross"][s]["sensitivity"] is None for r in rows if s in r["cross"])}
            pairs = sorted({p for r in rows for p in r.get("auroc", {})})
            head = ["arm", "seeds", "test mIoU", "test mDSC", "corruption drop"]
            for s in sets:
                head += [f"{s} false alarms", f"{s} marked area"] if s in free else [f"{s} mIoU", f"{s} sensitivity"]
            head += [f"AUROC {p}" for p in pairs]
            head.append("s / iteration")
            lines += ["", f"**{LABELS.get(network, network)}, {100 * fraction:g} % labels**", ""]
            lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
            by_arm = {a: [r for r in rows if r["arm"] == a] for a in ARMS}
            for arm, rs in by_arm.items():
                if not rs:
                    continue
                cells = [arm, str(len(rs))]
                cells += [harness.mean_std([r["test"]["clean"][m] for r in rs]) for m in ("iou", "dice")]
                drops = [
                    statistics.fmean(v["iou"] - r["test"]["clean"]["iou"] for k, v in r["test"].items() if k != "clean")
                    for r in rs
                    if len(r["test"]) > 1
                ]
                cells.append(harness.mean_std(drops))
                for s in sets:
                    got = [r["cross"][s] for r in rs if s in r["cross"]]
                    if s in free:
                        alarms = [None if g["specificity"] is None else 1 - g["specificity"] for g in got]
                        cells += [harness.mean_std(alarms), harness.mean_std([g.get("polyp_free_area") for g in got])]
                    else:
                        cells += [harness.mean_std([g[m] for g in got]) for m in ("iou", "sensitivity")]
                for p in pairs:
                    cells.append(harness.mean_std([r.get("auroc", {}).get(p) for r in rs]))
                cells.append(f"{statistics.fmean(r['seconds_per_iteration'] for r in rs):.2f}")
                lines.append("| " + " | ".join(cells) + " |")
            means = {a: _mean([r["test"]["clean"]["iou"] for r in rs]) for a, rs in by_arm.items()}
            if all(means.get(a) is not None for a in ("sup", "semi", "full")):
                share = gap_closed(means["sup"], means["semi"], means["full"])
                text = "no gap (all labels not above the subset)" if share is None else f"{100 * share:.0f} %"
                lines += ["", f"In-domain gap to all labels closed by `semi` (test mIoU, means over seeds): {text}."]
    return "\n".join(lines).strip()


def _frames(folder: Path) -> list[Path]:
    """The images of ``folder/images`` in frame order (numeric stems sort by value: ``2`` before ``10``)."""
    images = (p for p in (folder / "images").iterdir() if p.suffix.lower() in harness.IMAGE_SUFFIXES)
    return sorted(images, key=lambda p: (len(p.stem), p.stem))


def split_by_sequence(folder: Path, out: Path, validation: int = 0) -> dict[str, Path]:
    """Cut a folder of video frames (numeric stems, consecutive within a sequence) into blocks of whole sequences.

    The cut is the largest change between consecutive frames (mean absolute difference of 32 x 32 grey thumbnails)
    within the middle third of the frames: a change of sequence, so no sequence has frames on both sides. With
    ``validation`` > 0 the first block's last sequences (``validation`` to ``2 x validation`` frames, cut the same
    way) are set aside as the hospital's labeled validation frames.

    Returns:
        ``{"unlabeled": flat folder of the first block's images, "train": folder (images/, masks/) of the first
        block, "eval": folder of the second block}`` and, with ``validation``, ``"validation"`` (images/, masks/)
        (symbolic links under ``out``), written once.

    Raises:
        ValueError: ``out`` holds a split made with another ``validation``, or the first block is too short.
    """
    import numpy as np
    from PIL import Image

    dirs = {"unlabeled": out / "unlabeled", "train": out / "train", "eval": out / "eval"}
    if validation:
        dirs["validation"] = out / "validation"
    if (out / "split.json").is_file():  # written once: the folder is not read again
        made_with = json.loads((out / "split.json").read_text()).get("validation", 0)
        if made_with != validation:
            raise ValueError(f"'{out}' holds a split with {made_with} validation frames, not {validation}.")
        return dirs
    images = _frames(folder)
    masks = {p.stem: p for p in (folder / "masks").iterdir()}
    thumbs = [np.asarray(Image.open(p).convert("L").resize((32, 32)), dtype=np.float32) for p in images]
    diffs = [float(np.abs(a - b).mean()) for a, b in zip(thumbs, thumbs[1:])]  # diffs[i]: frame i -> i + 1
    lo, hi = len(images) // 3, 2 * len(images) // 3
    cut = max(range(lo, hi), key=lambda i: diffs[i]) + 1
    val_cut = cut
    if validation:  # the validation frames: val_cut..cut, between validation and 2 x validation frames
        if cut - 2 * validation < 1:
            raise ValueError(f"the first block has {cut} frames: too few for {validation} validation frames.")
        val_cut = max(range(cut - 2 * validation - 1, cut - validation), key=lambda i: diffs[i]) + 1
    blocks = {"train": images[:val_cut], "eval": images[cut:], "validation": images[val_cut:cut]}
    for name in dirs.keys() - {"unlabeled"}:
        for sub in ("images", "masks"):
            (dirs[name] / sub).mkdir(parents=True, exist_ok=True)
        for img in blocks[name]:
            (dirs[name] / "images" / img.name).symlink_to(img.resolve())
            (dirs[name] / "masks" / masks[img.stem].name).symlink_to(masks[img.stem].resolve())
    dirs["unlabeled"].mkdir(parents=True, exist_ok=True)
    for img in blocks["train"]:
        (dirs["unlabeled"] / img.name).symlink_to(img.resolve())
    record = {"cut_before": images[cut].name, "first_block": cut, "second_block": len(images) - cut}
    if validation:
        record |= {"validation": validation, "validation_frames": [p.name for p in blocks["validation"]]}
    (out / "split.json").write_text(json.dumps({**record, "change_at_cut": diffs[cut - 1]}))
    return dirs


def split_negatives(folder: Path, count: int, seed: int, out: Path) -> dict[str, Path]:
    """Split a folder of polyp-free frames (``folder/images``) into ``count`` frames to train on and the rest.

    A seeded sample (``random.Random(seed)``), so every arm and seed of a benchmark trains on the same frames.

    Returns:
        ``{"train": folder of the sampled frames' images/, "heldout": folder of the others' images/}`` (symbolic
        links under ``out``, written once; ``out/split.json`` records the sample).

    Raises:
        ValueError: ``count`` leaves no frame on one side.
    """
    images = _frames(folder)
    if not 0 < count < len(images):
        raise ValueError(f"--known-negatives-count must be in 1..{len(images) - 1} for '{folder}', got {count}.")
    dirs = {"train": out / "train", "heldout": out / "heldout"}
    if not (out / "split.json").is_file():
        chosen = set(random.Random(seed).sample(range(len(images)), count))
        for name, block in (("train", sorted(chosen)), ("heldout", sorted(set(range(len(images))) - chosen))):
            (dirs[name] / "images").mkdir(parents=True, exist_ok=True)
            for i in block:
                (dirs[name] / "images" / images[i].name).symlink_to(images[i].resolve())
        record = {"folder": str(folder), "seed": seed, "train": [images[i].name for i in sorted(chosen)]}
        (out / "split.json").write_text(json.dumps(record))
    return dirs


def _datalists(args: argparse.Namespace, parser: argparse.ArgumentParser) -> dict[str, Path]:
    """``{"full": ..., "<fraction>": ...}``: the product's ``prepare`` of every datalist (one train/val/test split)."""
    split = ["--test-count", str(args.test_count)]
    pool = [x for d in args.unlabeled_dir for x in ("--unlabeled-dir", str(d))]
    if args.negatives_dir:  # polyp-free frames as plain unlabeled images (prepare takes a flat folder)
        flat = args.out / "unlabeled_negatives"
        if not flat.is_dir():
            flat.mkdir(parents=True)
            for src in sorted((args.negatives_dir / "images").iterdir()):
                (flat / src.name).symlink_to(src.resolve())
        pool += ["--unlabeled-dir", str(flat)]
    lists = {"full": harness.prepare_data(args, parser, split, name="full")}
    if args.target is not None:  # one cut of the hospital's frames for every fraction
        try:
            target = split_by_sequence(args.target, args.out / "target", getattr(args, "target_validation", None) or 0)
        except ValueError as e:
            parser.error(str(e))
        target_pairs = json.loads(harness.folder_datalist(target["train"], args.out, "target_train").read_text())
    # the *_neg arms: the same split plus the known negatives' training frames as declared negatives
    negatives = []
    if getattr(args, "known_negatives", None) is not None:
        negatives = ["--negatives-dir", str(args.out / "known_negatives" / "train")]
    for f in args.fractions:
        subset = [*split, "--labeled-fraction", str(f), *pool]
        lists[str(f)] = harness.prepare_data(args, parser, subset, f"frac{f:g}")
        if negatives:
            lists[f"{f}/neg"] = harness.prepare_data(args, parser, [*subset, *negatives], f"frac{f:g}_known_negatives")
        if args.target is not None:
            extra = ["--unlabeled-dir", str(target["unlabeled"])]
            name = f"frac{f:g}_target_unlabeled"
            lists[f"{f}/semi_target"] = harness.prepare_data(args, parser, [*subset, *extra], name)
            if negatives:
                with_negatives = [*subset, *extra, *negatives]
                lists[f"{f}/semi_target/neg"] = harness.prepare_data(
                    args, parser, with_negatives, f"{name}_known_negatives"
                )
            labeled = json.loads(lists[str(f)].read_text())  # + the target's first block, labeled
            labeled["training"] = labeled["training"] + target_pairs["test"]
            path = args.out / f"frac{f:g}_target_labels.json"
            harness.write_results(labeled, path)
            lists[f"{f}/target_labels"] = path
    if args.target is not None and "validation" in target:  # every arm selects on the hospital's frames too
        frames = json.loads(harness.folder_datalist(target["validation"], args.out, "target_validation").read_text())
        for key, path in lists.items():
            datalist = json.loads(path.read_text())
            datalist["validation"] = datalist.get("validation", []) + frames["test"]
            lists[key] = path.with_name(f"{path.stem}_target_validation.json")
            harness.write_results(datalist, lists[key])
    return lists


def _datalist_key(arm: str, fraction: float) -> str:
    """Which of :func:`_datalists` an arm trains on."""
    if arm == "full":
        return "full"
    base = arm.removesuffix("_neg")
    key = f"{fraction}/{base}" if base in TARGET_ARMS else str(fraction)
    return f"{key}/neg" if arm in NEGATIVE_ARMS else key


def merge(folders: Sequence[Path], out: Path) -> Path:
    """One ``results.json`` / ``results.md`` in ``out`` from runs of the same settings in several ``--out`` folders
    (e.g. one process per seed, run side by side; :func:`harness.merge_results`).

    Raises:
        ValueError: a folder without results, other settings, or the same run (network, fraction, arm, seed) twice.
    """
    _, runs = harness.merge_results(folders, key=("network", "fraction", "arm", "seed"), out=out)
    (out / "results.md").write_text(summarise(runs) + "\n")
    return out / "results.md"


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["merge"]:  # python bench/label_efficiency.py merge DIR [DIR ...] --out OUT
        return harness.merge_main(argv[1:], merge, prog="label_efficiency.py merge")
    if argv[:1] == ["rescore"]:  # python bench/label_efficiency.py rescore DIR [DIR ...]
        for folder in argv[1:]:
            print(rescore(Path(folder)).read_text())
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    harness.add_data_arguments(parser)
    parser.add_argument("--test-count", type=int, default=80, help="--data: test images (never used for selection)")
    parser.add_argument("--models", nargs="+", default=["condseg", "basic_unet"], choices=harness.NETWORKS)
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.1, 0.25], help="labeled shares")
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=ARMS)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--size", type=int, default=64, help="image side (a multiple of 32)")
    parser.add_argument("--steps", type=int, default=400, help="iterations (ConDSeg: of Stage 2)")
    parser.add_argument("--stage1-steps", type=int, default=200, help="ConDSeg: iterations of Stage 1")
    parser.add_argument("--eval-every", type=int, default=50, help="iterations between the bundle's validations")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--feature-size", type=int, default=128, help="ConDSeg decoder width")
    parser.add_argument(
        "--unlabeled-batch-size", type=int, default=None, help="semi arms: the bundle's unlabeled_batch_size"
    )
    parser.add_argument(
        "--confidence-threshold", type=float, default=None, help="semi arms: the bundle's confidence_threshold"
    )
    parser.add_argument(
        "--class-balanced-fraction", type=float, default=None, help="semi arms: the bundle's class_balanced_fraction"
    )
    parser.add_argument(
        "--background-fraction", type=float, default=None, help="semi arms: the bundle's background_fraction"
    )
    parser.add_argument(
        "--unsupervised-dice-weight", type=float, default=None, help="semi arms: the bundle's unsupervised_dice_weight"
    )
    parser.add_argument(
        "--unsupervised-weight", type=float, default=None, help="semi arms but the control: unsupervised_weight"
    )
    parser.add_argument(
        "--cutmix", action="store_const", const=True, default=None, help="semi arms: the bundle's cutmix true"
    )
    parser.add_argument(
        "--ema-decay", type=float, default=None, help="semi arms and the control: the teacher's ema_decay"
    )
    parser.add_argument("--severities", type=int, nargs="+", default=[2], help="corruption severities (1..3)")
    parser.add_argument("--unlabeled-dir", type=Path, nargs="*", default=[], help="more unlabeled images (flat)")
    parser.add_argument("--negatives-dir", type=Path, default=None, help="polyp-free frames (DIR/images) unlabeled")
    parser.add_argument(
        "--known-negatives", type=Path, default=None, help="polyp-free frames (DIR/images) trained on as negatives"
    )
    parser.add_argument(
        "--known-negatives-count", type=int, default=500, help="--known-negatives: how many to train on (seeded)"
    )
    parser.add_argument(
        "--negatives-per-batch", type=int, default=None, help="*_neg arms: the bundle's negatives_per_batch"
    )
    parser.add_argument("--cross", nargs="*", default=[], metavar="NAME=FOLDER", help="sets evaluated, not trained")
    parser.add_argument("--target", type=Path, default=None, help="a hospital's own frames (see split_by_sequence)")
    parser.add_argument(
        "--target-validation", type=int, default=None, help="--target: its labeled frames added to every validation"
    )
    parser.add_argument(
        "--presize", action="store_true", help="resize every folder once to --size first (harness.presized_folder)"
    )
    parser.add_argument("--keep-checkpoints", action="store_true", help="keep latest.pt and Stage 1's models too")
    args = parser.parse_args(argv)
    if args.size % 32 or args.size < 32:
        parser.error(f"--size must be a positive multiple of 32, got {args.size}.")
    if args.unlabeled_batch_size is not None and args.unlabeled_batch_size < 1:
        parser.error(f"--unlabeled-batch-size must be >= 1, got {args.unlabeled_batch_size}.")
    if args.confidence_threshold is not None and not 0.5 <= args.confidence_threshold <= 1:
        parser.error(f"--confidence-threshold must be in [0.5, 1], got {args.confidence_threshold}.")
    if args.class_balanced_fraction is not None and not 0 < args.class_balanced_fraction <= 1:
        parser.error(f"--class-balanced-fraction must be in (0, 1], got {args.class_balanced_fraction}.")
    if args.background_fraction is not None and not 0 < args.background_fraction <= 1:
        parser.error(f"--background-fraction must be in (0, 1], got {args.background_fraction}.")
    if args.unsupervised_dice_weight is not None and args.unsupervised_dice_weight < 0:
        parser.error(f"--unsupervised-dice-weight must be >= 0, got {args.unsupervised_dice_weight}.")
    if args.unsupervised_weight is not None and args.unsupervised_weight < 0:
        parser.error(f"--unsupervised-weight must be >= 0, got {args.unsupervised_weight}.")
    if args.ema_decay is not None and not 0 < args.ema_decay < 1:
        parser.error(f"--ema-decay must be in (0, 1), got {args.ema_decay}.")
    if not all(0 < f < 1 for f in args.fractions):
        parser.error(f"--fractions must be in (0, 1), got {args.fractions}.")
    try:
        for network in args.models:
            arm_spec("sup", network, 0, args)
    except ValueError as e:
        parser.error(str(e))
    cross = harness.parse_cross(args.cross, parser)
    if any(a in TARGET_ARMS for a in args.arms) and args.target is None:
        parser.error(f"the arms {TARGET_ARMS} need --target.")
    if args.target_validation is not None and (args.target is None or args.target_validation < 1):
        parser.error(f"--target-validation needs --target and must be >= 1, got {args.target_validation}.")
    if any(a in NEGATIVE_ARMS for a in args.arms) and args.known_negatives is None:
        parser.error(f"the arms {NEGATIVE_ARMS} need --known-negatives.")
    if args.known_negatives is not None:
        if not (args.known_negatives / "images").is_dir():
            parser.error(f"--known-negatives '{args.known_negatives}' has no images/ folder.")
        trained_on = [n for n, d in cross.items() if d.resolve() == args.known_negatives.resolve()]
        if trained_on:  # false alarms on frames the *_neg arms trained on would flatter them
            parser.error(
                f"--cross {trained_on[0]} is the --known-negatives folder; its frames not trained on are evaluated "
                f"as '{HELDOUT_NEGATIVES}' already."
            )
    if args.negatives_dir is not None:
        if not (args.negatives_dir / "images").is_dir():
            parser.error(f"--negatives-dir '{args.negatives_dir}' has no images/ folder.")
        pooled = {p.resolve() for p in _frames(args.negatives_dir)}
        for name, folder in cross.items():  # false alarms on frames of the unlabeled pool would not be held out
            if any(p.resolve() in pooled for p in _frames(folder)):
                parser.error(
                    f"--cross {name} shares frames with --negatives-dir: evaluate the polyp-free frames left out of "
                    "the unlabeled pool (split the folder first: docs/benchmarks.md, 'A pool that is mostly "
                    "polyp-free')."
                )
    if args.presize:  # the runs read small copies: the same resized images, without decoding the originals each time
        folders = {
            "data": args.data,
            "negatives": args.negatives_dir,
            "target": args.target,
            "known_negatives": args.known_negatives,
        }
        small = harness.presized_folders(folders, args.size, args.out)
        args.data, args.negatives_dir, args.target = small["data"], small["negatives"], small["target"]
        args.known_negatives = small["known_negatives"]
        cross = harness.presized_folders(cross, args.size, args.out)
    if args.known_negatives is not None:
        try:
            negatives = split_negatives(
                args.known_negatives, args.known_negatives_count, args.split_seed, args.out / "known_negatives"
            )
        except ValueError as e:
            parser.error(str(e))
        cross[HELDOUT_NEGATIVES] = negatives["heldout"]

    lists = _datalists(args, parser)
    if args.target is not None:
        cross["target"] = args.out / "target" / "eval"
    cross_lists = {name: harness.folder_datalist(folder, args.out, name) for name, folder in cross.items()}
    ignore = ("seeds", "models", "arms", "fractions", "cross", "keep_checkpoints")
    settings = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items() if k not in ignore}
    settings["unlabeled_dir"] = [str(d) for d in args.unlabeled_dir]
    results_path = args.out / "results.json"
    done = json.loads(results_path.read_text()) if results_path.is_file() else {}
    saved = done.get("settings", settings)
    # a setting added since the results were written counts as unset there (None)
    if saved != {k: v for k, v in settings.items() if k in saved or v is not None}:
        parser.error(f"'{results_path}' holds results of other settings; use another --out or delete it.")
    runs: list[dict[str, Any]] = done.get("runs", [])

    def finished(key: Mapping[str, Any]) -> bool:
        return any(all(r[k] == v for k, v in key.items()) and set(cross) <= set(r["cross"]) for r in runs)

    jobs = []  # seed by seed (a partial run has whole seeds), the ceiling once per network and seed
    for seed in args.seeds:
        for network in args.models:
            for arm in args.arms:
                fractions = [1.0] if arm == "full" else args.fractions
                jobs += [(seed, network, fraction, arm) for fraction in fractions]
    for seed, network, fraction, arm in jobs:
        key = {"network": network, "fraction": fraction, "arm": arm, "seed": seed}
        if finished(key):
            continue
        spec = arm_spec(arm, network, seed, args)
        datalist = lists[_datalist_key(arm, fraction)]
        name = f"{network}_{arm}_f{fraction:g}_seed{seed}"
        run_dir = args.out / "runs" / name
        print(f"[{name}] training through the bundle", flush=True)
        trained = harness.train(spec, datalist, run_dir)
        best = trained["best"]
        evaluation = {"feature_size": args.feature_size}
        test = harness.evaluate(
            best, datalist, "test", run_dir / "eval_test", args.size, network, "robustness",
            {"robustness_severities": args.severities, **evaluation},
        )  # fmt: skip
        iterations = sum(s["iterations"] for s in trained["stages"])
        seconds = sum(s["seconds"] for s in trained["stages"])
        loop = sum(s["loop_seconds"] for s in trained["stages"])
        for s, path in cross_lists.items():
            harness.evaluate(best, path, "test", run_dir / f"eval_{s}", args.size, network, overrides=evaluation)
        run = {
            **key,
            "test": harness.read_conditions(test),
            **collect_cross(run_dir, list(cross_lists)),
            "iterations": iterations,
            "train_seconds": seconds,
            "seconds_per_iteration": loop / iterations,
        }
        runs = [r for r in runs if not all(r[k] == v for k, v in key.items())] + [run]
        clean = run["test"]["clean"]
        print(f"[{name}] test mIoU {100 * clean['iou']:.1f} mDSC {100 * clean['dice']:.1f}", flush=True)
        harness.write_results({"settings": settings, "environment": harness.environment(), "runs": runs}, results_path)
        if not args.keep_checkpoints:  # keep the selected model and the reports, not every training state
            for stage_dir in harness.stage_dirs(spec, run_dir):
                for ckpt in stage_dir.glob("*.pt"):
                    if ckpt != best:
                        ckpt.unlink()
                shutil.rmtree(stage_dir / "tensorboard", ignore_errors=True)
    table = summarise(runs)
    (args.out / "results.md").write_text(table + "\n")
    print(table)
    return 0 if all(math.isfinite(r["test"]["clean"]["iou"]) for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
