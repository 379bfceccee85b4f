# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""The benchmarks' one way to train and evaluate: the product's own bundle commands.

Every arm of every accuracy benchmark (``accuracy.py``, ``label_efficiency.py``, ``active_learning.py``,
``colonoscopy.py``) trains and evaluates by launching ``python -m monai.bundle run <id>`` with the bundle's configs
(``bundle/configs/train.json`` + the stage configs ``configs/stage1.json`` / ``configs/stage2.json``, optionally
``configs/semi_supervised.json`` and a network overlay of ``bench/configs/``) and command-line overrides, exactly as
a user would. The trainers, evaluators, transforms, losses, the Stage-1 -> Stage-2 hand-over, the EMA teacher and
the model selection are therefore the bundle's; this module only builds the command lines, runs them (the output of
each in a log file; a failure raises with the log's tail) and reads the reports they write.

A budget is given in iterations: the bundle's ``epoch_length`` setting (ignite's epoch length, MONAI's
``SupervisedTrainer(epoch_length=...)``; the semi-supervised ramp-up follows it) is set to the evaluation interval,
so the bundle validates, checkpoints (``latest.pt``) and selects its best model (``model.pt``, best validation mIoU)
every ``eval_every`` iterations, and ``max_epochs`` = iterations / ``eval_every``. Ignite does not restart the data
loader at such an epoch's end, so the run is one stream of shuffled batches, as a plain epoch-based run would see.

Stages are resumable at stage granularity: a finished stage leaves ``<stage dir>/DONE``; a re-run skips it.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "BUNDLE_CONFIGS",
    "NETWORKS",
    "REPO",
    "TrainSpec",
    "add_data_arguments",
    "bundle_command",
    "bundle_components",
    "count_parameters",
    "cpu_name",
    "environment",
    "evaluate",
    "folder_datalist",
    "format_override",
    "mean_std",
    "merge_main",
    "merge_results",
    "parse_cross",
    "parse_pairs",
    "pooled_detection",
    "prepare_data",
    "presized_folder",
    "presized_folders",
    "read_conditions",
    "read_detection",
    "run_command",
    "stage_dirs",
    "train",
    "training_loop_seconds",
    "write_results",
]

REPO = Path(__file__).resolve().parents[1]
BUNDLE_CONFIGS = REPO / "bundle" / "configs"
META = BUNDLE_CONFIGS / "metadata.json"
TRAIN = BUNDLE_CONFIGS / "train.json"
EVALUATE = BUNDLE_CONFIGS / "evaluate.json"
STAGE_CONFIGS = (REPO / "configs" / "stage1.json", REPO / "configs" / "stage2.json")
NETWORK_CONFIGS = REPO / "bench" / "configs"
# "condseg": both stages of the bundle; the others: one supervised run of train.json with the network overlay
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")
PAPER_METRICS = ("iou", "dice", "recall", "precision")
NETWORKS = ("condseg", "basic_unet", "unet", "attention_unet", "segresnet")


def format_override(value: Any) -> str:
    """One command-line value as ``monai.bundle run`` parses it (JSON-like literals, bools in lower case)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (list, tuple)):
        return json.dumps(list(value))
    return str(value)


def bundle_command(
    run_id: str, config_files: Sequence[str | os.PathLike], overrides: Mapping[str, Any] | None = None
) -> list[str]:
    """``python -m monai.bundle run <run_id> --meta_file ... --config_file [...] --key value ...``.

    Args:
        run_id: the bundle run id (``training``, ``evaluating``, ``robustness``, ``calibrate``, ``inference``).
        config_files: configs merged in this order (later files override earlier keys).
        overrides: ``{config id: value}``; nested ids use ``#`` (``train#ema#momentum_warmup``).
    """
    files = "[" + ",".join(f"'{Path(f)}'" for f in config_files) + "]"
    cmd = [sys.executable, "-m", "monai.bundle", "run", run_id, "--meta_file", str(META), "--config_file", files]
    for key, value in (overrides or {}).items():
        cmd += [f"--{key}", format_override(value)]
    return cmd


def run_command(cmd: Sequence[str], log: str | os.PathLike, env: Mapping[str, str] | None = None) -> float:
    """Run one product command from the repository root, its output in ``log``; return its wall time in seconds.

    Raises:
        RuntimeError: the command failed; the message holds the command and the log's tail.
    """
    log = Path(log)
    log.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with log.open("w") as f:
        f.write(" ".join(cmd) + "\n\n")
        f.flush()
        rc = subprocess.call(list(cmd), stdout=f, stderr=subprocess.STDOUT, cwd=REPO, env={**os.environ, **(env or {})})
    seconds = time.perf_counter() - start
    if rc != 0:
        tail = log.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"command failed (rc {rc}, log {log}):\n{' '.join(cmd)}\n...\n{tail}")
    print(f"  done in {seconds:.0f} s: {log}", flush=True)
    return seconds


_TIME_TAKEN = re.compile(
    r"ignite\.engine\.engine\.(\w+) - INFO - (Epoch\[\d+\] Complete|Engine run finished)\. "
    r"Time taken: (\d+):(\d+):([\d.]+)"
)


def training_loop_seconds(log: str | os.PathLike) -> float:
    """Seconds the trainer spent on its iterations, from ignite's log lines of one bundle training run: the
    trainer's epoch times minus the validation runs inside them (process start-up, loading the configs and
    building the network are not counted). The cost of an iteration, comparable between arms."""
    trainer = evaluator = 0.0
    for m in _TIME_TAKEN.finditer(Path(log).read_text(errors="replace")):
        engine, event, h, mi, s = m.groups()
        t = 3600 * int(h) + 60 * int(mi) + float(s)
        if engine.endswith("Trainer") and event.startswith("Epoch"):
            trainer += t
        elif engine.endswith("Evaluator") and event.startswith("Engine"):
            evaluator += t
    return trainer - evaluator


@dataclass
class TrainSpec:
    """One training arm, as bundle settings.

    Attributes:
        network: ``"condseg"`` (Stage 1 then Stage 2, the bundle's two stage configs) or a MONAI baseline with an
            overlay ``bench/configs/<network>.json`` (one supervised run of ``train.json``).
        iterations: training iterations (ConDSeg: of Stage 2).
        eval_every: iterations between validations / checkpoints; must divide every iteration count.
        stage1_iterations: ConDSeg only: iterations of Stage 1.
        image_size: side of the training images.
        batch_size: labeled batch size (both stages).
        seed: the bundle's ``seed`` (determinism, shuffling, augmentation draws).
        configs: extra config overlays for every stage (e.g. ``configs/semi_supervised.json``).
        overrides: extra ``{config id: value}`` overrides for every stage.
        stage2_overrides: overrides for Stage 2 (or the single baseline run) only.
        finetune_from: a model to fine-tune instead (``train.json`` alone: the bundle's fine-tuning workflow, the
            one MONAI Label's training runs: ``finetune`` from ``pretrained_checkpoint``, no Stage 1).
    """

    network: str = "condseg"
    iterations: int = 300
    eval_every: int = 100
    stage1_iterations: int = 100
    image_size: int = 64
    batch_size: int = 8
    seed: int = 0
    configs: Sequence[str] = ()
    overrides: Mapping[str, Any] = field(default_factory=dict)
    stage2_overrides: Mapping[str, Any] = field(default_factory=dict)
    finetune_from: str | os.PathLike | None = None

    def __post_init__(self) -> None:
        if self.network not in NETWORKS:
            raise ValueError(f"network must be one of {NETWORKS}, got {self.network!r}.")
        counts = [self.iterations] + ([self.stage1_iterations] if self.two_stages else [])
        for n in counts:
            if n <= 0 or self.eval_every <= 0 or n % self.eval_every:
                raise ValueError(f"eval_every ({self.eval_every}) must divide the iteration counts {counts}.")

    @property
    def two_stages(self) -> bool:
        """ConDSeg from scratch: Stage 1 then Stage 2 (otherwise one run of ``train.json``)."""
        return self.network == "condseg" and self.finetune_from is None

    def network_configs(self) -> list[Path]:
        """The network's overlay (none for ConDSeg, whose network and loss are the bundle's)."""
        return [] if self.network == "condseg" else [NETWORK_CONFIGS / f"{self.network}.json"]


def bundle_components(
    stage: int = 2,
    names: Sequence[str] = ("network_def", "loss"),
    overrides: Mapping[str, Any] | None = None,
    network: str = "condseg",
) -> dict[str, Any]:
    """Components as the bundle's training config builds them, in this process (for the speed micro-benchmarks).

    Args:
        stage: 1 or 2: ``train.json`` with that stage config (Stage 1: ``ConDSegStage1`` and ``Stage1Loss``; Stage 2:
            ``ConDSeg`` and ``ConDSegLoss``, with the bundle's ``feature_size``, ``use_checkpoint``, loss settings).
        names: config ids to build.
        overrides: ``{config id: value}`` set before building (e.g. ``{"use_checkpoint": False}``).
        network: one of :data:`NETWORKS`; a MONAI baseline adds its ``bench/configs/`` overlay, as in training.

    Returns:
        ``{name: component}``.
    """
    from monai.bundle import ConfigParser

    if stage not in (1, 2):
        raise ValueError(f"stage must be 1 or 2, got {stage}.")
    overlays = TrainSpec(network=network, iterations=1, eval_every=1).network_configs()
    parser = ConfigParser()
    parser.read_config([str(TRAIN), str(STAGE_CONFIGS[stage - 1]), *map(str, overlays)])
    for key, value in (overrides or {}).items():
        parser[key] = value
    return {name: parser.get_parsed_content(name) for name in names}


def stage_dirs(spec: TrainSpec, output_dir: str | os.PathLike) -> list[Path]:
    """The bundle's output folder of each stage (``stage1/``, ``stage2/``; a baseline: ``stage2/``)."""
    out = Path(output_dir)
    return [out / "stage1", out / "stage2"] if spec.two_stages else [out / "stage2"]


def train(
    spec: TrainSpec, datalist: str | os.PathLike, output_dir: str | os.PathLike, log_name: str = "train"
) -> dict[str, Any]:
    """Train one arm with the bundle; skip stages finished earlier (``DONE``).

    Args:
        spec: the arm.
        datalist: the datalist JSON (``training`` / ``validation`` / optional ``unlabeled`` entries).
        output_dir: the run's ``output_dir``; each stage writes ``<output_dir>/stage<k>/`` (``model.pt``: best
            validation mIoU, ``latest.pt``: the state after the last iteration, TensorBoard logs).

    Returns:
        ``{"best": model.pt, "last": latest.pt, "seconds": wall time of the stages run now, "stages": [...]}``
        of the last stage.
    """
    out = Path(output_dir)
    common = {
        "datalist": str(Path(datalist).resolve()),
        "output_dir": str(out.resolve()),
        "image_size": spec.image_size,
        "batch_size": spec.batch_size,
        "seed": spec.seed,
        "val_interval": 1,
        "epoch_length": spec.eval_every,
        "num_workers": 0,
        "num_preview_images": 0,
        **spec.overrides,
    }
    if spec.two_stages:
        stages = [
            (STAGE_CONFIGS[0], spec.stage1_iterations, {}),
            (STAGE_CONFIGS[1], spec.iterations, spec.stage2_overrides),
        ]
    else:  # train.json alone is a supervised (fine-tuning) run; its folders are those of a Stage 2
        overrides: dict[str, Any] = {
            "log_dir": str((out / "stage2").resolve()),
            "ckpt_dir": str((out / "stage2").resolve()),
        }
        if spec.finetune_from is not None:
            overrides |= {"finetune": True, "pretrained_checkpoint": str(Path(spec.finetune_from).resolve())}
        stages = [(None, spec.iterations, {**overrides, **spec.stage2_overrides})]
    seconds = 0.0
    records = []
    for stage_dir, (stage_config, iterations, extra) in zip(stage_dirs(spec, out), stages):
        files = [TRAIN, *([stage_config] if stage_config else []), *spec.network_configs(), *spec.configs]
        cmd = bundle_command("training", files, {**common, "max_epochs": iterations // spec.eval_every, **extra})
        done = stage_dir / "DONE"
        if done.is_file():
            print(f"  {stage_dir}: done earlier", flush=True)
            records.append(json.loads(done.read_text()))
            continue
        print(f"  training {stage_dir} ({iterations} iterations)", flush=True)
        log = out / f"{log_name}_{stage_dir.name}.log"
        took = run_command(cmd, log)
        seconds += took
        record = {
            "stage": stage_dir.name,
            "iterations": iterations,
            "seconds": took,
            "loop_seconds": training_loop_seconds(log),
            "command": cmd,
        }
        done.write_text(json.dumps(record))
        records.append(record)
    last = stage_dirs(spec, out)[-1]
    return {"best": last / "model.pt", "last": last / "latest.pt", "seconds": seconds, "stages": records}


def evaluate(
    ckpt: str | os.PathLike,
    datalist: str | os.PathLike,
    split: str,
    output_dir: str | os.PathLike,
    image_size: int,
    network: str = "condseg",
    run_id: str = "evaluating",
    overrides: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Evaluate a checkpoint with the bundle (``evaluating``, ``robustness`` or ``calibrate``); kept when done.

    Args:
        ckpt: ``model.pt`` (a state dict) or ``latest.pt`` (the training state; its ``model`` is loaded).
        datalist: datalist JSON; ``split``: its evaluated split.
        output_dir: where the bundle writes its reports (the call is skipped when the report exists).
        image_size: the model's input size.
        network: as in :class:`TrainSpec` (selects the network overlay).
        run_id: ``evaluating`` (returns ``evaluation_summary.json``), ``robustness`` (``robustness.json``) or
            ``calibrate`` (``evaluation_summary.json``; the operating point is written beside ``ckpt``).
        overrides: extra ``{config id: value}`` overrides.

    Returns:
        The report JSON the command wrote.
    """
    out = Path(output_dir)
    report = out / ("robustness.json" if run_id == "robustness" else "evaluation_summary.json")
    if not report.is_file():
        files = [TRAIN, EVALUATE, *TrainSpec(network=network, iterations=1, eval_every=1).network_configs()]
        settings = {
            "datalist": str(Path(datalist).resolve()),
            "eval_split": split,
            "ckpt_path": str(Path(ckpt).resolve()),
            "image_size": image_size,
            "output_dir": str(out.resolve()),
            "include_hd95": False,
            "num_workers": 0,
            **(overrides or {}),
        }
        run_command(bundle_command(run_id, files, settings), out / f"{run_id}.log")
    return json.loads(report.read_text())


def add_data_arguments(parser: argparse.ArgumentParser, out_help: str = "results.json, results.md") -> None:
    """The data and output options the benchmark scripts share (read by :func:`prepare_data`):
    ``--data`` or ``--datalist``, ``--out``, ``--val-count``, ``--split-seed``."""
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", type=Path, help="folder with images/ and masks/ (split here, see --val-count)")
    source.add_argument("--datalist", type=Path, help="a prepared datalist JSON (its training/validation splits)")
    parser.add_argument("--out", type=Path, required=True, help=f"output folder ({out_help})")
    parser.add_argument("--val-count", type=int, default=80, help="--data: validation images")
    parser.add_argument("--split-seed", type=int, default=0, help="--data: seed of the train/val split")


def prepare_data(
    args: argparse.Namespace, parser: argparse.ArgumentParser, extra: Sequence[str] = (), name: str = "datalist"
) -> Path:
    """The datalist of a benchmark run: ``--datalist``, or ``--data`` split once into ``<out>/<name>.json`` by
    the product's ``prepare folder`` command (``extra``: more ``prepare`` options, e.g. ``--labeled-fraction``)."""
    args.out.mkdir(parents=True, exist_ok=True)
    if args.datalist is not None:
        if not args.datalist.is_file():
            parser.error(f"--datalist '{args.datalist}' does not exist.")
        return args.datalist
    if not args.data.is_dir():
        parser.error(f"--data folder '{args.data}' does not exist.")
    datalist = args.out / f"{name}.json"
    if not datalist.is_file():
        cmd = [sys.executable, "-m", "condseg_monai.data", "prepare", "folder", "--root", str(args.data)]
        cmd += ["--out", str(datalist), "--val-count", str(args.val_count), "--seed", str(args.split_seed)]
        run_command([*cmd, "--absolute", *extra], args.out / f"prepare_{name}.log")
    return datalist


def folder_datalist(folder: Path, out: Path, name: str) -> Path:
    """A ``test`` datalist of every image of ``folder/images`` (with its ``folder/masks`` mask of the same stem; a
    folder without ``masks/`` holds polyp-free frames: ``{"image", "negative": true}`` entries)."""
    images = sorted(p for p in (folder / "images").iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    masks = folder / "masks"
    by_stem = {m.stem: m for m in masks.iterdir()} if masks.is_dir() else None  # one listing, not one per image
    entries: list[dict[str, Any]] = []
    for img in images:
        if by_stem is None:
            entries.append({"image": str(img.resolve()), "negative": True})
        elif img.stem not in by_stem:
            raise FileNotFoundError(f"no mask for '{img}' in '{masks}'.")
        else:
            entries.append({"image": str(img.resolve()), "label": str(by_stem[img.stem].resolve())})
    path = out / f"cross_{name}.json"
    path.write_text(json.dumps({"name": name, "test": entries}, indent=1))
    return path


def presized_folder(folder: Path, size: int, out: Path) -> Path:
    """A copy of a dataset folder (``images/`` + optional ``masks/``) resized once to ``size`` x ``size`` PNGs.

    The bundle resizes every image to the model's input size when it loads it; at 64 px the decoding of the
    full-size originals (Kvasir-SEG: up to 1920 x 1070 JPEGs) then costs more than a training step. Resizing once
    (bilinear, masks binarised at 128 after the resize, as the bundle binarises them) makes the bundle's own resize
    an identity and the runs several times faster; what the networks see is the same resized image. Files are
    written once and kept (stems and order unchanged).

    Args:
        folder: ``images/`` and, if present, ``masks/`` (a mask has its image's stem).
        size: the side of the copies.
        out: where the copy goes (``out/images``, ``out/masks``).
    """
    from PIL import Image

    for sub, mode in (("images", "RGB"), ("masks", "L")):
        src = folder / sub
        if not src.is_dir():
            continue
        dst = out / sub
        dst.mkdir(parents=True, exist_ok=True)
        for path in sorted(p for p in src.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
            target = dst / f"{path.stem}.png"
            if target.is_file():
                continue
            img = Image.open(path).convert(mode).resize((size, size), Image.BILINEAR)
            if mode == "L":
                img = img.point(lambda v: 255 if v >= 128 else 0)
            tmp = target.with_name(f".{target.name}")
            img.save(tmp, format="PNG")
            os.replace(tmp, target)
    return out


def presized_folders(folders: Mapping[str, Path | None], size: int, out: Path) -> dict[str, Path | None]:
    """:func:`presized_folder` of each named folder into ``out/presized<size>/<name>`` (``None`` stays ``None``):
    the cache layout every benchmark's ``--presize`` shares, so reruns find their copies."""
    cache = out / f"presized{size}"
    return {name: None if f is None else presized_folder(f, size, cache / name) for name, f in folders.items()}


def read_conditions(report: Mapping[str, Any]) -> dict[str, dict[str, float]]:
    """``{"clean" | "<corruption>-<severity>": {metric: mean}}`` from the bundle's ``robustness.json``."""
    out = {}
    for row in report["conditions"]:
        key = "clean" if row["severity"] == 0 else f"{row['corruption']}-{row['severity']}"
        out[key] = {m: row[m] for m in PAPER_METRICS}
    return out


def read_detection(summary: Mapping[str, Any]) -> dict[str, Any]:
    """mIoU / mDSC (when the set has masks) and the frame-level decision of the bundle's evaluation summary."""
    det = summary.get("detection", {})
    resized = summary.get("metrics", {}).get("resized", {})
    has_polyps = det.get("sensitivity") is not None  # polyp-free sets: the overlap of two empty masks says nothing
    return {
        "iou": resized.get("iou") if has_polyps else None,
        "dice": resized.get("dice") if has_polyps else None,
        "sensitivity": det.get("sensitivity"),
        "specificity": det.get("specificity"),
        # mean share of a polyp-free frame marked: the false alarms' size, still telling when every frame alarms
        "polyp_free_area": None if has_polyps else det.get("mean_polyp_free_area"),
        "num_images": summary.get("num_images"),
    }


def pooled_detection(per_image: Sequence[str | os.PathLike]) -> dict[str, Any]:
    """The bundle's frame-level summary (:func:`condseg_monai.metrics.detection.summarize_detection`: sensitivity,
    specificity, AUROC of the image-level score, ...) of the frames of several ``evaluating`` runs pooled, e.g.
    another hospital's polyp frames with polyp-free frames, read from their ``evaluation_per_image.csv``."""
    import csv

    from condseg_monai.metrics.detection import summarize_detection

    rows = []
    for path in per_image:
        with open(path, newline="") as f:
            rows += list(csv.DictReader(f))
    if not rows:
        raise ValueError(f"no frames in {[str(p) for p in per_image]}.")

    def flag(value: str) -> bool:
        return value.strip().lower() in ("true", "1")

    return summarize_detection(
        [flag(r["has_polyp"]) for r in rows],
        [flag(r["polyp_present"]) for r in rows],
        [float(r["detection_score"]) for r in rows],
        [float(r["predicted_area"]) for r in rows],
    )


def mean_std(values: Sequence[float | None], scale: float = 100.0, digits: int = 1) -> str:
    """``"mean ± sample std"`` of the finite values times ``scale`` (default: in percent; one value: itself; none:
    ``–``)."""
    values = [v for v in values if v is not None and math.isfinite(v)]
    if not values:
        return "–"
    if len(values) == 1:
        return f"{scale * values[0]:.{digits}f}"
    return f"{scale * statistics.fmean(values):.{digits}f} ± {scale * statistics.stdev(values):.{digits}f}"


def parse_pairs(items: Sequence[str], option: str) -> dict[str, str]:
    """``NAME=VALUE ...`` (the items of one command-line ``option``) as ``{name: value}``.

    Raises:
        ValueError: an item without a name or a value, naming ``option``.
    """
    pairs = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name or not value:
            raise ValueError(f"{option} expects NAME=VALUE, got {item!r}.")
        pairs[name] = value
    return pairs


def parse_cross(items: Sequence[str], parser: argparse.ArgumentParser) -> dict[str, Path]:
    """``--cross NAME=FOLDER ...`` as ``{name: folder}`` (each folder with ``images/``); a bad item is a usage error."""
    try:
        cross = {name: Path(folder) for name, folder in parse_pairs(items, "--cross").items()}
    except ValueError as e:
        parser.error(f"{e} (NAME=FOLDER with FOLDER/images)")
    for name, folder in cross.items():
        if not (folder / "images").is_dir():
            parser.error(f"--cross {name}: '{folder}' has no images/ folder.")
    return cross


def count_parameters(ckpt: Path) -> int:
    """Trainable parameters of the model in a bundle checkpoint (BatchNorm statistics are not parameters)."""
    import torch

    state = torch.load(ckpt, map_location="cpu", weights_only=True)
    state = state.get("model", state)
    skip = ("running_mean", "running_var", "num_batches_tracked")
    return sum(v.numel() for k, v in state.items() if not k.endswith(skip))


def cpu_name(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """The CPU model: ``/proc/cpuinfo``'s model name with its family and model numbers (a cloud vCPU's name can be
    as bare as "AMD EPYC", shared by generations whose kernels scale differently with the batch) and whether it has
    AVX-512, e.g. ``AMD EPYC (family 25, model 17, avx512)``; else what ``platform`` knows."""
    try:
        first = cpuinfo.read_text().split("\n\n", 1)[0]  # the first processor's block
    except OSError:
        first = ""
    fields = dict(line.split(":", 1) for line in first.splitlines() if ":" in line)
    fields = {k.strip(): v.strip() for k, v in fields.items()}
    if "model name" not in fields:
        return platform.processor() or platform.machine()
    details = []
    if "cpu family" in fields and "model" in fields:
        details = [f"family {fields['cpu family']}", f"model {fields['model']}"]
    if "avx512f" in fields.get("flags", "").split():
        details.append("avx512")
    return f"{fields['model name']} ({', '.join(details)})" if details else fields["model name"]


def environment() -> dict[str, Any]:
    """The machine and the code of a benchmark run (recorded in its results.json)."""
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout
    return {
        "python": platform.python_version(),
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        "commit": commit.strip(),
    }


def write_results(data: Mapping[str, Any], path: Path) -> None:
    """Write a benchmark's results JSON atomically (an interrupted write never leaves half a file)."""
    tmp = path.with_name(path.name + ".partial")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)


def merge_results(
    folders: Sequence[Path], key: Sequence[str], out: Path
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Merge the runs of several ``--out`` folders of one benchmark run with the same settings (e.g. one process per
    seed, side by side) into ``out/results.json``; the settings may differ only in ``out`` and in paths inside it
    (such as the ``--presize`` copies), which are written as ``<out>/...``.

    Args:
        folders: ``--out`` folders, each with its ``results.json`` (``{"settings": ..., "runs": [...]}``).
        key: the run fields that name a run (e.g. ``("seed",)``); no run may come from two folders.
        out: the folder of the merged ``results.json``.

    Returns:
        The merged settings (with ``out`` and ``merged_from``) and the runs, for the script's summary.

    Raises:
        ValueError: a folder without results, other settings than the first folder's, or a run found twice.
    """
    runs: list[dict[str, Any]] = []
    settings: dict[str, Any] | None = None
    seen: set[tuple[Any, ...]] = set()
    for folder in folders:
        path = Path(folder) / "results.json"
        if not path.is_file():
            raise ValueError(f"'{path}' does not exist.")
        saved = json.loads(path.read_text())
        own = str(saved["settings"]["out"])
        these = {
            k: f"<out>{v[len(own) :]}" if isinstance(v, str) and v.startswith(own) else v
            for k, v in saved["settings"].items()
            if k != "out"
        }
        if settings is not None and these != settings:
            diff = sorted(k for k in these.keys() | settings.keys() if these.get(k) != settings.get(k))
            raise ValueError(f"'{path}' has other settings than the first folder: {diff}")
        settings = these
        found = {tuple(r[k] for k in key) for r in saved["runs"]}
        if found & seen:
            raise ValueError(f"'{path}' repeats the runs {sorted(found & seen)} ({', '.join(key)}).")
        seen |= found
        runs += saved["runs"]
    if settings is None:
        raise ValueError("no folder to merge.")
    out.mkdir(parents=True, exist_ok=True)
    merged = {**settings, "out": str(out), "merged_from": [str(f) for f in folders]}
    write_results({"settings": merged, "environment": environment(), "runs": runs}, out / "results.json")
    return merged, runs


def merge_main(argv: Sequence[str], merge: Callable[[Sequence[Path], Path], Path], prog: str) -> int:
    """The ``merge DIR [DIR ...] --out OUT`` subcommand of a benchmark script: ``merge(folders, out)`` (which
    returns the summary it wrote), printed; a ``ValueError`` of it is a command-line error naming the folder."""
    parser = argparse.ArgumentParser(prog=prog, description=(merge.__doc__ or "").split("\n")[0])
    parser.add_argument("folders", type=Path, nargs="+")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(list(argv))
    try:
        print(merge(args.folders, args.out).read_text(), flush=True)
    except ValueError as e:
        parser.error(str(e))
    return 0
