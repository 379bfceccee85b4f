# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""Contract test of a condseg-monai bundle against a real MONAI Label 0.8.5 server.

Run it with the python of the MONAI Label environment (built by ``tests/monailabel/setup_env.sh``)::

    .label-venv/bin/python tests/monailabel/run_server_test.py [--bundle bundle] [--name polyp_condseg_segmentation]

It lays out the ``monaibundle`` sample app in a temporary folder, copies the bundle into
``<app>/model/<name>`` (the repository's ``bundle/`` is never written to: training overwrites the copy's
``models/model.pt``), generates the SID uncertainty entry ``<app>/model/polyp_condseg_uncertainty`` from that copy
with ``python -m condseg_monai.inference.label_uncertainty`` (its ``models/model.pt`` is a relative symlink to the
segmentation weights), prepares a studies folder with real RGB images (``../shared/data/isic-sample`` when
present, generated PNGs otherwise), starts ``monailabel start_server`` on 127.0.0.1 in its own process group
serving both entries, and checks the REST contract:

1. ``GET /info/`` lists the model, its label (``polyp`` -> 1) and a trainer, and the uncertainty model with the
   label ``uncertain`` -> 1 and no trainer;
2. ``POST /infer/<name>`` by datastore id and by upload returns a grey PNG of the input size with values in {0, 1},
   and so does ``POST /infer/polyp_condseg_uncertainty``;
3. ``PUT /datastore/label`` stores final labels for two images (one saved 0/1, one 0/255);
4. ``POST /train/<name>?run_sync=true`` fine-tunes for one epoch on CPU and rewrites ``models/model.pt``;
5. inference still answers with the fine-tuned weights, on both entries.

The server is always stopped (process group killed), also on failure. The script uses the standard library
plus ``requests`` only, so it needs no knowledge of MONAI internals; PNG/JPEG sizes and PNG pixels are decoded
with a small built-in reader. It exits 0 on PASS and 1 on FAIL.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib.util
import json
import math
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import sysconfig
import tempfile
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import requests

__all__ = [
    "HarnessError",
    "PngImage",
    "decode_png",
    "encode_png",
    "ensure_weights",
    "find_sample_app",
    "image_size",
    "main",
    "make_uncertainty_entry",
    "run_contract",
]

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_BUNDLE = REPO_ROOT / "bundle"
DEFAULT_NAME = "polyp_condseg_segmentation"
DEFAULT_UNCERTAINTY_NAME = "polyp_condseg_uncertainty"  # condseg_monai.inference.label_uncertainty
UNCERTAINTY_LABEL = "uncertain"
SHARED_IMAGES = REPO_ROOT / ".." / "shared" / "data" / "isic-sample" / "images"
HOST = "127.0.0.1"  # never listen on anything but loopback
INFER_PARAMS = {"result_extension": ".png", "result_dtype": "uint8"}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class HarnessError(RuntimeError):
    """A contract check failed (the message says which and why)."""


# ---------------------------------------------------------------------------------------------------------------
# Minimal image I/O (standard library only)
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class PngImage:
    """A decoded PNG.

    Attributes:
        width: image width in pixels.
        height: image height in pixels.
        channels: samples per pixel (1 grey, 2 grey+alpha, 3 RGB, 4 RGBA; palette images report 1 = the index).
        bit_depth: 8 or 16.
        color_type: the PNG colour type (0 grey, 2 RGB, 3 palette, 4 grey+alpha, 6 RGBA).
        samples: all samples, row-major, ``height * width * channels`` integers.
    """

    width: int
    height: int
    channels: int
    bit_depth: int
    color_type: int
    samples: list[int] = field(repr=False)

    def values(self) -> set[int]:
        """Return the set of distinct sample values."""
        return set(self.samples)


_PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    return b if pb <= pc else c


def decode_png(data: bytes) -> PngImage:
    """Decode a non-interlaced 8- or 16-bit PNG.

    Args:
        data: the file content.

    Returns:
        The decoded image.

    Raises:
        ValueError: when ``data`` is not a PNG or uses an unsupported layout (interlacing, < 8 bits).
    """
    if not data.startswith(PNG_SIGNATURE):
        raise ValueError(f"data is not a PNG (starts with {data[:8]!r})")
    pos, idat, header = 8, bytearray(), None
    while pos + 8 <= len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        elif kind == b"IEND":
            break
    if header is None:
        raise ValueError("PNG has no IHDR chunk")
    width, height, bit_depth, color_type, _, _, interlace = header
    if interlace or bit_depth not in (8, 16) or color_type not in _PNG_CHANNELS:
        raise ValueError(f"unsupported PNG: bit_depth={bit_depth}, color_type={color_type}, interlace={interlace}")
    channels = _PNG_CHANNELS[color_type]
    bpp = channels * bit_depth // 8  # bytes per pixel, the filter's left-neighbour distance
    stride = width * bpp
    raw = zlib.decompress(bytes(idat))
    prev = bytearray(stride)
    pixels = bytearray()
    for y in range(height):
        start = y * (stride + 1)
        ftype, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        for x in range(stride):
            a = line[x - bpp] if x >= bpp else 0
            b = prev[x]
            c = prev[x - bpp] if x >= bpp else 0
            if ftype == 1:
                line[x] = (line[x] + a) & 0xFF
            elif ftype == 2:
                line[x] = (line[x] + b) & 0xFF
            elif ftype == 3:
                line[x] = (line[x] + (a + b) // 2) & 0xFF
            elif ftype == 4:
                line[x] = (line[x] + _paeth(a, b, c)) & 0xFF
            elif ftype != 0:
                raise ValueError(f"PNG row {y} has unknown filter type {ftype}")
        pixels += line
        prev = line
    samples = list(struct.unpack(f">{len(pixels) // 2}H", bytes(pixels))) if bit_depth == 16 else list(pixels)
    return PngImage(width, height, channels, bit_depth, color_type, samples)


def encode_png(width: int, height: int, pixels: bytes, channels: int = 1) -> bytes:
    """Encode 8-bit grey (``channels=1``) or RGB (``channels=3``) pixels, row-major, as a PNG."""
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    if len(pixels) != width * height * channels:
        raise ValueError(f"pixels has {len(pixels)} bytes, expected {width}x{height}x{channels}")
    stride = width * channels
    raw = b"".join(b"\x00" + pixels[y * stride : (y + 1) * stride] for y in range(height))

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0 if channels == 1 else 2, 0, 0, 0)
    return PNG_SIGNATURE + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b"")


def image_size(path: Path) -> tuple[int, int]:
    """Return ``(width, height)`` of a PNG or baseline/progressive JPEG file."""
    data = Path(path).read_bytes()
    if data.startswith(PNG_SIGNATURE):
        return struct.unpack(">II", data[16:24])
    if data[:2] != b"\xff\xd8":
        raise ValueError(f"{path} is neither a PNG nor a JPEG")
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            pos += 1
            continue
        marker = data[pos + 1]
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # start-of-frame markers
            height, width = struct.unpack(">HH", data[pos + 5 : pos + 9])
            return width, height
        pos += 2 + length
    raise ValueError(f"{path}: no JPEG start-of-frame marker found")


def _ellipse_mask(width: int, height: int, fg: int) -> bytes:
    """Grey mask with value ``fg`` inside a centred ellipse covering about a quarter of the image."""
    cx, cy, rx, ry = width / 2, height / 2, width / 3, height / 3
    return bytes(
        fg if ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 <= 1.0 else 0 for y in range(height) for x in range(width)
    )


def _synthetic_rgb(width: int, height: int, seed: int) -> bytes:
    """RGB 'polyp-like' test image: a reddish blob on a textured background (deterministic)."""
    out = bytearray()
    cx, cy = width * (0.4 + 0.05 * seed), height * 0.5
    for y in range(height):
        for x in range(width):
            d = math.hypot((x - cx) / (width / 4), (y - cy) / (height / 4))
            tex = (x * 7 + y * 13 + seed * 31) % 40
            out += bytes((min(255, 120 + tex + (90 if d < 1 else 0)), 60 + tex, 50 + tex // 2))
    return bytes(out)


# ---------------------------------------------------------------------------------------------------------------
# App / bundle preparation
# ---------------------------------------------------------------------------------------------------------------


def find_sample_app(name: str = "monaibundle") -> Path:
    """Locate a MONAI Label sample app shipped with the installed wheel (what ``monailabel apps`` copies).

    The wheel installs the sample apps as data files under ``<prefix>/monailabel/sample-apps`` (``prefix`` is
    the virtual environment); the other candidates mirror ``monailabel.main.Main._get_installed_dir``.
    """
    roots = [Path(sysconfig.get_path("data")), Path(sys.prefix), Path(sys.prefix) / "local", Path.home() / ".local"]
    candidates = [r / "monailabel" / "sample-apps" / name for r in roots]
    spec = importlib.util.find_spec("monailabel")
    if spec is not None and spec.origin:  # a source checkout keeps sample-apps next to the package
        candidates.insert(0, Path(spec.origin).resolve().parents[1] / "sample-apps" / name)
    for c in candidates:
        if (c / "main.py").is_file():
            return c
    raise HarnessError(f"MONAI Label sample app {name!r} not found in {[str(c) for c in candidates]}")


_WEIGHTS_SNIPPET = """
import sys, torch
from monai.bundle import ConfigParser
root = sys.argv[1]
parser = ConfigParser()
parser.read_config(root + "/configs/inference.json")
parser["bundle_root"] = root
net = parser.get_parsed_content("network_def", instantiate=True)
torch.save(net.state_dict(), root + "/models/model.pt")
print(f"created {root}/models/model.pt: {type(net).__name__}, {sum(p.numel() for p in net.parameters())} parameters")
"""


def ensure_weights(bundle_dir: Path, python: str = sys.executable, timeout: float = 300.0) -> bool:
    """Create ``models/model.pt`` (random init of ``network_def`` from inference.json) if it is missing.

    Runs in a subprocess of ``python`` so this script itself never imports torch.

    Returns:
        True if a file was created, False if one existed already.
    """
    target = bundle_dir / "models" / "model.pt"
    if target.is_file():
        return False
    target.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        [python, "-c", _WEIGHTS_SNIPPET, str(bundle_dir)], capture_output=True, text=True, timeout=timeout
    )
    if proc.returncode != 0 or not target.is_file():
        raise HarnessError(f"could not create {target}:\n{proc.stdout}\n{proc.stderr[-4000:]}")
    print(proc.stdout.strip())
    return True


def make_uncertainty_entry(
    bundle_dir: Path, out_dir: Path, python: str = sys.executable, timeout: float = 300.0
) -> str:
    """Generate the SID uncertainty model folder from ``bundle_dir`` with the package's own generator (its CLI).

    Runs ``python -m condseg_monai.inference.label_uncertainty`` in a subprocess (this script never imports the
    package), then checks that ``models/model.pt`` is a relative symlink that resolves to the bundle's weights.

    Returns:
        The symlink target (relative path).
    """
    cmd = [
        python,
        "-m",
        "condseg_monai.inference.label_uncertainty",
        "--bundle",
        str(bundle_dir),
        "--out",
        str(out_dir),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise HarnessError(f"uncertainty entry generator failed ({' '.join(cmd)}):\n{proc.stderr[-4000:]}")
    weights = out_dir / "models" / "model.pt"
    if not weights.is_symlink() or os.path.isabs(os.readlink(weights)):
        raise HarnessError(f"{weights} is not a relative symlink")
    if weights.resolve() != (bundle_dir / "models" / "model.pt").resolve():
        raise HarnessError(f"{weights} -> {os.readlink(weights)} does not resolve to {bundle_dir}/models/model.pt")
    for required in ("inference.json", "metadata.json"):
        if not (out_dir / "configs" / required).is_file():
            raise HarnessError(f"the generator wrote no configs/{required} in {out_dir}")
    if (out_dir / "configs" / "train.json").exists():
        raise HarnessError(f"{out_dir}/configs/train.json exists: the uncertainty entry must have no trainer")
    return os.readlink(weights)


def _prepare_studies(studies: Path, count: int) -> list[Path]:
    """Fill ``studies`` with ``count`` RGB images: real ISIC JPEGs when available, else generated PNGs."""
    studies.mkdir(parents=True, exist_ok=True)
    real = sorted(SHARED_IMAGES.glob("*.jpg")) if SHARED_IMAGES.is_dir() else []
    out = []
    if len(real) >= count:
        for src in real[:count]:
            out.append(Path(shutil.copy2(src, studies / src.name)))
        print(f"studies: {count} real images from {SHARED_IMAGES.resolve()}")
        return out
    for i in range(count):
        w, h = 96 + 16 * i, 72 + 8 * i  # different, non-square sizes exercise the restore-to-input-size path
        path = studies / f"synthetic_{i:02d}.png"
        path.write_bytes(encode_png(w, h, _synthetic_rgb(w, h, i), channels=3))
        out.append(path)
    print(f"studies: {count} generated PNGs (no {SHARED_IMAGES})")
    return out


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def _file_digest(path: Path) -> tuple[float, str]:
    return path.stat().st_mtime, hashlib.sha256(path.read_bytes()).hexdigest()


# ---------------------------------------------------------------------------------------------------------------
# Server control
# ---------------------------------------------------------------------------------------------------------------


class Server:
    """``monailabel start_server`` in its own process group, logging to a file."""

    def __init__(
        self, app: Path, studies: Path, names: Sequence[str], log_file: Path, extra_conf: Sequence[str] = ()
    ) -> None:
        self.port = _free_port()
        self.url = f"http://{HOST}:{self.port}"
        self.log_file = log_file
        conf = ["--conf", "models", ",".join(names), "--conf", "zoo_source", "github", "--conf", "sam2", "false"]
        for item in extra_conf:
            key, _, value = item.partition("=")
            conf += ["--conf", key, value]
        self.cmd = [sys.executable, "-m", "monailabel.main", "start_server", "--app", str(app), "--studies"]
        self.cmd += [str(studies), *conf, "--host", HOST, "--port", str(self.port)]
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        env = dict(os.environ, BUNDLE_DOWNLOAD_SRC="github", MONAI_LABEL_DATASTORE_AUTO_RELOAD="false")
        with open(self.log_file, "wb") as log:
            # own session = own process group, so stop() also ends the training subprocesses it spawns
            self.proc = subprocess.Popen(
                self.cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
        print(f"server: pid {self.proc.pid} on {self.url}, log {self.log_file}")

    def wait_ready(self, timeout: float, interval: float = 2.0) -> dict:
        """Poll ``GET /info/`` (bounded by ``timeout`` seconds and a matching attempt count)."""
        deadline = time.monotonic() + timeout
        for _ in range(max(1, int(timeout / interval) + 1)):
            if self.proc is None or self.proc.poll() is not None:
                raise HarnessError(f"server exited early with code {self.proc.returncode if self.proc else None}")
            try:
                r = requests.get(f"{self.url}/info/", timeout=10)
                if r.status_code == 200:
                    return r.json()
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                break
            time.sleep(interval)
        raise HarnessError(f"server not ready after {timeout:.0f} s")

    def stop(self, grace: float = 15.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 10.0)):
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                return
            try:
                self.proc.wait(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                continue
        # also reap stragglers of the group (uvicorn workers, training subprocess) after the leader has gone
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)

    def log_tail(self, chars: int = 6000) -> str:
        try:
            return self.log_file.read_text(errors="replace")[-chars:]
        except OSError:
            return "<no server log>"


# ---------------------------------------------------------------------------------------------------------------
# Contract checks
# ---------------------------------------------------------------------------------------------------------------


def _check_mask(content: bytes, expected_size: tuple[int, int], what: str, allowed: set[int] | None = None) -> str:
    """Check that ``content`` is a grey PNG label map of ``expected_size`` with values in ``allowed`` ({0, 1})."""
    allowed = {0, 1} if allowed is None else allowed
    try:
        png = decode_png(content)
    except ValueError as e:
        raise HarnessError(f"{what}: result is not a readable PNG ({e}); first bytes {content[:16]!r}") from e
    if png.channels != 1 or png.color_type != 0:
        raise HarnessError(f"{what}: mask has colour type {png.color_type} ({png.channels} channels), expected grey")
    if (png.width, png.height) != tuple(expected_size):
        raise HarnessError(f"{what}: mask is {png.width}x{png.height}, input is {expected_size[0]}x{expected_size[1]}")
    values = png.values()
    if not values <= allowed:
        raise HarnessError(f"{what}: mask values {sorted(values)[:10]} are not within {sorted(allowed)}")
    return f"{png.width}x{png.height} {png.bit_depth}-bit grey, values {sorted(values)}"


def _infer(server: Server, name: str, device: str, timeout: float, image_id: str = "", upload: Path | None = None):
    params = json.dumps({**INFER_PARAMS, "device": device})
    url = f"{server.url}/infer/{name}"
    query = {"output": "image"}
    if upload is None:
        query["image"] = image_id
        return requests.post(url, params=query, data={"params": params}, timeout=timeout)
    with open(upload, "rb") as f:
        files = {"file": (upload.name, f, "application/octet-stream")}
        return requests.post(url, params=query, data={"params": params}, files=files, timeout=timeout)


def _check_extra_models(server: Server, info: dict, extras: Sequence[str], image: Path, args, when: str) -> list[str]:
    """Extra model entries (e.g. the SID uncertainty view): listed, and answering with a label map of the input size."""
    passed = []
    for extra in extras:
        model = info.get("models", {}).get(extra)
        if model is None:
            raise HarnessError(f"/info/: extra model {extra!r} missing; models = {list(info.get('models', {}))}")
        labels = model.get("labels", {})
        if not labels:
            raise HarnessError(f"/info/: extra model {extra!r} declares no labels (outputs channel_def)")
        r = _infer(server, extra, args.device, args.request_timeout, image_id=image.stem)
        if r.status_code != 200:
            raise HarnessError(f"/infer/{extra} {when}: HTTP {r.status_code}: {r.text[:2000]}")
        allowed = {0, *(int(v) for v in labels.values())}
        detail = _check_mask(r.content, image_size(image), f"/infer/{extra} {when}", allowed)
        passed.append(f"/infer/{extra} {when} ({image.name}): labels {labels}, {detail}")
    return passed


def _check_uncertainty_info(info: dict, name: str) -> str:
    """``GET /info/`` must list the uncertainty entry as a 2D model labelled ``uncertain`` -> 1, without trainer."""
    model = info.get("models", {}).get(name)
    if model is None:
        raise HarnessError(f"/info/: uncertainty model {name!r} missing; models = {list(info.get('models', {}))}")
    labels = model.get("labels", {})
    if labels != {UNCERTAINTY_LABEL: 1}:
        raise HarnessError(f"/info/: labels of {name} are {labels}, expected {{{UNCERTAINTY_LABEL!r}: 1}}")
    if model.get("dimension") != 2:
        raise HarnessError(f"/info/: dimension of {name} is {model.get('dimension')}, expected 2")
    if name in info.get("trainers", {}):
        raise HarnessError(f"/info/: {name} has a trainer, but it must share (not train) the segmentation weights")
    return f"/info/ lists {name}: labels {labels}, dimension 2, type {model.get('type')}, no trainer"


def run_contract(server: Server, name: str, label: str, images: list[Path], model_pt: Path, args) -> list[str]:
    """Run all checks against a ready ``server``.

    Returns:
        One line per passed check.

    Raises:
        HarnessError: on the first failed check.
    """
    passed: list[str] = []
    info = requests.get(f"{server.url}/info/", timeout=30).json()
    model = info.get("models", {}).get(name)
    if model is None:
        raise HarnessError(f"/info/: model {name!r} missing; models = {list(info.get('models', {}))}")
    labels = model.get("labels", {})
    if labels.get(label) != 1 or len(labels) != 1:
        raise HarnessError(f"/info/: labels of {name} are {labels}, expected {{{label!r}: 1}}")
    if model.get("dimension") != 2:
        raise HarnessError(f"/info/: dimension of {name} is {model.get('dimension')}, expected 2")
    if not args.skip_train and name not in info.get("trainers", {}):
        raise HarnessError(f"/info/: no trainer for {name}; trainers = {list(info.get('trainers', {}))}")
    passed.append(f"/info/ lists {name}: labels {labels}, dimension 2, type {model.get('type')}")
    views = list(args.extra_bundle)
    if args.uncertainty_name:
        passed.append(_check_uncertainty_info(info, args.uncertainty_name))
        views.insert(0, args.uncertainty_name)

    src = images[0]
    for mode, upload in (("datastore id", None), ("upload", src)):
        r = _infer(server, name, args.device, args.request_timeout, image_id=src.stem, upload=upload)
        if r.status_code != 200:
            raise HarnessError(f"/infer/ by {mode}: HTTP {r.status_code}: {r.text[:2000]}")
        detail = _check_mask(r.content, image_size(src), f"/infer/ by {mode}")
        passed.append(f"/infer/{name} by {mode} ({src.name}): {detail}, content-type {r.headers.get('content-type')}")
    passed += _check_extra_models(server, info, views, src, args, "before training")

    if args.skip_train:
        return passed

    # two final labels, one saved 0/1 (what annotation clients send) and one 0/255 (exported image masks)
    for src, fg in zip(images[:2], (1, 255), strict=True):
        w, h = image_size(src)
        body = encode_png(w, h, _ellipse_mask(w, h, fg))
        r = requests.put(
            f"{server.url}/datastore/label",
            params={"image": src.stem, "tag": "final"},
            files={"label": (f"{src.stem}.png", body, "image/png")},
            timeout=args.request_timeout,
        )
        if r.status_code != 200:
            raise HarnessError(f"PUT /datastore/label for {src.stem}: HTTP {r.status_code}: {r.text[:2000]}")
    ds = requests.get(f"{server.url}/datastore/", params={"output": "all"}, timeout=30).json()
    objects = ds.get("objects", {})
    labelled = sorted(k for k, v in objects.items() if "final" in v.get("labels", {}))
    if not {p.stem for p in images[:2]} <= set(labelled):
        expected = [p.stem for p in images[:2]]
        raise HarnessError(f"GET /datastore/?output=all: final labels for {labelled}, expected {expected}")
    passed.append(f"PUT /datastore/label stored final labels (0/1 and 0/255 masks) for {labelled}")

    before = _file_digest(model_pt)
    time.sleep(1.1)  # make an mtime change visible even on coarse-grained file systems
    body = {"max_epochs": 1, "val_split": 0.5, "device": args.device, "multi_gpu": False, "tracking": "None"}
    t0 = time.monotonic()
    r = requests.post(f"{server.url}/train/{name}", params={"run_sync": "true"}, json=body, timeout=args.train_timeout)
    if r.status_code != 200:
        raise HarnessError(f"POST /train/{name}: HTTP {r.status_code}: {r.text[:2000]}")
    after = _file_digest(model_pt)
    if after[1] == before[1] or after[0] == before[0]:
        raise HarnessError(f"POST /train/{name}: {model_pt} was not rewritten (mtime/sha256 unchanged)")
    took = time.monotonic() - t0
    passed.append(f"POST /train/{name} (1 epoch, {args.device}) rewrote models/model.pt in {took:.0f} s")

    r = _infer(server, name, args.device, args.request_timeout, image_id=images[1].stem)
    if r.status_code != 200:
        raise HarnessError(f"/infer/ after training: HTTP {r.status_code}: {r.text[:2000]}")
    detail = _check_mask(r.content, image_size(images[1]), "/infer/ after training")
    passed.append(f"/infer/{name} with the fine-tuned weights: {detail}")
    passed += _check_extra_models(server, info, views, images[1], args, "after training")
    return passed


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bundle", type=Path, default=DEFAULT_BUNDLE, help="bundle folder (default: <repo>/bundle)")
    p.add_argument("--name", default=DEFAULT_NAME, help=f"model name inside MONAI Label (default: {DEFAULT_NAME})")
    p.add_argument("--label", default="polyp", help="expected foreground label name (default: polyp)")
    p.add_argument("--device", default="cpu", help="device string sent with every request (default: cpu)")
    p.add_argument("--keep-logs", action="store_true", help="keep the temporary app, studies and server log")
    p.add_argument("--skip-train", action="store_true", help="only check /info/ and /infer/")
    p.add_argument(
        "--uncertainty-name",
        default=DEFAULT_UNCERTAINTY_NAME,
        help=f"model name of the generated SID uncertainty entry (default: {DEFAULT_UNCERTAINTY_NAME})",
    )
    p.add_argument("--no-uncertainty", action="store_true", help="do not generate and check the uncertainty entry")
    p.add_argument("--conf", action="append", default=[], metavar="KEY=VALUE", help="extra --conf for the server")
    p.add_argument(
        "--extra-bundle",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="serve another bundle folder as model NAME (e.g. the uncertainty view); without its own "
        "models/model.pt it links to the main model's weights, so fine-tuning updates both",
    )
    p.add_argument("--start-timeout", type=float, default=300.0, help="seconds to wait for the server (default 300)")
    p.add_argument("--request-timeout", type=float, default=300.0, help="seconds per infer/label request")
    p.add_argument("--train-timeout", type=float, default=900.0, help="seconds for the synchronous training call")
    args = p.parse_args(argv)
    if not (args.bundle / "configs" / "inference.json").is_file():
        p.error(f"--bundle {args.bundle}: no configs/inference.json there")
    extras: dict[str, Path] = {}
    for item in args.extra_bundle:
        extra, _, path = item.partition("=")
        if not extra or not (Path(path) / "configs" / "inference.json").is_file():
            p.error(f"--extra-bundle {item!r}: expected NAME=PATH with PATH/configs/inference.json")
        extras[extra] = Path(path)
    args.extra_bundle = extras
    args.uncertainty_name = None if args.no_uncertainty else args.uncertainty_name
    names = [args.name, *([args.uncertainty_name] if args.uncertainty_name else []), *extras]
    for n in names:
        if "/" in n or n in ("", ".", "..") or "," in n:
            p.error(f"model name {n!r} must be a plain folder name without commas")
    if len(set(names)) != len(names):
        p.error(f"model names must be distinct: {names}")
    return args


def _copy_bundle(src: Path, dst: Path) -> None:
    # a copy, never a link: training rewrites models/model.pt and must not touch the repository
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__", "eval", "runs", "*.ts"), symlinks=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code (0 PASS, 1 FAIL)."""
    args = _parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="condseg-label-"))
    app = work / "apps" / "monaibundle"
    server: Server | None = None
    passed: list[str] = []
    failure = ""
    t0 = time.monotonic()
    try:
        shutil.copytree(find_sample_app(), app, ignore=shutil.ignore_patterns("__pycache__"))
        bundle = app / "model" / args.name
        _copy_bundle(args.bundle, bundle)
        if ensure_weights(bundle):
            passed.append("models/model.pt missing in the bundle: created from inference.json network_def")
        names = [args.name]
        if args.uncertainty_name:
            target = make_uncertainty_entry(bundle, app / "model" / args.uncertainty_name)
            passed.append(f"{args.uncertainty_name} generated from {args.name}: models/model.pt -> {target}")
            names.append(args.uncertainty_name)
        for extra, path in args.extra_bundle.items():
            _copy_bundle(path, app / "model" / extra)
            weights = app / "model" / extra / "models" / "model.pt"
            if weights.is_symlink() or not weights.exists():
                weights.unlink(missing_ok=True)
                weights.parent.mkdir(parents=True, exist_ok=True)
                weights.symlink_to(Path("..", "..", args.name, "models", "model.pt"))
                passed.append(f"{extra}: models/model.pt -> ../../{args.name}/models/model.pt (shared weights)")
        images = _prepare_studies(work / "studies", 3)
        server = Server(app, work / "studies", [*names, *args.extra_bundle], work / "server.log", args.conf)
        server.start()
        server.wait_ready(args.start_timeout)
        passed.append(f"server ready after {time.monotonic() - t0:.0f} s")
        passed += run_contract(server, args.name, args.label, images, bundle / "models" / "model.pt", args)
    except (HarnessError, requests.RequestException, OSError, subprocess.SubprocessError, ValueError) as e:
        failure = f"{type(e).__name__}: {e}"
    finally:
        if server is not None:
            server.stop()
    for line in passed:
        print(f"PASS  {line}")
    if failure:
        print(f"FAIL  {failure}")
        if server is not None:
            print(f"----- server log tail ({server.log_file}) -----\n{server.log_tail()}\n-----")
    if args.keep_logs:
        print(f"kept: {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    verdict = "FAIL" if failure else "PASS"
    print(f"{verdict}: MONAI Label contract for {args.name} ({args.bundle}) in {time.monotonic() - t0:.0f} s")
    return 1 if failure else 0


if __name__ == "__main__":
    sys.exit(main())
