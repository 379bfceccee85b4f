# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""Colonoscopy as it is: per-frame sensitivity / specificity of Kvasir-trained models on another hospital's frames
(CVC-ClinicDB) and on polyp-free frames, the effect of negatives in training, and of the temporal filter.

Everything runs the product's own commands (``python -m monai.bundle run training | evaluating | calibrate |
inference`` with the bundle's configs), as a user would; this script only writes the datalists, launches the
commands, and collects the JSON/CSV reports they write into ``<out>/results.json`` and ``<out>/results.md``.

Data (``--data``, default ``../shared/data``): ``kvasir-seg/`` (880 pairs: a seeded 800/80 training/validation
split, ``prepare folder --val-count 80 --seed 0``), ``cvc-clinicdb/`` (612 frames of another hospital, all
evaluated, in id order = video order) and ``polyp-free/`` (1000 frames without polyps, split once with
``random.Random(0)``: 400 training negatives + 100 validation negatives (the pool of ``--negatives-dir``), 500
held-out test frames never used for training or selection).

Arms (``train``; each a two-stage bundle run at ``--size`` px, the same seed, batch 8, Stage 1 300 iterations and
Stage 2 600 iterations):

- ``sup``: 800 labeled Kvasir pairs (3 + 6 epochs of 100 iterations);
- ``semi``: 80 labeled + 720 unlabeled (``--labeled-fraction 0.1``, ``configs/semi_supervised.json`` as shipped;
  30 + 60 epochs of 10 iterations);
- ``sup_neg``: ``sup`` plus the 400 training negatives (``prepare --negatives-dir``, the default
  ``negatives_per_batch`` = their natural share; 2 + 4 epochs of 150 iterations).

``evaluate``: each arm's best checkpoint (the bundle's validation selection) is evaluated on the Kvasir validation
split, CVC-ClinicDB and the 500 held-out polyp-free frames at the default operating point; then ``calibrate``
(target specificity ``--target-specificity``) on the calibration set (the 80 Kvasir validation images + the 100
validation negatives: nothing of the reported sets), and CVC-ClinicDB / polyp-free again at the chosen point.
The ROC of the image-level score is read from the per-image CSVs (CVC frames as positives, polyp-free as negatives).

``temporal``: the temporal filter (:func:`condseg_monai.inference.video.temporal_filter`) on CVC-ClinicDB played
as one video in id order and on the polyp-free test frames played as a video, through the bundle's video
inference (``--input_path <video>``): false-alarm frames removed vs polyp frames lost, per persistence ``k``.

Usage::

    python bench/colonoscopy.py data --out runs/colonoscopy
    python bench/colonoscopy.py train --out runs/colonoscopy --arms sup semi sup_neg   # resumable: done arms skip
    python bench/colonoscopy.py evaluate --out runs/colonoscopy
    python bench/colonoscopy.py temporal --out runs/colonoscopy
    python bench/colonoscopy.py report --out runs/colonoscopy
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import harness  # bench/ is sys.path[0] when run as a script

REPO = harness.REPO
# iterations of Stage 1 / Stage 2 and the validation interval (the epochs of the first run: 3 + 6 x 100 iterations,
# 30 + 60 x 10 validated every second, 2 + 4 x 150)
ARMS: dict[str, dict[str, Any]] = {
    "sup": {"datalist": "kvasir_full.json", "iterations": (300, 600), "eval_every": 100, "configs": []},
    "semi": {
        "datalist": "kvasir_semi.json",
        "iterations": (300, 600),
        "eval_every": 20,
        "configs": [str(REPO / "configs" / "semi_supervised.json")],
    },
    "sup_neg": {"datalist": "kvasir_neg.json", "iterations": (300, 600), "eval_every": 150, "configs": []},
}
EVAL_SETS = {
    "kvasir_val": ("kvasir_full.json", "validation"),
    "cvc": ("cvc.json", "test"),
    "polyp_free": ("polyp_free_test.json", "test"),
}
ROC_SPECIFICITIES = (0.8, 0.9, 0.95, 0.99)
PERSISTENCE = (1, 2, 3, 6)


def _pairs(folder: Path) -> list[dict[str, str]]:
    ids = sorted((p.stem for p in (folder / "images").glob("*.jpg")), key=lambda s: (len(s), s))
    return [{"image": str(folder / "images" / f"{i}.jpg"), "label": str(folder / "masks" / f"{i}.jpg")} for i in ids]


def make_data(data: Path, out: Path, seed: int = 0, val_count: int = 80, pool_size: int = 500) -> None:
    """Write every datalist of the benchmark into ``out`` (the product's ``prepare`` where it applies).

    Args:
        data: folder holding ``kvasir-seg/``, ``cvc-clinicdb/`` and ``polyp-free/``.
        out: output folder.
        seed: seed of the splits.
        val_count: Kvasir-SEG validation images.
        pool_size: polyp-free frames handed to ``prepare --negatives-dir`` (the rest is the held-out test set).
    """
    from condseg_monai.data import Datalist, write_datalist

    out.mkdir(parents=True, exist_ok=True)
    prep = [sys.executable, "-m", "condseg_monai.data", "prepare", "folder", "--root", str(data / "kvasir-seg")]
    common = ["--val-count", str(val_count), "--seed", str(seed), "--absolute"]
    harness.run_command([*prep, "--out", str(out / "kvasir_full.json"), *common], out / "logs" / "prepare_full.log")
    harness.run_command(
        [*prep, "--out", str(out / "kvasir_semi.json"), *common, "--labeled-fraction", "0.1"],
        out / "logs" / "prepare_semi.log",
    )
    free = _pairs(data / "polyp-free")
    order = list(range(len(free)))
    random.Random(seed).shuffle(order)
    pool, test = sorted(order[:pool_size]), sorted(order[pool_size:])
    pool_dir = out / "negatives_pool"  # the 500 frames a hospital would hand over as "clean frames"
    shutil.rmtree(pool_dir, ignore_errors=True)
    pool_dir.mkdir()
    for i in pool:
        src = Path(free[i]["image"])
        (pool_dir / src.name).symlink_to(src)
    harness.run_command(
        [*prep, "--out", str(out / "kvasir_neg.json"), *common, "--negatives-dir", str(pool_dir)],
        out / "logs" / "prepare_neg.log",
    )
    write_datalist(Datalist(name="cvc-clinicdb", test=_pairs(data / "cvc-clinicdb")), out / "cvc.json")
    write_datalist(Datalist(name="polyp-free", test=[free[i] for i in test]), out / "polyp_free_test.json")
    # calibration: the Kvasir validation images + the validation negatives of kvasir_neg.json
    full = json.loads((out / "kvasir_full.json").read_text())
    neg = json.loads((out / "kvasir_neg.json").read_text())
    negatives = [e for e in neg["validation"] if e.get("negative")]
    calib = Datalist(name="calibration", validation=full["validation"] + negatives)
    write_datalist(calib, out / "calibration.json")
    print(f"datalists in {out}: calibration {len(full['validation'])} polyp + {len(negatives)} polyp-free frames")


def train(out: Path, arms: Sequence[str], size: int, seed: int) -> None:
    """Train each arm with the bundle (:func:`harness.train`: finished stages are skipped)."""
    for arm in arms:
        spec = ARMS[arm]
        stage1, stage2 = spec["iterations"]
        train_spec = harness.TrainSpec(
            iterations=stage2,
            stage1_iterations=stage1,
            eval_every=spec["eval_every"],
            image_size=size,
            batch_size=8,
            seed=seed,
            configs=spec["configs"],
        )
        print(f"{arm}: training ...", flush=True)
        harness.train(train_spec, out / spec["datalist"], out / arm)


def _evaluate(out: Path, ckpt: Path, datalist: str, split: str, dest: Path, size: int, extra=None) -> dict:
    return harness.evaluate(ckpt, out / datalist, split, dest, size, overrides=extra)


def evaluate(out: Path, arms: Sequence[str], size: int, target_specificity: float) -> None:
    """Default-point and calibrated-point evaluations of every trained arm (each report is kept: resumable)."""
    for arm in arms:
        ckpt = out / arm / "stage2" / "model.pt"
        if not ckpt.is_file():
            print(f"{arm}: no model yet ({ckpt}), skipped")
            continue
        for name, (datalist, split) in EVAL_SETS.items():
            print(f"{arm}: {name} at the default operating point", flush=True)
            _evaluate(out, ckpt, datalist, split, out / "eval" / arm / "default" / name, size, {"min_area": 0.001})
        calibrated = out / "eval" / arm / "calibrated_model" / "model.pt"
        if not calibrated.with_name("model.operating_point.json").is_file():
            calibrated.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(ckpt, calibrated)
            print(f"{arm}: calibrate", flush=True)
            harness.evaluate(
                calibrated, out / "calibration.json", "validation", out / "eval" / arm / "calibration", size,
                run_id="calibrate", overrides={"target_specificity": target_specificity},
            )  # fmt: skip
        for name in ("cvc", "polyp_free"):
            datalist, split = EVAL_SETS[name]
            print(f"{arm}: {name} at the calibrated operating point", flush=True)
            _evaluate(out, calibrated, datalist, split, out / "eval" / arm / "calibrated" / name, size)


def _per_image(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(f))


def roc_points(out: Path, arm: str) -> dict[str, Any]:
    """AUROC of the image-level score (CVC-ClinicDB frames vs polyp-free test frames) and the sensitivity on
    CVC-ClinicDB at the thresholds giving each specificity of :data:`ROC_SPECIFICITIES` on the polyp-free frames."""
    import torch
    from monai.metrics import compute_roc_auc

    base = out / "eval" / arm / "default"
    pos = sorted(float(r["detection_score"]) for r in _per_image(base / "cvc" / "evaluation_per_image.csv"))
    neg = sorted(float(r["detection_score"]) for r in _per_image(base / "polyp_free" / "evaluation_per_image.csv"))
    auroc = float(
        compute_roc_auc(torch.tensor(pos + neg, dtype=torch.float64), torch.tensor([1] * len(pos) + [0] * len(neg)))
    )
    points = []
    for spec in ROC_SPECIFICITIES:
        t = neg[max(0, min(len(neg) - 1, int(-(-spec * len(neg) // 1)) - 1))]
        points.append(
            {
                "specificity": sum(s <= t for s in neg) / len(neg),
                "threshold": t,
                "sensitivity": sum(s > t for s in pos) / len(pos),
            }
        )
    return {"auroc": auroc, "points": points}


def frames_to_video(frames: Sequence[str], path: Path, fps: float, size: tuple[int, int]) -> Path:
    """Write image files as an H.264 MP4 (near-lossless, CRF 12) of ``size`` (H, W), in the given order."""
    import av
    import numpy as np
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".partial" + path.suffix)
    with av.open(str(tmp), mode="w") as container:
        stream = container.add_stream("libx264", rate=round(fps))
        stream.height, stream.width = size
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "12"}
        for name in frames:
            image = Image.open(name).convert("RGB").resize((size[1], size[0]), Image.BILINEAR)
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.asarray(image), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    os.replace(tmp, path)
    return path


def temporal(out: Path, arms: Sequence[str], size: int, fps: float) -> None:
    """The bundle's video inference on CVC-ClinicDB and polyp-free test frames played as videos, per arm."""
    videos = {}
    for name in ("cvc", "polyp_free"):
        datalist, split = EVAL_SETS[name]
        video = out / "videos" / f"{name}.mp4"
        if not video.is_file():
            frames = [e["image"] for e in json.loads((out / datalist).read_text())[split]]
            frames_to_video(frames, video, fps=fps, size=(288, 384) if name == "cvc" else (256, 256))
        videos[name] = video
    for arm in arms:
        ckpt = out / "eval" / arm / "calibrated_model" / "model.pt"
        if not ckpt.is_file():
            print(f"{arm}: not calibrated yet, skipped")
            continue
        for name, video in videos.items():
            dest = out / "video" / arm / name
            if (dest / f"{video.stem}_frames.csv").is_file():
                continue
            cmd = harness.bundle_command(
                "inference",
                [harness.BUNDLE_CONFIGS / "inference.json"],
                {"input_path": str(video), "ckpt_path": str(ckpt), "image_size": size, "output_dir": str(dest)},
            )
            print(f"{arm}: video inference on {name}", flush=True)
            harness.run_command(cmd, dest / "run.log")


def _temporal_rows(out: Path, arm: str) -> list[dict[str, Any]]:
    """Alarm frames on both videos per filter setting, from the per-frame scores of the bundle's video run (the
    same causal filter the video inference applies, re-run on the recorded scores for each setting)."""
    from condseg_monai.inference.video import alarm_runs, temporal_filter

    op = json.loads((out / "eval" / arm / "calibrated_model" / "model.operating_point.json").read_text())
    rows = []
    for k, n in [(k, 1) for k in PERSISTENCE] + [(1, 3), (3, 3)]:
        row: dict[str, Any] = {"persistence": k, "smoothing": n}
        for name in ("cvc", "polyp_free"):
            frames = _per_image(out / "video" / arm / name / f"{name}_frames.csv")
            scores = [float(f["detection_score"]) if f["readable"] in ("1", "True", "true") else None for f in frames]
            _, alarm = temporal_filter(scores, op["threshold"], persistence=k, smoothing=n)
            row[f"{name}_alarm_frames"] = sum(bool(a) for a in alarm) / len(alarm)
            row[f"{name}_alarm_runs"] = len(alarm_runs(alarm))
        rows.append(row)
    return rows


def report(out: Path, arms: Sequence[str]) -> dict[str, Any]:
    """Collect every summary into results.json and print the markdown tables."""
    results: dict[str, Any] = {"arms": {}}
    for arm in arms:
        r: dict[str, Any] = {}
        for point in ("default", "calibrated"):
            for name in EVAL_SETS:
                path = out / "eval" / arm / point / name / "evaluation_summary.json"
                if path.is_file():
                    s = json.loads(path.read_text())
                    r[f"{point}/{name}"] = {
                        "miou": s["metrics"]["resized"]["iou"],
                        "mdsc": s["metrics"]["resized"]["dice"],
                        "operating_point": s["operating_point"],
                        **s["detection"],
                    }
        op_file = out / "eval" / arm / "calibrated_model" / "model.operating_point.json"
        if op_file.is_file():
            r["operating_point"] = json.loads(op_file.read_text())
        if (out / "eval" / arm / "default" / "polyp_free").is_dir() and (
            out / "eval" / arm / "default" / "cvc"
        ).is_dir():
            r["roc"] = roc_points(out, arm)
        if all((out / "video" / arm / n / f"{n}_frames.csv").is_file() for n in ("cvc", "polyp_free")):
            r["temporal"] = _temporal_rows(out, arm)
        results["arms"][arm] = r
    (out / "results.json").write_text(json.dumps(results, indent=2))
    lines = [_table(results), _roc_table(results), _temporal_table(results)]
    (out / "results.md").write_text("\n\n".join(lines) + "\n")
    print("\n\n".join(lines))
    return results


def _pct(v: Any) -> str:
    return "n/a" if v is None or v != v else f"{100 * v:.1f}"


def _table(results: dict[str, Any]) -> str:
    head = (
        "| arm | point | Kvasir val mIoU | CVC mIoU | CVC sensitivity | CVC hit rate | polyp-free false alarms | "
        "mean false-alarm area | AUROC (CVC vs polyp-free) |\n|---|---|---|---|---|---|---|---|---|"
    )
    rows = []
    for arm, r in results["arms"].items():
        for point in ("default", "calibrated"):
            cvc, free, kv = r.get(f"{point}/cvc"), r.get(f"{point}/polyp_free"), r.get("default/kvasir_val")
            if cvc is None or free is None:
                continue
            op = cvc["operating_point"]
            rows.append(
                f"| {arm} | {point} ({op['threshold']:.3g}, {100 * op['min_area']:.2g} %) | "
                f"{_pct(kv['miou']) if kv else 'n/a'} | {_pct(cvc['miou'])} | {_pct(cvc['sensitivity'])} | "
                f"{_pct(cvc['polyp_hit_rate'])} | {_pct(free['false_alarm_rate'])} | "
                f"{_pct(free['mean_false_alarm_area'])} | {r['roc']['auroc'] if 'roc' in r else float('nan'):.3f} |"
            )
    return "\n".join([head, *rows])


def _roc_table(results: dict[str, Any]) -> str:
    head = "| arm | " + " | ".join(f"CVC sensitivity at specificity {100 * s:g} %" for s in ROC_SPECIFICITIES) + " |"
    rows = [head, "|---|" + "---|" * len(ROC_SPECIFICITIES)]
    for arm, r in results["arms"].items():
        if "roc" in r:
            cells = [f"{_pct(p['sensitivity'])} (t={p['threshold']:.3f})" for p in r["roc"]["points"]]
            rows.append(f"| {arm} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def _temporal_table(results: dict[str, Any]) -> str:
    rows = [
        "| arm | persistence k | smoothing n | CVC frames with an alarm (%) | polyp-free frames with an alarm (%) "
        "| polyp-free alarm episodes |",
        "|---|---|---|---|---|---|",
    ]
    for arm, r in results["arms"].items():
        for t in r.get("temporal", []):
            rows.append(
                f"| {arm} | {t['persistence']} | {t['smoothing']} | {_pct(t['cvc_alarm_frames'])} | "
                f"{_pct(t['polyp_free_alarm_frames'])} | {t['polyp_free_alarm_runs']} |"
            )
    return "\n".join(rows)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("step", choices=("data", "train", "evaluate", "temporal", "report"))
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "colonoscopy")
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS))
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--target-specificity", type=float, default=0.95)
    parser.add_argument("--fps", type=float, default=25.0)
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    out = args.out.resolve()
    if args.step == "data":
        for sub in ("kvasir-seg", "cvc-clinicdb", "polyp-free"):
            if not (args.data / sub / "images").is_dir():
                print(f"data not found: {args.data / sub} (../shared/data beside the repository)", file=sys.stderr)
                return 2
        make_data(args.data.resolve(), out, args.seed)
    elif args.step == "train":
        train(out, args.arms, args.size, args.seed)
    elif args.step == "evaluate":
        evaluate(out, args.arms, args.size, args.target_specificity)
    elif args.step == "temporal":
        temporal(out, args.arms, args.size, args.fps)
    report(out, args.arms)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
