# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""Fixed-budget accuracy comparison: ConDSeg (both stages) against MONAI 2D baselines on real data, through the
bundle.

Every model is trained by the bundle's own training workflow (:mod:`harness`: ``python -m monai.bundle run
training`` with ``bundle/configs/train.json``; ConDSeg with ``configs/stage1.json`` then ``configs/stage2.json``,
a baseline with its overlay in ``bench/configs/``: the network and Dice + BCE) at the same image size, batch size,
seed and number of iterations (``--steps``; ConDSeg spends ``--stage1-steps`` of them in Stage 1). Everything else
is the bundle's default recipe: its augmentation (each stage's), Adam at ``learning_rate`` (ConDSeg Stage 2: the
encoder at ``encoder_lr``), its data loading. Nothing is pretrained.

Data: a datalist (``--datalist``) or a folder of ``images/`` + ``masks/`` (``--data``, split once with the
product's ``python -m condseg_monai.data prepare folder --val-count --seed``).

Evaluation, after the budget, of the model after the last iteration (``latest.pt``: no model selection, because
the validation images are the reported set): the bundle's ``robustness`` run on the validation split (the paper's
per-image metrics at the model's input size, threshold 0.5, clean and under the deterministic corruptions of
``--severities``), and the bundle's ``evaluating`` run on every ``--cross NAME=FOLDER`` (another hospital's
``images/`` + ``masks/``: mIoU and per-frame sensitivity; a folder without ``masks/``: polyp-free frames, whose
false alarms are counted), e.g. ``--cross cvc=../shared/data/cvc-clinicdb polyp_free=../shared/data/polyp-free``.

Results go to ``--out`` (``results.json``, rewritten after every run, so an interrupted benchmark continues where
it stopped; ``results.md``, the summary table; every bundle run's folder and log). Usage::

    python bench/accuracy.py --data ../shared/data/kvasir-seg --out runs/accuracy \\
        [--size 128] [--steps 400] [--stage1-steps 100] [--batch-size 4] [--seeds 0 1] [--models ...]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import harness  # bench/ is sys.path[0] when run as a script

__all__ = ["LABELS", "METRICS", "MODELS", "main", "summarise"]

MODELS = harness.NETWORKS
METRICS = harness.PAPER_METRICS
LABELS = {
    "condseg": "ConDSeg (Stage 1 + 2)",
    "unet": "MONAI UNet",
    "attention_unet": "MONAI AttentionUnet",
    "basic_unet": "MONAI BasicUNet",
    "segresnet": "MONAI SegResNet",
}


def summarise(runs: Sequence[Mapping[str, Any]], models: Sequence[str]) -> str:
    """Markdown tables of the runs: clean metrics (mean ± sample std over seeds, in %), robustness drops, and the
    cross-dataset sets."""
    models = [m for m in MODELS if m in models]  # ConDSeg first, whatever order the runs had
    lines = [
        "| model | seeds | parameters | train time (min) | mIoU | mDSC | recall | precision | "
        "mean mIoU drop under corruption |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    by_model = {name: [r for r in runs if r["model"] == name] for name in models}
    by_model = {name: rs for name, rs in by_model.items() if rs}
    for name, rs in by_model.items():
        clean = [r["val"]["clean"] for r in rs]
        drops = [
            statistics.fmean(v["iou"] - r["val"]["clean"]["iou"] for k, v in r["val"].items() if k != "clean")
            for r in rs
            if len(r["val"]) > 1
        ]
        cells = [harness.mean_std([c[m] for c in clean]) for m in METRICS]
        minutes = statistics.fmean(r["train_seconds"] for r in rs) / 60
        lines.append(
            f"| {LABELS.get(name, name)} | {len(rs)} | {rs[0]['parameters'] / 1e6:.2f} M | {minutes:.1f} | "
            + " | ".join(cells)
            + f" | {harness.mean_std(drops) if drops else '–'} |"
        )
    keys = [k for k in runs[0]["val"] if k != "clean"] if runs else []
    if keys:
        lines += ["", "mIoU (%) per corruption, mean over seeds:", ""]
        lines += ["| model | clean | " + " | ".join(keys) + " |", "|---|---|" + "---|" * len(keys)]
        for name, rs in by_model.items():
            vals = [statistics.fmean(r["val"][k]["iou"] for r in rs) for k in ["clean", *keys]]
            lines.append(f"| {LABELS.get(name, name)} | " + " | ".join(f"{100 * v:.1f}" for v in vals) + " |")
    sets = sorted({k for r in runs for k in r.get("cross", {})})
    if sets:
        lines += ["", "Other datasets, no training on them (%; mIoU where masks exist, frame-level decision):", ""]
        lines += ["| model | set | mIoU | mDSC | sensitivity | specificity |", "|---|---|---|---|---|---|"]
        for name, rs in by_model.items():
            for s in sets:
                got = [r["cross"][s] for r in rs if s in r.get("cross", {})]
                if got:
                    cells = [
                        harness.mean_std([g[k] for g in got]) for k in ("iou", "dice", "sensitivity", "specificity")
                    ]
                    lines.append(f"| {LABELS.get(name, name)} | {s} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    harness.add_data_arguments(parser)
    parser.add_argument("--size", type=int, default=128, help="image side (a multiple of 32)")
    parser.add_argument("--steps", type=int, default=400, help="iterations per model (ConDSeg: both stages)")
    parser.add_argument("--stage1-steps", type=int, default=100, help="ConDSeg: iterations of Stage 1 out of --steps")
    parser.add_argument("--eval-every", type=int, default=100, help="iterations between the bundle's validations")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--feature-size", type=int, default=128, help="ConDSeg decoder width")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--severities", type=int, nargs="+", default=[2], help="corruption severities (1..3)")
    parser.add_argument(
        "--cross", nargs="*", default=[], metavar="NAME=FOLDER", help="other datasets evaluated without training"
    )
    parser.add_argument("--threads", type=int, default=0, help="torch threads of every bundle run (0: torch default)")
    args = parser.parse_args(argv)
    if args.size % 32 or args.size < 32:
        parser.error(f"--size must be a positive multiple of 32, got {args.size}.")
    if not 0 < args.stage1_steps < args.steps:
        parser.error(f"--stage1-steps must be in 1..{args.steps - 1} (< --steps), got {args.stage1_steps}.")
    cross = harness.parse_cross(args.cross, parser)
    if args.threads:
        os.environ["OMP_NUM_THREADS"] = str(args.threads)  # inherited by every bundle run

    datalist = harness.prepare_data(args, parser)
    cross_lists = {name: harness.folder_datalist(folder, args.out, name) for name, folder in cross.items()}
    # what must match to add runs to an earlier results.json (seeds and models only select runs)
    settings = {
        k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items() if k not in ("seeds", "models", "cross")
    }
    results_path = args.out / "results.json"
    done = json.loads(results_path.read_text()) if results_path.is_file() else {}
    if done.get("settings", settings) != settings:
        parser.error(f"'{results_path}' holds results of other settings; use another --out or delete it.")
    runs: list[dict[str, Any]] = done.get("runs", [])
    for seed in args.seeds:
        for name in args.models:
            if any(r["model"] == name and r["seed"] == seed and set(cross) <= set(r.get("cross", {})) for r in runs):
                continue  # finished in an earlier, interrupted invocation
            runs = [r for r in runs if not (r["model"] == name and r["seed"] == seed)]
            print(f"[seed {seed}] {name}: training {args.steps} iterations through the bundle", flush=True)
            spec = harness.TrainSpec(
                network=name,
                iterations=args.steps - args.stage1_steps if name == "condseg" else args.steps,
                stage1_iterations=args.stage1_steps,
                eval_every=args.eval_every,
                image_size=args.size,
                batch_size=args.batch_size,
                seed=seed,
                overrides={"feature_size": args.feature_size},
            )
            run_dir = args.out / f"{name}_seed{seed}"
            trained = harness.train(spec, datalist, run_dir)
            last = trained["last"]
            robustness = harness.evaluate(
                last, datalist, "validation", run_dir / "eval_val", args.size, name, "robustness",
                {"robustness_severities": args.severities, "feature_size": args.feature_size},
            )  # fmt: skip
            run = {
                "model": name,
                "seed": seed,
                "parameters": harness.count_parameters(last),
                "train_seconds": sum(s["seconds"] for s in trained["stages"]),
                "val": harness.read_conditions(robustness),
                "cross": {
                    s: harness.read_detection(
                        harness.evaluate(
                            last,
                            path,
                            "test",
                            run_dir / f"eval_{s}",
                            args.size,
                            name,
                            overrides={"feature_size": args.feature_size},
                        )  # fmt: skip
                    )
                    for s, path in cross_lists.items()
                },
            }
            runs.append(run)
            clean = run["val"]["clean"]
            print(f"[seed {seed}] {name}: mIoU {100 * clean['iou']:.1f} mDSC {100 * clean['dice']:.1f}", flush=True)
            tmp = results_path.with_suffix(".json.partial")
            tmp.write_text(
                json.dumps({"settings": settings, "environment": harness.environment(), "runs": runs}, indent=1)
            )
            os.replace(tmp, results_path)
    table = summarise(runs, args.models)
    (args.out / "results.md").write_text(table + "\n")
    print(table)
    return 0 if all(math.isfinite(r["val"]["clean"]["iou"]) for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
