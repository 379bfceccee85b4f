# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""Video inference: a colonoscopy video in, per-frame decisions, an alarm track, an overlay video and reports out.

The pieces, used by ``bundle/configs/inference.json`` (``video_runner``) and ``bench/video_throughput.py``:

* :func:`open_video` / :func:`iter_video_frames`: PyAV reading with per-frame error handling; a packet the decoder
  rejects becomes an unreadable :class:`VideoFrame` (no picture) instead of stopping the video.
* :class:`TemporalFilter` / :func:`temporal_filter`: the causal smoothing + persistence filter that turns the
  per-frame detection scores into an alarm track (pure; a benchmark can call it on any score sequence).
* :class:`OverlayVideoWriter` and :func:`draw_overlay`: the human-readable overlay video, written atomically.
* :class:`VideoInferenceRunner`: the per-video loop (batched frames -> network + inferer -> the model's
  operating point via :class:`~condseg_monai.inference.ApplyOperatingPointd` -> filter -> writers), recording
  unreadable files and frames in the run's :class:`~condseg_monai.data.FailureLog`.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import torch
import torch.nn.functional as F
from monai.transforms import Compose, LoadImaged
from monai.utils import convert_to_tensor
from PIL import Image
from torch import nn
from tqdm.auto import tqdm

from condseg_monai.data.failures import FailureLog, failure_record
from condseg_monai.files import atomic_open
from condseg_monai.inference.transforms import ApplyOperatingPointd, output_stem
from condseg_monai.inference.uncertainty import UncertaintyMapInferer
from condseg_monai.inference.utils import load_model_weights
from condseg_monai.metrics.detection import OperatingPoint
from condseg_monai.networks.nets.condseg import condseg_mask
from condseg_monai.reports import write_csv, write_json
from condseg_monai.transforms.loading import LoadImageRGBd
from condseg_monai.transforms.readers import InvalidInputError
from condseg_monai.visualize import GREEN, RED, overlay_contours

__all__ = [
    "FRAME_COLUMNS",
    "OverlayVideoWriter",
    "TemporalFilter",
    "VideoFrame",
    "VideoInferenceRunner",
    "alarm_runs",
    "draw_overlay",
    "frame_transforms",
    "iter_video_frames",
    "open_video",
    "temporal_filter",
    "video_output_paths",
]

logger = logging.getLogger(__name__)

# Columns of ``<stem>_frames.csv``, one row per frame in decoding order.
FRAME_COLUMNS: tuple[str, ...] = (
    "frame_index",
    "time_s",
    "readable",
    "polyp_present",
    "alarm",
    "predicted_area",
    "detection_score",
    "smoothed_score",
)
# Opacity of the translucent fill of the predicted region in the overlay video.
FILL_ALPHA = 0.3


# --------------------------------------------------------------------------------------------------- settings


def _positive_int(value: Any, key: str) -> int:
    # bool is an int in Python: "true" for a count is a mistake, not 1
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or int(value) < 1:
        raise ValueError(f"`{key}` must be a positive integer (1 = off for the temporal filter), got {value!r}.")
    return int(value)


def _positive_number(value: Any, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not math.isfinite(float(value)):
        raise ValueError(f"`{key}` must be a positive number, got {value!r}.")
    if float(value) <= 0:
        raise ValueError(f"`{key}` must be a positive number, got {value!r}.")
    return float(value)


def _boolean(value: Any, key: str) -> bool:
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    # the command line (python-fire) hands `--save_masks true` over as the string 'true'
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise ValueError(f"`{key}` must be true or false, got {value!r}.")


# ------------------------------------------------------------------------------------------------ the filter


class TemporalFilter:
    """Causal alarm filter over per-frame detection scores, fed one frame at a time (as a live system would).

    * smoothing (``n`` frames): the smoothed score is the mean detection score of the last ``n`` readable frames
      (fewer at the start of the video); the smoothed decision is ``smoothed > threshold``, the rule of
      :mod:`condseg_monai.metrics.detection` applied to the mean score.
    * persistence (``k`` frames): the alarm is raised when the smoothed decision has been positive on ``k``
      consecutive frames and stays on while it remains positive; it drops at the first negative frame.
    * an unreadable frame (score ``None`` or NaN) has no decision: its smoothed score is NaN, its alarm off, it
      breaks a persistence run (the count restarts after it) and is skipped by the smoothing window.

    ``persistence=1, smoothing=1`` is the identity: alarm == ``score > threshold``.

    Args:
        threshold: the operating point's threshold (``OperatingPoint.threshold``).
        persistence: ``k >= 1`` (setting ``temporal_persistence``).
        smoothing: ``n >= 1`` (setting ``temporal_smoothing``).

    Raises:
        ValueError: ``persistence`` or ``smoothing`` not a positive integer (the message names the setting).
    """

    def __init__(self, threshold: float, persistence: int = 1, smoothing: int = 1) -> None:
        self.threshold = float(threshold)
        self.persistence = _positive_int(persistence, "temporal_persistence")
        self.smoothing = _positive_int(smoothing, "temporal_smoothing")
        self.reset()

    def reset(self) -> None:
        """Forget the past (start of a new video)."""
        self._window: deque[float] = deque(maxlen=self.smoothing)
        self._run = 0  # consecutive readable frames with a positive smoothed decision

    def update(self, score: float | None) -> tuple[float, bool]:
        """Feed the next frame's detection score.

        Args:
            score: the frame's detection score, or ``None`` / NaN for an unreadable frame.

        Returns:
            ``(smoothed score, alarm)``; ``(nan, False)`` for an unreadable frame.
        """
        if score is None or math.isnan(float(score)):
            self._run = 0
            return math.nan, False
        self._window.append(float(score))
        smoothed = sum(self._window) / len(self._window)
        self._run = self._run + 1 if smoothed > self.threshold else 0
        return smoothed, self._run >= self.persistence


def temporal_filter(
    scores: Sequence[float | None], threshold: float, persistence: int = 1, smoothing: int = 1
) -> tuple[list[float], list[bool]]:
    """Run :class:`TemporalFilter` over a whole sequence of per-frame scores (e.g. from a ``_frames.csv``).

    Args:
        scores: ``(T,)`` detection scores in frame order; ``None`` or NaN marks an unreadable frame.
        threshold: the operating point's threshold.
        persistence: consecutive positive frames before the alarm is raised (1 = off).
        smoothing: causal moving-average window in readable frames (1 = off).

    Returns:
        ``(smoothed, alarm)``: two ``(T,)`` lists, smoothed scores (NaN for unreadable frames) and alarm flags.
    """
    filt = TemporalFilter(threshold, persistence, smoothing)
    out = [filt.update(s) for s in scores]
    return [s for s, _ in out], [a for _, a in out]


def alarm_runs(alarm: Sequence[bool]) -> list[int]:
    """Lengths of the runs of consecutive ``True`` frames, in order (``[T, T, F, T] -> [2, 1]``)."""
    runs: list[int] = []
    length = 0
    for on in [*alarm, False]:
        if on:
            length += 1
        elif length:
            runs.append(length)
            length = 0
    return runs


# ---------------------------------------------------------------------------------------------------- reading


@dataclass
class VideoFrame:
    """One frame of a video as the reader hands it over.

    Attributes:
        index: position in decoding output order, from 0 (unreadable frames take a position too).
        time_s: presentation time in seconds (``pts * time_base``), ``None`` when the stream gives no pts.
        image: ``(H, W, 3)`` uint8 RGB, ``None`` when the frame could not be decoded.
        error: why the frame could not be decoded (``None`` for a readable frame).
    """

    index: int
    time_s: float | None
    image: np.ndarray | None = None
    error: str | None = None

    @property
    def readable(self) -> bool:
        return self.image is not None


def open_video(path: str | os.PathLike) -> tuple[Any, Any]:
    """Open a video file with PyAV and pick its first video stream.

    Args:
        path: the video file.

    Returns:
        ``(container, stream)``; close the container when done.

    Raises:
        InvalidInputError: missing, empty, not a video FFmpeg can open (e.g. a text file or a truncated MP4 without
            its index), or without a video stream; the message names the file.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise InvalidInputError(f"cannot read video '{path}': no such file.")
    if os.path.getsize(path) == 0:
        raise InvalidInputError(f"cannot read video '{path}': file is empty (0 bytes).")
    try:
        container = av.open(path, mode="r")
    except (av.FFmpegError, OSError, ValueError) as e:
        raise InvalidInputError(f"cannot read video '{path}': {type(e).__name__}: {e}") from e
    if not container.streams.video:
        container.close()
        raise InvalidInputError(f"cannot read video '{path}': it has no video stream.")
    return container, container.streams.video[0]


def _seconds(pts: int | None, time_base: Fraction | None) -> float | None:
    return float(pts * time_base) if pts is not None and time_base is not None else None


def iter_video_frames(container: Any, stream: Any, path: str | os.PathLike = "") -> Iterator[VideoFrame]:
    """Decode ``stream`` packet by packet; a packet the decoder rejects yields an unreadable frame.

    Intra-only codecs (MJPEG, the usual AVI export) map one packet to one frame, so a corrupt frame is reported
    at its exact index and time. Inter-frame codecs (H.264, ...) usually conceal damage rather than reject the
    packet: such frames decode (possibly with artefacts) and cannot be told apart here.

    Args:
        container: from :func:`open_video`.
        stream: its video stream.
        path: the file, for error messages.

    Yields:
        :class:`VideoFrame` in the decoder's output (presentation) order.

    Raises:
        InvalidInputError: the container itself stops being readable (demuxing fails); the frames before were
            yielded.
    """
    index = 0
    packets = container.demux(stream)
    while True:
        try:
            packet = next(packets)
        except StopIteration:
            return
        except (av.FFmpegError, OSError, ValueError) as e:
            raise InvalidInputError(
                f"cannot read video '{os.fspath(path)}' past frame {index}: {type(e).__name__}: {e}"
            ) from e
        try:
            frames = packet.decode()  # the final empty packet flushes the decoder's delayed frames
        except (av.FFmpegError, ValueError) as e:
            # the decoder rejected this packet: one frame is missing, keep its place and time
            yield VideoFrame(index, _seconds(packet.pts, packet.time_base), error=f"{type(e).__name__}: {e}")
            index += 1
            continue
        for frame in frames:
            time_s = _seconds(frame.pts, frame.time_base or stream.time_base)
            try:
                image = frame.to_ndarray(format="rgb24")
            except (av.FFmpegError, ValueError) as e:  # a pixel format the converter cannot handle
                yield VideoFrame(index, time_s, error=f"{type(e).__name__}: {e}")
            else:
                yield VideoFrame(index, time_s, image=image)
            index += 1


def _stream_fps(stream: Any) -> Fraction | None:
    """The stream's frame rate (average, else FFmpeg's guess), ``None`` when unknown."""
    for rate in (stream.average_rate, stream.guessed_rate):
        if rate is not None and float(rate) > 0:
            return Fraction(rate)
    return None


# ---------------------------------------------------------------------------------------------------- writing


def draw_overlay(image: torch.Tensor, mask: torch.Tensor, alarm: bool) -> torch.Tensor:
    """The overlay picture of one frame: translucent green fill and green contour of the mask, red border on alarm.

    Args:
        image: ``(3, H, W)`` RGB in [0, 1].
        mask: ``(H, W)`` binary mask at the frame's size.
        alarm: draw the alarm border.

    Returns:
        ``(3, H, W)`` RGB in [0, 1].
    """
    h, w = image.shape[-2:]
    fg = mask.reshape(h, w).bool()
    out = image.detach().float().clone().clamp(0, 1)
    green = torch.tensor(GREEN, dtype=out.dtype, device=out.device)[:, None]
    out[:, fg] = (1 - FILL_ALPHA) * out[:, fg] + FILL_ALPHA * green
    # contour as thick as the image overlays draw it (SaveOverlayd): about 1 px per 256 px
    out = overlay_contours(out, [fg.float()], colors=[GREEN], thickness=max(1, round(min(h, w) / 256)))
    if alarm:
        b = max(2, round(min(h, w) / 40))  # visible at a glance, also on a 64 px thumbnail
        red = torch.tensor(RED, dtype=out.dtype, device=out.device)[:, None, None]
        out[:, :b, :], out[:, -b:, :], out[:, :, :b], out[:, :, -b:] = red, red, red, red
    return out


class OverlayVideoWriter:
    """H.264 MP4 writer (PyAV/libx264, yuv420p) that only replaces ``path`` once the video is complete.

    Frames are written at a constant rate ``fps``; frames of another size than the first are resized to it.
    yuv420p needs even sizes, so an odd width/height is padded by one replicated pixel at the right/bottom.
    Used as a context manager: on an exception the temporary file is removed and ``path`` is left as it was.

    Args:
        path: the ``.mp4`` to write.
        width: frame width in pixels.
        height: frame height in pixels.
        fps: frame rate (a ``Fraction`` keeps NTSC rates such as 30000/1001 exact).
        codec: FFmpeg encoder name.
        options: encoder options (defaults: ``preset veryfast``, ``crf 20``).
    """

    def __init__(
        self,
        path: str | os.PathLike,
        width: int,
        height: int,
        fps: float | Fraction,
        codec: str = "libx264",
        options: Mapping[str, str] | None = None,
    ) -> None:
        self.path = Path(path)
        self.width, self.height = int(width), int(height)
        self.fps = Fraction(fps).limit_denominator(1001 * 1000)
        self.codec = codec
        self.options = dict(options) if options is not None else {"preset": "veryfast", "crf": "20"}
        self.num_frames = 0
        self._stack = contextlib.ExitStack()
        self._container: Any = None
        self._stream: Any = None

    def __enter__(self) -> OverlayVideoWriter:
        file = self._stack.enter_context(atomic_open(self.path, "wb"))
        try:
            self._container = av.open(file, mode="w", format="mp4")
            self._stream = self._container.add_stream(self.codec, rate=self.fps, options=self.options)
            self._stream.width, self._stream.height = self.width + self.width % 2, self.height + self.height % 2
            self._stream.pix_fmt = "yuv420p"
        except BaseException:
            self._stack.__exit__(*sys.exc_info())  # remove the temporary file
            raise
        return self

    def write(self, picture: torch.Tensor) -> None:
        """Append one frame.

        Args:
            picture: ``(3, H, W)`` RGB in [0, 1].
        """
        pic = picture.detach().float().cpu()
        if tuple(pic.shape[-2:]) != (self.height, self.width):
            pic = F.interpolate(pic[None], size=(self.height, self.width), mode="bilinear", align_corners=False)[0]
        pic = F.pad(pic[None], (0, self.width % 2, 0, self.height % 2), mode="replicate")[0]
        arr = (pic.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).contiguous().numpy()
        frame = av.VideoFrame.from_ndarray(arr, format="rgb24")
        frame.pts = self.num_frames  # constant frame rate: one tick of 1/fps per frame
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        self.num_frames += 1

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        try:
            if exc_type is None:
                for packet in self._stream.encode():  # flush the encoder's delayed frames
                    self._container.mux(packet)
            self._container.close()
        finally:
            self._stack.__exit__(exc_type, exc, tb)  # commits the file on success, removes it on error


def _save_mask_png(mask: torch.Tensor, path: Path) -> None:
    arr = mask.to(torch.uint8).mul(255).cpu().numpy()
    with atomic_open(path, "wb") as f:
        Image.fromarray(arr).save(f, format="PNG")


def video_output_paths(video: str | os.PathLike, output_dir: str | os.PathLike) -> dict[str, Path]:
    """Where the outputs of ``video`` go: ``overlay``, ``frames`` (CSV), ``summary`` (JSON) and ``masks`` (folder)."""
    out, stem = Path(output_dir), output_stem(video)
    return {
        "overlay": out / f"{stem}_overlay.mp4",
        "frames": out / f"{stem}_frames.csv",
        "summary": out / f"{stem}_summary.json",
        "masks": out / f"{stem}_masks",
    }


# ----------------------------------------------------------------------------------------------------- runner


def frame_transforms(preprocessing: Callable[[dict], dict]) -> Callable[[dict], dict]:
    """The image path's ``preprocessing`` without its file loaders, for frames that arrive decoded.

    Args:
        preprocessing: a ``Compose`` (the loaders, :class:`~condseg_monai.transforms.LoadImageRGBd` or MONAI's
            ``LoadImaged``, are dropped by type) or any other callable (returned as it is).

    Returns:
        a ``Compose`` of the remaining transforms, or ``preprocessing`` itself.
    """
    if not isinstance(preprocessing, Compose):
        return preprocessing
    kept = [t for t in preprocessing.transforms if not isinstance(t, (LoadImageRGBd, LoadImaged))]
    return Compose(kept)


class VideoInferenceRunner:
    """Segment every frame of videos with the bundle's network, inferer and operating point; write the reports.

    Per video ``<stem>.<ext>`` (outputs in ``output_dir``):

    * ``<stem>_overlay.mp4``: every frame at its own resolution with the predicted region (translucent green fill
      and contour) and a red border while the filtered alarm is on; unreadable frames are black.
    * ``<stem>_frames.csv``: one row per frame, :data:`FRAME_COLUMNS`.
    * ``<stem>_summary.json``: counts, input and processing frame rates, alarm runs, operating point and filter.
    * ``<stem>_masks/frame_000123.png`` (``save_masks``): the 0/255 mask of each readable frame at its size.

    Each readable frame goes through ``preprocessing`` (the image path's transforms after its file loader: resize
    to ``image_size``, float), frames are batched ``video_batch_size`` at a time through ``inferer`` under
    ``torch.no_grad``, and the decision is taken at the model's resolution by
    :class:`~condseg_monai.inference.ApplyOperatingPointd`. The mask written and drawn at the frame's size is the
    bilinearly resized probability ``> threshold`` (as ``Invertd`` + threshold do for images), empty when the
    frame is called polyp-free. :class:`TemporalFilter` turns the scores into the alarm.

    A video that cannot be opened, and a video with frames the decoder rejects, are recorded in ``failure_log``
    (the latter with every unreadable frame's index, time and reason, its other frames processed); the caller
    ends the run with ``failure_log.raise_if_any()``.

    Args:
        network: the segmentation network (``(B, 3, S, S)`` -> logits ``(B, 1, S, S)`` or ``(B, 4, 1, S, S)``).
        inferer: e.g. :class:`~condseg_monai.inferers.ConDSegInferer` (returns probabilities); an
            :class:`~condseg_monai.inference.UncertaintyMapInferer` predicts without its map (``predict``).
        preprocessing: the image path's ``preprocessing`` (its file loaders are left out, see
            :func:`frame_transforms`), or any dict transform on ``{"image": (3, H, W) float in [0, 1]}`` giving
            ``(3, S, S)``.
        operating_point: threshold and min_area of the model.
        output_dir: output folder.
        ckpt_path: weights loaded into ``network`` before the first video (``None``: already loaded).
        failure_log: where unreadable videos/frames go (a new :class:`FailureLog` when ``None``).
        device: where the network runs.
        video_batch_size: frames per forward pass.
        temporal_persistence: see :class:`TemporalFilter` (1 = off).
        temporal_smoothing: see :class:`TemporalFilter` (1 = off).
        save_masks: also write the mask PNGs.
        video_fps: frame rate of the overlay when the input's is unknown.
        amp: autocast the forward pass (CUDA only).
        skip_existing: skip videos whose ``<stem>_summary.json`` (written last) already exists.
        progress: show a tqdm bar counting frames.
        video_key: data-dict key of a video path (items of :meth:`run`).

    Raises:
        ValueError: a setting out of range; the message names the config key.
    """

    def __init__(
        self,
        network: nn.Module,
        inferer: Callable[..., torch.Tensor],
        preprocessing: Callable[[dict], dict],
        operating_point: OperatingPoint,
        output_dir: str | os.PathLike,
        ckpt_path: str | os.PathLike | None = None,
        failure_log: FailureLog | None = None,
        device: str | torch.device = "cpu",
        video_batch_size: int = 8,
        temporal_persistence: int = 1,
        temporal_smoothing: int = 1,
        save_masks: bool = False,
        video_fps: float = 25.0,
        amp: bool = False,
        skip_existing: bool = False,
        progress: bool = True,
        video_key: str = "video",
    ) -> None:
        self.network = network
        self.inferer = inferer
        self.preprocessing = frame_transforms(preprocessing)
        self.operating_point = operating_point
        self.output_dir = Path(output_dir)
        self.ckpt_path = ckpt_path
        self.failure_log = failure_log if failure_log is not None else FailureLog()
        self.device = torch.device(device)
        self.batch_size = _positive_int(video_batch_size, "video_batch_size")
        self.filter = TemporalFilter(operating_point.threshold, temporal_persistence, temporal_smoothing)
        self.save_masks = _boolean(save_masks, "save_masks")
        self.default_fps = _positive_number(video_fps, "video_fps")
        self.amp = bool(amp) and self.device.type == "cuda"
        self.skip_existing = bool(skip_existing)
        self.progress = bool(progress)
        self.video_key = video_key
        # decision + mask at the model's resolution: the bundle's rule, not a copy of it
        self.decide = ApplyOperatingPointd(keys="pred", operating_point=operating_point)
        self._weights_loaded = ckpt_path is None

    # -- public -------------------------------------------------------------------------------------------------

    def run(self, videos: Sequence[Mapping[str, Any] | str | os.PathLike]) -> list[dict[str, Any]]:
        """Process ``videos`` in order; an unreadable one is recorded in the failure log and the next one follows.

        Writes ``failure_log`` to ``output_dir`` at the end (when there were videos), so a run without images also
        leaves its ``failures.json``.

        Args:
            videos: ``[{video_key: path}, ...]`` (:func:`~condseg_monai.inference.list_inputs`) or paths.

        Returns:
            the summaries of the processed videos (as in ``<stem>_summary.json``).
        """
        paths = [str(v[self.video_key]) if isinstance(v, Mapping) else os.fspath(v) for v in videos]
        if not paths:
            return []
        self.prepare_network()
        summaries = []
        for path in paths:
            if self.skip_existing and video_output_paths(path, self.output_dir)["summary"].is_file():
                logger.info("skip_existing: '%s' already has its summary in '%s'.", path, self.output_dir)
                continue
            try:
                summary = self.process_video(path)
            except InvalidInputError as e:  # the file could not be opened at all
                self.failure_log.add(failure_record({self.video_key: path}, e))
                continue
            summaries.append(summary)
        self.failure_log.write(self.output_dir)
        return summaries

    def process_video(self, path: str | os.PathLike) -> dict[str, Any]:
        """Segment one video and write its outputs; frames the decoder rejects are reported, the rest processed.

        Args:
            path: the video file.

        Returns:
            the summary (also written to ``<stem>_summary.json``).

        Raises:
            InvalidInputError: the file cannot be opened as a video (nothing is written for it).
        """
        path = os.fspath(path)
        container, stream = open_video(path)
        outputs = video_output_paths(path, self.output_dir)
        with contextlib.closing(container):
            state = _VideoState(path, stream, _stream_fps(stream), outputs)
            self.filter.reset()
            start = time.perf_counter()
            with contextlib.ExitStack() as stack:
                bar = stack.enter_context(
                    tqdm(
                        total=stream.frames or None,
                        desc=f"video {Path(path).name}",
                        unit="frame",
                        disable=not self.progress,
                    )
                )
                state.writer_stack = stack
                pending: list[VideoFrame] = []
                try:
                    for frame in iter_video_frames(container, stream, path):
                        pending.append(frame)
                        if sum(f.readable for f in pending) >= self.batch_size:
                            self._process_batch(pending, state, bar)
                            pending = []
                except InvalidInputError as e:  # the container broke off: keep what was decoded
                    state.stream_error = str(e)
                self._process_batch(pending, state, bar)
            state.seconds = time.perf_counter() - start
        return self._finish_video(state)

    def prepare_network(self) -> None:
        """Load ``ckpt_path`` into the network (once) and switch it to eval mode; :meth:`run` calls it."""
        if not self._weights_loaded:
            load_model_weights(self.network, self.ckpt_path, map_location=self.device)
            self._weights_loaded = True
        self.network.eval()

    # -- steps --------------------------------------------------------------------------------------------------

    def prepare_frame(self, image: np.ndarray) -> torch.Tensor:
        """One decoded frame as the network's input, prepared exactly as the image path prepares a loaded picture.

        Args:
            image: ``(H, W, 3)`` uint8 RGB.

        Returns:
            ``(3, S, S)`` float32 (plain tensor).
        """
        rgb = torch.from_numpy(image).permute(2, 0, 1).float().div_(255.0)  # LoadImageRGB: 8-bit / 255
        return convert_to_tensor(self.preprocessing({"image": rgb})["image"], track_meta=False)

    def infer_frames(self, images: Sequence[np.ndarray]) -> torch.Tensor:
        """Network + inferer on a batch of decoded frames, under ``torch.no_grad`` (and autocast with ``amp``).

        Args:
            images: ``B`` frames ``(H, W, 3)`` uint8 RGB (sizes may differ: each is resized to ``S``).

        Returns:
            probabilities ``(B, 1, S, S)`` on the CPU (the mask map when the network also returns the SID maps).
        """
        batch = torch.stack([self.prepare_frame(im) for im in images]).to(self.device)
        # the uncertainty map is an image output (save_uncertainty does not apply to videos): predict without the
        # extra flip passes of the map, so a video costs the same with or without it
        infer = self.inferer.predict if isinstance(self.inferer, UncertaintyMapInferer) else self.inferer
        with torch.no_grad(), torch.autocast(device_type=self.device.type, enabled=self.amp):
            prob = infer(batch, self.network)
        # a return_aux network (uncertainty_map "sid") gives the stacked maps: keep the mask map
        prob = condseg_mask(convert_to_tensor(prob, track_meta=False).float())
        return prob.cpu()

    def _process_batch(self, frames: list[VideoFrame], state: _VideoState, bar: Any) -> None:
        """Infer the readable frames of ``frames`` in one batch, then filter and write every frame in order."""
        readable = [f for f in frames if f.readable]
        probs = iter(self.infer_frames([f.image for f in readable])) if readable else iter(())
        for frame in frames:
            if frame.readable:
                self._write_readable(frame, next(probs), state)
            else:
                self._write_unreadable(frame, state)
            bar.update(1)

    def _frame_time(self, frame: VideoFrame, state: _VideoState) -> float | None:
        if frame.time_s is not None:
            return frame.time_s
        return frame.index / float(state.fps) if state.fps is not None else None

    def _write_readable(self, frame: VideoFrame, prob: torch.Tensor, state: _VideoState) -> None:
        d = self.decide({"pred": prob})
        smoothed, alarm = self.filter.update(d["detection_score"])
        h, w = frame.image.shape[:2]
        mask = torch.zeros(h, w, dtype=torch.bool)
        if d["polyp_present"]:
            full = F.interpolate(prob[None], size=(h, w), mode="bilinear", align_corners=False)[0, 0]
            mask = full.double() > self.operating_point.threshold  # float64, as ApplyOperatingPointd compares
        picture = torch.from_numpy(frame.image).permute(2, 0, 1).float().div_(255.0)
        self._overlay(state, w, h).write(draw_overlay(picture, mask, alarm))
        if self.save_masks:
            _save_mask_png(mask, state.outputs["masks"] / f"frame_{frame.index:06d}.png")
        state.add_row(frame, self._frame_time(frame, state), d, smoothed, alarm)

    def _write_unreadable(self, frame: VideoFrame, state: _VideoState) -> None:
        logger.warning(
            "video '%s': frame %d could not be decoded (%s); it gets no decision and breaks the alarm's persistence.",
            state.path,
            frame.index,
            frame.error,
        )
        _, alarm = self.filter.update(None)
        size = state.frame_size()
        if size is not None:  # keep the overlay in step with the CSV: a black frame in its place
            w, h = size
            self._overlay(state, w, h).write(torch.zeros(3, h, w))
        state.add_row(frame, self._frame_time(frame, state), None, math.nan, alarm)

    def _overlay(self, state: _VideoState, width: int, height: int) -> OverlayVideoWriter:
        """The video's overlay writer, opened at the first frame written (its size is the video's)."""
        if state.writer is None:
            fps = state.fps if state.fps is not None else Fraction(self.default_fps)
            writer = OverlayVideoWriter(state.outputs["overlay"], width, height, fps)
            state.writer = state.writer_stack.enter_context(writer)
        return state.writer

    def _finish_video(self, state: _VideoState) -> dict[str, Any]:
        """Write the CSV and the summary, record unreadable frames in the failure log, return the summary."""
        if not state.rows and state.stream_error is None:
            state.stream_error = "it contains no frames"
        write_csv(state.rows, state.outputs["frames"], FRAME_COLUMNS)
        summary = state.summary(self)
        bad = [r for r in state.rows if not r["readable"]]
        if state.header_frames and summary["frames"] < state.header_frames:
            logger.warning(
                "video '%s': %d frames decoded, its header announces %d (truncated file?).",
                state.path,
                summary["frames"],
                state.header_frames,
            )
        if bad or state.stream_error:
            parts = []
            if bad:
                listed = ", ".join(str(r["frame_index"]) for r in bad[:20]) + (", ..." if len(bad) > 20 else "")
                parts.append(f"{len(bad)} of {summary['frames']} frames could not be decoded (frames {listed})")
            if state.stream_error:
                parts.append(state.stream_error)
            reason = f"video '{state.path}': " + "; ".join(parts) + "; every readable frame was processed."
            record = failure_record({self.video_key: state.path}, InvalidInputError(reason))
            record["unreadable_frames"] = [
                {"frame_index": r["frame_index"], "time_s": r["time_s"], "reason": state.errors[r["frame_index"]]}
                for r in bad
            ]
            self.failure_log.add(record)
        else:
            self.failure_log.num_read += 1
        write_json(summary, state.outputs["summary"])  # last: its presence marks the video as done
        logger.info(
            "video '%s': %d frames (%d readable) at %.2f frames/s; %d with a polyp, %d alarm(s); outputs in '%s'.",
            state.path,
            summary["frames"],
            summary["readable"],
            summary["processing_fps"] or 0.0,
            summary["frames_with_polyp"],
            summary["alarms"]["count"],
            self.output_dir,
        )
        return summary


class _VideoState:
    """What the runner accumulates while it goes through one video."""

    def __init__(self, path: str, stream: Any, fps: Fraction | None, outputs: dict[str, Path]) -> None:
        self.path = path
        self.fps = fps
        self.outputs = outputs
        self.header_frames = int(stream.frames or 0)
        ctx = stream.codec_context
        self.header_size = (int(ctx.width), int(ctx.height)) if ctx.width and ctx.height else None
        self.rows: list[dict[str, Any]] = []
        self.errors: dict[int, str] = {}
        self.writer: OverlayVideoWriter | None = None
        self.writer_stack: contextlib.ExitStack | None = None
        self.stream_error: str | None = None
        self.seconds = 0.0

    def frame_size(self) -> tuple[int, int] | None:
        """``(width, height)`` of the overlay: the writer's, else the stream header's."""
        if self.writer is not None:
            return self.writer.width, self.writer.height
        return self.header_size

    def add_row(
        self, frame: VideoFrame, time_s: float | None, decision: Mapping[str, Any] | None, smoothed: float, alarm: bool
    ) -> None:
        if frame.error is not None:
            self.errors[frame.index] = frame.error
        readable = decision is not None
        self.rows.append(
            {
                "frame_index": frame.index,
                "time_s": time_s,
                "readable": readable,
                "polyp_present": bool(decision["polyp_present"]) if readable else None,
                "alarm": bool(alarm),
                "predicted_area": float(decision["predicted_area"]) if readable else None,
                "detection_score": float(decision["detection_score"]) if readable else None,
                "smoothed_score": smoothed if readable else None,
            }
        )

    def summary(self, runner: VideoInferenceRunner) -> dict[str, Any]:
        readable = sum(r["readable"] for r in self.rows)
        runs = alarm_runs([r["alarm"] for r in self.rows])
        return {
            "video": self.path,
            "frames": len(self.rows),
            "frames_in_header": self.header_frames or None,
            "readable": readable,
            "unreadable_frames": [r["frame_index"] for r in self.rows if not r["readable"]],
            "frame_size": list(self.frame_size()) if self.frame_size() is not None else None,
            "input_fps": float(self.fps) if self.fps is not None else None,
            "overlay_fps": float(self.writer.fps) if self.writer is not None else None,
            "processing_fps": readable / self.seconds if self.seconds > 0 else None,
            "seconds": self.seconds,
            "frames_with_polyp": sum(bool(r["polyp_present"]) for r in self.rows),
            "alarm_frames": sum(runs),
            "alarms": {"count": len(runs), "lengths": runs},
            "operating_point": runner.operating_point.to_dict(),
            "temporal_filter": {"persistence": runner.filter.persistence, "smoothing": runner.filter.smoothing},
            "video_batch_size": runner.batch_size,
            "stream_error": self.stream_error,
            "outputs": {
                "overlay": self.outputs["overlay"].name if self.writer is not None else None,
                "frames": self.outputs["frames"].name,
                "masks": self.outputs["masks"].name if runner.save_masks and readable else None,
            },
        }
