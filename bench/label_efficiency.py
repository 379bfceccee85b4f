# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""Label efficiency: supervised on a labeled subset, semi-supervised with the unlabeled rest, and all labels.

For each network (``--models``: ConDSeg with both stages, MONAI BasicUNet, ...) and training seed, three arms
with the same number of optimisation steps (``--steps``), batch size, optimiser and, for the labeled batches,
the same batches and augmentation draws:

- ``sup``: supervised on the labeled subset only (``--fractions`` of the training pairs, chosen with
  :func:`condseg_monai.data.keep_labeled` and ``--label-seed``; the other training images are "unlabeled");
- ``semi``: the same labeled batches plus unlabeled batches of the rest (their own seeded augmentation draws,
  masks replaced by zeros so they cannot leak), trained by the package's
  :class:`~condseg_monai.engines.SemiSupervisedTrainer`. BasicUNet and ConDSeg Stage 2: mean teacher (EMA
  teacher, confident pseudo-labels on the strong view). ConDSeg Stage 1: clean / strong-view consistency on the
  unlabeled images (no teacher). The teacher (what the bundle saves) and the student are both evaluated;
- ``full``: supervised on all training pairs (the ceiling at this budget).

The supervised arms run :func:`accuracy.train_baseline` / :func:`accuracy.train_condseg` unchanged. Data,
augmentation, evaluation (the paper's metrics and the bundle's corruptions) are those of ``bench/accuracy.py``.
The labeled batch stream of every arm runs on its own random state (:class:`IsolatedBatches`), so what the
networks do with the global random generators between batches cannot change it; a SHA-256 digest of the labeled
batches each arm consumed is stored with the run (equal digests: identical labeled batches).

``--eval-at`` evaluates (clean images only) at intermediate steps: with a constant learning rate the model at step
``k`` of a longer run is the model of a ``k``-step run, so one run gives the learning curve (the budget search).

Results go to ``--out`` (``results.json``, rewritten atomically after every run, so an interrupted benchmark
continues where it stopped; ``results.md``, the tables). Usage::

    python bench/label_efficiency.py --data ../shared/data/kvasir-seg --out runs/label_efficiency/basic_unet64 \\
        --models basic_unet --size 64 --steps 1000 --fractions 0.1 0.25 --arms sup full semi --seeds 0 1
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import random
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from accuracy import (
    METRICS,
    add_data_arguments,
    batches,
    benchmark_environment,
    build_model,
    evaluate,
    load_benchmark_data,
    train_baseline,
    train_condseg,
)
from monai.utils import set_determinism
from torch import nn

from condseg_monai.data import keep_labeled, read_datalist
from condseg_monai.inference.report import write_json
from condseg_monai.inference.robustness import robustness_conditions

__all__ = [
    "resume_results",
    "ARMS",
    "IsolatedBatches",
    "labeled_indices",
    "main",
    "summarise",
    "train_semi_baseline",
    "train_semi_condseg",
]

ARMS = ("sup", "semi", "full")
LABELS = {"condseg": "ConDSeg (Stage 1 + 2)", "basic_unet": "MONAI BasicUNet"}
UNLABELED_SEED_OFFSET = 10_000  # the unlabeled stream of seed s uses seed s + this offset
OnStep = Callable[[nn.Module, int], None]


def _rng_state() -> tuple[Any, Any, Any]:
    return torch.get_rng_state(), np.random.get_state(), random.getstate()


def _set_rng_state(state: tuple[Any, Any, Any]) -> None:
    torch.set_rng_state(state[0])
    np.random.set_state(state[1])
    random.setstate(state[2])


class IsolatedBatches(Iterator[dict]):
    """An endless batch stream on its own random state, with a digest of everything it handed out.

    Around every ``next`` the global torch / NumPy / ``random`` states are swapped for the stream's own, so the
    batches (shuffling at every epoch, augmentation draws) depend only on the stream's seed, not on how much
    randomness the training consumed in between.

    Args:
        data: the underlying iterator (e.g. :func:`accuracy.batches`).
        keep_label: ``False`` drops the ``label`` of every batch (unlabeled data).
    """

    def __init__(self, data: Iterator[dict], keep_label: bool = True) -> None:
        self._data = data
        self._keep_label = keep_label
        self._state: tuple[Any, Any, Any] | None = None
        self._digest = hashlib.sha256()
        self.count = 0

    def __iter__(self) -> IsolatedBatches:
        return self

    def __next__(self) -> dict:
        outer = _rng_state()
        if self._state is not None:
            _set_rng_state(self._state)
        try:
            batch = next(self._data)
        finally:
            self._state = _rng_state()
            _set_rng_state(outer)
        self.count += 1
        for key in ("image", "label"):
            if key in batch:
                self._digest.update(batch[key].numpy().tobytes())
        return batch if self._keep_label else {"image": batch["image"]}

    @property
    def digest(self) -> str:
        """SHA-256 (hex) over every batch handed out so far (images and, if kept, masks)."""
        return self._digest.hexdigest()


def labeled_indices(
    datalist: Path, fraction: float | None, seed: int, count: int | None = None
) -> tuple[list[int], list[int]]:
    """Indices (into the datalist's ``training`` entries) of the labeled and the unlabeled images.

    The choice is :func:`condseg_monai.data.keep_labeled` (``fraction`` of the training pairs or ``count`` of them,
    ``seed``).
    """
    full = read_datalist(datalist)
    kept = {e.image for e in keep_labeled(full, fraction=fraction, count=count, seed=seed).training}
    labeled = [i for i, e in enumerate(full.training) if e.image in kept]
    unlabeled = [i for i, e in enumerate(full.training) if e.image not in kept]
    return labeled, unlabeled


def _stream(cached: list[dict[str, torch.Tensor]], size: int, batch_size: int, seed: int, **kw: Any) -> IsolatedBatches:
    return IsolatedBatches(batches(cached, size, batch_size, seed), **kw)


def _unlabeled(cached: list[dict[str, torch.Tensor]]) -> list[dict[str, torch.Tensor]]:
    """The images only; an all-zero mask takes the label's place in the joint geometric augmentation."""
    return [{"image": c["image"], "label": torch.zeros_like(c["label"])} for c in cached]


def _semi_trainer(
    network: nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_function: nn.Module,
    labeled: Iterator[dict],
    unlabeled: Iterator[dict],
    steps: int,
    args: argparse.Namespace,
    seed: int,
    teacher: bool,
    inferer: Any = None,
    on_step: OnStep | None = None,
    log: list[dict[str, float]] | None = None,
    prepare_batch: Any = None,
) -> tuple[Any, nn.Module | None]:
    """Build, run and return ``(trainer, teacher)`` of the package's ``SemiSupervisedTrainer`` for ``steps``."""
    from ignite.engine import Events
    from ignite.handlers import EMAHandler

    from condseg_monai.engines import SemiSupervisedTrainer
    from condseg_monai.losses import ConfidentPseudoLabelLoss, UnlabeledConsistencyLoss
    from condseg_monai.transforms import RandIlluminationContrastAugment

    warmup = {}
    if args.ema_warmup_iters:  # ignite's warm-up: the momentum goes linearly from --ema-warmup-momentum down
        warmup = {"momentum_warmup": args.ema_warmup_momentum, "warmup_iters": args.ema_warmup_iters}
    ema = EMAHandler(network, momentum=args.ema_momentum, **warmup) if teacher else None
    strong = RandIlluminationContrastAugment().set_random_state(seed=seed + UNLABELED_SEED_OFFSET)
    trainer = SemiSupervisedTrainer(
        device=torch.device("cpu"),
        max_epochs=1,
        epoch_length=steps,
        train_data_loader=labeled,
        network=network,
        optimizer=optimizer,
        loss_function=loss_function,
        unlabeled_data_loader=unlabeled,
        unsupervised_loss=ConfidentPseudoLabelLoss(threshold=args.threshold) if teacher else UnlabeledConsistencyLoss(),
        strong_augment=strong,
        teacher=ema.ema_model if ema is not None else None,
        unsupervised_weight=args.unsup_weight,
        rampup_iterations=int(args.rampup * steps),
        inferer=inferer,
        **({} if prepare_batch is None else {"prepare_batch": prepare_batch}),
        decollate=False,  # keep engine.state.output one dict (the logged losses)
    )
    if ema is not None:
        ema.attach(trainer, name="ema_momentum", event=Events.ITERATION_COMPLETED)

    every = max(1, steps // 10)

    @trainer.on(Events.ITERATION_COMPLETED)
    def _progress(engine: Any) -> None:
        it = engine.state.iteration
        out = engine.state.output
        if log is not None and (it == 1 or it % every == 0 or it == steps):
            row = {"step": it, "loss": float(out["loss"])}
            for key in ("unsup_loss", "unsup_weight", "confident_fraction"):
                if key in out:
                    row[key] = float(out[key])
            log.append(row)
            print(f"  semi step {it}/{steps}: {row}", flush=True)
        if on_step is not None:
            on_step(network if ema is None else ema.ema_model, it)
            network.train()

    trainer.run()
    return trainer, (ema.ema_model if ema is not None else None)


def train_semi_baseline(
    name: str,
    labeled: Iterator[dict],
    unlabeled: Iterator[dict],
    args: argparse.Namespace,
    seed: int,
    on_step: OnStep | None = None,
    log: list[dict[str, float]] | None = None,
) -> tuple[nn.Module, nn.Module]:
    """Mean teacher for MONAI baseline ``name``: Dice + BCE on the labeled batches; returns ``(teacher, student)``."""
    from condseg_monai.losses import DiceBCELoss

    model = build_model(name)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    _, teacher = _semi_trainer(
        model, optimizer, DiceBCELoss(), labeled, unlabeled, args.steps, args, seed, True, None, on_step, log
    )
    assert teacher is not None
    return teacher, model


def train_semi_condseg(
    labeled: Iterator[dict],
    unlabeled: Iterator[dict],
    args: argparse.Namespace,
    seed: int,
    on_step: OnStep | None = None,
    log: list[dict[str, float]] | None = None,
) -> tuple[nn.Module, nn.Module]:
    """ConDSeg: Stage 1 with unlabeled consistency, then Stage 2 mean teacher; returns ``(teacher, student)``.

    The labeled part of each stage is that of :func:`accuracy.train_condseg` (Stage 1: ``StrongViewPrepareBatch``
    + ``ConsistencyInferer`` with the seeded strong augmentation and ``Stage1Loss``; Stage 2: encoder from Stage 1
    at ``--encoder-lr``, ``ConDSegLoss``); ``on_step`` sees the Stage-2 teacher with steps counted over both stages.
    """
    from condseg_monai.engines import StrongViewPrepareBatch, encoder_param_groups
    from condseg_monai.inferers import ConsistencyInferer
    from condseg_monai.losses import ConDSegLoss, Stage1Loss
    from condseg_monai.networks import ConDSeg, ConDSegStage1, load_stage1_encoder
    from condseg_monai.transforms import RandIlluminationContrastAugment

    stage1 = ConDSegStage1()
    views = StrongViewPrepareBatch(RandIlluminationContrastAugment().set_random_state(seed=seed))
    optimizer = torch.optim.Adam(stage1.parameters(), lr=args.lr)
    _semi_trainer(
        stage1,
        optimizer,
        Stage1Loss(),
        labeled,
        unlabeled,
        args.stage1_steps,
        args,
        seed,
        False,
        ConsistencyInferer(),
        None,
        log,
        views,
    )

    model = ConDSeg(feature_size=args.feature_size)
    load_stage1_encoder(model, stage1.state_dict())
    optimizer = torch.optim.Adam(encoder_param_groups(model, args.lr, args.encoder_lr), lr=args.lr)
    hook = (lambda m, s: on_step(m, args.stage1_steps + s)) if on_step is not None else None
    _, teacher = _semi_trainer(
        model, optimizer, ConDSegLoss(), labeled, unlabeled, args.steps - args.stage1_steps, args, seed, True,
        None, hook, log,
    )  # fmt: skip
    assert teacher is not None
    return teacher, model


def _curve_hook(
    eval_at: set[int], val: list[dict[str, torch.Tensor]], curve: dict[str, dict[str, float]]
) -> OnStep | None:
    """``on_step`` that stores the clean metrics of the model at the steps in ``eval_at`` into ``curve``."""
    if not eval_at:
        return None

    def hook(model: nn.Module, step: int) -> None:
        if step in eval_at:
            curve[str(step)] = evaluate(model, val)["clean"]
            print(f"    step {step}: val mIoU {100 * curve[str(step)]['iou']:.1f}", flush=True)

    return hook


def _key(run: Mapping[str, Any]) -> tuple[str, str, float, int]:
    return run["model"], run["arm"], run["fraction"], run["seed"]


def _mean(values: Sequence[float]) -> float:
    return statistics.fmean(values)


def _fmt(values: Sequence[float]) -> str:
    if len(values) == 1:
        return f"{100 * values[0]:.1f}"
    return f"{100 * statistics.fmean(values):.1f} ± {100 * statistics.stdev(values):.1f}"


def _drop(val: Mapping[str, Mapping[str, float]]) -> float | None:
    keys = [k for k in val if k != "clean"]
    return _mean([val[k]["iou"] - val["clean"]["iou"] for k in keys]) if keys else None


def summarise(runs: Sequence[Mapping[str, Any]], final_step: int | None = None) -> str:
    """Markdown tables: per network and arm, the clean metrics, the robustness drop and the share of the gap closed.

    "gap closed" of a semi-supervised arm at fraction ``f`` is ``(semi - sup) / (full - sup)`` on the mean mIoU
    over the seeds present in all three arms (not given when the full arm is not above the supervised one).
    ``final_step`` (the run's ``--steps``) adds the final clean mIoU as the last column of the learning curves.
    """
    lines = [
        "| network | arm | labeled | seeds | train time (min) | mIoU | mDSC | recall | precision | "
        "mean mIoU drop under corruption | gap closed |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    models = list(dict.fromkeys(r["model"] for r in runs))
    curves: list[str] = []
    for model in models:
        mine = [r for r in runs if r["model"] == model]
        full = [r for r in mine if r["arm"] == "full"]
        fractions = sorted({r["fraction"] for r in mine if r["arm"] != "full"})
        rows: list[tuple[str, float, list[Mapping[str, Any]], str]] = []
        for f in fractions:
            sup = [r for r in mine if r["arm"] == "sup" and r["fraction"] == f]
            semi = [r for r in mine if r["arm"] == "semi" and r["fraction"] == f]
            rows.append(("sup", f, sup, "val"))
            rows.append(("semi (teacher)", f, semi, "val"))
            rows.append(("semi (student)", f, semi, "student"))
        rows.append(("full", 1.0, full, "val"))
        full_iou = {r["seed"]: r["val"]["clean"]["iou"] for r in full}
        for arm, f, rs, which in rows:
            rs = [r for r in rs if which in r]
            if not rs:
                continue
            clean = [r[which]["clean"] for r in rs]
            drops = [d for r in rs if (d := _drop(r[which])) is not None]
            closed = "–"
            if arm.startswith("semi"):
                sup_iou = {
                    r["seed"]: r["val"]["clean"]["iou"] for r in mine if r["arm"] == "sup" and r["fraction"] == f
                }
                seeds = [r["seed"] for r in rs if r["seed"] in sup_iou and r["seed"] in full_iou]
                if seeds:
                    s = _mean([sup_iou[k] for k in seeds])
                    g = _mean([full_iou[k] for k in seeds])
                    m = _mean([r[which]["clean"]["iou"] for r in rs if r["seed"] in seeds])
                    gap = f"{100 * (g - s):.1f}"
                    closed = f"{100 * (m - s) / (g - s):.0f}% of {gap}" if g > s else f"no gap ({gap})"
            lines.append(
                f"| {LABELS.get(model, model)} | {arm} | {rs[0]['labeled']} | {len(rs)} | "
                f"{_mean([r['train_seconds'] for r in rs]) / 60:.1f} | "
                + " | ".join(_fmt([c[m] for c in clean]) for m in METRICS)
                + f" | {_fmt(drops) if drops else '–'} | {closed} |"
            )
        steps = sorted({int(s) for r in mine for s in r.get("curve", {})})
        if steps and final_step is not None:
            steps.append(final_step)
        if steps:
            curves += ["", f"{LABELS.get(model, model)}: clean mIoU (%) during training, mean over seeds:", ""]
            curves += ["| arm | labeled | " + " | ".join(map(str, steps)) + " |", "|---|---|" + "---|" * len(steps)]
            for arm, _f, rs, which in rows:
                key = "curve" if which == "val" else "student_curve"
                if final_step is not None:  # the final evaluation is the last point of the curve
                    rs = [{**r, key: {**r.get(key, {}), str(final_step): r[which]["clean"]}} for r in rs]
                if rs and any(key in r for r in rs):
                    cells = [
                        _fmt([r[key][str(s)]["iou"] for r in rs if str(s) in r.get(key, {})]) if any(
                            str(s) in r.get(key, {}) for r in rs
                        ) else "–"
                        for s in steps
                    ]  # fmt: skip
                    curves.append(f"| {arm} | {rs[0]['labeled']} | " + " | ".join(cells) + " |")
    keys = [k for k in runs[0]["val"] if k != "clean"] if runs else []
    if keys:
        lines += ["", "mIoU (%) per corruption, mean over seeds:", ""]
        lines += [
            "| network | arm | labeled | clean | " + " | ".join(keys) + " |",
            "|---|---|---|---|" + "---|" * len(keys),
        ]
        for model in models:
            for arm in ("sup", "semi", "full"):
                for f in sorted({r["fraction"] for r in runs if r["model"] == model and r["arm"] == arm}):
                    rs = [r for r in runs if r["model"] == model and r["arm"] == arm and r["fraction"] == f]
                    vals = [_mean([r["val"][k]["iou"] for r in rs]) for k in ["clean", *keys]]
                    name = "semi (teacher)" if arm == "semi" else arm
                    lines.append(
                        f"| {LABELS.get(model, model)} | {name} | {rs[0]['labeled']} | "
                        + " | ".join(f"{100 * v:.1f}" for v in vals)
                        + " |"
                    )
    return "\n".join(lines + curves)


def resume_results(
    args: argparse.Namespace, parser: argparse.ArgumentParser, selectors: Sequence[str]
) -> tuple[dict[str, Any], Path, list[dict[str, Any]]]:
    """The settings of this invocation and the runs ``--out/results.json`` already holds (resumable benchmarks).

    Every option except ``selectors`` (which only choose the work) must match the stored settings; a setting
    added after the results were written counts with its default.

    Returns:
        ``(settings, results.json path, stored runs)``; exits through ``parser.error`` on other settings.
    """
    settings = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items() if k not in selectors}
    results_path = args.out / "results.json"
    done = json.loads(results_path.read_text()) if results_path.is_file() else {}
    defaults = {k: parser.get_default(k) for k in settings}
    if "settings" in done and {k: done["settings"].get(k, defaults[k]) for k in settings} != settings:
        parser.error(f"'{results_path}' holds results of other settings; use another --out or delete it.")
    return settings, results_path, list(done.get("runs", []))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_data_arguments(parser)
    parser.add_argument("--models", nargs="+", default=["basic_unet", "condseg"], help="condseg or accuracy baselines")
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=ARMS)
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.1], help="labeled fractions (sup, semi)")
    parser.add_argument("--label-seed", type=int, default=0, help="seed of keep_labeled (the labeled subset)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="training seeds")
    parser.add_argument("--size", type=int, default=64, help="image side (a multiple of 32)")
    parser.add_argument("--steps", type=int, default=1000, help="optimisation steps (ConDSeg: both stages)")
    parser.add_argument("--stage1-steps", type=int, default=100, help="ConDSeg: Stage-1 steps out of --steps")
    parser.add_argument("--batch-size", type=int, default=4, help="labeled (and unlabeled) batch size")
    parser.add_argument("--lr", type=float, default=1e-4, help="Adam learning rate")
    parser.add_argument("--encoder-lr", type=float, default=1e-5, help="ConDSeg Stage 2: encoder learning rate")
    parser.add_argument("--feature-size", type=int, default=128, help="ConDSeg decoder width")
    parser.add_argument("--eval-at", type=int, nargs="*", default=[], help="extra clean evaluations at these steps")
    parser.add_argument("--severities", type=int, nargs="*", default=[2], help="corruption severities (none: skip)")
    parser.add_argument("--unsup-weight", type=float, default=1.0, help="semi: weight of the unlabeled loss")
    parser.add_argument("--rampup", type=float, default=0.2, help="semi: sigmoid ramp-up, fraction of the steps")
    parser.add_argument("--threshold", type=float, default=0.95, help="semi: pseudo-label confidence threshold")
    parser.add_argument("--ema-momentum", type=float, default=0.01, help="semi: ignite EMAHandler momentum")
    parser.add_argument(
        "--ema-warmup-iters", type=int, default=0, help="semi: EMAHandler warm-up iterations per stage (0: none)"
    )
    parser.add_argument(
        "--ema-warmup-momentum", type=float, default=0.5, help="semi: EMAHandler momentum at the warm-up start"
    )
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (0: torch default)")
    args = parser.parse_args(argv)
    if args.size % 32 or args.size < 32:
        parser.error(f"--size must be a positive multiple of 32, got {args.size}.")
    if "condseg" in args.models and not 0 < args.stage1_steps < args.steps:
        parser.error(f"--stage1-steps must be in 1..{args.steps - 1} (< --steps), got {args.stage1_steps}.")
    if args.threads:
        torch.set_num_threads(args.threads)

    t0 = time.perf_counter()
    datalist, train, val = load_benchmark_data(args, parser)
    print(f"loaded {len(train)} training / {len(val)} validation images in {time.perf_counter() - t0:.0f} s")
    subsets = {f: labeled_indices(datalist, f, args.label_seed) for f in args.fractions}

    # only select runs; everything else must match
    settings, results_path, runs = resume_results(args, parser, ("seeds", "models", "arms", "fractions"))
    conditions = robustness_conditions(severities=args.severities) if args.severities else [("clean", 0)]
    environment = benchmark_environment(train, val)
    eval_at = {s for s in args.eval_at if 0 < s < args.steps}
    todo = [("full", 1.0)] if "full" in args.arms else []
    todo = [(arm, f) for f in args.fractions for arm in ("sup", "semi") if arm in args.arms] + todo
    for seed in args.seeds:
        for name in args.models:
            for arm, fraction in todo:
                key = (name, arm, fraction, seed)
                if any(_key(r) == key for r in runs):
                    continue  # finished in an earlier, interrupted invocation
                lab_idx, unl_idx = subsets[fraction] if arm != "full" else (list(range(len(train))), [])
                print(f"[seed {seed}] {name} {arm} {len(lab_idx)} labeled: {args.steps} steps", flush=True)
                labeled = _stream([train[i] for i in lab_idx], args.size, args.batch_size, seed)
                curve: dict[str, dict[str, float]] = {}
                hook = _curve_hook(eval_at, val, curve)
                log: list[dict[str, float]] = []
                torch.manual_seed(seed)  # same for every arm: weight initialisation
                set_determinism(seed)
                start = time.perf_counter()
                student = None
                if arm == "semi":
                    unl = _unlabeled([train[i] for i in unl_idx])
                    unlabeled = _stream(unl, args.size, args.batch_size, seed + UNLABELED_SEED_OFFSET, keep_label=False)
                    if name == "condseg":
                        model, student = train_semi_condseg(labeled, unlabeled, args, seed, hook, log)
                    else:
                        model, student = train_semi_baseline(name, labeled, unlabeled, args, seed, hook, log)
                elif name == "condseg":
                    model = train_condseg(
                        labeled, args.steps, args.stage1_steps, args.lr, args.encoder_lr, seed, args.feature_size, hook
                    )
                else:
                    model = train_baseline(name, labeled, args.steps, args.lr, hook)
                seconds = time.perf_counter() - start
                run: dict[str, Any] = {
                    "model": name,
                    "arm": arm,
                    "fraction": fraction,
                    "seed": seed,
                    "labeled": len(lab_idx),
                    "unlabeled": len(unl_idx) if arm == "semi" else 0,
                    "parameters": sum(p.numel() for p in model.parameters()),
                    "train_seconds": seconds,
                    "labeled_batches": labeled.count,
                    "labeled_digest": labeled.digest,
                    "val": evaluate(model, val, conditions),
                    "curve": curve,
                }
                if student is not None:
                    run["student"] = evaluate(student, val, conditions)
                    run["log"] = log
                runs.append(run)
                clean = run["val"]["clean"]
                print(f"[seed {seed}] {name} {arm} {fraction}: mIoU {100 * clean['iou']:.1f} ({seconds:.0f} s)")
                write_json({"settings": settings, "environment": environment, "runs": runs}, results_path)
    table = summarise(runs, args.steps)
    (args.out / "results.md").write_text(table + "\n")
    print(table)
    return 0 if all(math.isfinite(r["val"]["clean"]["iou"]) for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
