# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""Command line: ``python -m condseg_monai.data {prepare,check,demo} ...``.

Exit status: 0 on success, 1 when the data has errors (or preparation fails), 2 for bad usage.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from collections.abc import Sequence

from condseg_monai.data.checks import check_datalist
from condseg_monai.data.datalist import SPLITS, UNLABELED, Datalist, read_datalist
from condseg_monai.data.demo import generate_demo_dataset
from condseg_monai.data.prepare import DATASETS, PrepareError, prepare_datalist

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``condseg_monai.data`` command."""
    parser = argparse.ArgumentParser(prog="python -m condseg_monai.data", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("prepare", help="write a datalist JSON from a raw dataset folder")
    p.add_argument("dataset", choices=DATASETS)
    p.add_argument("--root", required=True, help="raw dataset folder (see docs/datasets.md)")
    p.add_argument("--out", required=True, help="output datalist JSON")
    p.add_argument("--seed", type=int, default=0, help="seed of random splits (default 0)")
    paths = p.add_mutually_exclusive_group()
    paths.add_argument("--relative", dest="relative", action="store_true", default=True, help="relative (default)")
    paths.add_argument("--absolute", dest="relative", action="store_false", help="absolute paths")
    p.add_argument("--val-fraction", type=float, default=0.1, help="folder: validation fraction (default 0.1)")
    p.add_argument("--test-fraction", type=float, default=0.0, help="folder: test fraction (default 0)")
    p.add_argument("--val-count", type=int, default=None, help="folder: exact validation size")
    p.add_argument("--test-count", type=int, default=None, help="folder: exact test size")
    p.add_argument("--allow-unpaired", action="store_true", help="warn about and skip unpaired images/masks")
    p.add_argument(
        "--unlabeled-dir",
        action="append",
        default=[],
        metavar="DIR",
        help="add every image file of DIR (not its sub-folders) to 'unlabeled'; repeatable",
    )
    p.add_argument(
        "--negatives-dir",
        action="append",
        default=[],
        metavar="DIR",
        help="add every image file of DIR (of DIR/images if it exists) as a declared negative (no foreground, "
        "no mask needed); repeatable",
    )
    p.add_argument(
        "--negatives-val-fraction",
        type=float,
        default=0.2,
        metavar="F",
        help="share of the negatives put in validation, the rest in training (seeded by --seed; default 0.2)",
    )
    budget = p.add_mutually_exclusive_group()
    budget.add_argument(
        "--labeled-count", type=int, default=None, metavar="N", help="keep N training pairs labeled (seeded by --seed)"
    )
    budget.add_argument(
        "--labeled-fraction",
        type=float,
        default=None,
        metavar="F",
        help="keep floor(F x n + 0.5) of the n training pairs labeled (seeded by --seed)",
    )

    c = sub.add_parser("check", help="validate every file of a datalist; non-zero exit on any error")
    c.add_argument("datalist")
    c.add_argument(
        "--splits", nargs="+", choices=(*SPLITS, UNLABELED), default=None, help="splits to check (default all)"
    )
    c.add_argument("--workers", type=int, default=None, help="decoding threads (default min(8, 2 x CPUs))")
    c.add_argument("--strict", action="store_true", help="treat warnings as errors")
    c.add_argument(
        "--require-unlabeled", action="store_true", help="semi-supervised: error without a usable unlabeled image"
    )

    d = sub.add_parser("demo", help="generate the synthetic demo dataset")
    d.add_argument("--out", required=True, help="output folder")
    d.add_argument("--num-train", type=int, default=24)
    d.add_argument("--num-val", type=int, default=8)
    d.add_argument("--num-test", type=int, default=8)
    d.add_argument("--num-unlabeled", type=int, default=0, help="images without masks in 'unlabeled' (default 0)")
    d.add_argument("--image-size", type=int, nargs="+", default=[128, 128], metavar="N", help="H W (or one N)")
    d.add_argument("--seed", type=int, default=0)
    return parser


def _summary(datalist: Datalist) -> str:
    counts = datalist.counts()
    if datalist.unlabeled:
        counts[UNLABELED] = len(datalist.unlabeled)
    negatives = datalist.negative_counts()
    text = ", ".join(
        f"{k} {v}" + (f" ({negatives[k]} negative)" if negatives.get(k) else "") for k, v in counts.items()
    )
    budget = datalist.label_budget
    if budget:
        kept, total, seed = budget.get("labeled"), budget.get("training_pairs"), budget.get("seed")
        text += f" (labeled {kept} of {total} training pairs, seed {seed})"
    return text


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = build_parser().parse_args(argv)
    if args.command == "prepare":
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                datalist = prepare_datalist(
                    args.dataset,
                    args.root,
                    args.out,
                    seed=args.seed,
                    relative=args.relative,
                    val_fraction=args.val_fraction,
                    test_fraction=args.test_fraction,
                    val_count=args.val_count,
                    test_count=args.test_count,
                    allow_unpaired=args.allow_unpaired,
                    unlabeled_dirs=args.unlabeled_dir,
                    labeled_count=args.labeled_count,
                    labeled_fraction=args.labeled_fraction,
                    negatives_dirs=args.negatives_dir,
                    negatives_val_fraction=args.negatives_val_fraction,
                )
        except (PrepareError, ValueError, OSError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
        for w in caught:
            print(f"warning: {w.message}", file=sys.stderr)
        print(f"wrote {args.out}: {_summary(datalist)}")
        return 0
    if args.command == "check":
        start = time.perf_counter()
        problems = check_datalist(
            args.datalist, args.splits, workers=args.workers, require_unlabeled=args.require_unlabeled
        )
        for p in problems:
            print(p)
        errors = sum(p.severity == "error" for p in problems)
        warns = len(problems) - errors
        try:
            counts = _summary(read_datalist(args.datalist))
        except (FileNotFoundError, ValueError):
            counts = "unreadable"
        elapsed = time.perf_counter() - start
        print(f"checked {args.datalist} ({counts}) in {elapsed:.1f} s: {errors} error(s), {warns} warning(s)")
        return 1 if errors or (args.strict and warns) else 0
    size = args.image_size
    if len(size) not in (1, 2):
        print("error: --image-size takes one or two integers", file=sys.stderr)
        return 2
    try:
        path = generate_demo_dataset(
            args.out,
            num_train=args.num_train,
            num_val=args.num_val,
            num_test=args.num_test,
            num_unlabeled=args.num_unlabeled,
            image_size=size[0] if len(size) == 1 else tuple(size),
            seed=args.seed,
        )
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {path}: {_summary(read_datalist(path))}")
    return 0
