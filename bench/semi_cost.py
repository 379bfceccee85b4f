# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""What a semi-supervised iteration costs against a supervised one, measured side by side through the bundle.

Three runs of the same labeled datalist, network, batch size, seed and number of iterations, one after the other
(run it on an otherwise idle machine): ``sup`` (``train.json`` + the stage config), ``semi`` (+
``configs/semi_supervised.json`` as shipped: unlabeled batches of ``condseg_monai.engines.unlabeled_batch_size``,
3/8 of ``batch_size``) and ``semi (unlabeled_batch_size N)`` (the same with ``--unlabeled-batch-size`` N; by default
N = ``batch_size``, bundle 0.2.0's default). The cost is the trainer's own loop time without validation
(:func:`harness.training_loop_seconds`) per iteration; the ratio is against ``sup``. Usage::

    python bench/semi_cost.py --datalist runs/le_harness/basic_unet64/frac0.1.json --out runs/semi_cost \\
        --network basic_unet --size 64 --batch-size 8 --steps 200
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

import harness  # bench/ is sys.path[0] when run as a script

__all__ = ["main", "ratio_table"]

SEMI_CONFIG = harness.REPO / "configs" / "semi_supervised.json"


def ratio_table(seconds: dict[str, float], iterations: int) -> str:
    """A markdown table of seconds per iteration and the ratio to ``sup``."""
    base = seconds["sup"] / iterations
    lines = ["| run | s / iteration | x supervised |", "|---|---|---|"]
    for name, total in seconds.items():
        per = total / iterations
        lines.append(f"| {name} | {per:.3f} | {per / base:.2f} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datalist", type=Path, required=True, help="a datalist with labeled and unlabeled images")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--network", default="basic_unet", help="condseg or a bench/configs overlay name")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument(
        "--unlabeled-batch-size", type=int, default=None, help="compared run's unlabeled batch (default: --batch-size)"
    )
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--feature-size", type=int, default=128, help="ConDSeg decoder width")
    args = parser.parse_args(argv)
    if not args.datalist.is_file():
        parser.error(f"--datalist '{args.datalist}' does not exist.")
    if not json.loads(args.datalist.read_text()).get("unlabeled"):
        parser.error(f"--datalist '{args.datalist}' has no unlabeled images.")
    other = args.batch_size if args.unlabeled_batch_size is None else args.unlabeled_batch_size
    if other < 1:
        parser.error(f"--unlabeled-batch-size must be >= 1, got {other}.")
    runs = {
        "sup": ([], {}),
        "semi": ([str(SEMI_CONFIG)], {}),
        f"semi (unlabeled_batch_size {other})": ([str(SEMI_CONFIG)], {"unlabeled_batch_size": other}),
    }
    seconds: dict[str, float] = {}
    for i, (name, (configs, extra)) in enumerate(runs.items()):
        spec = harness.TrainSpec(
            network=args.network,
            iterations=args.steps,
            stage1_iterations=args.steps,
            eval_every=args.steps,
            image_size=args.size,
            batch_size=args.batch_size,
            seed=0,
            configs=configs,
            overrides={"feature_size": args.feature_size, **extra},
        )
        trained = harness.train(spec, args.datalist, args.out / f"run{i}")
        seconds[name] = sum(s["loop_seconds"] for s in trained["stages"])
    table = ratio_table(seconds, args.steps * (2 if args.network == "condseg" else 1))
    text = f"Command: `python bench/semi_cost.py {shlex.join(argv)}`\n\n{table}\n"
    (args.out / "results.md").write_text(text)
    harness.write_results({"seconds": seconds, "environment": harness.environment()}, args.out / "results.json")
    print(text, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
