# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""Speed / memory / FLOPs benchmark of the ConDSeg networks.

Measures, at ``--size`` x ``--size``: inference latency at batch 1 and 8 (eval, ``torch.inference_mode``), one
training step at batch 4 (train-mode forward, BCE-with-logits on all four outputs, backward, Adam step), peak
memory, parameter count and FLOPs (``torch.utils.flop_counter.FlopCounterMode``, 2 FLOPs per multiply-add).

On CPU every measurement runs in a fresh subprocess and reports its peak resident set size (``VmHWM`` on Linux,
else ``resource.getrusage(RUSAGE_SELF).ru_maxrss``); a "baseline" subprocess (imports + model, no forward) gives
the fixed part. On CUDA the peak is ``torch.cuda.max_memory_allocated``.

Usage::

    python bench/speed.py [--device cpu|cuda] [--size 256] [--repeats 3] [--out FILE.json] [--channels-last]
                          [--model condseg|stage1|reference] [--threads N]

``--model reference`` benchmarks the test-suite re-implementation of the *official* model
(``bench/official_reference.py``: unfold/fold CDFA, sigmoids, auxiliary head always computed) on the same
machine, for a like-for-like comparison.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import harness  # bench/ is sys.path[0] when run as a script
import torch
from torch import nn

__all__ = [
    "count_flops",
    "main",
    "peak_memory_mb",
    "report",
    "run_worker_process",
    "sync_device",
    "training_objective",
]

ROOT = Path(__file__).resolve().parents[1]
MEASUREMENTS = ("baseline", "infer_b1", "infer_b8", "train_b4")


def build_model(name: str, use_checkpoint: bool = False) -> nn.Module:
    """The bundle's Stage-2 (``condseg``) or Stage-1 network, or the official reference layout."""
    if name == "condseg":
        return harness.bundle_components(2, ["network_def"], {"use_checkpoint": use_checkpoint})["network_def"]
    if name == "stage1":
        return harness.bundle_components(1, ["network_def"])["network_def"]
    if name == "reference":
        from official_reference import OfficialConDSeg

        return OfficialConDSeg()
    raise ValueError(f"unknown --model {name!r}")


def training_objective(name: str, model: nn.Module) -> tuple[Callable, nn.Module]:
    """Return ``(forward, loss)`` of one training step: ``loss(forward(x).float(), y)``.

    ConDSeg and Stage 1 train with the bundle's losses (and Stage 1 on its clean + strong views); the official
    reference layout with its own Stage-2 loss; MONAI baselines with Dice + BCE (``bench/configs/``).
    """
    from condseg_monai.losses import DiceBCELoss

    if name == "official":
        from official_reference import official_stage2_loss

        # its 4 sigmoid maps, stacked like ours so that the step is written once; the official loss unstacks them
        return (lambda x: torch.stack(model(x), dim=1)), (lambda pred, y: official_stage2_loss(pred.unbind(1), y))
    if name in ("condseg", "condseg_plain"):  # the bundle's Stage-2 loss on (B, 4, 1, H, W): mask, fg, bg, uncertainty
        return model, harness.bundle_components(2, ["loss"])["loss"]
    if name == "stage1":
        from condseg_monai.engines import StrongViewPrepareBatch
        from condseg_monai.inferers import ConsistencyInferer
        from condseg_monai.transforms import RandIlluminationContrastAugment

        views = StrongViewPrepareBatch(RandIlluminationContrastAugment().set_random_state(seed=0))
        inferer = ConsistencyInferer()
        return (lambda x: inferer(x, model, **views({"image": x})[3])), harness.bundle_components(1, ["loss"])[
            "loss"
        ]  # (B, 2, 1, H, W): clean and strong view
    return model, DiceBCELoss()


def sync_device(device: torch.device) -> None:
    """Wait for queued CUDA work so that wall-clock timings are complete (no-op on CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize()


def peak_memory_mb(device: torch.device) -> float:
    """Peak memory of this process in MiB: ``max_memory_allocated`` on CUDA, peak RSS on CPU.

    On Linux the peak RSS is ``VmHWM`` of ``/proc/self/status``: ``ru_maxrss`` would also carry the parent's RSS at
    ``fork`` over ``exec`` into a fresh benchmark subprocess.
    """
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 2**10  # kB
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return rss / (2**20 if sys.platform == "darwin" else 2**10)


def run_worker(args: argparse.Namespace) -> dict:
    """One measurement in this process; returns seconds per iteration (median) and peak memory."""
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    fmt = torch.channels_last if args.channels_last else torch.contiguous_format
    model = build_model(args.model, args.use_checkpoint).to(device, memory_format=fmt)
    result: dict = {"measurement": args.worker}
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    if args.worker == "baseline":
        result["peak_mb"] = peak_memory_mb(device)
        return result

    times = []
    if args.worker.startswith("infer"):
        batch = 1 if args.worker == "infer_b1" else 8
        x = torch.rand(batch, 3, args.size, args.size, device=device).to(memory_format=fmt)
        model.eval()
        with torch.inference_mode():
            for i in range(args.warmup + args.repeats):
                sync_device(device)
                t0 = time.perf_counter()
                model(x)
                sync_device(device)
                if i >= args.warmup:
                    times.append(time.perf_counter() - t0)
    else:
        batch = 4
        x = torch.rand(batch, 3, args.size, args.size, device=device).to(memory_format=fmt)
        y = (torch.rand(batch, 1, args.size, args.size, device=device) > 0.5).float()
        model.train()
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
        forward, loss_fn = training_objective("official" if args.model == "reference" else args.model, model)
        for i in range(args.warmup + args.repeats):
            sync_device(device)
            t0 = time.perf_counter()
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(forward(x).float(), y)
            loss.backward()
            optimizer.step()
            sync_device(device)
            if i >= args.warmup:
                times.append(time.perf_counter() - t0)
    result.update(batch=batch, seconds=statistics.median(times), all_seconds=times, peak_mb=peak_memory_mb(device))
    result["seconds_per_image"] = result["seconds"] / batch
    return result


def count_flops(model: nn.Module, size: int, train: bool) -> float:
    """GFLOPs of one forward pass at batch 1 (train mode includes the auxiliary head)."""
    from torch.utils.flop_counter import FlopCounterMode

    model.train(train)
    x = torch.rand(1, 3, size, size)
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(x)
    return counter.get_total_flops() / 1e9


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON")
    parser.add_argument("--channels-last", action="store_true", help="channels_last memory format")
    parser.add_argument(
        "--use-checkpoint", action="store_true", help="condseg: activation checkpointing of the full-resolution layers"
    )
    parser.add_argument("--model", default="condseg", choices=["condseg", "stage1", "reference"])
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch default)")
    parser.add_argument("--only", nargs="*", default=list(MEASUREMENTS), choices=MEASUREMENTS)
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:  # child process: one measurement, JSON on the last stdout line
        print(json.dumps(run_worker(args)))
        return {}

    model = build_model(args.model)
    info = {
        "model": args.model,
        "device": args.device,
        "size": args.size,
        "repeats": args.repeats,
        "channels_last": args.channels_last,
        "use_checkpoint": args.use_checkpoint,
        "threads": args.threads or torch.get_num_threads(),
        "parameters": sum(p.numel() for p in model.parameters()),
        "gflops_inference_b1": count_flops(model, args.size, train=False),
        "gflops_train_forward_b1": count_flops(model, args.size, train=True),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": harness.cpu_name(),
        "command": "python bench/speed.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "results": {},
    }
    del model
    try:
        import monai

        info["monai"] = monai.__version__
    except ImportError:  # pragma: no cover
        pass

    base = [sys.executable, str(Path(__file__).resolve()), "--device", args.device, "--size", str(args.size)]
    base += ["--repeats", str(args.repeats), "--warmup", str(args.warmup), "--model", args.model]
    base += ["--threads", str(args.threads)] + (["--channels-last"] if args.channels_last else [])
    base += ["--use-checkpoint"] if args.use_checkpoint else []
    for name in args.only:
        info["results"][name] = run_worker_process([*base, "--worker", name], f"measurement {name}")
        print(f"done: {name}", file=sys.stderr)

    report(format_table(info), info, args.out)
    return info


def run_worker_process(cmd: list[str], what: str) -> dict:
    """Run one measurement in a fresh subprocess (``cmd``) and return the JSON of its last stdout line.

    Raises:
        RuntimeError: the subprocess failed; the message names ``what`` and ends with its stderr.
    """
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{what} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def report(table: str, info: dict, out: Path | None) -> None:
    """Print the markdown ``table`` and, when ``out`` is given, write ``info`` there as JSON."""
    print(table)
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(info, indent=2))


def format_table(info: dict) -> str:
    res = info["results"]
    rows = [
        "| metric | value |",
        "|---|---|",
        f"| parameters | {info['parameters']:,} |",
        f"| GFLOPs / image, inference (batch 1) | {info['gflops_inference_b1']:.1f} |",
        f"| GFLOPs / image, training forward (batch 1) | {info['gflops_train_forward_b1']:.1f} |",
    ]
    labels = {
        "infer_b1": "inference, batch 1",
        "infer_b8": "inference, batch 8",
        "train_b4": "training step, batch 4",
    }
    for key, label in labels.items():
        if key in res:
            r = res[key]
            rows.append(f"| {label}: s / image (s / iteration) | {r['seconds_per_image']:.3f} ({r['seconds']:.3f}) |")
            rows.append(f"| {label}: peak memory MB | {r['peak_mb']:.0f} |")
    if "baseline" in res:
        rows.append(f"| baseline (imports + model, no forward) peak memory MB | {res['baseline']['peak_mb']:.0f} |")
    return "\n".join(rows)


if __name__ == "__main__":
    main()
