# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""Contract test of a condseg-monai bundle against a real MONAI Label 0.8.5 server.

Run it with the python of the MONAI Label environment (built by ``tests/monailabel/setup_env.sh``)::

    .label-venv/bin/python tests/monailabel/run_server_test.py [--bundle bundle] [--name polyp_condseg_segmentation]

It lays out the ``monaibundle`` sample app in a temporary folder, copies the bundle into
``<app>/model/<name>`` (the repository's ``bundle/`` is never written to: training overwrites the copy's
``models/model.pt``), generates the uncertainty entry ``<app>/model/polyp_condseg_uncertainty`` from that copy
with ``python -m condseg_monai.apps.monailabel.uncertainty_bundle`` (its ``models/model.pt`` is a relative symlink to
the segmentation weights), prepares a studies folder with real RGB images (``../shared/data/isic-sample`` when
present, generated PNGs otherwise), starts ``monailabel start_server`` on 127.0.0.1 in its own process group
serving both entries, and checks the REST contract:

1. ``GET /info/`` lists the model, its label (``polyp`` -> 1) and a trainer, and the uncertainty model with the
   label ``uncertain`` -> 1 and no trainer;
2. ``POST /infer/<name>`` by datastore id and by upload returns a grey PNG of the input size with values in {0, 1},
   and so does ``POST /infer/polyp_condseg_uncertainty``;
3. ``POST /activelearning/first`` returns the first unlabeled image;
4. ``PUT /datastore/label`` stores final labels for two images (one saved 0/1, one 0/255), ``GET /datastore/``
   lists them, and ``POST /activelearning/random`` then returns an unlabeled image;
5. ``POST /train/<name>`` fine-tunes for one epoch on CPU (in the background, as clients start it; the harness
   polls ``GET /train/`` until that task is DONE) and rewrites ``models/model.pt``;
6. inference still answers with the fine-tuned weights, on both entries.

Every request goes through MONAI Label's own client, ``monailabel.client.MONAILabelClient`` (what a team's scripts
would use), each bounded in time; every wait is bounded in attempts and seconds; the server listens on 127.0.0.1
only and is always stopped (process group killed), also on failure. Images are written and read with Pillow and
numpy. The script never imports torch or condseg_monai itself (weights and the uncertainty entry are made in
subprocesses). It exits 0 on PASS and 1 on FAIL.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from monailabel.client import MONAILabelClient
from monailabel.client.client import MONAILabelClientException, MONAILabelError, MONAILabelUtils, bytes_to_str
from PIL import Image

__all__ = [
    "Client",
    "HarnessError",
    "ensure_weights",
    "find_sample_app",
    "image_size",
    "main",
    "make_uncertainty_entry",
    "check_uncertainty_entry",
    "make_condseg_app",
    "run_active_learning",
    "run_contract",
    "wait_until",
]

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_BUNDLE = REPO_ROOT / "bundle"
DEFAULT_NAME = "polyp_condseg_segmentation"
DEFAULT_UNCERTAINTY_NAME = "polyp_condseg_uncertainty"  # condseg_monai.apps.monailabel.uncertainty_bundle
UNCERTAINTY_LABEL = "uncertain"
SHARED_IMAGES = REPO_ROOT / ".." / "shared" / "data" / "isic-sample" / "images"
SCORE_KEY = "condseg_uncertainty"  # condseg_monai.apps.monailabel: scoring method name and image info key
EMBEDDINGS_FILE = "datastore_embeddings.pt"  # condseg_monai.apps.monailabel.lib.scoring: beside models/model.pt
FINETUNE_DATALIST = "monailabel_datalist.json"  # condseg_monai.apps.monailabel.lib.trainer.DATALIST_NAME
HOST = "127.0.0.1"  # never listen on anything but loopback
INFER_PARAMS = {"result_extension": ".png", "result_dtype": "uint8"}


class HarnessError(RuntimeError):
    """A contract check failed (the message says which and why)."""


# ---------------------------------------------------------------------------------------------------------------
# Images (Pillow + numpy)
# ---------------------------------------------------------------------------------------------------------------


def image_size(path: Path) -> tuple[int, int]:
    """Return ``(width, height)`` of an image file (PNG, JPEG, ... whatever Pillow reads)."""
    with Image.open(path) as im:
        return im.size


def _ellipse_mask(width: int, height: int, fg: int) -> np.ndarray:
    """``(H, W)`` uint8 mask with value ``fg`` inside a centred ellipse covering about a quarter of the image."""
    yy, xx = np.mgrid[:height, :width]
    inside = ((xx - width / 2) / (width / 3)) ** 2 + ((yy - height / 2) / (height / 3)) ** 2 <= 1.0
    return np.where(inside, fg, 0).astype(np.uint8)


def _synthetic_rgb(width: int, height: int, seed: int) -> np.ndarray:
    """``(H, W, 3)`` uint8 'polyp-like' test image: a reddish blob on a textured background (deterministic)."""
    yy, xx = np.mgrid[:height, :width]
    cx, cy = width * (0.4 + 0.05 * seed), height * 0.5
    blob = np.hypot((xx - cx) / (width / 4), (yy - cy) / (height / 4)) < 1
    tex = (xx * 7 + yy * 13 + seed * 31) % 40
    rgb = np.stack([np.minimum(255, 120 + tex + 90 * blob), 60 + tex, 50 + tex // 2], axis=-1)
    return rgb.astype(np.uint8)


def _write_mask(path: Path, width: int, height: int, fg: int) -> Path:
    Image.fromarray(_ellipse_mask(width, height, fg), mode="L").save(path)
    return path


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

    Runs ``python -m condseg_monai.apps.monailabel.uncertainty_bundle`` in a subprocess (this script never imports the
    package), then checks that ``models/model.pt`` is a relative symlink that resolves to the bundle's weights.

    Returns:
        The symlink target (relative path).
    """
    cmd = [
        python,
        "-m",
        "condseg_monai.apps.monailabel.uncertainty_bundle",
        "--bundle",
        str(bundle_dir),
        "--out",
        str(out_dir),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise HarnessError(f"uncertainty entry generator failed ({' '.join(cmd)}):\n{proc.stderr[-4000:]}")
    return check_uncertainty_entry(bundle_dir, out_dir)


def check_uncertainty_entry(bundle_dir: Path, out_dir: Path) -> str:
    """Check a generated uncertainty entry: configs, no train.json, weights a relative symlink to the bundle's.

    Returns:
        The symlink target (relative path).
    """
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
        Image.fromarray(_synthetic_rgb(w, h, i), mode="RGB").save(path)
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
# Server control and the client
# ---------------------------------------------------------------------------------------------------------------


class Client(MONAILabelClient):
    """MONAI Label's own ``MONAILabelClient``, with every request bounded in time and failures as ``HarnessError``.

    The client opens ``http.client`` connections without a timeout, so each call here runs with
    ``socket.setdefaulttimeout`` set (the harness is single-threaded; the old default is restored afterwards).
    ``scoring_run`` / ``scoring_status`` add the ``/scoring`` endpoints, which the 0.8.5 client has no method for,
    with the client's own ``MONAILabelUtils.http_method``.

    Args:
        server_url: ``http://127.0.0.1:<port>``.
        tmpdir: folder where the client saves inference results.
        timeout: default seconds per request.
    """

    def __init__(self, server_url: str, tmpdir: Path, timeout: float) -> None:
        super().__init__(server_url, tmpdir=str(tmpdir), client_id="condseg-harness")
        self.timeout = timeout

    def call(self, what: str, method: Callable[..., Any], *args: Any, timeout: float | None = None, **kwargs: Any):
        """Run ``method(*args, **kwargs)`` within ``timeout`` seconds per socket operation.

        Raises:
            HarnessError: on an HTTP error (``what`` and the server's answer in the message) or a timeout.
        """
        seconds = self.timeout if timeout is None else timeout
        old = socket.getdefaulttimeout()
        socket.setdefaulttimeout(seconds)
        try:
            return method(*args, **kwargs)
        except MONAILabelClientException as e:
            raise HarnessError(f"{what}: {str(e.msg)[:2000]}") from e
        except TimeoutError as e:
            raise HarnessError(f"{what}: no answer within {seconds:.0f} s") from e
        finally:
            socket.setdefaulttimeout(old)

    def _json(self, method: str, selector: str, body: dict | None = None) -> Any:
        status, response, _, _ = MONAILabelUtils.http_method(
            method, self._server_url, selector, body, headers=self._headers
        )
        if status != 200:
            raise MONAILabelClientException(
                MONAILabelError.SERVER_ERROR, f"Status: {status}; Response: {bytes_to_str(response)}", status
            )
        return json.loads(bytes_to_str(response))

    def scoring_run(self, method: str, params: dict | None = None, run_sync: bool = False) -> Any:
        """``POST /scoring/{method}[?run_sync=true]``: run one scoring method (in the server process when sync)."""
        selector = f"/scoring/{MONAILabelUtils.urllib_quote_plus(method)}"
        return self._json("POST", selector + ("?run_sync=true" if run_sync else ""), self._update_client_id(params))

    def scoring_status(self, check_if_running: bool = False) -> bool | Any:
        """``GET /scoring/``: the last scoring task, or (``check_if_running``) whether one is running now."""
        if check_if_running:
            status, _, _, _ = MONAILabelUtils.http_method(
                "GET", self._server_url, "/scoring/?check_if_running=true", headers=self._headers
            )
            return status == 200
        return self._json("GET", "/scoring/")


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

    def wait_ready(self, client: Client, timeout: float, interval: float = 2.0) -> dict:
        """Poll ``GET /info/`` (bounded by ``timeout`` seconds and a matching attempt count)."""
        deadline = time.monotonic() + timeout
        for _ in range(max(1, int(timeout / interval) + 1)):
            if self.proc is None or self.proc.poll() is not None:
                raise HarnessError(f"server exited early with code {self.proc.returncode if self.proc else None}")
            try:
                return client.call("GET /info/", client.info, timeout=10)
            except (HarnessError, OSError):
                pass  # not listening yet (connection refused) or still starting
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


def wait_until(what: str, done: Callable[[], Any], timeout: float, interval: float = 2.0) -> Any:
    """Poll ``done()`` until it returns something truthy; bounded by ``timeout`` seconds and an attempt count.

    Raises:
        HarnessError: when ``done()`` never returned a truthy value in time.
    """
    deadline = time.monotonic() + timeout
    for _ in range(max(1, int(timeout / interval) + 1)):
        result = done()
        if result:
            return result
        if time.monotonic() > deadline:
            break
        time.sleep(interval)
    raise HarnessError(f"{what}: not done after {timeout:.0f} s")


# ---------------------------------------------------------------------------------------------------------------
# Contract checks
# ---------------------------------------------------------------------------------------------------------------


def _check_mask(result: str | None, expected_size: tuple[int, int], what: str, allowed: set[int] | None = None) -> str:
    """Check that the file ``result`` is a grey PNG label map of ``expected_size`` with values in ``allowed``."""
    allowed = {0, 1} if allowed is None else allowed
    if not result or not os.path.isfile(result):
        raise HarnessError(f"{what}: the server sent no result file ({result!r})")
    try:
        with Image.open(result) as im:
            fmt, mode, size = im.format, im.mode, im.size
            pixels = np.asarray(im)
    except OSError as e:
        raise HarnessError(f"{what}: result {result} is not a readable image ({e})") from e
    finally:
        os.remove(result)  # the client saved it in its tmpdir; keep that folder small
    if fmt != "PNG":
        raise HarnessError(f"{what}: result is {fmt}, expected PNG")
    if mode not in ("L", "I;16", "I"):
        raise HarnessError(f"{what}: mask has mode {mode}, expected a single grey channel")
    if size != tuple(expected_size):
        raise HarnessError(f"{what}: mask is {size[0]}x{size[1]}, input is {expected_size[0]}x{expected_size[1]}")
    values = set(np.unique(pixels).tolist())
    if not values <= allowed:
        raise HarnessError(f"{what}: mask values {sorted(values)[:10]} are not within {sorted(allowed)}")
    return f"{size[0]}x{size[1]} {'8' if mode == 'L' else '16'}-bit grey PNG, values {sorted(values)}"


def _infer(client: Client, name: str, device: str, image_id: str = "", upload: Path | None = None) -> str | None:
    """``POST /infer/{name}`` by datastore id or by upload (multipart answer); returns the saved result file."""
    params = {**INFER_PARAMS, "device": device}
    what = f"/infer/{name} by {'upload' if upload else 'datastore id'}"
    result, _ = client.call(what, client.infer, name, image_id, params, file=str(upload) if upload else None)
    return result


def _check_extra_models(client: Client, info: dict, extras: Sequence[str], image: Path, args, when: str) -> list[str]:
    """Extra model entries (e.g. the SID uncertainty view): listed, and answering with a label map of the input size."""
    passed = []
    for extra in extras:
        model = info.get("models", {}).get(extra)
        if model is None:
            raise HarnessError(f"/info/: extra model {extra!r} missing; models = {list(info.get('models', {}))}")
        labels = model.get("labels", {})
        if not labels:
            raise HarnessError(f"/info/: extra model {extra!r} declares no labels (outputs channel_def)")
        result = _infer(client, extra, args.device, image_id=image.stem)
        allowed = {0, *(int(v) for v in labels.values())}
        detail = _check_mask(result, image_size(image), f"/infer/{extra} {when}", allowed)
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


def _final_labels(client: Client) -> set[str]:
    """Image ids with a ``final`` label, from ``GET /datastore/?output=all``."""
    objects = client.call("GET /datastore/?output=all", client.datastore).get("objects", {})
    return {k for k, v in objects.items() if "final" in v.get("labels", {})}


def _save_labels(client: Client, images: Sequence[Path], work: Path) -> list[str]:
    """Save a final label for each image (0/1 for the first, 0/255 for the second) with ``PUT /datastore/label``."""
    for src, fg in zip(images, (1, 255), strict=False):
        w, h = image_size(src)
        mask = _write_mask(work / f"{src.stem}_mask.png", w, h, fg)
        client.call(f"PUT /datastore/label for {src.stem}", client.save_label, src.stem, str(mask), tag="final")
    labelled = _final_labels(client)
    if not {p.stem for p in images} <= labelled:
        raise HarnessError(f"GET /datastore/?output=all: final labels for {sorted(labelled)}, expected {images}")
    return sorted(labelled)


def _train(client: Client, name: str, model_pt: Path, args) -> str:
    """``POST /train/{name}`` (one epoch, in the background as clients start it), wait, check the new weights."""
    before = _file_digest(model_pt)
    time.sleep(1.1)  # make an mtime change visible even on coarse-grained file systems
    body = {"max_epochs": 1, "val_split": 0.5, "device": args.device, "multi_gpu": False, "tracking": "None"}
    t0 = time.monotonic()
    task = client.call(f"POST /train/{name}", client.train_start, name, body)
    task_id = task.get("id") if isinstance(task, dict) else None
    if not task_id:
        raise HarnessError(f"POST /train/{name}: no task id in the answer {task}")

    def finished() -> dict | None:
        last = client.call("GET /train/", client.train_status)
        return last if last.get("id") == task_id and last.get("status") in ("DONE", "ERROR", "STOPPED") else None

    last = wait_until(f"POST /train/{name}", finished, args.train_timeout, interval=3.0)
    if last["status"] != "DONE":
        raise HarnessError(f"POST /train/{name}: task ended {last['status']}: {list(last.get('details', []))[-5:]}")
    after = _file_digest(model_pt)
    if after[1] == before[1] or after[0] == before[0]:
        raise HarnessError(f"POST /train/{name}: {model_pt} was not rewritten (mtime/sha256 unchanged)")
    return f"POST /train/{name} (1 epoch, {args.device}) rewrote models/model.pt in {time.monotonic() - t0:.0f} s"


def _check_semi_supervised_finetune(bundle: Path, unlabeled_ids: set[str]) -> str:
    """The app's fine-tune used the datastore's unlabeled images: its datalist lists them, its state has a teacher
    (read in a subprocess, like the weights: this script does not import torch)."""
    run = bundle / "runs" / "finetune"
    datalist = json.loads((run / FINETUNE_DATALIST).read_text())
    listed = {Path(e["image"]).stem for e in datalist.get("unlabeled", [])}
    if listed != unlabeled_ids:
        raise HarnessError(f"{run / FINETUNE_DATALIST}: unlabeled {sorted(listed)}, expected {sorted(unlabeled_ids)}")
    probe = "import sys, torch; sys.exit(0 if 'teacher' in torch.load(sys.argv[1], weights_only=True) else 3)"
    result = subprocess.run([sys.executable, "-c", probe, str(run / "latest.pt")], capture_output=True, timeout=300)
    if result.returncode != 0:
        raise HarnessError(f"{run / 'latest.pt'} has no teacher (rc {result.returncode}): not semi-supervised")
    return f"the fine-tune was semi-supervised: {len(listed)} unlabeled datastore images listed, mean teacher saved"


def _scores(client: Client) -> tuple[dict[str, dict], set[str]]:
    """``({unlabeled image id: score record or {}}, labelled ids)`` from ``GET /datastore/?output=all``."""
    objects = client.call("GET /datastore/?output=all", client.datastore).get("objects", {})
    labelled = {k for k, v in objects.items() if "final" in v.get("labels", {})}
    records = {
        k: v.get("image", {}).get("info", {}).get(SCORE_KEY) or {} for k, v in objects.items() if k not in labelled
    }
    return records, labelled


def _ranked(records: dict[str, dict]) -> list[str]:
    """What the strategy must return first: highest score, ties by id (every record must have a score here)."""
    missing = sorted(k for k, r in records.items() if not isinstance(r.get("score"), (int, float)))
    if missing:
        raise HarnessError(f"no {SCORE_KEY} score for the unlabeled images {missing}")
    return [k for _, k in sorted((-r["score"], k) for k, r in records.items())]


def _wait_scoring_idle(client: Client, timeout: float) -> None:
    wait_until(
        "GET /scoring/?check_if_running=true",
        lambda: not client.call("GET /scoring/", client.scoring_status, True),
        timeout,
        interval=3.0,
    )


def _last_scoring_id(client: Client) -> str | None:
    try:
        return client.call("GET /scoring/", client.scoring_status).get("id")
    except HarnessError:  # 404: no scoring task so far
        return None


def _check_diverse_and_foreground(client: Client, model_pt: Path, records: dict[str, dict]) -> list[str]:
    """The scoring embedded every image; ``diverse_uncertainty`` serves two different unlabeled images one after
    the other (the first, once served, covers its cluster); ``foreground_random`` serves an image the model finds a
    polyp in (any unlabeled image when it finds none)."""
    store = model_pt.parent / EMBEDDINGS_FILE
    objects = client.call("GET /datastore/?output=all", client.datastore).get("objects", {})
    probe = (
        "import sys, torch; d = torch.load(sys.argv[1], weights_only=True); "
        "print(' '.join(d['ids'])); sys.exit(0 if len(d['ids']) == d['vectors'].shape[0] else 3)"
    )
    result = subprocess.run([sys.executable, "-c", probe, str(store)], capture_output=True, text=True, timeout=300)
    embedded = set(result.stdout.split())
    if result.returncode != 0 or embedded != set(objects):
        raise HarnessError(
            f"{store}: embeddings for {sorted(embedded)} (rc {result.returncode}), expected every image "
            f"{sorted(objects)}: {result.stderr[-500:]}"
        )
    picks = []
    for _ in range(2):
        got = client.call(
            "POST /activelearning/diverse_uncertainty", client.next_sample, "diverse_uncertainty", {}
        ).get("id")
        if got not in records or got in picks:
            unlabeled = sorted(records)
            raise HarnessError(f"/activelearning/diverse_uncertainty returned {got!r} after {picks} ({unlabeled})")
        picks.append(got)
    present = sorted(k for k, r in records.items() if r.get("polyp_present") is True)
    got = client.call("POST /activelearning/foreground_random", client.next_sample, "foreground_random", {}).get("id")
    if got not in (present or list(records)):
        raise HarnessError(f"/activelearning/foreground_random returned {got!r}; predicted polyps: {present}")
    return [
        f"the scoring embedded all {len(embedded)} images ({store.name}); /activelearning/diverse_uncertainty "
        f"returned {picks[0]}, then {picks[1]}; /activelearning/foreground_random returned {got} "
        f"({len(present)} of {len(records)} unlabeled images with a predicted polyp)"
    ]


def run_active_learning(client: Client, name: str, images: list[Path], model_pt: Path, args) -> list[str]:
    """The uncertainty-driven loop: upload, score (and embed), the diverse and foreground-random strategies, next
    sample, label, again, fine-tune, rescore."""
    passed: list[str] = []
    _wait_scoring_idle(client, args.train_timeout)  # the start-up scoring (on_init_complete)
    upload = args.upload
    client.call("PUT /datastore/", client.upload_image, str(upload), upload.stem)
    records, _ = _scores(client)
    if upload.stem not in records:
        raise HarnessError(f"PUT /datastore/: uploaded {upload.stem} not in the datastore {sorted(records)}")
    passed.append(f"PUT /datastore/ uploaded {upload.name} as {upload.stem}")

    t0 = time.monotonic()
    method = SCORE_KEY
    # not forced: images the start-up scoring has done with these weights are skipped (as in production)
    summary = client.call(
        f"POST /scoring/{method}",
        client.scoring_run,
        method,
        {"device": args.device},
        True,
        timeout=args.train_timeout,
    )
    records, _ = _scores(client)
    ranked = _ranked(records)  # also fails when an unlabeled image has no score
    if upload.stem not in summary.get("scores", {}):
        raise HarnessError(f"POST /scoring/{method}: the new image {upload.stem} was not scored: {summary}")
    passed.append(
        f"POST /scoring/{method}?run_sync=true scored the new image ({summary.get('executed')} scored, "
        f"{summary.get('skipped')} up to date) in {time.monotonic() - t0:.0f} s; all {len(ranked)} unlabeled "
        "images have a score: " + ", ".join(f"{k} {records[k]['score']:.4g}" for k in ranked)
    )

    passed += _check_diverse_and_foreground(client, model_pt, records)

    served: list[str] = []
    for fg in (1, 255):  # label the two most uncertain images, one 0/1 and one 0/255 mask
        got = client.call("POST /activelearning/uncertainty", client.next_sample, "uncertainty", {}).get("id")
        if got != ranked[0] or got in served:
            raise HarnessError(f"/activelearning/uncertainty returned {got!r}, expected {ranked[0]!r} ({ranked})")
        served.append(got)
        src = next(p for p in [*images, upload] if p.stem == got)
        w, h = image_size(src)
        mask = _write_mask(args.work / f"{got}_mask.png", w, h, fg)
        client.call(f"PUT /datastore/label for {got}", client.save_label, got, str(mask), tag="final")
        records, labelled = _scores(client)
        if got not in labelled:
            raise HarnessError(f"PUT /datastore/label: {got} has no final label afterwards")
        ranked = _ranked(records)
    passed.append(
        f"/activelearning/uncertainty returned {served[0]} (highest score), then after its label a different "
        f"image {served[1]} (highest of the rest); both labelled (0/1 and 0/255 masks)"
    )
    nxt = client.call("POST /activelearning/uncertainty", client.next_sample, "uncertainty", {}).get("id")
    if nxt != ranked[0]:
        raise HarnessError(f"/activelearning/uncertainty returned {nxt!r}, expected {ranked[0]!r}")

    _wait_scoring_idle(client, args.train_timeout)  # next_sample starts a (no-op) rescoring
    before_ts = {k: r.get("model_ts") for k, r in records.items()}
    before_task = _last_scoring_id(client)
    passed.append(_train(client, name, model_pt, args))
    passed.append(_check_semi_supervised_finetune(model_pt.parent.parent, set(ranked)))

    def rescored() -> dict | None:
        last = client.call("GET /scoring/", client.scoring_status)
        return last if last.get("id") != before_task and last.get("status") in ("DONE", "ERROR") else None

    t0 = time.monotonic()
    last = wait_until("rescoring after training", rescored, args.train_timeout, interval=3.0)
    if last["status"] != "DONE":
        raise HarnessError(f"rescoring after training ended {last['status']}: {list(last.get('details', []))[-5:]}")
    # the rescoring ran in a subprocess: this request makes the server re-read the datastore file
    nxt = client.call("POST /activelearning/uncertainty", client.next_sample, "uncertainty", {}).get("id")
    records, _ = _scores(client)
    stale = sorted(k for k, r in records.items() if r.get("model_ts") == before_ts.get(k))
    if stale:
        raise HarnessError(f"after training, {stale} still carry the scores of the old weights")
    ranked = _ranked(records)
    if nxt != ranked[0]:
        raise HarnessError(f"/activelearning/uncertainty after rescoring returned {nxt!r}, expected {ranked[0]!r}")
    passed.append(
        f"training started the rescoring (task {last.get('id')}, done {time.monotonic() - t0:.0f} s after it): "
        f"new scores for {sorted(records)}; /activelearning/uncertainty returns their maximum {nxt}"
    )
    return passed


def run_contract(client: Client, name: str, label: str, images: list[Path], model_pt: Path, args) -> list[str]:
    """Run all checks against a ready server.

    Returns:
        One line per passed check.

    Raises:
        HarnessError: on the first failed check.
    """
    passed: list[str] = []
    info = client.call("GET /info/", client.info)
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
        result = _infer(client, name, args.device, image_id="" if upload else src.stem, upload=upload)
        detail = _check_mask(result, image_size(src), f"/infer/ by {mode}")
        passed.append(f"/infer/{name} by {mode} ({src.name}): {detail}")
    passed += _check_extra_models(client, info, views, src, args, "before training")

    first, expected = client.call("POST /activelearning/first", client.next_sample, "first", {}), images[0].stem
    if first.get("id") != expected:
        raise HarnessError(f"/activelearning/first returned {first.get('id')!r}, expected {expected!r}")
    passed.append(f"/activelearning/first returns the first unlabeled image {first['id']}")

    if args.skip_train:
        return passed

    if args.app == "condseg":
        passed += run_active_learning(client, name, images, model_pt, args)
    else:
        passed += _label_and_train(client, name, images, model_pt, args)

    result = _infer(client, name, args.device, image_id=images[1].stem)
    detail = _check_mask(result, image_size(images[1]), "/infer/ after training")
    passed.append(f"/infer/{name} with the fine-tuned weights: {detail}")
    passed += _check_extra_models(client, info, views, images[1], args, "after training")
    return passed


def _label_and_train(client: Client, name: str, images: list[Path], model_pt: Path, args) -> list[str]:
    """The monaibundle app's steps 4 and 5: two final labels, a random next sample, one training epoch."""
    passed: list[str] = []
    # two final labels, one saved 0/1 (what annotation clients send) and one 0/255 (exported image masks)
    labelled = _save_labels(client, images[:2], args.work)
    passed.append(f"PUT /datastore/label stored final labels (0/1 and 0/255 masks) for {labelled}")
    nxt = client.call("POST /activelearning/random", client.next_sample, "random", {}).get("id")
    if nxt in labelled or nxt not in {p.stem for p in images}:
        raise HarnessError(f"/activelearning/random returned {nxt!r}, expected an unlabeled image")
    passed.append(f"/activelearning/random returns an unlabeled image ({nxt})")

    passed.append(_train(client, name, model_pt, args))
    return passed


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bundle", type=Path, default=DEFAULT_BUNDLE, help="bundle folder (default: <repo>/bundle)")
    p.add_argument("--name", default=DEFAULT_NAME, help=f"model name inside MONAI Label (default: {DEFAULT_NAME})")
    p.add_argument("--label", default="polyp", help="expected foreground label name (default: polyp)")
    p.add_argument("--device", default="cpu", help="device string sent with every request (default: cpu)")
    p.add_argument(
        "--app",
        choices=("monaibundle", "condseg"),
        default="monaibundle",
        help="serve with MONAI Label's generic monaibundle sample app (default) or the package's own app "
        "(condseg_monai.apps.monailabel), which adds the uncertainty scoring and strategies; with condseg the "
        "labelling and training steps run as the active-learning scenario",
    )
    p.add_argument("--keep-logs", action="store_true", help="keep the temporary app, studies and server log")
    p.add_argument("--skip-train", action="store_true", help="only check /info/ and /infer/")
    p.add_argument(
        "--uncertainty-name",
        default=DEFAULT_UNCERTAINTY_NAME,
        help=f"model name of the generated uncertainty entry (default: {DEFAULT_UNCERTAINTY_NAME})",
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


def make_condseg_app(bundle: Path, app: Path, name: str, uncertainty_name: str | None, timeout: float = 300.0):
    """Lay out the package's MONAI Label app with its own generator (``python -m condseg_monai.apps.monailabel``)."""
    cmd = [sys.executable, "-m", "condseg_monai.apps.monailabel", "--bundle", str(bundle), "--out", str(app)]
    cmd += ["--name", name] + (["--uncertainty-name", uncertainty_name] if uncertainty_name else ["--no-uncertainty"])
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0 or not (app / "main.py").is_file():
        raise HarnessError(f"app generator failed ({' '.join(cmd)}):\n{proc.stdout}\n{proc.stderr[-4000:]}")


def _copy_bundle(src: Path, dst: Path) -> None:
    # a copy, never a link: training rewrites models/model.pt and must not touch the repository
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__", "eval", "runs", "*.ts"), symlinks=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code (0 PASS, 1 FAIL)."""
    args = _parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="condseg-label-"))
    args.work = work
    app = work / "apps" / args.app
    server: Server | None = None
    passed: list[str] = []
    failure = ""
    t0 = time.monotonic()
    try:
        bundle = app / "model" / args.name
        if args.app == "condseg":
            make_condseg_app(args.bundle, app, args.name, args.uncertainty_name)
            passed.append(f"condseg app laid out by python -m condseg_monai.apps.monailabel in {app}")
        else:
            shutil.copytree(find_sample_app(), app, ignore=shutil.ignore_patterns("__pycache__"))
            _copy_bundle(args.bundle, bundle)
        if ensure_weights(bundle):
            passed.append("models/model.pt missing in the bundle: created from inference.json network_def")
        names = [args.name]
        if args.uncertainty_name:
            out = app / "model" / args.uncertainty_name
            if args.app == "condseg":  # generated with the app; check it the same way
                target = check_uncertainty_entry(bundle, out)
            else:
                target = make_uncertainty_entry(bundle, out)
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
        images = _prepare_studies(work / "studies", 4 if args.app == "condseg" else 3)
        if args.app == "condseg":  # the fourth image is uploaded through the API
            args.upload = Path(shutil.move(str(images.pop()), str(work)))
        server = Server(app, work / "studies", [*names, *args.extra_bundle], work / "server.log", args.conf)
        server.start()
        client = Client(server.url, work / "client", args.request_timeout)
        (work / "client").mkdir()
        server.wait_ready(client, args.start_timeout)
        passed.append(f"server ready after {time.monotonic() - t0:.0f} s")
        passed += run_contract(client, args.name, args.label, images, bundle / "models" / "model.pt", args)
    except (HarnessError, OSError, subprocess.SubprocessError, ValueError) as e:
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
