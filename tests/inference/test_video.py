# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""Video inference: the temporal filter, input listing, the reader's error handling and the whole bundle path.

The bundle runs use the "red detector" of tests/bundle (a 1x1 convolution, logit = 20 * red - 10: the mask is
exactly ``red > 0.5``) so that every decision is known by hand, and one run uses a tiny ConDSeg with flip TTA.
Videos are made here with PyAV: a red square moving over a textured background on the frames marked present.
"""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from monai.bundle import run as bundle_run
from monai.transforms import Compose, EnsureTyped, LoadImaged, Resized
from PIL import Image

from condseg_monai.data import InputFailuresError
from condseg_monai.inference import (
    FRAME_COLUMNS,
    TemporalFilter,
    UncertaintyMapInferer,
    VideoInferenceRunner,
    alarm_runs,
    iter_video_frames,
    list_inputs,
    open_video,
    temporal_filter,
)
from condseg_monai.inference.video import frame_transforms
from condseg_monai.metrics.detection import OperatingPoint
from condseg_monai.transforms import LoadImageRGBd
from condseg_monai.transforms.readers import InvalidInputError

REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / "bundle" / "configs"
INFERENCE = str(CONFIGS / "inference.json")
METADATA = str(CONFIGS / "metadata.json")
LOGGING = str(CONFIGS / "logging.conf")
DETECTOR = {"_target_": "torch.nn.Conv2d", "in_channels": 3, "out_channels": 1, "kernel_size": 1}
SMALL = {"feature_size": 16, "num_heads": 2}
H, W = 48, 64  # not square: a swapped axis would show
BLOB = 16


# ------------------------------------------------------------------------------------------------- helpers


def _blob_box(i: int) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) of the red square on frame ``i`` (it moves 3 px right per frame)."""
    top, left = 8 + i % 3, 4 + 3 * i
    return top, top + BLOB, left, left + BLOB


def _frame(i: int, present: bool) -> np.ndarray:
    img = np.zeros((H, W, 3), np.uint8)
    img[..., 1] = (np.arange(W)[None, :] * 3 % 120).astype(np.uint8)  # texture without red
    img[..., 2] = 50
    if present:
        t, b, left, r = _blob_box(i)
        img[t:b, left:r] = (255, 0, 0)
    return img


def make_video(path: Path, present: Sequence[bool], fps: int = 10) -> Path:
    """MJPEG for ``.avi`` (one JPEG per packet), H.264 for ``.mp4``; ``present[i]``: frame ``i`` has the square."""
    mjpeg = path.suffix.lower() == ".avi"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mjpeg" if mjpeg else "libx264", rate=fps)
        stream.width, stream.height = W, H
        stream.pix_fmt = "yuvj420p" if mjpeg else "yuv420p"
        if not mjpeg:
            stream.options = {"crf": "10"}
        for i, p in enumerate(present):
            for packet in stream.encode(av.VideoFrame.from_ndarray(_frame(i, p), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def corrupt_frame(path: Path, index: int) -> None:
    """Zero the JPEG data of frame ``index``'s packet in an MJPEG AVI, in place (the container stays intact)."""
    with av.open(str(path)) as container:
        packets = [bytes(p) for p in container.demux(container.streams.video[0]) if p.size]
    data = bytearray(path.read_bytes())
    start = data.find(packets[index])
    assert start >= 0 and data.count(packets[index]) == 1
    data[start : start + len(packets[index])] = bytes(len(packets[index]))
    path.write_bytes(bytes(data))


def decode_all(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(container.streams.video[0])]


def read_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _infer(**overrides) -> None:
    bundle_run("inference", config_file=INFERENCE, meta_file=METADATA, logging_file=LOGGING, **overrides)


def _root_cause(exc: BaseException) -> BaseException:
    while exc.__cause__ is not None:
        exc = exc.__cause__
    return exc


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max(1, (a | b).sum()))


def _box_mask(i: int) -> np.ndarray:
    m = np.zeros((H, W), bool)
    t, b, left, r = _blob_box(i)
    m[t:b, left:r] = True
    return m


def _is_red(pixel: np.ndarray) -> bool:
    return pixel[0] > 180 and pixel[1] < 80 and pixel[2] < 80


@pytest.fixture(scope="module")
def detector_ckpt(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("ckpt") / "detector.pt"
    torch.save({"weight": torch.tensor([20.0, 0.0, 0.0]).reshape(1, 3, 1, 1), "bias": torch.tensor([-10.0])}, path)
    return str(path)


@pytest.fixture(scope="module")
def small_ckpt(tmp_path_factory: pytest.TempPathFactory) -> str:
    from condseg_monai.networks import ConDSeg

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "small.pt"
    torch.save(ConDSeg(**SMALL).state_dict(), path)
    return str(path)


# ------------------------------------------------------------------------------------------ temporal filter


def test_filter_off_is_the_per_frame_decision() -> None:
    scores = [0.1, 0.7, 0.5, 0.51, None, 0.9]
    smoothed, alarm = temporal_filter(scores, threshold=0.5)
    assert alarm == [False, True, False, True, False, True]  # strict > as the detection rule
    assert smoothed[:4] == scores[:4] and math.isnan(smoothed[4]) and smoothed[5] == 0.9


def test_persistence_removes_short_runs_and_keeps_long_ones_on() -> None:
    decisions = [1, 1, 0, 1, 1, 1, 1, 0, 1, 1, 1]
    _, alarm = temporal_filter([0.9 if d else 0.1 for d in decisions], threshold=0.5, persistence=3)
    assert alarm == [False, False, False, False, False, True, True, False, False, False, True]
    assert alarm_runs(alarm) == [2, 1]


def test_smoothing_is_a_causal_moving_average() -> None:
    scores = [0.0, 1.0, 1.0, 0.0, 0.0, 0.2]
    smoothed, alarm = temporal_filter(scores, threshold=0.5, smoothing=3)
    np.testing.assert_allclose(smoothed, [0.0, 0.5, 2 / 3, 2 / 3, 1 / 3, 0.2 / 3])
    assert alarm == [False, False, True, True, False, False]  # 0.5 is not > 0.5
    # causal: the output on a prefix does not depend on what comes after it
    rng = np.random.default_rng(0)
    seq = rng.random(40).tolist()
    full = temporal_filter(seq, 0.5, persistence=2, smoothing=4)
    for n in (1, 7, 23):
        part = temporal_filter(seq[:n], 0.5, persistence=2, smoothing=4)
        assert part[0] == full[0][:n] and part[1] == full[1][:n]


def test_unreadable_frames_break_persistence_and_are_skipped_by_smoothing() -> None:
    _, alarm = temporal_filter([0.9, 0.9, None, 0.9, 0.9, 0.9], threshold=0.5, persistence=3)
    assert alarm == [False, False, False, False, False, True]
    smoothed, _ = temporal_filter([0.2, float("nan"), 0.8], threshold=0.5, smoothing=2)
    assert math.isnan(smoothed[1]) and smoothed[2] == pytest.approx(0.5)  # window = the last 2 readable frames


def test_filter_rejects_bad_settings_by_name() -> None:
    with pytest.raises(ValueError, match="`temporal_persistence`"):
        TemporalFilter(0.5, persistence=0)
    with pytest.raises(ValueError, match="`temporal_smoothing`"):
        TemporalFilter(0.5, smoothing=2.5)
    with pytest.raises(ValueError, match="`temporal_persistence`"):
        TemporalFilter(0.5, persistence=True)


# -------------------------------------------------------------------------------------------- listing, reading


def test_list_inputs_splits_images_and_videos(tmp_path: Path) -> None:
    for name in ("b.PNG", "a.jpg", "clip.MP4", "x.avi", "y.mkv", "notes.txt", ".hidden.mp4"):
        (tmp_path / name).write_bytes(b"x")
    found = list_inputs(tmp_path)
    assert [Path(d["image"]).name for d in found["images"]] == ["a.jpg", "b.PNG"]
    assert [Path(d["video"]).name for d in found["videos"]] == ["clip.MP4", "x.avi", "y.mkv"]
    assert list_inputs(tmp_path / "x.avi") == {"images": [], "videos": [{"video": str((tmp_path / "x.avi").resolve())}]}
    assert list_inputs(tmp_path / "a.jpg")["videos"] == []
    with pytest.raises(ValueError, match="notes.txt' is not a supported image or video"):
        list_inputs(tmp_path / "notes.txt")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="contains no images or videos"):
        list_inputs(tmp_path / "empty")
    with pytest.raises(ValueError, match="`input_path` is not set"):
        list_inputs(None)


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("empty.mp4", b"", "empty (0 bytes)"),
        ("text.mp4", b"not a video at all\n" * 20, "InvalidDataError"),
        ("cut.mp4", None, "InvalidDataError"),  # the first half of an MP4: its index (moov, at the end) is lost
    ],
)
def test_open_video_names_the_bad_file(tmp_path: Path, name: str, content: bytes | None, expected: str) -> None:
    path = tmp_path / name
    if content is None:
        full = make_video(tmp_path / "full.mp4", [True] * 6).read_bytes()
        content = full[: len(full) // 2]
    path.write_bytes(content)
    with pytest.raises(InvalidInputError) as info:
        open_video(path)
    assert str(path) in str(info.value) and expected in str(info.value)


def test_a_corrupt_mjpeg_frame_is_reported_and_the_rest_decoded(tmp_path: Path) -> None:
    path = make_video(tmp_path / "c.avi", [True] * 8)
    corrupt_frame(path, 5)
    container, stream = open_video(path)
    with container:
        frames = list(iter_video_frames(container, stream, path))
    assert [f.index for f in frames] == list(range(8))
    assert [f.readable for f in frames] == [True] * 5 + [False] + [True] * 2
    assert frames[5].time_s == pytest.approx(0.5) and "InvalidDataError" in frames[5].error
    assert frames[6].image.shape == (H, W, 3) and frames[6].image[..., 0].max() > 200


# ---------------------------------------------------------------------------------------- the bundle, end to end


PRESENT = [False, False, False, True, True, False, False, True, True, True, True, True]


@pytest.mark.parametrize("suffix", [".avi", ".mp4"])
def test_bundle_on_a_video_writes_csv_overlay_masks_and_summary(tmp_path: Path, detector_ckpt: str, suffix) -> None:
    video = make_video(tmp_path / f"clip{suffix}", PRESENT)
    out = tmp_path / "out"
    _infer(
        input_path=str(video),
        output_dir=str(out),
        ckpt_path=detector_ckpt,
        network_def=DETECTOR,
        image_size=32,
        temporal_persistence=3,
        save_masks=True,
        video_batch_size=5,  # batches that do not divide the 12 frames
    )
    rows = read_rows(out / "clip_frames.csv")
    assert list(rows[0].keys()) == list(FRAME_COLUMNS) and len(rows) == len(PRESENT)
    assert [int(r["frame_index"]) for r in rows] == list(range(12))
    np.testing.assert_allclose([float(r["time_s"]) for r in rows], np.arange(12) / 10, atol=1e-6)
    assert all(r["readable"] == "True" for r in rows)
    assert [r["polyp_present"] == "True" for r in rows] == PRESENT
    # persistence 3: the 2-frame run (3-4) never alarms, the 5-frame run (7-11) from its third frame
    alarm = [r["alarm"] == "True" for r in rows]
    assert alarm == [i >= 9 for i in range(12)]
    scores = [float(r["detection_score"]) for r in rows]
    assert temporal_filter(scores, 0.5, persistence=3)[1] == alarm, "the CSV follows the documented filter"
    for i, r in enumerate(rows):
        expected_area = BLOB * BLOB / (H * W) if PRESENT[i] else 0.0
        assert float(r["predicted_area"]) == pytest.approx(expected_area, abs=0.03)
    # overlay: every frame, at the input's size, red border exactly on alarm frames
    frames = decode_all(out / "clip_overlay.mp4")
    assert len(frames) == 12 and frames[0].shape == (H, W, 3)
    assert [_is_red(f[0, W // 2]) for f in frames] == alarm
    # masks at the frame's size where the square is, empty on polyp-free frames
    masks = sorted((out / "clip_masks").iterdir())
    assert [m.name for m in masks] == [f"frame_{i:06d}.png" for i in range(12)]
    for i, m in enumerate(masks):
        mask = np.asarray(Image.open(m))
        assert mask.shape == (H, W) and set(np.unique(mask).tolist()) <= {0, 255}
        if PRESENT[i]:
            assert _iou(mask > 0, _box_mask(i)) > 0.7, m.name
        else:
            assert not mask.any(), m.name
    summary = json.loads((out / "clip_summary.json").read_text())
    assert summary["frames"] == summary["readable"] == 12 and summary["input_fps"] == pytest.approx(10)
    assert summary["frames_with_polyp"] == sum(PRESENT) and summary["alarms"] == {"count": 1, "lengths": [3]}
    assert summary["temporal_filter"] == {"persistence": 3, "smoothing": 1}
    assert summary["operating_point"]["threshold"] == 0.5 and summary["processing_fps"] > 0
    assert json.loads((out / "failures.json").read_text())["num_failed"] == 0


def test_tiny_condseg_with_tta_on_an_mp4(tmp_path: Path, small_ckpt: str) -> None:
    """The real network + flip TTA + the uncertainty head switched on: one decision per frame, outputs complete."""
    video = make_video(tmp_path / "clip.mp4", PRESENT[:6])
    out = tmp_path / "out"
    _infer(
        input_path=str(video),
        output_dir=str(out),
        ckpt_path=small_ckpt,
        image_size=64,
        tta=True,
        save_uncertainty=True,
        temporal_smoothing=2,
        **SMALL,
    )
    rows = read_rows(out / "clip_frames.csv")
    assert len(rows) == 6 and all(r["readable"] == "True" for r in rows)
    scores = [float(r["detection_score"]) for r in rows]
    assert all(0.0 <= s <= 1.0 for s in scores)
    smoothed = temporal_filter(scores, 0.5, persistence=1, smoothing=2)[0]
    np.testing.assert_allclose([float(r["smoothed_score"]) for r in rows], smoothed, atol=2e-6)  # CSV: 6 decimals
    frames = decode_all(out / "clip_overlay.mp4")
    assert len(frames) == 6 and frames[0].shape == (H, W, 3)
    assert not (out / "clip_masks").exists()


def test_a_corrupt_frame_is_reported_and_the_other_frames_processed(tmp_path: Path, detector_ckpt: str) -> None:
    present = [False] * 3 + [True] * 9
    video = make_video(tmp_path / "bad.avi", present)
    corrupt_frame(video, 5)
    out = tmp_path / "out"
    with pytest.raises(Exception) as info:
        _infer(
            input_path=str(video),
            output_dir=str(out),
            ckpt_path=detector_ckpt,
            network_def=DETECTOR,
            image_size=32,
            temporal_persistence=3,
            save_masks=True,
        )
    cause = _root_cause(info.value)
    assert isinstance(cause, InputFailuresError) and "bad.avi" in str(cause) and "frames 5" in str(cause)
    rows = read_rows(out / "bad_frames.csv")
    assert len(rows) == 12 and [r["readable"] for r in rows].count("False") == 1
    assert rows[5]["readable"] == "False" and rows[5]["polyp_present"] == "" and rows[5]["detection_score"] == ""
    # frames 3-4 positive, 5 unreadable (breaks the run), 6-11 positive: alarm from frame 8 on, not from 5
    assert [r["alarm"] == "True" for r in rows] == [i >= 8 for i in range(12)]
    assert [r["polyp_present"] == "True" for i, r in enumerate(rows) if i != 5] == present[:5] + present[6:]
    assert len(decode_all(out / "bad_overlay.mp4")) == 12
    assert "frame_000005.png" not in {p.name for p in (out / "bad_masks").iterdir()}
    assert len(list((out / "bad_masks").iterdir())) == 11
    report = json.loads((out / "failures.json").read_text())
    assert report["num_failed"] == 1 and report["num_inputs"] == 1
    record = report["failures"][0]
    assert record["file"] == str(video.resolve())
    assert [f["frame_index"] for f in record["unreadable_frames"]] == [5]
    assert record["unreadable_frames"][0]["time_s"] == pytest.approx(0.5)
    summary = json.loads((out / "bad_summary.json").read_text())
    assert summary["frames"] == 12 and summary["readable"] == 11 and summary["unreadable_frames"] == [5]


def test_cli_folder_with_good_and_bad_videos_and_an_image(tmp_path: Path) -> None:
    """One subprocess, the documented command: bad files are named and listed, the others processed, exit 1."""
    inp = tmp_path / "in"
    inp.mkdir()
    make_video(inp / "a_good.avi", PRESENT[:6])
    make_video(inp / "b_good.mp4", PRESENT[:6])
    (inp / "c_text.mp4").write_text("not a video\n" * 20)
    (inp / "d_empty.mov").write_bytes(b"")
    Image.fromarray(_frame(0, True)).save(inp / "e_frame.png")
    (inp / "notes.txt").write_text("export notes")
    ckpt = tmp_path / "detector.pt"
    torch.save({"weight": torch.tensor([20.0, 0.0, 0.0]).reshape(1, 3, 1, 1), "bias": torch.tensor([-10.0])}, ckpt)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "monai.bundle", "run", "inference", "--config_file", INFERENCE]
    cmd += ["--meta_file", METADATA, "--input_path", str(inp), "--output_dir", str(out), "--ckpt_path", str(ckpt)]
    cmd += ["--image_size", "32", "--network_def", repr(DETECTOR), "--save_masks", "true"]
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
    res = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300, env=env)
    log = res.stdout + res.stderr
    assert res.returncode != 0, log[-3000:]
    for stem in ("a_good", "b_good"):
        assert len(read_rows(out / f"{stem}_frames.csv")) == 6
        assert len(decode_all(out / f"{stem}_overlay.mp4")) == 6
        assert len(list((out / f"{stem}_masks").iterdir())) == 6
    assert np.asarray(Image.open(out / "e_frame_mask.png")).shape == (H, W), "the image path still runs"
    report = json.loads((out / "failures.json").read_text())
    assert report["num_inputs"] == 5 and report["num_failed"] == 2
    reasons = {Path(f["file"]).name: f["reason"] for f in report["failures"]}
    assert set(reasons) == {"c_text.mp4", "d_empty.mov"}
    assert "c_text.mp4" in reasons["c_text.mp4"] and "empty (0 bytes)" in reasons["d_empty.mov"]
    assert "InputFailuresError: 2 of 5 inputs could not be read" in log
    assert "notes.txt" in log
    assert not list(out.glob("c_text*")) and not list(out.glob("d_empty*")), "no outputs for unreadable files"


# ---------------------------------------------------------------------------------------------- settings


@pytest.mark.parametrize(
    ("key", "value"),
    [("video_batch_size", 0), ("temporal_persistence", -1), ("temporal_smoothing", 1.5), ("save_masks", "yes")],
)
def test_bundle_rejects_bad_video_settings_by_name(tmp_path: Path, detector_ckpt: str, key: str, value) -> None:
    video = make_video(tmp_path / "v.avi", [True] * 2)
    with pytest.raises(Exception) as info:
        _infer(
            input_path=str(video),
            output_dir=str(tmp_path / "out"),
            ckpt_path=detector_ckpt,
            network_def=DETECTOR,
            image_size=32,
            **{key: value},
        )
    cause = _root_cause(info.value)
    assert isinstance(cause, ValueError) and f"`{key}`" in str(cause)
    assert not (tmp_path / "out" / "v_frames.csv").exists()


def test_runner_rejects_bad_fps_and_uses_it_when_the_input_has_none(tmp_path: Path) -> None:
    net = torch.nn.Conv2d(3, 1, 1)
    common = {"network": net, "inferer": lambda x, n: torch.sigmoid(n(x)), "preprocessing": lambda d: d}
    common.update(operating_point=OperatingPoint(), output_dir=tmp_path)
    with pytest.raises(ValueError, match="`video_fps`"):
        VideoInferenceRunner(**common, video_fps=0)
    with pytest.raises(ValueError, match="`video_fps`"):
        VideoInferenceRunner(**common, video_fps=float("nan"))
    assert VideoInferenceRunner(**common, video_fps=12.5).default_fps == 12.5


@pytest.mark.parametrize("uncertainty_map", ["flip_disagreement", "sid"])
def test_video_frames_skip_the_uncertainty_map(tmp_path: Path, uncertainty_map: str) -> None:
    """``save_uncertainty`` is an image output: a frame batch costs one forward pass, and gets the mask map."""

    class _Counting(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.calls = 0

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            self.calls += 1
            mask = x[:, :1] * 20 - 10
            return torch.stack([mask, -mask, mask, mask], dim=1) if uncertainty_map == "sid" else mask

    net = _Counting()
    inferer = UncertaintyMapInferer(tta=False, uncertainty_map=uncertainty_map)
    runner = VideoInferenceRunner(
        network=net, inferer=inferer, preprocessing=lambda d: d, operating_point=OperatingPoint(), output_dir=tmp_path
    )
    frames = [np.full((4, 4, 3), v, np.uint8) for v in (0, 255)]
    prob = runner.infer_frames(frames)
    assert net.calls == 1, "no flip passes for a map that videos do not write"
    assert prob.shape == (2, 1, 4, 4)
    torch.testing.assert_close(prob[:, 0, 0, 0], torch.sigmoid(torch.tensor([-10.0, 10.0])))


def test_frame_transforms_drop_the_file_loader_by_type() -> None:
    resize = Resized("image", spatial_size=(8, 8))
    typed = EnsureTyped("image")
    kept = frame_transforms(Compose([LoadImageRGBd("image"), resize, LoadImaged("image"), typed])).transforms
    assert list(kept) == [resize, typed]
    plain = lambda d: d  # noqa: E731
    assert frame_transforms(plain) is plain
