# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""Video inference throughput: frames per second of the bundle's video path, end to end and inference alone.

The runner is the one ``python -m monai.bundle run inference`` uses on a video: ``video_runner`` of
``bundle/configs/inference.json``, built with ``monai.bundle.ConfigParser`` at each ``--sizes`` entry
(``image_size``). Two numbers per size:

* **end to end**: ``VideoInferenceRunner.run`` on the video: decoding, preprocessing, network + inferer, the
  operating point, the temporal filter, overlay encoding, CSV/JSON (and mask PNGs with ``--save-masks``), divided
  into the number of frames;
* **inference alone**: network + inferer on the same frames, already decoded and resized, in batches of
  ``--batch-size`` (what the model costs without any I/O).

Without ``--video`` a synthetic clip is made (a moving reddish blob on a textured background, MJPEG AVI,
``--frame-size``); without ``--ckpt`` a freshly initialised full-width ConDSeg (``feature_size`` 128) is saved and
used: its decisions are meaningless but its cost is the real model's. One warm-up batch runs before the timing.

Usage::

    python bench/video_throughput.py [--sizes 128 256] [--frames 40] [--threads 2] [--video clip.mp4]
                                     [--ckpt model.pt] [--batch-size 8] [--tta] [--device cpu] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import av
import numpy as np
import torch
from monai.bundle import ConfigParser

from condseg_monai.inference import iter_video_frames, open_video

__all__ = ["main", "make_synthetic_video", "measure"]

ROOT = Path(__file__).resolve().parents[1]
INFERENCE = ROOT / "bundle" / "configs" / "inference.json"


def make_synthetic_video(path: Path, num_frames: int, height: int, width: int, fps: int = 25) -> Path:
    """An MJPEG AVI of ``num_frames`` ``(height, width)`` frames: a reddish blob moving over a texture."""
    yy, xx = np.mgrid[0:height, 0:width]
    base = np.stack([80 + 40 * np.sin(xx / 17.0), 60 + 30 * np.cos(yy / 13.0), 50 + 0 * xx], -1)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mjpeg", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuvj420p"
        for i in range(num_frames):
            cy, cx = height * (0.3 + 0.4 * (i % 20) / 20), width * (0.2 + 0.6 * (i % 30) / 30)
            blob = np.exp(-(((yy - cy) / (0.12 * height)) ** 2 + ((xx - cx) / (0.12 * width)) ** 2))[..., None]
            img = base * (1 - blob) + np.array([220.0, 90.0, 80.0]) * blob
            frame = av.VideoFrame.from_ndarray(img.clip(0, 255).astype(np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def build_runner(size: int, args: argparse.Namespace, ckpt: Path, output_dir: Path) -> Any:
    """The bundle's ``video_runner`` at ``image_size`` = ``size`` (progress bar off: it would time the terminal)."""
    parser = ConfigParser()
    parser.read_config(str(args.config))
    overrides = {
        "ckpt_path": str(ckpt),
        "output_dir": str(output_dir),
        "device": args.device,
        "image_size": size,
        "video_batch_size": args.batch_size,
        "tta": args.tta,
        "save_masks": args.save_masks,
        "video_runner#progress": False,
    }
    for key, value in overrides.items():
        parser[key] = value
    return parser.get_parsed_content("video_runner")


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def measure(size: int, args: argparse.Namespace, ckpt: Path, work: Path) -> dict[str, Any]:
    """End-to-end and inference-only frames per second at one ``image_size``."""
    runner = build_runner(size, args, ckpt, work / f"out_{size}")
    runner.prepare_network()
    container, stream = open_video(args.video)
    with container:
        frames = [f.image for f in iter_video_frames(container, stream, args.video) if f.readable]
    runner.infer_frames(frames[: args.batch_size])  # warm-up: first-call allocations, thread pools
    _sync(args.device)
    start = time.perf_counter()
    summary = runner.run([str(args.video)])[0]
    _sync(args.device)
    end_to_end = time.perf_counter() - start
    batches = [
        torch.stack([runner.prepare_frame(im) for im in frames[i : i + args.batch_size]]).to(args.device)
        for i in range(0, len(frames), args.batch_size)
    ]
    _sync(args.device)
    start = time.perf_counter()
    with torch.no_grad():
        for batch in batches:
            runner.inferer(batch, runner.network)
    _sync(args.device)
    inference = time.perf_counter() - start
    return {
        "image_size": size,
        "frames": summary["frames"],
        "frame_size": summary["frame_size"],
        "end_to_end_s": end_to_end,
        "end_to_end_fps": summary["frames"] / end_to_end,
        "inference_s": inference,
        "inference_fps": len(frames) / inference,
        "frames_with_polyp": summary["frames_with_polyp"],
    }


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 256], help="image_size values")
    parser.add_argument("--frames", type=int, default=40, help="frames of the synthetic video")
    parser.add_argument("--frame-size", type=int, nargs=2, default=[480, 640], metavar=("H", "W"))
    parser.add_argument("--video", type=Path, default=None, help="a video to use instead of the synthetic one")
    parser.add_argument("--ckpt", type=Path, default=None, help="weights (default: a fresh full-width ConDSeg)")
    parser.add_argument("--config", type=Path, default=INFERENCE)
    parser.add_argument("--batch-size", type=int, default=8, help="video_batch_size")
    parser.add_argument("--tta", action="store_true", help="flip TTA (4 forward passes per frame)")
    parser.add_argument("--save-masks", action="store_true", help="also write the mask PNGs")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch default)")
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    source = str(args.video) if args.video is not None else f"synthetic MJPEG AVI, {args.frames} frames"
    with tempfile.TemporaryDirectory(prefix="video_throughput_") as tmp:
        work = Path(tmp)
        if args.video is None:
            args.video = make_synthetic_video(work / "synthetic.avi", args.frames, *args.frame_size)
        ckpt = args.ckpt
        if ckpt is None:
            from condseg_monai.networks import ConDSeg

            torch.manual_seed(0)
            ckpt = work / "fresh_condseg.pt"
            torch.save(ConDSeg(feature_size=128, num_heads=4).state_dict(), ckpt)
        results = [measure(size, args, ckpt, work) for size in args.sizes]
    print(
        f"video: {source}, weights: {args.ckpt or 'fresh full-width ConDSeg'}, "
        f"device {args.device}, torch threads {torch.get_num_threads()}, batch {args.batch_size}, tta {args.tta}, "
        f"{platform.processor() or platform.machine()}"
    )
    print("| image_size | frames | frame size (W x H) | end to end (frames/s) | inference alone (frames/s) |")
    print("|---|---|---|---|---|")
    for r in results:
        w, h = r["frame_size"]
        print(
            f"| {r['image_size']} | {r['frames']} | {w} x {h} | {r['end_to_end_fps']:.2f} "
            f"({r['end_to_end_s']:.1f} s) | {r['inference_fps']:.2f} ({r['inference_s']:.1f} s) |"
        )
    if args.out is not None:
        meta = {"device": args.device, "threads": torch.get_num_threads(), "batch_size": args.batch_size}
        args.out.write_text(json.dumps({"settings": meta | {"tta": args.tta}, "results": results}, indent=2) + "\n")
    return results


if __name__ == "__main__":
    main()
