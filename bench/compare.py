# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""Side-by-side speed / memory / FLOPs benchmark of ConDSeg against MONAI 2D segmentation baselines.

Models (all 3 input channels, 1 output channel of raw logits, except the reference):

- ``official``: the official ConDSeg layout, ``bench/official_reference.py`` (an independent
  re-implementation of the official code: literal unfold/fold CDFA, sigmoid outputs, auxiliary head always
  computed, NCHW), trained with its own Stage-2 loss (``official_stage2_loss``: double sigmoid, batch-summed
  beta, complementarity on probabilities); the yardstick of the side-by-side comparison;
- ``condseg``: :class:`~condseg_monai.networks.ConDSeg` with its defaults (Stage 2, feature size 128), as
  ``bundle/configs/train.json`` runs it: channels-last memory format and selective activation checkpointing
  (``use_checkpoint=True``, off with ``--no-checkpoint``; it only changes the training step);
- ``stage1``: :class:`~condseg_monai.networks.ConDSegStage1` (ResNet-50 encoder + Stage-1 head);
- ``unet``: ``monai.networks.nets.UNet(channels=(32, 64, 128, 256, 512), strides=(2, 2, 2, 2), num_res_units=2)``;
- ``attention_unet``: ``AttentionUnet(channels=(32, 64, 128, 256, 512), strides=(2, 2, 2, 2))``;
- ``basic_unet``: ``BasicUNet()`` (features ``(32, 32, 64, 128, 256, 32)``);
- ``segresnet``: ``SegResNet(init_filters=32)``.

All models live in ONE process and are timed round-robin: each round runs every model once per measurement
(the model order rotates between rounds), the first ``--warmup`` rounds are discarded and the median of the
other ``--repeats`` rounds is reported, so slow drifts of the machine hit every model alike. Measurements:

- ``infer_b1`` / ``infer_b8``: ``eval()`` + ``torch.inference_mode()`` forward of ``rand(B, 3, S, S)``;
  latency at batch 1, throughput (images/s) at batch 8. ConDSeg in eval skips its auxiliary head.
- ``train_b4``: one full training step at batch 4: ``zero_grad``, train-mode forward, loss, backward, Adam step.
  ConDSeg: the 4-map output + :class:`~condseg_monai.losses.ConDSegLoss` (all Stage-2 terms). Stage 1: the clean
  and strongly augmented views through :class:`~condseg_monai.inferers.ConsistencyInferer` with the real
  :class:`~condseg_monai.transforms.RandIlluminationContrastAugment` + :class:`~condseg_monai.losses.Stage1Loss`.
  Baselines: :class:`~condseg_monai.losses.DiceBCELoss`.
- FLOPs: ``FlopCounterMode`` (convolutions and matrix products only, 2 FLOPs per multiply-add) of one
  inference forward at batch 1, float32 on the CPU.
- Matmul peak: best float32 (or ``--amp`` dtype) ``N x N @ N x N`` throughput with the same thread count,
  measured before and after the rounds; each model's inference GFLOP/s is reported as a fraction of it.
- Peak memory cannot be attributed to one model inside a shared process, so (unless ``--skip-memory``) every
  model and measurement is also run ONCE in a fresh subprocess: peak RSS on CPU
  (``VmHWM``, includes imports and the model), ``torch.cuda.max_memory_allocated`` on CUDA.

Usage::

    python bench/compare.py [--size 256] [--repeats 3] [--warmup 1] [--device cpu|cuda] [--amp bf16|fp16]
                            [--channels-last] [--no-checkpoint] [--threads N] [--models NAME ...] [--skip-memory]
                            [--out FILE.json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import harness  # bench/ is sys.path[0] when run as a script
import torch
from speed import (  # bench/ is sys.path[0] when run as a script
    count_flops,
    peak_memory_mb,
    report,
    run_worker_process,
    sync_device,
    training_objective,
)
from torch import nn

__all__ = ["MEASUREMENTS", "MODELS", "build_model", "make_step", "matmul_peak", "main"]

MODELS = ("official", "condseg", "stage1", "unet", "attention_unet", "basic_unet", "segresnet")
# not in the default run: ConDSeg without activation checkpointing, to time the checkpointing's cost round-robin
EXTRA_MODELS = ("condseg_plain",)
MEASUREMENTS = ("infer_b1", "infer_b8", "train_b4")
BATCH = {"infer_b1": 1, "infer_b8": 8, "train_b4": 4}
LABELS = {
    "official": "official ConDSeg layout (reference)",
    "condseg": "ConDSeg (Stage 2)",
    "condseg_plain": "ConDSeg (Stage 2), no checkpointing",
    "stage1": "ConDSegStage1",
    "unet": "MONAI UNet",
    "attention_unet": "MONAI AttentionUnet",
    "basic_unet": "MONAI BasicUNet",
    "segresnet": "MONAI SegResNet",
}
AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
# run in channels_last without --channels-last, as the bundle's training does (train.json `channels_last`)
CHANNELS_LAST_MODELS = ("condseg", "condseg_plain", "stage1")


def build_model(name: str, use_checkpoint: bool = True) -> nn.Module:
    """Build one benchmarked model (on the CPU, float32) from its short name (see :data:`MODELS`).

    ``use_checkpoint`` is ConDSeg's activation checkpointing (training only), ignored by the other models.
    """
    from monai.networks import nets

    if name == "official":
        from official_reference import OfficialConDSeg

        return OfficialConDSeg()
    if name in ("condseg", "condseg_plain"):  # the bundle's Stage-2 network (condseg_plain: no checkpointing)
        use = use_checkpoint and name == "condseg"
        return harness.bundle_components(2, ["network_def"], {"use_checkpoint": use})["network_def"]
    if name == "stage1":
        return harness.bundle_components(1, ["network_def"])["network_def"]
    common = {"spatial_dims": 2, "in_channels": 3, "out_channels": 1}
    if name == "unet":
        return nets.UNet(**common, channels=(32, 64, 128, 256, 512), strides=(2, 2, 2, 2), num_res_units=2)
    if name == "attention_unet":
        return nets.AttentionUnet(**common, channels=(32, 64, 128, 256, 512), strides=(2, 2, 2, 2))
    if name == "basic_unet":
        return nets.BasicUNet(**common)
    if name == "segresnet":
        return nets.SegResNet(**common, init_filters=32)
    raise ValueError(f"unknown model {name!r}; expected one of {MODELS}.")


def make_step(
    name: str,
    model: nn.Module,
    measurement: str,
    size: int,
    device: torch.device,
    amp: torch.dtype | None = None,
    channels_last: bool = False,
) -> Callable[[], None]:
    """Prepare the inputs (and optimizer) of one measurement and return a callable that runs one iteration.

    Args:
        name: model short name (selects the training objective).
        model: the model, already on ``device`` (and in channels_last format when requested).
        measurement: ``"infer_b1"``, ``"infer_b8"`` or ``"train_b4"``.
        size: image side; inputs are ``rand(B, 3, size, size)``, training targets random binary masks.
        device: device of the inputs.
        amp: autocast dtype, or ``None`` for float32. The loss is always computed in float32.
        channels_last: use the channels_last memory format for the inputs.

    Returns:
        a function running one inference forward or one training step (not synchronised).
    """
    if measurement not in BATCH:
        raise ValueError(f"unknown measurement {measurement!r}; expected one of {MEASUREMENTS}.")
    batch = BATCH[measurement]
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(batch, 3, size, size, generator=gen).to(device, memory_format=fmt)

    def autocast() -> contextlib.AbstractContextManager:
        return torch.autocast(device.type, dtype=amp) if amp is not None else contextlib.nullcontext()

    if measurement.startswith("infer"):

        def infer() -> None:
            model.eval()
            with torch.inference_mode(), autocast():
                model(x)

        return infer

    y = (torch.rand(batch, 1, size, size, generator=gen) > 0.5).float().to(device)
    forward, loss_fn = training_objective(name, model)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    # fp16 gradients need loss scaling; bf16 has float32's exponent range and does not
    scaler = torch.amp.GradScaler(device.type, enabled=amp == torch.float16 and device.type == "cuda")

    def train() -> None:
        model.train()
        optimizer.zero_grad(set_to_none=True)
        with autocast():
            pred = forward(x)
        loss = loss_fn(pred.float(), y)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    return train


def _timed(step: Callable[[], None], device: torch.device) -> float:
    sync_device(device)
    t0 = time.perf_counter()
    step()
    sync_device(device)
    return time.perf_counter() - t0


def matmul_peak(device: torch.device, n: int, dtype: torch.dtype = torch.float32, repeats: int = 10) -> dict:
    """Measure ``n x n @ n x n`` throughput in GFLOP/s (``2 n^3`` FLOPs per product): best and median."""
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    for _ in range(2):  # warm-up: thread pool, BLAS buffers, CUDA kernels
        torch.mm(a, b)
    times = [_timed(lambda: torch.mm(a, b), device) for _ in range(repeats)]
    flops = 2.0 * n**3
    best, median = flops / min(times) / 1e9, flops / statistics.median(times) / 1e9
    return {"n": n, "dtype": str(dtype), "best_gflops": best, "median_gflops": median}


def uses_channels_last(name: str, channels_last: bool) -> bool:
    """Whether model ``name`` runs in channels_last: ConDSeg always (as ``bundle/configs/train.json`` runs it),
    the others only with ``--channels-last``."""
    return channels_last or name in CHANNELS_LAST_MODELS


def _to_device(model: nn.Module, name: str, device: torch.device, channels_last: bool) -> nn.Module:
    fmt = torch.channels_last if uses_channels_last(name, channels_last) else torch.contiguous_format
    return model.to(device, memory_format=fmt)


def run_memory_worker(args: argparse.Namespace) -> dict:
    """Child process: build one model, run ONE iteration of one measurement, return the process's peak memory."""
    device = torch.device(args.device)
    torch.manual_seed(0)
    model = _to_device(build_model(args.models[0], not args.no_checkpoint), args.models[0], device, args.channels_last)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    if args.worker != "baseline":
        amp = AMP_DTYPES.get(args.amp)
        step = make_step(args.models[0], model, args.worker, args.size, device, amp, args.channels_last)
        _timed(step, device)
    return {"peak_mb": peak_memory_mb(device)}


def _measure_memory(args: argparse.Namespace, name: str) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--device", args.device, "--size", str(args.size)]
    cmd += ["--threads", str(args.threads), "--models", name] + (["--amp", args.amp] if args.amp else [])
    cmd += ["--channels-last"] if args.channels_last else []
    cmd += ["--no-checkpoint"] if args.no_checkpoint else []
    memory = {}
    for measurement in ("baseline", *args.measurements):
        result = run_worker_process([*cmd, "--worker", measurement], f"memory measurement {measurement} of {name}")
        memory[measurement] = result["peak_mb"]
    return memory


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--size", type=int, default=256, help="image side (a multiple of 16)")
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds (median reported)")
    parser.add_argument("--warmup", type=int, default=1, help="discarded rounds before the timed ones")
    parser.add_argument("--amp", default=None, choices=sorted(AMP_DTYPES), help="autocast dtype (default float32)")
    parser.add_argument("--channels-last", action="store_true", help="channels_last memory format")
    parser.add_argument("--no-checkpoint", action="store_true", help="ConDSeg without activation checkpointing")
    parser.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch default)")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS + EXTRA_MODELS)
    parser.add_argument(
        "--measurements", nargs="+", default=list(MEASUREMENTS), choices=MEASUREMENTS, help="what to time"
    )
    parser.add_argument("--skip-memory", action="store_true", help="skip the peak-memory subprocesses")
    parser.add_argument("--out", type=Path, default=None, help="write all results as JSON")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.size <= 0 or args.size % 16:
        parser.error(f"--size must be a positive multiple of 16, got {args.size}")
    if args.repeats < 1 or args.warmup < 0:
        parser.error("--repeats must be >= 1 and --warmup >= 0")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda requested but CUDA is not available")
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.worker:  # child process: JSON on the last stdout line
        print(json.dumps(run_memory_worker(args)))
        return {}

    device = torch.device(args.device)
    amp = AMP_DTYPES.get(args.amp)
    info: dict = {
        "device": args.device,
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else harness.cpu_name(),
        "size": args.size,
        "repeats": args.repeats,
        "warmup": args.warmup,
        "amp": args.amp,
        "measurements": args.measurements,
        "channels_last": args.channels_last,
        "condseg_use_checkpoint": not args.no_checkpoint,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "command": "python bench/compare.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "models": {},
    }
    import monai

    info["monai"] = monai.__version__
    n = 8192 if device.type == "cuda" else 2048
    info["matmul_before"] = matmul_peak(device, n, amp or torch.float32)

    steps: dict[tuple[str, str], Callable[[], None]] = {}
    for name in args.models:
        torch.manual_seed(0)
        model = build_model(name, not args.no_checkpoint)
        info["models"][name] = {
            "parameters": sum(p.numel() for p in model.parameters()),
            "gflops_inference_b1": count_flops(model, args.size, train=False),  # float32, CPU
            "channels_last": uses_channels_last(name, args.channels_last),
            "seconds": {m: [] for m in args.measurements},
        }
        model = _to_device(model, name, device, args.channels_last)
        for measurement in args.measurements:
            steps[name, measurement] = make_step(name, model, measurement, args.size, device, amp, args.channels_last)

    for r in range(args.warmup + args.repeats):
        order = args.models[r % len(args.models) :] + args.models[: r % len(args.models)]
        t0 = time.perf_counter()
        for name in order:
            for measurement in args.measurements:
                seconds = _timed(steps[name, measurement], device)
                if r >= args.warmup:
                    info["models"][name]["seconds"][measurement].append(seconds)
        kind = "warm-up" if r < args.warmup else "timed"
        print(f"round {r + 1}/{args.warmup + args.repeats} ({kind}): {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    del steps
    info["matmul_after"] = matmul_peak(device, n, amp or torch.float32)
    peak = max(info["matmul_before"]["best_gflops"], info["matmul_after"]["best_gflops"])
    info["matmul_peak_gflops"] = peak

    for res in info["models"].values():
        med = {m: statistics.median(v) for m, v in res["seconds"].items()}
        res["median_seconds"] = med
        if "infer_b1" in med:
            res["peak_fraction_b1"] = res["gflops_inference_b1"] / med["infer_b1"] / peak
        if "infer_b8" in med:
            res["images_per_second_b8"] = BATCH["infer_b8"] / med["infer_b8"]
            res["peak_fraction_b8"] = res["gflops_inference_b1"] * res["images_per_second_b8"] / peak
    if not args.skip_memory:
        for name in args.models:
            info["models"][name]["peak_memory_mb"] = _measure_memory(args, name)
            print(f"memory done: {name}", file=sys.stderr)

    report(format_tables(info), info, args.out)
    return info


def _cell(value: float | None, fmt: str) -> str:
    return "–" if value is None else format(value, fmt)


def _label(name: str, res: dict, info: dict) -> str:
    """The model's row label, marked when it ran in channels_last although the table's header does not say so."""
    marked = res.get("channels_last") and not info["channels_last"]
    return LABELS[name] + (" (channels_last)" if marked else "")


def format_tables(info: dict) -> str:
    """Markdown tables (speed, then memory when measured, then ours against the official layout) of :func:`main`."""
    precision = info["amp"] or "float32"
    args_label = precision + (", channels_last" if info["channels_last"] else "")
    head = f"{info['size']}x{info['size']}, {info['device']} ({info['device_name']}), {info['threads']} threads"
    measured = info.get("measurements", list(MEASUREMENTS))
    rows = [
        f"| model ({head}, {args_label}) | parameters | GFLOPs / image | inference b1: ms "
        f"| inference b8: images/s | training step b4: s | inference % of {precision} matmul peak (b1 / b8) |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, res in info["models"].items():
        med = res["median_seconds"]
        b1 = med.get("infer_b1")
        fractions = [res.get("peak_fraction_b1"), res.get("peak_fraction_b8")]
        rows.append(
            f"| {_label(name, res, info)} | {res['parameters'] / 1e6:.2f} M | {res['gflops_inference_b1']:.1f} "
            f"| {_cell(None if b1 is None else b1 * 1e3, '.0f')} | {_cell(res.get('images_per_second_b8'), '.2f')} "
            f"| {_cell(med.get('train_b4'), '.2f')} "
            f"| {' / '.join(_cell(None if f is None else 100 * f, '.0f') + '%' for f in fractions)} |"
        )
    rows.append(
        f"\nMatmul peak ({info['matmul_before']['n']}^2 {precision}, best of 10): {info['matmul_peak_gflops']:.0f} "
        f"GFLOP/s (before {info['matmul_before']['best_gflops']:.0f}, after {info['matmul_after']['best_gflops']:.0f})."
    )
    with_memory = all("peak_memory_mb" in res for res in info["models"].values())
    if with_memory:
        kind = "torch.cuda.max_memory_allocated" if info["device"] == "cuda" else "peak RSS"
        columns = {"infer_b1": "inference b1", "infer_b8": "inference b8", "train_b4": "training step b4"}
        rows += [
            f"\n| model ({kind}, GB, fresh process per cell) | model only | "
            + " | ".join(columns[m] for m in measured)
            + " |",
            "|---|---|" + "---|" * len(measured),
        ]
        for name, res in info["models"].items():
            mem = res["peak_memory_mb"]
            cells = " | ".join(f"{mem[m] / 1024:.2f}" for m in ("baseline", *measured))
            rows.append(f"| {_label(name, res, info)} | {cells} |")
    models = info["models"]
    if "official" in models and "condseg" in models:
        # side by side: how much faster (time ratio official / ours) and how much memory (ours / official)
        ours, official = models["condseg"], models["official"]
        rows += [
            "\n| ConDSeg against the official layout | official | ours | speed-up (official / ours) |",
            "|---|---|---|---|",
        ]
        for m in measured:
            a, b = official["median_seconds"][m], ours["median_seconds"][m]
            rows.append(f"| {m}: s per step | {a:.2f} | {b:.2f} | {a / b:.2f}x |")
        if with_memory:
            for m in measured:
                a, b = official["peak_memory_mb"][m] / 1024, ours["peak_memory_mb"][m] / 1024
                rows.append(f"| {m}: peak memory, GB | {a:.2f} | {b:.2f} | ours {b / a:.2f}x of official |")
    return "\n".join(rows)


if __name__ == "__main__":
    main()
