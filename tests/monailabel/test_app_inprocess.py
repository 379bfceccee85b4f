# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""In-process check of the condseg-monai MONAI Label app's active-learning contract (no server).

The ``uncertainty`` strategy and the ``condseg_uncertainty`` scoring method
(``condseg_monai.apps.monailabel``) on a ``LocalDatastore``: scoring writes a score for every unlabeled image and
skips labeled ones; the strategy returns the highest score, breaks ties by image id, serves images without a
score only after every scored one, never returns a labeled image, and returns nothing when all are labeled.
Needs the MONAI Label environment (``make label-test``); skipped where ``monailabel`` is not importable.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

pytest.importorskip("monailabel.interfaces", reason="MONAI Label is not installed here; run `make label-test`")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from monai.bundle import ConfigParser  # noqa: E402
from monailabel.datastore.local import LocalDatastore  # noqa: E402
from PIL import Image  # noqa: E402

from condseg_monai.apps.monailabel.layout import make_app  # noqa: E402
from condseg_monai.apps.monailabel.lib import (  # noqa: E402
    DEFAULT_SCORE,
    EMBEDDINGS_FILE,
    SCORE_KEY,
    DiverseUncertainty,
    ForegroundRandom,
    SemiSupervisedBundleTrainTask,
    Uncertainty,
    UncertaintyScoring,
)
from condseg_monai.apps.monailabel.lib.scoring import EmbeddingStore, file_signature  # noqa: E402
from condseg_monai.apps.monailabel.lib.strategy import rank_images  # noqa: E402
from condseg_monai.apps.monailabel.lib.trainer import DATALIST_NAME, datastore_unlabeled  # noqa: E402
from condseg_monai.apps.monailabel.main import MyApp, conf_number, served_bundles  # noqa: E402
from condseg_monai.apps.monailabel.selection import select_next  # noqa: E402
from condseg_monai.data import read_datalist, validate_datalist  # noqa: E402
from condseg_monai.metrics import EMBEDDING_DIM  # noqa: E402

__all__: list[str] = []

REPO_ROOT = Path(__file__).resolve().parents[2]
BUNDLE = Path(os.environ.get("CONDSEG_LABEL_BUNDLE", REPO_ROOT / "bundle"))
REQUEST = {"strategy": "uncertainty"}


def _datastore(root: Path, n: int) -> LocalDatastore:
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray((rng.random((40 + 8 * i, 48, 3)) * 255).astype(np.uint8)).save(root / f"img{i}.png")
    return LocalDatastore(str(root), extensions=("*.png", "*.jpg"), auto_reload=False)


def _label(datastore: LocalDatastore, image_id: str, tmp: Path) -> None:
    w, h = Image.open(datastore.get_image_uri(image_id)).size
    mask = tmp / f"{image_id}_mask.png"
    Image.fromarray(np.zeros((h, w), np.uint8)).save(mask)
    datastore.save_label(image_id, str(mask), "final", {})


def _set_score(datastore: LocalDatastore, image_id: str, score) -> None:
    datastore.update_image_info(image_id, {SCORE_KEY: {"score": score}})


def test_rank_images_orders_by_score_then_id_and_puts_unscored_last() -> None:
    assert rank_images({"b": 0.5, "a": 0.5, "c": 0.9, "d": None, "0": None}) == ["c", "a", "b", "0", "d"]


def test_strategy_contract(tmp_path: Path) -> None:
    ds = _datastore(tmp_path / "studies", 5)
    strategy = Uncertainty()
    assert strategy(REQUEST, ds)["id"] == "img0", "nothing scored yet: first unlabeled id"
    for image_id, score in {"img1": 0.2, "img2": 0.7, "img3": 0.7, "img4": float("nan")}.items():
        _set_score(ds, image_id, score)
    first = strategy(REQUEST, ds)
    assert first["id"] == "img2", "highest score, tie with img3 goes to the smaller id"
    assert first[SCORE_KEY]["score"] == 0.7
    _label(ds, "img2", tmp_path)
    assert strategy(REQUEST, ds)["id"] == "img3", "a labeled image is never returned"
    _label(ds, "img3", tmp_path)
    assert strategy(REQUEST, ds)["id"] == "img1", "scored images before unscored (img0) and NaN-scored (img4) ones"
    _label(ds, "img1", tmp_path)
    assert strategy(REQUEST, ds)["id"] == "img0"
    for image_id in ("img0", "img4"):
        _label(ds, image_id, tmp_path)
    assert strategy(REQUEST, ds) is None


def test_strategy_reads_scores_written_by_another_process(tmp_path: Path) -> None:
    """The server's datastore object sees scores a scoring subprocess wrote to the file (no auto reload)."""
    ds = _datastore(tmp_path / "studies", 3)
    other = LocalDatastore(str(tmp_path / "studies"), extensions=("*.png",), auto_reload=False)
    _set_score(other, "img2", 0.9)
    assert Uncertainty()(REQUEST, ds)["id"] == "img2"


@pytest.fixture(scope="module")
def app_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An app folder laid out by ``make_app`` from the bundle (random weights when the bundle has none)."""
    if not (BUNDLE / "configs" / "inference.json").is_file():
        pytest.skip(f"no bundle at {BUNDLE}")
    src = tmp_path_factory.mktemp("bundle") / "bundle"
    shutil.copytree(BUNDLE, src, ignore=shutil.ignore_patterns("__pycache__", "eval", "runs", "*.ts"))
    weights = src / "models" / "model.pt"
    if not weights.is_file():
        parser = ConfigParser()
        parser.read_config(src / "configs" / "inference.json")
        parser["bundle_root"] = str(src)
        weights.parent.mkdir(parents=True, exist_ok=True)
        torch.save(parser.get_parsed_content("network_def", instantiate=True).state_dict(), weights)
    return make_app(tmp_path_factory.mktemp("apps") / "condseg", src)


def test_app_serves_both_entries_and_trains_only_the_segmentation(app_dir: Path, tmp_path: Path) -> None:
    assert (app_dir / "main.py").is_file()
    assert list(served_bundles(app_dir, None)) == ["polyp_condseg_segmentation", "polyp_condseg_uncertainty"]
    app = MyApp(str(app_dir), str(_datastore(tmp_path / "s", 1)._datastore_path), {"preload": "false"})
    info = app.info()
    assert set(info["models"]) == {"polyp_condseg_segmentation", "polyp_condseg_uncertainty"}
    assert list(info["trainers"]) == ["polyp_condseg_segmentation"]
    assert {"diverse_uncertainty", "uncertainty", "foreground_random", "random", "first"} <= set(info["strategies"])
    assert list(info["scoring"]) == [SCORE_KEY]


def test_scoring_scores_every_unlabeled_image_and_the_strategy_picks_the_max(app_dir: Path, tmp_path: Path) -> None:
    ds = _datastore(tmp_path / "studies", 3)
    _label(ds, "img0", tmp_path)
    scoring = UncertaintyScoring(app_dir / "model" / "polyp_condseg_segmentation", device="cpu")
    summary = scoring({"device": "cpu"}, ds)
    assert sorted(summary["scores"]) == ["img1", "img2"], "every unlabeled image, never the labeled img0"
    assert SCORE_KEY not in ds.get_image_info("img0")
    for image_id in ("img1", "img2"):
        record = ds.get_image_info(image_id)[SCORE_KEY]
        assert set(record["scores"]) == {
            "tta_disagreement",
            "tta_dice_disagreement",
            "boundary_entropy",
            "sid_uncertainty",
        }
        assert record["score"] == record["scores"][DEFAULT_SCORE] and np.isfinite(record["score"])
        assert 0.0 <= record["scores"]["sid_uncertainty"] <= 1.0
        # the frame-level decision at the bundle's operating point (none stored: threshold 0.5, min_area 0.001)
        assert record["polyp_present"] == (record["detection_score"] > 0.5)
        assert 0.0 <= record["detection_score"] <= 1.0 and 0.0 <= record["predicted_area"] <= 1.0
    best = rank_images(summary["scores"])[0]
    assert Uncertainty()(REQUEST, ds)["id"] == best
    again = scoring({"device": "cpu"}, ds)
    assert again["executed"] == 0 and again["skipped"] == 2, "unchanged weights: nothing rescored"


def test_scoring_embeds_every_image_once_and_again_only_when_it_changes(app_dir: Path, tmp_path: Path) -> None:
    ds = _datastore(tmp_path / "studies", 3)
    _label(ds, "img0", tmp_path)
    scoring = UncertaintyScoring(app_dir / "model" / "polyp_condseg_segmentation", device="cpu")
    store_path = app_dir / "model" / "polyp_condseg_segmentation" / "models" / EMBEDDINGS_FILE
    store_path.unlink(missing_ok=True)
    summary = scoring({"device": "cpu"}, ds)
    assert summary["embedded"] == 3, "labeled images are embedded too (they cover their cluster)"
    store = EmbeddingStore(store_path).load()
    assert sorted(store.latest()) == ["img0", "img1", "img2"]
    assert all(v.shape == (EMBEDDING_DIM,) and torch.isfinite(v).all() for v in store.latest().values())
    assert scoring({"device": "cpu"}, ds)["embedded"] == 0, "nothing new: nothing embedded"
    # a changed file (new size / mtime) is embedded again, and only it
    path = Path(ds.get_image_uri("img1"))
    before = file_signature(path)
    Image.fromarray(np.full((40, 48, 3), 200, np.uint8)).save(path)
    assert file_signature(path) != before
    assert scoring({"device": "cpu", "force": False}, ds)["embedded"] == 1


def _store(path: Path, vectors: dict[str, list[float]], model_ts: int = 1) -> None:
    store = EmbeddingStore(path)
    for image_id, v in vectors.items():
        store.put(image_id, model_ts, "sig", torch.tensor(v))
    store.save()


def test_diverse_uncertainty_contract(tmp_path: Path) -> None:
    """Picks as select_next does, never a labeled image, a served image covers its cluster, None when done."""
    ds = _datastore(tmp_path / "studies", 5)
    # two tight groups: img0-img2 around (0, 0), img3-img4 around (10, 0)
    vectors = {f"img{i}": [0.1 * i, 0.0] for i in range(3)} | {"img3": [10.0, 0.0], "img4": [10.1, 0.0]}
    store_path = tmp_path / "emb.pt"
    _store(store_path, vectors)
    strategy = DiverseUncertainty(store_path, uncertainty_weight=0.0)
    request = {"strategy": "diverse_uncertainty"}
    ids = sorted(vectors)
    x = torch.tensor([vectors[i] for i in ids])
    none = torch.zeros(len(ids), dtype=torch.bool)
    first = strategy(request, ds)["id"]
    assert first == ids[select_next(x, ~none, none, uncertainty_weight=0.0)]
    assert first in {"img0", "img1", "img2"}, "cold start: a member of the larger group"
    # MONAI Label's endpoint records the serve; the next annotator gets the other group (priorities 3 / 2 < 2 / 1)
    ds.update_image_info(first, {"strategy": {"diverse_uncertainty": {"ts": int(time.time())}}})
    second = strategy(request, ds)["id"]
    assert second in {"img3", "img4"}
    _label(ds, second, tmp_path)
    assert strategy(request, ds)["id"] not in {first, second}
    for i in ids:
        _label(ds, i, tmp_path)
    assert strategy(request, ds) is None


def test_diverse_uncertainty_falls_back_to_the_scores_without_embeddings(tmp_path: Path) -> None:
    ds = _datastore(tmp_path / "studies", 3)
    _set_score(ds, "img1", 0.9)
    _set_score(ds, "img2", 0.1)
    assert DiverseUncertainty(tmp_path / "absent.pt")({"strategy": "diverse_uncertainty"}, ds)["id"] == "img1"
    # embeddings of older weights are not mixed with newer ones
    store = EmbeddingStore(tmp_path / "emb.pt")
    store.put("img0", 1, "s", torch.zeros(2))
    store.put("img2", 2, "s", torch.ones(2))
    assert list(store.latest()) == ["img2"]
    with pytest.raises(ValueError, match="diversity_uncertainty_weight"):
        DiverseUncertainty(tmp_path / "emb.pt", uncertainty_weight=2.0)


def test_foreground_random_picks_only_predicted_polyps(tmp_path: Path) -> None:
    ds = _datastore(tmp_path / "studies", 4)
    strategy = ForegroundRandom(seed=0)
    request = {"strategy": "foreground_random"}
    assert strategy(request, ds)["id"] in {f"img{i}" for i in range(4)}, "nothing scored: every unlabeled image"
    for i, present in enumerate([False, True, False, True]):
        ds.update_image_info(f"img{i}", {SCORE_KEY: {"score": 0.5, "polyp_present": present}})
    assert {strategy(request, ds)["id"] for _ in range(20)} == {"img1", "img3"}
    for i in range(4):
        _label(ds, f"img{i}", tmp_path)
    assert strategy(request, ds) is None


def test_conf_numbers_name_the_key() -> None:
    assert conf_number({"diversity_max_clusters": "7"}, "diversity_max_clusters", 50, int) == 7
    assert conf_number({}, "diversity_uncertainty_weight", 0.5, float) == 0.5
    with pytest.raises(ValueError, match="diversity_max_clusters"):
        conf_number({"diversity_max_clusters": "many"}, "diversity_max_clusters", 50, int)


def _labeled_datastore(root: Path, tmp: Path, n: int, labeled: int) -> LocalDatastore:
    """``n`` 64x80 RGB images, the first ``labeled`` with a final 0/1 mask holding a box."""
    ds = _datastore(root, 0)
    rng = np.random.default_rng(1)
    for i in range(n):
        Image.fromarray((rng.random((64, 80, 3)) * 255).astype(np.uint8)).save(root / f"case{i}.png")
    ds.refresh()
    for i in range(labeled):
        mask = np.zeros((64, 80), np.uint8)
        mask[16:48, 20:60] = 1
        Image.fromarray(mask).save(tmp / f"case{i}_mask.png")
        ds.save_label(f"case{i}", str(tmp / f"case{i}_mask.png"), "final", {})
    return ds


def test_finetune_overrides_add_the_unlabeled_images(app_dir: Path, tmp_path: Path) -> None:
    """The overrides a fine-tune gets: a checked datalist with the datastore's unlabeled images, the semi-supervised
    mode with the EMA warm-up, and the request's max_epochs as the bundle's setting."""
    ds = _labeled_datastore(tmp_path / "studies", tmp_path, n=4, labeled=2)
    bundle = app_dir / "model" / "polyp_condseg_segmentation"
    task = SemiSupervisedBundleTrainTask(str(bundle), {"ema_warmup_iters": "7"})
    labeled = [{"image": ds.get_image_uri(i), "label": ds.get_label_uri(i, "final")} for i in ("case0", "case1")]
    task._unlabeled = datastore_unlabeled(ds)
    overrides = task._update_overrides(
        {"train#trainer#max_epochs": 3, "train#dataset#data": labeled[:1], "validate#dataset#data": labeled[1:]}
    )
    assert overrides["semi_supervised"] is True and overrides["max_epochs"] == 3
    # the labeled lists are read back from the checked datalist, not injected past the bundle's check
    assert "train#dataset#data" not in overrides and "validate#dataset#data" not in overrides
    assert overrides["train#ema#warmup_iters"] == 7 and overrides["train#ema#momentum_warmup"] == 0.5
    written = read_datalist(overrides["datalist"])
    assert [e.image for e in written.unlabeled] == [ds.get_image_uri("case2"), ds.get_image_uri("case3")]
    assert [e.image for e in written.training] == [labeled[0]["image"]]
    assert [e.image for e in written.validation] == [labeled[1]["image"]]
    assert validate_datalist(overrides["datalist"], require_unlabeled=True) is None  # the bundle's own check passes

    supervised = SemiSupervisedBundleTrainTask(str(bundle), {"semi_supervised": "false"})
    overrides = supervised._update_overrides({"train#trainer#max_epochs": 1, "train#dataset#data": labeled})
    assert "semi_supervised" not in overrides and "train#ema#warmup_iters" not in overrides
    with pytest.raises(ValueError, match="ema_warmup_iters"):
        SemiSupervisedBundleTrainTask(str(bundle), {"ema_warmup_iters": "-1"})


def test_finetune_is_semi_supervised_and_rewrites_the_weights(app_dir: Path, tmp_path: Path) -> None:
    """One real fine-tune epoch through the app's trainer: the teacher exists (semi-supervised Stage 2), model.pt
    is rewritten with it."""
    ds = _labeled_datastore(tmp_path / "studies", tmp_path, n=4, labeled=2)
    bundle = app_dir / "model" / "polyp_condseg_segmentation"
    app = MyApp(str(app_dir), str(tmp_path / "studies"), {"preload": "false"})
    task = app._trainers["polyp_condseg_segmentation"]
    assert isinstance(task, SemiSupervisedBundleTrainTask)
    weights = bundle / "models" / "model.pt"
    before = weights.read_bytes()
    request = {"model": "polyp_condseg_segmentation", "max_epochs": 1, "val_split": 0.5, "device": "cpu"}
    task({**request, "multi_gpu": False, "tracking": "None"}, ds)
    assert weights.read_bytes() != before
    latest = torch.load(bundle / "runs" / "finetune" / "latest.pt", map_location="cpu", weights_only=True)
    assert "teacher" in latest, "the fine-tune did not run the mean teacher"
    written = read_datalist(bundle / "runs" / "finetune" / DATALIST_NAME)
    assert len(written.unlabeled) == 2 and len(written.training) + len(written.validation) == 2


def test_the_server_harness_names_what_the_app_writes() -> None:
    """run_server_test.py keeps its own copies of the app's names (it does not import the package)."""
    import run_server_test

    assert run_server_test.SCORE_KEY == SCORE_KEY
    assert run_server_test.EMBEDDINGS_FILE == EMBEDDINGS_FILE
    assert run_server_test.FINETUNE_DATALIST == DATALIST_NAME


def test_finetune_names_a_bad_mask_before_training(app_dir: Path, tmp_path: Path) -> None:
    """Also without unlabeled images (supervised fine-tune), a datastore mask of the wrong size stops the run
    before the first epoch, naming the file, and the weights stay as they were."""
    ds = _labeled_datastore(tmp_path / "studies", tmp_path, n=2, labeled=2)
    bad = tmp_path / "case1_bad.png"
    Image.fromarray(np.ones((10, 12), np.uint8)).save(bad)
    ds.save_label("case1", str(bad), "final", {})
    bundle = app_dir / "model" / "polyp_condseg_segmentation"
    task = SemiSupervisedBundleTrainTask(str(bundle), {"semi_supervised": "false"})
    weights = bundle / "models" / "model.pt"
    before = weights.read_bytes()
    request = {"model": "polyp_condseg_segmentation", "max_epochs": 1, "val_split": 0.5, "device": "cpu"}
    with pytest.raises(Exception) as info:
        task({**request, "multi_gpu": False, "tracking": "None"}, ds)
    messages = []
    error: BaseException | None = info.value
    while error is not None:  # MONAI's config parser wraps the datalist check's ValueError
        messages.append(str(error))
        error = error.__cause__ or error.__context__
    text = "\n".join(messages)
    assert f"{DATALIST_NAME}' has 1 error(s)" in text, text[-2000:]  # the bundle's datalist check, not a crash later
    assert Path(ds.get_label_uri("case1", "final")).name in text
    assert weights.read_bytes() == before
