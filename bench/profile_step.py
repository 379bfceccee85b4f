# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""Where a ConDSeg training step spends its time: per module and per operator.

One training step as the bundle runs it (``zero_grad``, train-mode forward of the stacked 4-map output,
:class:`~condseg_monai.losses.ConDSegLoss`, backward, Adam step), at batch ``--batch`` on random inputs:

- **per operator**: ``torch.profiler`` over one whole step after a warm-up step, the operators with the largest
  self time (the convolutions, BatchNorm, the element-wise ops, copies ...);
- **per module**: the inputs of every top-level block of :class:`~condseg_monai.networks.ConDSeg` (encoder,
  dilated blocks, SID, auxiliary head, guides, CDFAs, decoders, fusion head) are captured during a step, then each
  block's forward and backward are timed on its own (median of ``--repeats``), with its forward GFLOPs
  (``FlopCounterMode``, 2 per multiply-add) and the achieved GFLOP/s (forward + backward = 3x the forward FLOPs).
  With activation checkpointing (``--checkpoint``) each block runs as in the network, the blocks of
  :data:`~condseg_monai.networks.nets.condseg.CHECKPOINTED_BLOCKS` under selective checkpointing (their backward
  time includes the recomputation); the table marks them.

Usage::

    python bench/profile_step.py [--size 256] [--batch 4] [--threads 2] [--repeats 3] [--channels-last]
                                 [--checkpoint] [--top 25] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import harness  # bench/ is sys.path[0] when run as a script
import torch
from speed import report  # bench/ is sys.path[0] when run as a script
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from condseg_monai.networks.checkpointing import checkpointed_blocks
from condseg_monai.networks.nets.condseg import CHECKPOINTED_BLOCKS

__all__ = ["main", "module_profile", "operator_profile"]


def _training_step(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> Callable[[], None]:
    loss_fn = harness.bundle_components(2, ["loss"])["loss"]  # the bundle's Stage-2 loss
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-4)

    def step() -> None:
        net.train()
        optimizer.zero_grad(set_to_none=True)
        loss_fn(net(x), y).backward()
        optimizer.step()

    return step


def operator_profile(step: Callable[[], None], top: int) -> dict:
    """Self CPU time per operator over one step (``torch.profiler``), the ``top`` largest first."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        step()
    events = [e for e in prof.key_averages() if e.self_cpu_time_total > 0]
    total = sum(e.self_cpu_time_total for e in events)
    events.sort(key=lambda e: e.self_cpu_time_total, reverse=True)
    rows = [
        {"name": e.key, "self_s": e.self_cpu_time_total / 1e6, "calls": e.count, "share": e.self_cpu_time_total / total}
        for e in events[:top]
    ]
    return {"total_s": total / 1e6, "operators": rows}


def _capture_inputs(net: nn.Module, x: torch.Tensor) -> dict[str, tuple]:
    """The inputs of every top-level child of ``net`` during one train-mode forward (the last call of each)."""
    captured: dict[str, tuple] = {}
    hooks = [
        child.register_forward_pre_hook(lambda _, args, name=name: captured.__setitem__(name, args))
        for name, child in net.named_children()
    ]
    use_checkpoint, net.use_checkpoint = net.use_checkpoint, False  # one plain forward: each hook fires once
    try:
        with torch.no_grad():
            net.train()
            net(x)
    finally:
        net.use_checkpoint = use_checkpoint
        for h in hooks:
            h.remove()
    return {name: tuple(a.detach() for a in args) for name, args in captured.items()}


def _time_block(
    module: nn.Module, args: Sequence[torch.Tensor], repeats: int, checkpointed: Sequence[nn.Module] = ()
) -> tuple[float, float]:
    """Median forward and backward seconds of ``module(*args)`` (train mode, gradients for inputs and weights).

    ``checkpointed``: modules run under selective checkpointing meanwhile (the block itself or its sub-blocks).
    """
    forward, backward = [], []
    gen = torch.Generator().manual_seed(0)
    for r in range(repeats + 1):  # the first call is a warm-up
        inputs = [a.clone().requires_grad_(a.is_floating_point()) for a in args]
        with checkpointed_blocks(checkpointed):
            t0 = time.perf_counter()
            out = module(*inputs)
            t1 = time.perf_counter()
            outs = list(out) if isinstance(out, (tuple, list)) else [out]
            grads = [torch.randn(o.shape, generator=gen).to(memory_format=_format_of(o)) for o in outs]
            torch.autograd.backward(outs, grads)
            t2 = time.perf_counter()
        module.zero_grad(set_to_none=True)
        if r:
            forward.append(t1 - t0)
            backward.append(t2 - t1)
    return statistics.median(forward), statistics.median(backward)


def _format_of(t: torch.Tensor) -> torch.memory_format:
    return (
        torch.channels_last
        if t.dim() == 4 and t.is_contiguous(memory_format=torch.channels_last)
        else (torch.contiguous_format)
    )


def _forward_gflops(module: nn.Module, args: Sequence[torch.Tensor]) -> float:
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        module(*args)
    return counter.get_total_flops() / 1e9


def module_profile(net: nn.Module, x: torch.Tensor, repeats: int, checkpoint: bool) -> list[dict]:
    """Forward / backward time and forward GFLOPs of each top-level block, measured on its own.

    With ``checkpoint`` the blocks of ``CHECKPOINTED_BLOCKS`` (or their sub-blocks) run checkpointed, as in the
    network's training forward.
    """
    rows = []
    for name, args in _capture_inputs(net, x).items():
        module = getattr(net, name)
        inside = [net.get_submodule(n) for n in CHECKPOINTED_BLOCKS if n == name or n.startswith(name + ".")]
        fwd, bwd = _time_block(module, args, repeats, inside if checkpoint else [])
        gflops = _forward_gflops(module, args)
        total = fwd + bwd
        rows.append(
            {
                "module": name,
                "checkpointed": bool(checkpoint and inside),
                "forward_s": fwd,
                "backward_s": bwd,
                "total_s": total,
                "gflops_forward": gflops,
                "gflops_per_s": 3 * gflops / total if total > 0 else 0.0,
            }
        )
    return rows


def format_tables(info: dict) -> str:
    """Markdown tables of a :func:`main` result."""
    head = f"{info['size']}x{info['size']}, batch {info['batch']}, {info['threads']} threads, {info['layout']}"
    modules = info["modules"]
    step = info["step_s"]
    rows = [
        f"Training step ({head}): **{step:.2f} s** (median of {info['repeats']}; {info['cpu']}).\n",
        "| module | checkpointed | forward s | backward s (with recomputation) | total s | share of the step "
        "| forward GFLOPs | GFLOP/s (fwd + bwd) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in sorted(modules, key=lambda r: r["total_s"], reverse=True):
        rows.append(
            f"| `{r['module']}` | {'yes' if r['checkpointed'] else ''} | {r['forward_s']:.2f} | {r['backward_s']:.2f} "
            f"| {r['total_s']:.2f} | {100 * r['total_s'] / step:.0f}% | {r['gflops_forward']:.0f} "
            f"| {r['gflops_per_s']:.0f} |"
        )
    total = sum(r["total_s"] for r in modules)
    flops = sum(r["gflops_forward"] for r in modules)
    rows.append(
        f"| sum of the blocks | | | | {total:.2f} | {100 * total / step:.0f}% | {flops:.0f} | {3 * flops / total:.0f} |"
    )
    ops = info["operators"]
    rows += [
        f"\nOperators over one step (`torch.profiler`, self time; all operators together {ops['total_s']:.2f} s):\n",
        "| operator | self s | share | calls |",
        "|---|---|---|---|",
    ]
    for r in ops["operators"]:
        rows.append(f"| `{r['name']}` | {r['self_s']:.2f} | {100 * r['share']:.1f}% | {r['calls']} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256, help="image side (a multiple of 16)")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch default)")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats (median reported)")
    parser.add_argument("--channels-last", action="store_true", help="model and input in channels_last")
    parser.add_argument("--checkpoint", action="store_true", help="activation checkpointing (train.json's default)")
    parser.add_argument("--feature-size", type=int, default=128, help="ConDSeg feature_size")
    parser.add_argument("--top", type=int, default=25, help="operators listed")
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON")
    args = parser.parse_args(argv)
    if args.size <= 0 or args.size % 16:
        parser.error(f"--size must be a positive multiple of 16, got {args.size}")
    if args.threads:
        torch.set_num_threads(args.threads)

    fmt = torch.channels_last if args.channels_last else torch.contiguous_format
    torch.manual_seed(0)
    settings = {"feature_size": args.feature_size, "use_checkpoint": args.checkpoint}
    net = harness.bundle_components(2, ["network_def"], settings)["network_def"].to(memory_format=fmt)
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(args.batch, 3, args.size, args.size, generator=gen).contiguous(memory_format=fmt)
    y = (torch.rand(args.batch, 1, args.size, args.size, generator=gen) > 0.5).float()
    step = _training_step(net, x, y)
    step()  # warm-up
    times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    info = {
        "command": "python bench/profile_step.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "cpu": harness.cpu_name(),
        "torch": torch.__version__,
        "size": args.size,
        "batch": args.batch,
        "threads": torch.get_num_threads(),
        "repeats": args.repeats,
        "layout": ("channels_last" if args.channels_last else "NCHW")
        + (", activation checkpointing" if args.checkpoint else ""),
        "step_s": statistics.median(times),
        "step_times_s": times,
        "operators": operator_profile(step, args.top),
        "modules": module_profile(net, x, args.repeats, args.checkpoint),
    }
    report(format_tables(info), info, args.out)
    return info


if __name__ == "__main__":
    main()
