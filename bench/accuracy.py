# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""Fixed-budget accuracy comparison: ConDSeg (both stages) against MONAI 2D baselines on real data.

Every model gets the same data, image size, batch size, optimiser (Adam, ``--lr``), geometric augmentation and
number of optimisation steps (``--steps``). ConDSeg spends its steps in two stages: ``--stage1-steps`` of
Consistency Reinforcement (:class:`~condseg_monai.networks.ConDSegStage1`, clean + strongly colour/blur-augmented
view, :class:`~condseg_monai.losses.Stage1Loss`), then the rest with the full network
(:class:`~condseg_monai.networks.ConDSeg`, :class:`~condseg_monai.losses.ConDSegLoss`, encoder from Stage 1 at
``--encoder-lr``). Baselines train with :class:`~condseg_monai.losses.DiceBCELoss`. Nothing is pretrained.

Data: a datalist (``--datalist``) or a folder of ``images/`` + ``masks/`` (``--data``, split once with
``prepare_datalist("folder", val_count=--val-count, seed=--split-seed)``). Images are loaded and resized once
(bilinear, masks re-binarised), then every training sample gets the Stage-2 geometric augmentation
(rotation +-35 deg p=0.3, flips p=0.3, coarse dropout p=0.3 with 10 holes of ``size // 16`` px: the official
32 px holes are drawn on ~500 px originals, so they are scaled to the resized image).
Within a seed every model sees the same batches with the same augmentation draws.

After the budget (no model selection on the validation images, which are the reported set) each model is
evaluated on the validation split: the paper's per-image metrics (IoU, Dice, recall, precision; means over
images, threshold 0.5), and the same metrics under the deterministic corruptions of
:mod:`condseg_monai.inference.corruptions` (``--severities``). ``--cross-datalist`` adds an evaluation, without
training, on another dataset's split (e.g. a second polyp dataset prepared with ``python -m condseg_monai.data``).

Results go to ``--out`` (``results.json``, rewritten after every run, so an interrupted benchmark continues
where it stopped; ``results.md``, the summary table). Usage::

    python bench/accuracy.py --data ../shared/data/kvasir-seg --out runs/accuracy \\
        [--size 128] [--steps 400] [--stage1-steps 100] [--batch-size 4] [--seeds 0 1] [--models ...]
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from compare import build_model  # bench/ is sys.path[0] when run as a script
from monai.data import DataLoader, Dataset
from monai.transforms import Compose
from monai.utils import convert_to_tensor, set_determinism
from torch import nn

from condseg_monai.data import load_datalist, prepare_datalist
from condseg_monai.engines import StrongViewPrepareBatch, encoder_param_groups
from condseg_monai.inference.corruptions import corrupt
from condseg_monai.inference.report import write_json
from condseg_monai.inference.robustness import robustness_conditions
from condseg_monai.inferers import ConsistencyInferer
from condseg_monai.losses import ConDSegLoss, DiceBCELoss, Stage1Loss
from condseg_monai.metrics import binary_segmentation_metrics
from condseg_monai.networks import ConDSeg, ConDSegStage1, load_stage1_encoder
from condseg_monai.transforms import (
    RandIlluminationContrastAugment,
    condseg_geometric_augmentation,
    condseg_load_transforms,
    condseg_resize_transforms,
)

__all__ = [
    "MODELS",
    "METRICS",
    "add_data_arguments",
    "benchmark_environment",
    "evaluate",
    "load_benchmark_data",
    "main",
    "summarise",
    "train_baseline",
    "train_condseg",
]

MODELS = ("condseg", "unet", "attention_unet", "basic_unet", "segresnet")
METRICS = ("iou", "dice", "recall", "precision")
LABELS = {
    "condseg": "ConDSeg (Stage 1 + 2)",
    "unet": "MONAI UNet",
    "attention_unet": "MONAI AttentionUnet",
    "basic_unet": "MONAI BasicUNet",
    "segresnet": "MONAI SegResNet",
}


def load_cached(data: Sequence[Mapping[str, Any]], size: int) -> list[dict[str, torch.Tensor]]:
    """Load, check and resize every pair once: ``image (3, S, S)`` in [0, 1], ``label (1, S, S)`` in {0, 1}."""
    prep = Compose(condseg_load_transforms() + condseg_resize_transforms(size))
    out = []
    for item in data:
        d = prep(dict(item))
        out.append({"image": d["image"].as_tensor().float(), "label": d["label"].as_tensor().float()})
    return out


def add_data_arguments(parser: argparse.ArgumentParser, out_help: str = "results.json, results.md") -> None:
    """The data and output options every benchmark script shares (read by :func:`load_benchmark_data`):
    ``--data`` or ``--datalist``, ``--out``, ``--val-count``, ``--split-seed``."""
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", type=Path, help="folder with images/ and masks/ (split here, see --val-count)")
    source.add_argument("--datalist", type=Path, help="a prepared datalist JSON (its training/validation splits)")
    parser.add_argument("--out", type=Path, required=True, help=f"output folder ({out_help})")
    parser.add_argument("--val-count", type=int, default=80, help="--data: validation images")
    parser.add_argument("--split-seed", type=int, default=0, help="--data: seed of the train/val split")


def benchmark_environment(train: Sequence[Any], val: Sequence[Any], **extra: Any) -> dict[str, Any]:
    """What a benchmark's ``results.json`` records of the machine and the data (``extra``: more entries)."""
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
        "train_images": len(train),
        "val_images": len(val),
        **extra,
    }


def load_benchmark_data(
    args: argparse.Namespace, parser: argparse.ArgumentParser
) -> tuple[Path, list[dict[str, torch.Tensor]], list[dict[str, torch.Tensor]]]:
    """The datalist of a benchmark run (``--datalist``, or ``--data`` split once into ``--out``) and its cached
    training and validation pairs at ``--size``, shared by the benchmark scripts.

    Returns:
        ``(datalist path, training pairs, validation pairs)``.
    """
    args.out.mkdir(parents=True, exist_ok=True)
    datalist = args.datalist
    if datalist is None:
        if not args.data.is_dir():
            parser.error(f"--data folder '{args.data}' does not exist.")
        datalist = args.out / "datalist.json"
        prepare_datalist("folder", args.data, datalist, seed=args.split_seed, val_count=args.val_count)
    train = load_cached(load_datalist(datalist, "training"), args.size)
    val = load_cached(load_datalist(datalist, "validation"), args.size)
    return Path(datalist), train, val


def batches(cached: list[dict[str, torch.Tensor]], size: int, batch_size: int, seed: int) -> Iterator[dict]:
    """Endless shuffled, augmented batches; the same ``seed`` gives the same batches and augmentation draws."""
    set_determinism(seed)  # seeds the Compose below and the DataLoader's shuffling
    augment = Compose(
        [copy.deepcopy]  # the cached tensors must stay unaugmented
        + condseg_geometric_augmentation(stage=2, dropout_size=max(1, size // 16))
    )
    loader = DataLoader(Dataset(cached, transform=augment), batch_size=batch_size, shuffle=True, drop_last=True)
    while True:
        for batch in loader:  # plain tensors: MetaTensor bookkeeping would only slow the models down
            yield {k: convert_to_tensor(batch[k], track_meta=False) for k in ("image", "label")}


def _train(
    prefix: str,
    model: nn.Module,
    forward: Callable[[torch.Tensor], torch.Tensor],
    optimizer: torch.optim.Optimizer,
    loss_fn: nn.Module,
    data: Iterator[dict],
    steps: int,
    on_step: Callable[[nn.Module, int], None] | None = None,
) -> None:
    """``steps`` optimisation steps of ``loss_fn(forward(image), label)`` on batches from ``data``, with progress.

    ``on_step(model, step)``, if given, runs after every step (e.g. an evaluation at chosen steps).
    """
    model.train()
    start = time.perf_counter()
    for step in range(1, steps + 1):
        batch = next(data)
        loss = loss_fn(forward(batch["image"]), batch["label"])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step == 1 or step % max(1, steps // 10) == 0 or step == steps:
            elapsed = time.perf_counter() - start
            print(f"  {prefix} step {step}/{steps}: loss {float(loss):.4f} ({elapsed:.0f} s)", flush=True)
        if on_step is not None:
            on_step(model, step)
            model.train()


def train_baseline(
    name: str, data: Iterator[dict], steps: int, lr: float, on_step: Callable[[nn.Module, int], None] | None = None
) -> nn.Module:
    """Train MONAI baseline ``name`` for ``steps`` Adam steps with Dice + BCE (``on_step``: see ``_train``)."""
    model = build_model(name)
    _train(name, model, model, torch.optim.Adam(model.parameters(), lr=lr), DiceBCELoss(), data, steps, on_step)
    return model


def train_condseg(
    data: Iterator[dict],
    steps: int,
    stage1_steps: int,
    lr: float,
    encoder_lr: float,
    seed: int,
    feature_size: int,
    on_step: Callable[[nn.Module, int], None] | None = None,
) -> nn.Module:
    """Stage 1 for ``stage1_steps``, then Stage 2 (encoder from Stage 1) for the remaining steps.

    ``on_step(model, step)`` runs after every Stage-2 step, with ``step`` counted over both stages.
    """
    stage1 = ConDSegStage1()
    views = StrongViewPrepareBatch(RandIlluminationContrastAugment().set_random_state(seed=seed))
    inferer = ConsistencyInferer()
    optimizer = torch.optim.Adam(stage1.parameters(), lr=lr)
    forward = lambda x: inferer(x, stage1, **views({"image": x})[3])  # noqa: E731 - clean and strong view
    _train("condseg stage 1", stage1, forward, optimizer, Stage1Loss(), data, stage1_steps)

    model = ConDSeg(feature_size=feature_size)
    load_stage1_encoder(model, stage1.state_dict())
    optimizer = torch.optim.Adam(encoder_param_groups(model, lr, encoder_lr), lr=lr)
    hook = (lambda m, s: on_step(m, stage1_steps + s)) if on_step is not None else None
    _train("condseg stage 2", model, model, optimizer, ConDSegLoss(), data, steps - stage1_steps, hook)
    return model


@torch.inference_mode()
def evaluate(
    model: nn.Module,
    cached: list[dict[str, torch.Tensor]],
    conditions: Sequence[tuple[str, int]] = (("clean", 0),),
    batch_size: int = 8,
) -> dict[str, dict[str, float]]:
    """Mean per-image paper metrics of ``model`` on ``cached`` under every ``(corruption, severity)``."""
    model.eval()
    results = {}
    for name, severity in conditions:
        per_image: dict[str, list[float]] = {m: [] for m in METRICS}
        for i in range(0, len(cached), batch_size):
            chunk = cached[i : i + batch_size]
            images = corrupt(torch.stack([c["image"] for c in chunk]), name, severity)
            labels = torch.stack([c["label"] for c in chunk])
            scores = binary_segmentation_metrics(model(images), labels, logits=True)
            for m in METRICS:
                per_image[m] += scores[m].tolist()
        results[name if severity == 0 else f"{name}-{severity}"] = {
            m: statistics.fmean(v) for m, v in per_image.items()
        }
    return results


def _mean_std(values: Sequence[float]) -> str:
    if len(values) == 1:
        return f"{100 * values[0]:.1f}"
    return f"{100 * statistics.fmean(values):.1f} ± {100 * statistics.stdev(values):.1f}"


def summarise(runs: Sequence[Mapping[str, Any]], models: Sequence[str]) -> str:
    """Markdown tables of the runs: clean metrics (mean ± sample std over seeds, in %) and robustness drops."""
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
        cells = [_mean_std([c[m] for c in clean]) for m in METRICS]
        minutes = statistics.fmean(r["train_seconds"] for r in rs) / 60
        lines.append(
            f"| {LABELS.get(name, name)} | {len(rs)} | {rs[0]['parameters'] / 1e6:.2f} M | {minutes:.1f} | "
            + " | ".join(cells)
            + f" | {_mean_std(drops) if drops else '–'} |"
        )
    keys = [k for k in runs[0]["val"] if k != "clean"] if runs else []
    if keys:
        lines += ["", "mIoU (%) per corruption, mean over seeds:", ""]
        lines += ["| model | clean | " + " | ".join(keys) + " |", "|---|---|" + "---|" * len(keys)]
        for name, rs in by_model.items():
            vals = [statistics.fmean(r["val"][k]["iou"] for r in rs) for k in ["clean", *keys]]
            lines.append(f"| {LABELS.get(name, name)} | " + " | ".join(f"{100 * v:.1f}" for v in vals) + " |")
    if runs and runs[0].get("cross"):
        lines += ["", "Cross-dataset mIoU / mDSC (%), no training on it:", ""]
        for name, all_rs in by_model.items():
            rs = [r for r in all_rs if r.get("cross")]
            if rs:
                iou = _mean_std([r["cross"]["clean"]["iou"] for r in rs])
                dice = _mean_std([r["cross"]["clean"]["dice"] for r in rs])
                lines.append(f"- {LABELS.get(name, name)}: {iou} / {dice}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_data_arguments(parser)
    parser.add_argument("--size", type=int, default=128, help="image side (a multiple of 32)")
    parser.add_argument("--steps", type=int, default=400, help="optimisation steps per model (ConDSeg: both stages)")
    parser.add_argument("--stage1-steps", type=int, default=100, help="ConDSeg: steps of Stage 1 out of --steps")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--lr", type=float, default=1e-4, help="Adam learning rate (all models)")
    parser.add_argument("--encoder-lr", type=float, default=1e-5, help="ConDSeg Stage 2: encoder learning rate")
    parser.add_argument("--feature-size", type=int, default=128, help="ConDSeg decoder width")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--severities", type=int, nargs="*", default=[2], help="corruption severities (none: skip)")
    parser.add_argument("--cross-datalist", type=Path, default=None, help="extra dataset evaluated without training")
    parser.add_argument("--cross-split", default="validation", help="split of --cross-datalist to evaluate")
    parser.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch default)")
    args = parser.parse_args(argv)
    if args.size % 32 or args.size < 32:
        parser.error(f"--size must be a positive multiple of 32, got {args.size}.")
    if not 0 < args.stage1_steps < args.steps:
        parser.error(f"--stage1-steps must be in 1..{args.steps - 1} (< --steps), got {args.stage1_steps}.")
    if args.threads:
        torch.set_num_threads(args.threads)

    t0 = time.perf_counter()
    datalist, train, val = load_benchmark_data(args, parser)
    cross = load_cached(load_datalist(args.cross_datalist, args.cross_split), args.size) if args.cross_datalist else []
    print(
        f"loaded {len(train)} training / {len(val)} validation images in {time.perf_counter() - t0:.0f} s", flush=True
    )

    # what must match to add runs to an earlier results.json (seeds and models only select runs)
    settings = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items() if k not in ("seeds", "models")}
    results_path = args.out / "results.json"
    done = json.loads(results_path.read_text()) if results_path.is_file() else {}
    if done.get("settings", settings) != settings:
        parser.error(f"'{results_path}' holds results of other settings; use another --out or delete it.")
    runs: list[dict[str, Any]] = done.get("runs", [])
    conditions = robustness_conditions(severities=args.severities) if args.severities else [("clean", 0)]
    environment = benchmark_environment(train, val)
    trainers: dict[str, Callable[[Iterator[dict]], nn.Module]] = {
        "condseg": lambda d: train_condseg(
            d, args.steps, args.stage1_steps, args.lr, args.encoder_lr, seed, args.feature_size
        ),
    }
    for seed in args.seeds:
        for name in args.models:
            if any(r["model"] == name and r["seed"] == seed for r in runs):
                continue  # finished in an earlier, interrupted invocation
            print(f"[seed {seed}] {name}: training {args.steps} steps", flush=True)
            data = batches(train, args.size, args.batch_size, seed)
            torch.manual_seed(seed)  # same for every model: weight initialisation
            start = time.perf_counter()
            trainer = trainers.get(name, lambda d, n=name: train_baseline(n, d, args.steps, args.lr))
            model = trainer(data)
            seconds = time.perf_counter() - start
            run = {
                "model": name,
                "seed": seed,
                "parameters": sum(p.numel() for p in model.parameters()),
                "train_seconds": seconds,
                "val": evaluate(model, val, conditions),
            }
            if cross:
                run["cross"] = evaluate(model, cross)
            runs.append(run)
            clean = run["val"]["clean"]
            print(f"[seed {seed}] {name}: mIoU {100 * clean['iou']:.1f} mDSC {100 * clean['dice']:.1f}", flush=True)
            write_json({"settings": settings, "environment": environment, "runs": runs}, results_path)
    table = summarise(runs, args.models)
    (args.out / "results.md").write_text(table + "\n")
    print(table)
    return 0 if all(math.isfinite(r["val"]["clean"]["iou"]) for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
