# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""MONAI's bundle tools on our configs: verify_net_in_out, ckpt_export (TorchScript) and onnx_export (ONNX).

Exports use the small network (``feature_size=16, num_heads=2``) for speed; the full default network is checked once
by ``verify_net_in_out`` at 256 x 256.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from monai.bundle import ckpt_export, onnx_export, verify_net_in_out

from condseg_monai.networks import ConDSeg

REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / "bundle" / "configs"
INFERENCE = str(CONFIGS / "inference.json")
METADATA = str(CONFIGS / "metadata.json")
SMALL = {"feature_size": 16, "num_heads": 2}


def _eager(ckpt: str) -> ConDSeg:
    net = ConDSeg(**SMALL)
    net.load_state_dict(torch.load(ckpt, weights_only=True))
    return net.eval()


@pytest.mark.slow
def test_verify_net_in_out_default_network() -> None:
    verify_net_in_out(net_id="network_def", meta_file=METADATA, config_file=INFERENCE)


def test_verify_net_in_out_detects_a_wrong_channel_count(tmp_path: Path) -> None:
    meta = json.loads(Path(METADATA).read_text())
    meta["network_data_format"]["outputs"]["pred"]["num_channels"] = 2
    bad = tmp_path / "metadata.json"
    bad.write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="channel"):
        verify_net_in_out(net_id="network_def", meta_file=str(bad), config_file=INFERENCE, **SMALL)


def test_ckpt_export_torchscript_matches_eager(tmp_path: Path, small_ckpt: str) -> None:
    # the default (torch.jit.script) export; `--use_trace True --input_shape [1,3,256,256]` also works but gives a
    # model fixed to that shape (see docs/export.md)
    path = tmp_path / "model.ts"
    ckpt_export(
        net_id="network_def",
        filepath=str(path),
        ckpt_file=small_ckpt,
        meta_file=METADATA,
        config_file=INFERENCE,
        **SMALL,
    )
    files = {"metadata.json": "", "inference.json": ""}
    scripted = torch.jit.load(str(path), _extra_files=files)
    assert json.loads(files["metadata.json"])["version"] == json.loads(Path(METADATA).read_text())["version"]
    eager = _eager(small_ckpt)
    torch.manual_seed(1)
    for shape in [(1, 3, 64, 64), (2, 3, 32, 48)]:  # a scripted model keeps batch and image size dynamic
        x = torch.rand(shape)
        with torch.no_grad():
            torch.testing.assert_close(scripted(x), eager(x), atol=1e-4, rtol=1e-4)


def test_onnx_export_matches_eager(tmp_path: Path, small_ckpt: str) -> None:
    pytest.importorskip("onnx", reason="onnx is needed by onnx_export (pip install the `test` extra)")
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime is needed to run the exported model")
    path = tmp_path / "model.onnx"
    # TorchScript-based exporter: torch 2.13's default dynamo exporter also works but takes minutes on 2 CPU cores
    onnx_export(
        net_id="network_def",
        filepath=str(path),
        ckpt_file=small_ckpt,
        meta_file=METADATA,
        config_file=INFERENCE,
        use_trace=True,
        input_shape=[1, 3, 64, 64],
        converter_kwargs={"dynamo": False, "input_names": ["image"], "output_names": ["pred"]},
        **SMALL,
    )
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["image"]
    torch.manual_seed(2)
    x = torch.rand(1, 3, 64, 64)
    (out,) = session.run(["pred"], {"image": x.numpy()})
    with torch.no_grad():
        torch.testing.assert_close(torch.from_numpy(out), _eager(small_ckpt)(x), atol=1e-4, rtol=1e-4)
