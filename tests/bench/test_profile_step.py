# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""bench/profile_step.py on a tiny ConDSeg: every block profiled, checkpointed blocks recomputed, operators listed."""

from __future__ import annotations

import profile_step

from condseg_monai.networks import ConDSeg
from condseg_monai.networks.nets.condseg import CHECKPOINTED_BLOCKS


def test_profile_of_a_tiny_step(tmp_path) -> None:
    out = tmp_path / "profile.json"
    args = ["--size", "32", "--batch", "2", "--repeats", "1", "--feature-size", "16", "--threads", "1"]
    info = profile_step.main([*args, "--checkpoint", "--top", "5", "--out", str(out)])
    children = [name for name, _ in ConDSeg(feature_size=16).named_children()]
    rows = {r["module"]: r for r in info["modules"]}
    assert sorted(rows) == sorted(children)
    checkpointed = {name.split(".")[0] for name in CHECKPOINTED_BLOCKS}  # aux_head: its three branches
    for name, r in rows.items():
        assert r["forward_s"] > 0 and r["backward_s"] > 0
        assert r["checkpointed"] == (name in checkpointed), name
        assert r["gflops_forward"] > 0
    assert rows["encoder"]["gflops_forward"] > rows["sid"]["gflops_forward"]  # ResNet-50 at full width
    ops = info["operators"]["operators"]
    assert len(ops) == 5 and any("convolution" in r["name"] for r in ops)
    assert ops == sorted(ops, key=lambda r: r["self_s"], reverse=True)
    assert "| sum of the blocks |" in profile_step.format_tables(info) and out.is_file()
