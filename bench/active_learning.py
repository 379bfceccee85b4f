# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""Uncertainty-driven active learning (issue 14): do the uncertainty scores find the failures, and do they pick
better images to label than chance?

Data: the seeded train/val split of ``bench/label_efficiency.py`` (``--data`` split once with
``--val-count 80 --split-seed 0``), images cached at ``--size`` (:func:`accuracy.load_benchmark_data`). The network
is ConDSeg, the scores are those of :func:`condseg_monai.inference.uncertainty_scores.uncertainty_scores` (all of
:data:`~condseg_monai.inference.uncertainty_scores.SCORE_NAMES`, from the four flip-TTA passes, ConDSeg called with
``return_aux=True`` so the SID map comes with the mask).

(a) Failure detection, for every model below, on the validation images: each image's scores and its Dice (the plain
forward, threshold 0.5, so the mean is the mDSC of the table); per score the Spearman rank correlation between the
score and the error ``1 - Dice`` and the AUROC of the score for detecting the images with Dice < ``--failure-dice``
(None when one of the two classes is empty), and how many such failures there are.

(b) A simulated annotation loop. ``--initial`` training pairs (:func:`condseg_monai.data.keep_labeled`,
``--label-seed``) are labeled; ConDSeg is trained on them once (:func:`accuracy.train_condseg`: Stage 1 for
``--stage1-steps``, Stage 2 for the rest of ``--initial-steps``); this initial model, cached in ``--out/states``,
is the start of both arms. Then, for ``--rounds`` rounds and each arm, ``--per-round`` images of the candidate pool
are labeled and the arm's previous model is fine-tuned on all its labeled images for ``--round-steps`` Stage-2
steps (:class:`~condseg_monai.losses.ConDSegLoss`, a fresh Adam with the encoder at ``--encoder-lr``):

- ``uncertainty``: the ``--per-round`` not yet labeled pool images with the highest ``--score`` under the arm's
  previous model (scoring needs only the images, never their masks);
- ``random``: the next not yet labeled images of a seeded permutation of the pool (the same at every rerun).

The pool is a seeded random subset (``--pool-size``, ``--label-seed``) of the unlabeled training images, the same
for both arms (scoring all 780 images every round would cost more than the training). Within a round both arms use
the same batch seed and weight-state seed: only which images are labeled differs. Each round's model is evaluated
(:func:`accuracy.evaluate`, clean validation images) and measured as in (a).

Rounds are the unit of work: after each, the arm's chosen images, metrics and model state (``--out/states``) are
stored and ``results.json`` is rewritten atomically, so an interrupted run continues with the next round;
``results.md`` holds the tables, the command and the settings. The states take about 180 MB per model (seven per
seed at the default width). Cost at ``--size 64``, one thread, per seed with the defaults: ~100 Stage-1 steps of
~1 s, 200 + 6 x 60 Stage-2 steps of ~3-4 s, 540 pool images scored (~0.85 s each: four passes) and seven
evaluations of ~95 s, about 50 min in all on a busy 2-core machine. Usage::

    python bench/active_learning.py --data ../shared/data/kvasir-seg --out runs/active_learning/kvasir64 \\
        --size 64 --threads 1 [--initial-steps 300] [--round-steps 60] [--pool-size 200] [--seeds 0 1]
"""

from __future__ import annotations

import argparse
import json
import math
import random
import shlex
import statistics
import sys
import time
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from accuracy import (
    _train,
    add_data_arguments,
    batches,
    benchmark_environment,
    evaluate,
    load_benchmark_data,
    train_condseg,
)
from label_efficiency import IsolatedBatches, labeled_indices, resume_results
from monai.utils import set_determinism
from torch import nn

from condseg_monai.engines import encoder_param_groups
from condseg_monai.files import atomic_torch_save
from condseg_monai.inference.report import write_json
from condseg_monai.inference.uncertainty_scores import SCORE_NAMES, uncertainty_scores
from condseg_monai.losses import ConDSegLoss
from condseg_monai.metrics import binary_segmentation_metrics
from condseg_monai.networks import ConDSeg

__all__ = [
    "ARMS",
    "auroc",
    "failure_detection",
    "fine_tune",
    "main",
    "per_image_dice",
    "pool_subset",
    "random_order",
    "rank",
    "score_images",
    "select_random",
    "select_uncertain",
    "spearman",
    "summarise",
]

ARMS = ("uncertainty", "random")
ROUND_SEED_OFFSET = 1000  # round r of training seed s uses batch / weight-state seed s + r * this offset


# --- statistics -------------------------------------------------------------------------------------------------


def rank(values: Sequence[float]) -> list[float]:
    """1-based ranks of ``values`` (ascending); tied values share the average of their ranks."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def spearman(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Spearman's rank correlation (Pearson correlation of the average ranks); None when either side is constant."""
    if len(x) != len(y):
        raise ValueError(f"x and y differ in length ({len(x)} vs {len(y)}).")
    if len(x) < 2:
        return None
    try:
        return statistics.correlation(rank(x), rank(y))
    except statistics.StatisticsError:  # a constant input
        return None


def auroc(scores: Sequence[float], positive: Sequence[bool]) -> float | None:
    """Area under the ROC curve of ``scores`` for the ``positive`` items: Mann-Whitney ``U / (n_pos n_neg)``.

    Ties between a positive and a negative count one half (average ranks). None when a class is empty.
    """
    if len(scores) != len(positive):
        raise ValueError(f"scores and positive differ in length ({len(scores)} vs {len(positive)}).")
    n_pos = sum(bool(p) for p in positive)
    n_neg = len(positive) - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    rank_sum = sum(r for r, p in zip(rank(scores), positive) if p)
    return (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


# --- which images are labeled -----------------------------------------------------------------------------------


def pool_subset(unlabeled: Sequence[int], size: int, seed: int) -> list[int]:
    """The candidate pool: a seeded random subset of ``size`` of the ``unlabeled`` indices (all when ``size``
    is 0 or not smaller), sorted. It depends on ``unlabeled`` and ``seed`` only, so both arms share it."""
    ids = sorted(unlabeled)
    if size <= 0 or size >= len(ids):
        return ids
    return sorted(random.Random(f"pool-{seed}").sample(ids, size))


def random_order(pool: Sequence[int], label_seed: int, seed: int) -> list[int]:
    """The seeded permutation of ``pool`` the random arm labels in (the same at every rerun)."""
    return random.Random(f"random-arm-{label_seed}-{seed}").sample(sorted(pool), len(pool))


def select_random(order: Sequence[int], labeled: Collection[int], k: int) -> list[int]:
    """The first ``k`` of ``order`` not yet ``labeled``."""
    chosen = [i for i in order if i not in labeled][:k]
    if len(chosen) < k:
        raise ValueError(f"only {len(chosen)} unlabeled candidates left, {k} requested.")
    return chosen


def select_uncertain(scores: Mapping[int, float], labeled: Collection[int], k: int) -> list[int]:
    """The ``k`` not yet ``labeled`` ids with the highest score (ties: the smaller id first), highest first."""
    candidates = sorted((i for i in scores if i not in labeled), key=lambda i: (-scores[i], i))
    if len(candidates) < k:
        raise ValueError(f"only {len(candidates)} unlabeled candidates left, {k} requested.")
    return candidates[:k]


# --- the network on cached images ---------------------------------------------------------------------------------


def _chunks(cached: Sequence[Mapping[str, torch.Tensor]], batch_size: int) -> Any:
    for i in range(0, len(cached), batch_size):
        yield cached[i : i + batch_size]


@torch.inference_mode()
def score_images(
    model: nn.Module, cached: Sequence[Mapping[str, torch.Tensor]], batch_size: int = 8
) -> dict[str, list[float]]:
    """Every uncertainty score of ``model`` (eval mode, ConDSeg with ``return_aux``) for each image; masks unused."""
    model.eval()
    prior = getattr(model, "return_aux", None)
    if prior is not None:
        model.return_aux = True  # the stacked output: the SID score needs the uncertainty map
    try:
        out: dict[str, list[float]] = {}
        for chunk in _chunks(cached, batch_size):
            scores = uncertainty_scores(model, torch.stack([c["image"] for c in chunk]))
            for name, values in scores.items():
                out.setdefault(name, []).extend(values.tolist())
    finally:
        if prior is not None:
            model.return_aux = prior
    return out


@torch.inference_mode()
def per_image_dice(model: nn.Module, cached: Sequence[Mapping[str, torch.Tensor]], batch_size: int = 8) -> list[float]:
    """Dice of ``model``'s plain prediction (threshold 0.5) for each image (``binary_segmentation_metrics``)."""
    model.eval()
    dice: list[float] = []
    for chunk in _chunks(cached, batch_size):
        images = torch.stack([c["image"] for c in chunk])
        labels = torch.stack([c["label"] for c in chunk])
        dice += binary_segmentation_metrics(model(images), labels, logits=True)["dice"].tolist()
    return dice


def failure_detection(
    model: nn.Module, cached: Sequence[Mapping[str, torch.Tensor]], failure_dice: float = 0.5, batch_size: int = 8
) -> dict[str, Any]:
    """(a): per-image scores and Dice on ``cached``, and per score the Spearman correlation with ``1 - Dice`` and
    the AUROC for detecting the images with Dice < ``failure_dice``."""
    scores = score_images(model, cached, batch_size)
    dice = per_image_dice(model, cached, batch_size)
    error = [1.0 - d for d in dice]
    failed = [d < failure_dice for d in dice]
    stats = {name: {"spearman": spearman(s, error), "auroc": auroc(s, failed)} for name, s in scores.items()}
    return {"failures": sum(failed), "images": len(dice), "stats": stats, "dice": dice, "scores": scores}


def fine_tune(model: nn.Module, data: Any, steps: int, lr: float, encoder_lr: float, prefix: str = "round") -> None:
    """``steps`` Stage-2 steps of ``model`` (ConDSegLoss, a fresh Adam with the encoder at ``encoder_lr``)."""
    optimizer = torch.optim.Adam(encoder_param_groups(model, lr, encoder_lr), lr=lr)
    _train(prefix, model, model, optimizer, ConDSegLoss(), data, steps)


def _save_state(model: nn.Module, meta: Mapping[str, Any], path: Path) -> None:
    """``{"meta": meta, "model": state_dict}``, written atomically."""
    atomic_torch_save({"meta": dict(meta), "model": model.state_dict()}, path)


def _load_state(path: Path) -> dict[str, Any] | None:
    return torch.load(path, map_location="cpu", weights_only=True) if path.is_file() else None


def _model_from(state: Mapping[str, Any], feature_size: int) -> ConDSeg:
    model = ConDSeg(feature_size=feature_size)
    model.load_state_dict(state["model"])
    return model


# --- the tables -----------------------------------------------------------------------------------------------


def _fmt(values: Sequence[float | None], scale: float = 100.0, digits: int = 1) -> str:
    vals = [v for v in values if v is not None and math.isfinite(v)]
    if not vals:
        return "–"
    if len(vals) == 1:
        return f"{scale * vals[0]:.{digits}f}"
    return f"{scale * statistics.fmean(vals):.{digits}f} ± {scale * statistics.stdev(vals):.{digits}f}"


def _models(runs: Sequence[Mapping[str, Any]]) -> list[tuple[str, int, list[Mapping[str, Any]]]]:
    """``(arm, round, runs over seeds)``: the initial model first, then each arm's rounds."""
    arms = {(r["arm"], r["round"]) for r in runs if r["arm"] != "initial"}
    keys = [("initial", 0), *sorted(arms, key=lambda k: (ARMS.index(k[0]), k[1]))]
    out = []
    for arm, rnd in keys:
        rs = [r for r in runs if r["arm"] == arm and r["round"] == rnd]
        if rs:
            out.append((arm, rnd, rs))
    return out


def summarise(runs: Sequence[Mapping[str, Any]], settings: Mapping[str, Any], command: str) -> str:
    """``results.md``: the learning curve per arm, the failure-detection table, the command and the settings."""
    lines = [
        "# Uncertainty-driven active learning (bench/active_learning.py)",
        "",
        f"Command: `{command}`",
        "",
        f"Labeled set: {settings['initial']} initial images (`keep_labeled`, label seed {settings['label_seed']}), "
        f"+{settings['per_round']} per round for {settings['rounds']} rounds. Candidate pool: a seeded random subset "
        f"of {settings['pool_size'] or 'all'} of the unlabeled training images (`--pool-size`; 0 = all), the same "
        "for both arms, to keep the scoring affordable. The uncertainty arm labels the highest "
        f"`{settings['score']}` images of the pool under its previous model, the random arm the next images of a "
        f"seeded permutation of the pool. Initial model: ConDSeg, {settings['stage1_steps']} Stage-1 + "
        f"{settings['initial_steps'] - settings['stage1_steps']} Stage-2 steps, shared by both arms; each round "
        f"fine-tunes the arm's previous model for {settings['round_steps']} Stage-2 steps (fresh Adam, the same "
        "batch seed for both arms). Values: mean ± sample std over seeds, in %.",
        "",
        "| arm | round | labeled | seeds | mIoU | mDSC |",
        "|---|---|---|---|---|---|",
    ]
    models = _models(runs)
    for arm, rnd, rs in models:
        lines.append(
            f"| {arm} | {rnd} | {rs[0]['labeled']} | {len(rs)} | "
            f"{_fmt([r['val']['clean']['iou'] for r in rs])} | {_fmt([r['val']['clean']['dice'] for r in rs])} |"
        )
    names = [n for n in SCORE_NAMES if any(n in r["failure"]["stats"] for _, _, rs in models for r in rs)]
    lines += [
        "",
        f"(a) Does the score find the failures? On the {runs[0]['failure']['images'] if runs else '?'} validation "
        f"images: Spearman ρ between the score and 1 - Dice, and AUROC of the score for Dice < "
        f"{settings['failure_dice']} (– where every image or none is a failure; ρ > 0 and AUROC > 0.5: the "
        "higher the score, the worse the image). Scores from the four flip-TTA passes (`uncertainty_scores`), Dice "
        "of the plain forward (threshold 0.5; its mean is the mDSC). Failures: images with a Dice below the "
        "threshold. Mean over seeds.",
        "",
        "| model | labeled | mDSC | failures | " + " | ".join(f"{n} ρ | {n} AUROC" for n in names) + " |",
        "|---|---|---|---|" + "---|---|" * len(names),
    ]
    for arm, rnd, rs in models:
        cells = []
        for n in names:
            for stat in ("spearman", "auroc"):
                cells.append(_fmt([r["failure"]["stats"].get(n, {}).get(stat) for r in rs], scale=1.0, digits=2))
        model = "initial" if arm == "initial" else f"{arm} round {rnd}"
        failures = _fmt([float(r["failure"]["failures"]) for r in rs], scale=1.0, digits=1)
        lines.append(
            f"| {model} | {rs[0]['labeled']} | {_fmt([r['val']['clean']['dice'] for r in rs])} | {failures} | "
            + " | ".join(cells)
            + " |"
        )
    lines += ["", "Settings:", ""] + [f"- `{k}`: {v}" for k, v in settings.items()]
    return "\n".join(lines)


# --- the run --------------------------------------------------------------------------------------------------


def _find(runs: Sequence[Mapping[str, Any]], seed: int, arm: str, rnd: int) -> Mapping[str, Any] | None:
    return next((r for r in runs if r["seed"] == seed and r["arm"] == arm and r["round"] == rnd), None)


def _measure(model: nn.Module, val: list[dict[str, torch.Tensor]], args: argparse.Namespace) -> dict[str, Any]:
    start = time.perf_counter()
    out = {"val": evaluate(model, val), "failure": failure_detection(model, val, args.failure_dice)}
    out["eval_seconds"] = time.perf_counter() - start
    stats = out["failure"]["stats"]
    text = ", ".join(
        f"{n} ρ {s['spearman']:.2f} AUROC {s['auroc']:.2f}"
        if s["spearman"] is not None and s["auroc"] is not None
        else f"{n} ρ {s['spearman']} AUROC {s['auroc']}"
        for n, s in stats.items()
    )
    print(
        f"    val mIoU {100 * out['val']['clean']['iou']:.1f} mDSC {100 * out['val']['clean']['dice']:.1f}, "
        f"{out['failure']['failures']} failures; {text} ({out['eval_seconds']:.0f} s)",
        flush=True,
    )
    return out


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_data_arguments(parser, "results.json, results.md, states/")
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=ARMS)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="training seeds (whole experiments)")
    parser.add_argument("--label-seed", type=int, default=0, help="seed of the initial labeled set and of the pool")
    parser.add_argument("--initial", type=int, default=20, help="labeled training images at the start")
    parser.add_argument("--per-round", type=int, default=20, help="images labeled per round")
    parser.add_argument("--rounds", type=int, default=3, help="annotation rounds per arm")
    parser.add_argument("--pool-size", type=int, default=200, help="candidate pool (0: all unlabeled images)")
    parser.add_argument("--score", default="sid_uncertainty", choices=SCORE_NAMES, help="uncertainty arm's score")
    parser.add_argument("--failure-dice", type=float, default=0.5, help="(a): an image with Dice below is a failure")
    parser.add_argument("--size", type=int, default=64, help="image side (a multiple of 32)")
    parser.add_argument("--initial-steps", type=int, default=300, help="initial model: steps of both stages")
    parser.add_argument("--stage1-steps", type=int, default=100, help="initial model: Stage-1 steps out of those")
    parser.add_argument("--round-steps", type=int, default=60, help="Stage-2 fine-tuning steps per round")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--lr", type=float, default=1e-4, help="Adam learning rate")
    parser.add_argument("--encoder-lr", type=float, default=1e-5, help="ConDSeg Stage 2: encoder learning rate")
    parser.add_argument("--feature-size", type=int, default=128, help="ConDSeg decoder width")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (0: torch default)")
    args = parser.parse_args(argv)
    if args.size % 32 or args.size < 32:
        parser.error(f"--size must be a positive multiple of 32, got {args.size}.")
    if not 0 < args.stage1_steps < args.initial_steps:
        parser.error(f"--stage1-steps must be in 1..{args.initial_steps - 1} (< --initial-steps).")
    for name in ("initial", "per_round", "rounds", "round_steps", "batch_size"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1.")
    if args.threads:
        torch.set_num_threads(args.threads)
    command = "python bench/active_learning.py " + shlex.join(argv)

    t0 = time.perf_counter()
    datalist, train, val = load_benchmark_data(args, parser)
    seconds = time.perf_counter() - t0
    print(f"loaded {len(train)} training / {len(val)} validation images in {seconds:.0f} s", flush=True)
    if args.initial >= len(train):
        parser.error(f"--initial ({args.initial}) must be below the {len(train)} training images.")
    # the same choice as bench/label_efficiency.py (keep_labeled), by count
    initial, unlabeled = labeled_indices(datalist, None, args.label_seed, count=args.initial)
    pool = pool_subset(unlabeled, args.pool_size, args.label_seed)
    if len(pool) < args.rounds * args.per_round:
        parser.error(f"the pool ({len(pool)}) is smaller than --rounds x --per-round ({args.rounds * args.per_round}).")

    settings, results_path, runs = resume_results(args, parser, ("seeds", "arms"))  # only they select work
    environment = benchmark_environment(train, val, pool_images=len(pool))
    states = args.out / "states"
    settings_key = json.dumps(settings, sort_keys=True)

    def store() -> None:
        write_json({"settings": settings, "environment": environment, "runs": runs}, results_path)
        (args.out / "results.md").write_text(summarise(runs, settings, command) + "\n")

    for seed in args.seeds:
        init_path = states / f"seed{seed}_initial.pt"
        if _find(runs, seed, "initial", 0) is None:
            meta = {"settings": settings_key, "seed": seed, "arm": "initial", "round": 0, "labeled_ids": initial}
            cached = _load_state(init_path)
            if cached is not None and {k: cached["meta"].get(k) for k in meta} == meta:
                print(f"[seed {seed}] initial model: cached state '{init_path}'", flush=True)
                model, seconds = _model_from(cached, args.feature_size), cached["meta"]["train_seconds"]
            else:
                print(f"[seed {seed}] initial model: {args.initial_steps} steps on {len(initial)} images", flush=True)
                data = IsolatedBatches(batches([train[i] for i in initial], args.size, args.batch_size, seed))
                torch.manual_seed(seed)
                set_determinism(seed)
                start = time.perf_counter()
                model = train_condseg(
                    data, args.initial_steps, args.stage1_steps, args.lr, args.encoder_lr, seed, args.feature_size
                )
                seconds = time.perf_counter() - start
                _save_state(model, {**meta, "train_seconds": seconds}, init_path)
            record = {"seed": seed, "arm": "initial", "round": 0, "labeled": len(initial), "labeled_ids": initial}
            record |= {"added": initial, "pool": pool, "train_seconds": seconds, **_measure(model, val, args)}
            runs.append(record)
            store()
        order = random_order(pool, args.label_seed, seed)
        for rnd in range(1, args.rounds + 1):
            for arm in args.arms:
                if _find(runs, seed, arm, rnd) is not None:
                    continue  # finished in an earlier, interrupted invocation
                prev = _find(runs, seed, "initial" if rnd == 1 else arm, 0 if rnd == 1 else rnd - 1)
                if prev is None:
                    parser.error(f"seed {seed}: {arm} round {rnd - 1} is missing in '{results_path}'.")
                prev_path = init_path if rnd == 1 else states / f"seed{seed}_{arm}_round{rnd - 1}.pt"
                state = _load_state(prev_path)
                if state is None or state["meta"].get("labeled_ids") != prev["labeled_ids"]:
                    parser.error(f"the model state '{prev_path}' is missing or stale; delete '{args.out}' to restart.")
                model = _model_from(state, args.feature_size)
                labeled = set(prev["labeled_ids"])
                start = time.perf_counter()
                record: dict[str, Any] = {"seed": seed, "arm": arm, "round": rnd}
                if arm == "uncertainty":
                    candidates = [i for i in pool if i not in labeled]
                    print(f"[seed {seed}] {arm} round {rnd}: scoring {len(candidates)} pool images", flush=True)
                    values = score_images(model, [train[i] for i in candidates])[args.score]
                    scores = dict(zip(candidates, values))
                    added = select_uncertain(scores, labeled, args.per_round)
                    record["pool_scores"] = {str(i): s for i, s in scores.items()}
                else:
                    added = select_random(order, labeled, args.per_round)
                record["select_seconds"] = time.perf_counter() - start
                ids = sorted(labeled | set(added))
                print(
                    f"[seed {seed}] {arm} round {rnd}: +{len(added)} -> {len(ids)} labeled, {args.round_steps} steps",
                    flush=True,
                )
                round_seed = seed + ROUND_SEED_OFFSET * rnd  # the same for both arms
                data = IsolatedBatches(batches([train[i] for i in ids], args.size, args.batch_size, round_seed))
                torch.manual_seed(round_seed)
                set_determinism(round_seed)
                start = time.perf_counter()
                fine_tune(model, data, args.round_steps, args.lr, args.encoder_lr, prefix=f"{arm} round {rnd}")
                record["train_seconds"] = time.perf_counter() - start
                record |= {"labeled": len(ids), "labeled_ids": ids, "added": added, "batches_digest": data.digest}
                record |= _measure(model, val, args)
                meta = {"settings": settings_key, "seed": seed, "arm": arm, "round": rnd, "labeled_ids": ids}
                _save_state(model, meta, states / f"seed{seed}_{arm}_round{rnd}.pt")
                runs.append(record)
                store()
    store()
    print((args.out / "results.md").read_text(), flush=True)
    return 0 if all(math.isfinite(r["val"]["clean"]["iou"]) for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
