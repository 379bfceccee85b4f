# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""Uncertainty-driven active learning through the bundle: do the uncertainty scores find the failures, and do they
pick better images to label than chance?

Data: ``--data`` split once by the product's ``prepare folder --val-count --test-count --seed`` (the validation
images select the bundle's model, the test images are the reported set). Training is the bundle's own workflow
(:mod:`harness`); scores are the package's :func:`condseg_monai.metrics.score_images`, the function behind the
MONAI Label scoring task (all of :data:`~condseg_monai.metrics.SCORE_NAMES`, from the four flip-TTA passes), on
images prepared by the bundle's evaluation pipeline (:func:`condseg_monai.transforms.condseg_eval_transforms`).

(a) Failure detection, for every model below, on the test images: each image's scores and its Dice (the plain
forward, threshold 0.5); per score the Spearman rank correlation between the score and the error ``1 - Dice`` and
the AUROC of the score for detecting the images with Dice < ``--failure-dice`` (None when one of the two classes
is empty), and how many such failures there are.

(b) A simulated annotation loop. ``--initial`` training pairs (:func:`condseg_monai.data.keep_labeled`,
``--label-seed``) are labeled; ConDSeg is trained on them by the bundle's two stages (``--stage1-steps`` +
``--initial-steps`` iterations, model selected on validation); this initial model starts every arm. Then, for
``--rounds`` rounds and each arm, ``--per-round`` images of the candidate pool are labeled and the arm's previous
model is fine-tuned on all its labeled images by the bundle's fine-tuning workflow (``train.json`` with
``finetune`` from the previous model: what MONAI Label's training runs) for ``--round-steps`` iterations:

- ``random``: the next not yet labeled images of a seeded permutation of the pool (the same at every rerun);
- ``foreground_random``: the same permutation restricted to the images the arm's previous model finds a polyp in
  (the frame decision at the model's operating point; what the MONAI Label strategy ``foreground_random`` draws
  from), topped up from the rest when too few;
- ``uncertainty``: the ``--per-round`` not yet labeled pool images with the highest ``--score`` under the arm's
  previous model (scoring needs only the images, never their masks);
- ``diverse``: the MONAI Label strategy ``diverse_uncertainty``'s selection
  (:func:`condseg_monai.apps.monailabel.selection.select_batch` with its defaults) over the encoder embeddings
  (:func:`condseg_monai.metrics.encoder_embeddings`) of the labeled and the pool images under the previous model,
  weighted by ``--score``.

The pool is a seeded random subset (``--pool-size``, ``--label-seed``) of the unlabeled training images, plus
``--negatives-count`` polyp-free frames of ``--negatives`` (empty masks: a picked one is labeled "nothing here"),
the same for every arm. Within a round every arm uses the same bundle seed: only which images are labeled differs. Each
round's model is evaluated by the bundle (``evaluating`` on the test split) and measured as in (a).

Rounds are the unit of work: after each, the arm's chosen images and metrics are stored and ``results.json`` is
rewritten atomically, so an interrupted run continues with the next round (each round's bundle folder keeps its
``model.pt``); ``results.md`` holds the tables, the command and the settings. Usage::

    python bench/active_learning.py --data ../shared/data/kvasir-seg --out runs/active_learning/kvasir64 \\
        --size 64 --threads 1 [--initial-steps 200] [--round-steps 60] [--pool-size 200] [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shlex
import statistics
import sys
import time
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

import harness  # bench/ is sys.path[0] when run as a script
import torch

from condseg_monai.apps.monailabel.selection import foreground_candidates, select_batch
from condseg_monai.data import keep_labeled, read_datalist
from condseg_monai.inference import resolve_operating_point
from condseg_monai.metrics import SCORE_NAMES, encoder_embeddings, score_images
from condseg_monai.networks import ConDSeg
from condseg_monai.transforms import condseg_eval_transforms

__all__ = [
    "ARMS",
    "aurc",
    "auroc",
    "failure_detection",
    "main",
    "merge",
    "pool_subset",
    "random_order",
    "rank",
    "select_foreground_random",
    "select_random",
    "select_uncertain",
    "spearman",
    "summarise",
]

ARMS = ("random", "foreground_random", "uncertainty", "diverse")


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


def aurc(scores: Sequence[float], errors: Sequence[float]) -> float | None:
    """Area under the risk-coverage curve: keep the images in order of increasing score (most confident first);
    the risk at coverage ``k / n`` is the mean error of the ``k`` kept; AURC is the mean risk over ``k = 1..n``.

    Lower is better; a score that orders the images by their error reaches the minimum, a random one about the
    mean error. Ties in the score are broken by the *larger* error first (no credit for ties). None when empty.
    """
    if len(scores) != len(errors):
        raise ValueError(f"scores and errors differ in length ({len(scores)} vs {len(errors)}).")
    if not scores:
        return None
    order = sorted(range(len(scores)), key=lambda i: (scores[i], -errors[i]))
    total, risks = 0.0, []
    for k, i in enumerate(order, start=1):
        total += errors[i]
        risks.append(total / k)
    return sum(risks) / len(risks)


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


def select_foreground_random(
    order: Sequence[int], present: Mapping[int, bool], labeled: Collection[int], k: int
) -> list[int]:
    """Foreground-aware random: the first ``k`` of ``order`` not yet ``labeled`` among the images the model finds a
    polyp in (:func:`~condseg_monai.apps.monailabel.selection.foreground_candidates`, what the MONAI Label strategy
    ``foreground_random`` draws from); topped up from the rest of ``order`` when there are fewer than ``k``."""
    open_ids = [i for i in order if i not in labeled]
    found = set(foreground_candidates({str(i): present.get(i) for i in open_ids}, [str(i) for i in open_ids]))
    chosen = [i for i in open_ids if str(i) in found][:k]
    chosen += [i for i in open_ids if i not in set(chosen)][: k - len(chosen)]
    if len(chosen) < k:
        raise ValueError(f"only {len(chosen)} unlabeled candidates left, {k} requested.")
    return chosen


def select_uncertain(scores: Mapping[int, float], labeled: Collection[int], k: int) -> list[int]:
    """The ``k`` not yet ``labeled`` ids with the highest score (ties: the smaller id first), highest first."""
    candidates = sorted((i for i in scores if i not in labeled), key=lambda i: (-scores[i], i))
    if len(candidates) < k:
        raise ValueError(f"only {len(candidates)} unlabeled candidates left, {k} requested.")
    return candidates[:k]


# --- models and images ----------------------------------------------------------------------------------------


def load_images(entries: Sequence[Mapping[str, Any]], size: int, with_labels: bool) -> dict[str, list[torch.Tensor]]:
    """The images (and masks) of ``entries`` as the bundle's evaluation pipeline prepares them at ``size``."""
    prep = condseg_eval_transforms(size, label_key="label" if with_labels else None, track_meta=False)
    out: dict[str, list[torch.Tensor]] = {"image": [], "label": []}
    for e in entries:
        d = prep({k: e[k] for k in (("image", "label") if with_labels else ("image",))})
        out["image"].append(torch.as_tensor(d["image"]).float())
        if with_labels:
            out["label"].append(torch.as_tensor(d["label"]).float())
    return out


def load_model(path: Path, feature_size: int) -> ConDSeg:
    """The bundle's saved model (``model.pt``, a state dict) as a ConDSeg in eval mode."""
    model = ConDSeg(feature_size=feature_size)
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return model.eval()


def failure_detection(
    model: torch.nn.Module, images: Mapping[str, Sequence[torch.Tensor]], failure_dice: float = 0.5
) -> dict[str, Any]:
    """(a): per-image scores and Dice (:func:`condseg_monai.metrics.score_images`), and per score the Spearman
    correlation with ``1 - Dice``, the AUROC for detecting the images with Dice < ``failure_dice`` and the AURC
    (:func:`aurc`, error ``1 - Dice``; with the oracle's and a random score's for reference)."""
    scores = score_images(model, images["image"], labels=images["label"])
    dice = scores.pop("dice")
    error = [1.0 - d for d in dice]
    failed = [d < failure_dice for d in dice]
    stats = {
        name: {"spearman": spearman(s, error), "auroc": auroc(s, failed), "aurc": aurc(s, error)}
        for name, s in scores.items()
    }
    best = aurc(error, error)  # the oracle: ordered by the error itself
    return {
        "failures": sum(failed),
        "images": len(dice),
        "stats": stats,
        "aurc_oracle": best,
        "aurc_random": statistics.fmean(error) if error else None,
        "dice": dice,
        "scores": scores,
    }


def write_subset(full: Mapping[str, Any], ids: Sequence[int], path: Path) -> Path:
    """The prepared datalist with only the training entries ``ids`` labeled (validation and test unchanged)."""
    data = {k: v for k, v in full.items() if k != "unlabeled"}
    data["training"] = [full["training"][i] for i in sorted(ids)]
    path.parent.mkdir(parents=True, exist_ok=True)
    harness.write_results(data, path)
    return path


# --- the tables -----------------------------------------------------------------------------------------------


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
        f"of {settings['pool_size'] or 'all'} of the unlabeled training images (`--pool-size`; 0 = all) plus "
        f"{settings.get('negatives_count', 0) if settings.get('negatives') else 0} polyp-free frames "
        "(`--negatives`), the same for every arm. Arms: `random` (a seeded permutation of the pool), "
        "`foreground_random` (that permutation restricted to the images the previous model finds a polyp in), "
        f"`uncertainty` (the highest `{settings['score']}`), `diverse` (the MONAI Label strategy "
        "`diverse_uncertainty`'s selection on the encoder embeddings, weighted by the same score). Initial model: "
        f"ConDSeg (feature size {settings['feature_size']}), the bundle's two stages ({settings['stage1_steps']} + "
        f"{settings['initial_steps']} iterations), shared by every arm; each round fine-tunes the arm's previous "
        f"model for {settings['round_steps']} iterations by the bundle's fine-tuning workflow (the same seed for "
        "every arm; every model selected on validation by the bundle). mIoU / mDSC: the bundle's evaluation on the "
        "test split; false alarms: the share of held-out polyp-free frames (`--heldout-negatives`, never in the "
        "pool) on which the model marks a polyp (initial and final models). Values: mean ± sample std over seeds, "
        "in %.",
        "",
        "| arm | round | labeled | polyp-free labeled | seeds | mIoU | mDSC | held-out polyp-free: false alarms |",
        "|---|---|---|---|---|---|---|---|",
    ]
    models = _models(runs)
    for arm, rnd, rs in models:
        iou, dice = (harness.mean_std([r["test"][m] for r in rs]) for m in ("iou", "dice"))
        neg = harness.mean_std([float(r.get("labeled_negatives", 0)) for r in rs], scale=1.0, digits=1)
        spec = [r["heldout_negatives"]["specificity"] for r in rs if r.get("heldout_negatives")]
        alarms = harness.mean_std([1.0 - v for v in spec if v is not None])
        lines.append(f"| {arm} | {rnd} | {rs[0]['labeled']} | {neg} | {len(rs)} | {iou} | {dice} | {alarms} |")
    names = [n for n in SCORE_NAMES if any(n in r["failure"]["stats"] for _, _, rs in models for r in rs)]
    lines += [
        "",
        f"(a) Does the score find the failures? On the {runs[0]['failure']['images'] if runs else '?'} test "
        f"images: AUROC of the score for Dice < {settings['failure_dice']} (– where every image or none is a "
        "failure; > 0.5: the higher the score, the worse the image) and AURC, the area under the risk-coverage "
        "curve with risk 1 - Dice (lower is better; `oracle`: images ordered by their error, `random`: the mean "
        "error). Scores from the four flip-TTA passes (`uncertainty_scores`), Dice of the plain forward (threshold "
        "0.5). Spearman ρ in results.json. Mean over seeds.",
        "",
        "| model | labeled | mDSC | failures | AURC oracle | AURC random | "
        + " | ".join(f"{n} AUROC | {n} AURC" for n in names)
        + " |",
        "|---|---|---|---|---|---|" + "---|---|" * len(names),
    ]
    for arm, rnd, rs in models:
        cells = []
        for n in names:
            for stat in ("auroc", "aurc"):
                values = [r["failure"]["stats"].get(n, {}).get(stat) for r in rs]
                cells.append(harness.mean_std(values, scale=1.0, digits=2 if stat == "auroc" else 3))
        model = "initial" if arm == "initial" else f"{arm} round {rnd}"
        failures = harness.mean_std([float(r["failure"]["failures"]) for r in rs], scale=1.0, digits=1)
        refs = [
            harness.mean_std([r["failure"].get(k) for r in rs], scale=1.0, digits=3)
            for k in ("aurc_oracle", "aurc_random")
        ]
        lines.append(
            f"| {model} | {rs[0]['labeled']} | {harness.mean_std([r['test']['dice'] for r in rs])} | {failures} | "
            + " | ".join(refs + cells)
            + " |"
        )
    lines += ["", "Settings:", ""] + [f"- `{k}`: {v}" for k, v in settings.items()]
    return "\n".join(lines)


# --- the run --------------------------------------------------------------------------------------------------


def _find(runs: Sequence[Mapping[str, Any]], seed: int, arm: str, rnd: int) -> Mapping[str, Any] | None:
    return next((r for r in runs if r["seed"] == seed and r["arm"] == arm and r["round"] == rnd), None)


def _measure(
    model_path: Path, datalist: Path, run_dir: Path, test: Mapping[str, Any], args: argparse.Namespace
) -> dict[str, Any]:
    """The bundle's test evaluation of a round's model and (a) on the test images."""
    start = time.perf_counter()
    evaluation = harness.evaluate(
        model_path, datalist, "test", run_dir / "eval_test", args.size, overrides={"feature_size": args.feature_size}
    )
    out = {"test": harness.read_detection(evaluation)}
    out["failure"] = failure_detection(load_model(model_path, args.feature_size), test, args.failure_dice)
    out["eval_seconds"] = time.perf_counter() - start
    stats = out["failure"]["stats"]
    text = ", ".join(f"{n} AUROC {s['auroc']}" for n, s in stats.items())
    print(f"    test mIoU {100 * out['test']['iou']:.1f}, {out['failure']['failures']} failures; {text}", flush=True)
    return out


def merge(folders: Sequence[Path], out: Path) -> Path:
    """One ``results.json`` / ``results.md`` in ``out`` from runs of the same settings in several ``--out`` folders
    (e.g. one process per seed, run side by side); the settings may differ only in ``out`` (and in paths inside
    it, such as the ``--presize`` copies).

    Raises:
        ValueError: a folder without results, other settings, or the same seed twice.
    """
    merged, runs = harness.merge_results(folders, key=("seed",), out=out)
    command = "python bench/active_learning.py merge " + shlex.join([*map(str, folders), "--out", str(out)])
    (out / "results.md").write_text(summarise(runs, merged, command) + "\n")
    return out / "results.md"


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["merge"]:  # python bench/active_learning.py merge DIR [DIR ...] --out OUT
        return harness.merge_main(argv[1:], merge, prog="active_learning.py merge")
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    harness.add_data_arguments(parser, "results.json, results.md, the bundle runs")
    parser.add_argument("--test-count", type=int, default=80, help="--data: test images (the reported set)")
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=ARMS)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="training seeds (whole experiments)")
    parser.add_argument("--label-seed", type=int, default=0, help="seed of the initial labeled set and of the pool")
    parser.add_argument("--initial", type=int, default=20, help="labeled training images at the start")
    parser.add_argument("--per-round", type=int, default=20, help="images labeled per round")
    parser.add_argument("--rounds", type=int, default=3, help="annotation rounds per arm")
    parser.add_argument("--pool-size", type=int, default=200, help="candidate pool (0: all unlabeled images)")
    parser.add_argument(
        "--score",
        default="boundary_entropy",
        choices=SCORE_NAMES,
        help="the uncertainty score of the uncertainty and diverse arms (default: the MONAI Label app's)",
    )
    parser.add_argument(
        "--negatives", type=Path, help="polyp-free frames (images/ + masks/) added to the pool, as a datastore has them"
    )
    parser.add_argument("--negatives-count", type=int, default=200, help="--negatives: how many (seeded; 0: all)")
    parser.add_argument(
        "--heldout-negatives",
        type=int,
        default=200,
        help="--negatives: other polyp-free frames, never in the pool, on which the initial and the final models' "
        "false alarms are measured",
    )
    parser.add_argument(
        "--presize", action="store_true", help="resize every folder once to --size first (harness.presized_folder)"
    )
    parser.add_argument("--failure-dice", type=float, default=0.5, help="(a): an image with Dice below is a failure")
    parser.add_argument("--size", type=int, default=64, help="image side (a multiple of 32)")
    parser.add_argument("--initial-steps", type=int, default=200, help="initial model: Stage-2 iterations")
    parser.add_argument("--stage1-steps", type=int, default=100, help="initial model: Stage-1 iterations")
    parser.add_argument("--round-steps", type=int, default=60, help="fine-tuning iterations per round")
    parser.add_argument("--eval-every", type=int, default=20, help="iterations between the bundle's validations")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--feature-size", type=int, default=128, help="ConDSeg decoder width")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads, here and in every bundle run (0: default)"
    )
    args = parser.parse_args(argv)
    if args.size % 32 or args.size < 32:
        parser.error(f"--size must be a positive multiple of 32, got {args.size}.")
    for name in ("initial", "per_round", "rounds", "round_steps", "batch_size", "initial_steps", "stage1_steps"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1.")
    try:
        harness.TrainSpec(
            iterations=args.initial_steps, stage1_iterations=args.stage1_steps, eval_every=args.eval_every
        )
        harness.TrainSpec(iterations=args.round_steps, eval_every=args.eval_every)
    except ValueError as e:
        parser.error(str(e))
    if args.threads:
        torch.set_num_threads(args.threads)
        os.environ["OMP_NUM_THREADS"] = str(args.threads)  # inherited by every bundle run
    command = "python bench/active_learning.py " + shlex.join(argv)
    if args.negatives is not None and not (args.negatives / "images").is_dir():
        parser.error(f"--negatives '{args.negatives}' has no images/ folder.")
    if args.presize:  # the runs read small copies: the same resized images, without decoding the originals each time
        small = harness.presized_folders({"data": args.data, "negatives": args.negatives}, args.size, args.out)
        args.data, args.negatives = small["data"], small["negatives"]

    datalist = harness.prepare_data(args, parser, ["--test-count", str(args.test_count)])
    full = json.loads(Path(datalist).read_text())
    n_train = len(full["training"])
    negatives: list[int] = []  # training indices of the polyp-free frames (empty masks) in the pool
    heldout_list: Path | None = None
    if args.negatives is not None:
        entries = json.loads(harness.folder_datalist(args.negatives, args.out, "negatives").read_text())["test"]
        heldout_entries: list[dict[str, Any]] = []
        if args.negatives_count and args.negatives_count < len(entries):
            in_pool = random.Random(f"negatives-{args.label_seed}").sample(entries, args.negatives_count)
            rest = [e for e in entries if e not in in_pool]
            heldout_entries = random.Random(f"heldout-{args.label_seed}").sample(
                rest, min(args.heldout_negatives, len(rest))
            )
            entries = in_pool
        negatives = list(range(n_train, n_train + len(entries)))
        full["training"] = full["training"] + entries
        if heldout_entries:  # polyp-free frames no arm can label: the false alarms of the models
            heldout_list = args.out / "heldout_negatives.json"
            heldout_list.write_text(json.dumps({"name": "heldout_negatives", "test": heldout_entries}, indent=1))
    if args.initial >= n_train:
        parser.error(f"--initial ({args.initial}) must be below the {n_train} training images.")
    kept = {e.image for e in keep_labeled(read_datalist(datalist), count=args.initial, seed=args.label_seed).training}
    images = [e.image for e in read_datalist(datalist).training]
    initial = [i for i, img in enumerate(images) if img in kept]
    pool = pool_subset([i for i in range(n_train) if i not in set(initial)], args.pool_size, args.label_seed)
    pool = pool + negatives
    negative_ids = set(negatives)
    if len(pool) < args.rounds * args.per_round:
        parser.error(f"the pool ({len(pool)}) is smaller than --rounds x --per-round ({args.rounds * args.per_round}).")

    ignore = ("seeds", "arms", "threads", "heldout_negatives")
    settings = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items() if k not in ignore}
    results_path = args.out / "results.json"
    saved = json.loads(results_path.read_text()) if results_path.is_file() else {}
    if saved.get("settings", settings) != settings:
        parser.error(f"'{results_path}' holds results of other settings; use another --out or delete it.")
    runs: list[dict[str, Any]] = saved.get("runs", [])
    test = load_images(full["test"], args.size, with_labels=True)
    pool_images: dict[int, torch.Tensor] = {}

    def images_of(ids: Sequence[int]) -> list[torch.Tensor]:
        missing = [i for i in ids if i not in pool_images]
        loaded = load_images([full["training"][i] for i in missing], args.size, with_labels=False)
        pool_images.update(zip(missing, loaded["image"]))
        return [pool_images[i] for i in ids]

    def select(arm: str, prev_model: Path, labeled: set[int], order: Sequence[int]) -> tuple[list[int], dict]:
        """The arm's ``--per-round`` picks under its previous model, and what to record about them."""
        if arm == "random":
            return select_random(order, labeled, args.per_round), {}
        candidates = [i for i in pool if i not in labeled]
        print(f"    {arm}: scoring {len(candidates)} pool images", flush=True)
        model = load_model(prev_model, args.feature_size)
        if arm == "foreground_random":
            op = resolve_operating_point(prev_model)
            frame = score_images(model, images_of(candidates), operating_point=op)["detection_score"]
            present = {i: s > op.threshold for i, s in zip(candidates, frame)}
            return select_foreground_random(order, present, labeled, args.per_round), {
                "predicted_polyps": sum(present.values())
            }
        scores = dict(zip(candidates, score_images(model, images_of(candidates))[args.score]))
        record = {"pool_scores": {str(i): s for i, s in scores.items()}}
        if arm == "uncertainty":
            return select_uncertain(scores, labeled, args.per_round), record
        # diverse: the MONAI Label strategy's selection over the labeled and the pool images' encoder embeddings
        ids = sorted(labeled) + candidates
        embeddings = encoder_embeddings(model, images_of(ids))
        is_candidate = torch.tensor([i not in labeled for i in ids])
        uncertainty = torch.tensor([scores.get(i, math.nan) for i in ids], dtype=torch.float64)
        picks = select_batch(embeddings, is_candidate, ~is_candidate, args.per_round, uncertainty)
        return [ids[p] for p in picks], record

    def store() -> None:
        harness.write_results({"settings": settings, "environment": harness.environment(), "runs": runs}, results_path)
        (args.out / "results.md").write_text(summarise(runs, settings, command) + "\n")

    common = {"image_size": args.size, "batch_size": args.batch_size, "eval_every": args.eval_every}
    common["overrides"] = {"feature_size": args.feature_size}
    for seed in args.seeds:
        run_dir = args.out / "runs" / f"seed{seed}_initial"
        if _find(runs, seed, "initial", 0) is None:
            print(f"[seed {seed}] initial model on {len(initial)} images", flush=True)
            subset = write_subset(full, initial, run_dir / "datalist.json")
            spec = harness.TrainSpec(
                iterations=args.initial_steps, stage1_iterations=args.stage1_steps, seed=seed, **common
            )
            trained = harness.train(spec, subset, run_dir)
            record = {"seed": seed, "arm": "initial", "round": 0, "labeled": len(initial), "labeled_ids": initial}
            record |= {"added": initial, "pool": pool, "model": str(trained["best"])}
            record["train_seconds"] = sum(s["seconds"] for s in trained["stages"])
            record |= _measure(trained["best"], subset, run_dir, test, args)
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
                prev_model = Path(prev["model"])
                if not prev_model.is_file():
                    parser.error(f"the model '{prev_model}' is missing; delete '{args.out}' to restart.")
                labeled = set(prev["labeled_ids"])
                start = time.perf_counter()
                record: dict[str, Any] = {"seed": seed, "arm": arm, "round": rnd}
                added, picked = select(arm, prev_model, labeled, order)
                record |= picked
                record["select_seconds"] = time.perf_counter() - start
                ids = sorted(labeled | set(added))
                n_neg = len(negative_ids.intersection(added))
                print(f"[seed {seed}] {arm} round {rnd}: +{len(added)} ({n_neg} polyp-free) -> {len(ids)}", flush=True)
                round_dir = args.out / "runs" / f"seed{seed}_{arm}_round{rnd}"
                subset = write_subset(full, ids, round_dir / "datalist.json")
                spec = harness.TrainSpec(
                    iterations=args.round_steps, seed=seed + rnd, finetune_from=prev_model, **common
                )
                trained = harness.train(spec, subset, round_dir)
                record["train_seconds"] = sum(s["seconds"] for s in trained["stages"])
                record |= {"labeled": len(ids), "labeled_ids": ids, "added": added, "model": str(trained["best"])}
                record["added_negatives"] = n_neg
                record["labeled_negatives"] = len(negative_ids.intersection(ids))
                record |= _measure(trained["best"], subset, round_dir, test, args)
                runs.append(record)
                store()
    if heldout_list is not None:  # the initial and the final models (also of runs made before this option)
        for r in runs:
            if r["arm"] in ("initial", *args.arms) and r["round"] in (0, args.rounds) and "heldout_negatives" not in r:
                model = Path(r["model"])
                run_dir = model.parents[1]
                evaluation = harness.evaluate(
                    model,
                    heldout_list,
                    "test",
                    run_dir / "eval_heldout_negatives",
                    args.size,
                    overrides={"feature_size": args.feature_size},
                )
                r["heldout_negatives"] = harness.read_detection(evaluation)
                store()
    store()
    print((args.out / "results.md").read_text(), flush=True)
    return 0 if all(r["test"]["iou"] is not None and math.isfinite(r["test"]["iou"]) for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
