# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
"""Tests of `prepare_datalist` on simulated raw layouts of every supported dataset."""

from __future__ import annotations

from pathlib import Path

import pytest

from condseg_monai.data import PrepareError, load_datalist, prepare_datalist, read_datalist
from condseg_monai.data.prepare import file_stem, proportional_counts, read_split_file, seeded_split


def _touch(folder: Path, names) -> None:
    """Empty placeholder files: `prepare` never decodes, so the exact paper counts stay cheap."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).touch()


def _ids(path: Path, split: str) -> list[str]:
    return [file_stem(e["image"]) for e in load_datalist(path, split, required=False)]


def _kvasir_layout(root: Path, n: int) -> list[str]:
    stems = [f"cju{i:05d}" for i in range(n)]
    _touch(root / "images", [f"{s}.jpg" for s in stems])
    _touch(root / "masks", [f"{s}.jpg" for s in stems])
    return stems


def test_kvasir_seg_paper_split_from_files(tmp_path: Path) -> None:
    stems = _kvasir_layout(tmp_path / "raw" / "Kvasir-SEG", 1000)  # wrapped in a Kvasir-SEG/ folder
    (tmp_path / "raw" / "train.txt").write_text("\n".join(stems[:880]) + "\n")
    (tmp_path / "raw" / "val.txt").write_text(
        "\n".join(stems[880:])
    )  # no trailing newline (the official reader drops that entry; docs/deviations.md)
    dl = prepare_datalist("kvasir-seg", tmp_path / "raw", tmp_path / "dl.json")
    assert dl.counts() == {"training": 880, "validation": 120, "test": 120}
    assert _ids(tmp_path / "dl.json", "validation")[-1] == stems[-1]  # the last line was kept
    assert _ids(tmp_path / "dl.json", "test") == _ids(tmp_path / "dl.json", "validation")
    entry = read_datalist(tmp_path / "dl.json").training[0]
    assert entry.image == "raw/Kvasir-SEG/images/cju00000.jpg" and entry.label == "raw/Kvasir-SEG/masks/cju00000.jpg"


def test_kvasir_seg_seeded_split_and_bad_split_files(tmp_path: Path) -> None:
    stems = _kvasir_layout(tmp_path / "raw", 1000)
    a = prepare_datalist("kvasir-seg", tmp_path / "raw", tmp_path / "a.json", seed=0)
    b = prepare_datalist("kvasir-seg", tmp_path / "raw", tmp_path / "b.json", seed=0)
    c = prepare_datalist("kvasir-seg", tmp_path / "raw", tmp_path / "c.json", seed=1)
    assert a.counts() == {"training": 880, "validation": 120, "test": 120}
    assert a.validation == b.validation and a.validation != c.validation
    assert not {e.image for e in a.training} & {e.image for e in a.validation}
    small = tmp_path / "small"
    _kvasir_layout(small, 50)
    assert prepare_datalist("kvasir-seg", small, tmp_path / "s.json").counts()["validation"] == 6  # 12 % of 50
    (tmp_path / "raw" / "train.txt").write_text("\n".join(stems[:10] + ["ghost"]) + "\n")
    (tmp_path / "raw" / "val.txt").write_text(stems[10] + "\n")
    with pytest.raises(PrepareError, match="(?s)train.txt' names ids without an image/mask pair.*ghost"):
        prepare_datalist("kvasir-seg", tmp_path / "raw", tmp_path / "d.json")
    (tmp_path / "raw" / "train.txt").write_text(stems[0] + "\n")
    (tmp_path / "raw" / "val.txt").write_text(stems[0] + "\n")
    with pytest.raises(PrepareError, match="share ids"):
        prepare_datalist("kvasir-seg", tmp_path / "raw", tmp_path / "d.json")


def test_kvasir_sessile_156_20_20(tmp_path: Path) -> None:
    _kvasir_layout(tmp_path / "sessile-main-Kvasir-SEG", 196)
    dl = prepare_datalist("kvasir-sessile", tmp_path, tmp_path / "dl.json", seed=0)
    assert dl.counts() == {"training": 156, "validation": 20, "test": 20}
    all_images = [e.image for s in ("training", "validation", "test") for e in dl.split(s)]
    assert len(set(all_images)) == 196
    _kvasir_layout(tmp_path / "small", 49)
    assert prepare_datalist("kvasir-sessile", tmp_path / "small", tmp_path / "s.json").counts() == {
        "training": 39,
        "validation": 5,
        "test": 5,
    }


def test_glas_85_80(tmp_path: Path) -> None:
    root = tmp_path / "Warwick QU Dataset (Released 2016_07_08)"
    names = [f"train_{i}" for i in range(1, 86)] + [f"testA_{i}" for i in range(1, 61)]
    names += [f"testB_{i}" for i in range(1, 21)]
    _touch(root, [f"{n}.bmp" for n in names] + [f"{n}_anno.bmp" for n in names] + ["Grade.csv"])
    dl = prepare_datalist("glas", tmp_path, tmp_path / "dl.json")
    assert dl.counts() == {"training": 85, "validation": 80, "test": 80}
    assert _ids(tmp_path / "dl.json", "training")[:3] == ["train_1", "train_2", "train_3"]  # natural order
    assert load_datalist(tmp_path / "dl.json", "validation")[0]["label"].endswith("testA_1_anno.bmp")
    (root / "train_1_anno.bmp").unlink()
    with pytest.raises(PrepareError, match="(?s)unpaired GlaS files.*train_1.bmp"):
        prepare_datalist("glas", tmp_path, tmp_path / "dl.json")
    with pytest.warns(UserWarning, match="skipping unpaired"):
        assert prepare_datalist("glas", tmp_path, tmp_path / "dl.json", allow_unpaired=True).counts()["training"] == 84


def _isic_layout(root: Path, folders: dict[str, tuple[str, str]], counts: dict[str, int], gt_suffix: str) -> None:
    k = 0
    for split, (data, gt) in folders.items():
        ids = [f"ISIC_{k + i:07d}" for i in range(counts[split])]
        k += counts[split]
        _touch(root / data, [f"{i}.jpg" for i in ids] + [f"{i}_superpixels.png" for i in ids[:3]])
        _touch(root / gt, [f"{i}{gt_suffix}.png" for i in ids])


def test_isic2016_900_379(tmp_path: Path) -> None:
    folders = {
        "training": ("ISBI2016_ISIC_Part1_Training_Data", "ISBI2016_ISIC_Part1_Training_GroundTruth"),
        "test": ("ISBI2016_ISIC_Part1_Test_Data", "ISBI2016_ISIC_Part1_Test_GroundTruth"),
    }
    _isic_layout(tmp_path, folders, {"training": 900, "test": 379}, "_Segmentation")
    dl = prepare_datalist("isic2016", tmp_path, tmp_path / "dl.json", relative=False)
    assert dl.counts() == {"training": 900, "validation": 379, "test": 379}
    assert Path(dl.training[0].image).is_absolute() and dl.training[0].label.endswith("_Segmentation.png")


def test_isic2017_2000_150_600(tmp_path: Path) -> None:
    folders = {
        "training": ("ISIC-2017_Training_Data", "ISIC-2017_Training_Part1_GroundTruth"),
        "validation": ("ISIC-2017_Validation_Data", "ISIC-2017_Validation_Part1_GroundTruth"),
        "test": ("ISIC-2017_Test_v2_Data", "ISIC-2017_Test_v2_Part1_GroundTruth"),
    }
    _isic_layout(tmp_path / "isic2017", folders, {"training": 2000, "validation": 150, "test": 600}, "_segmentation")
    dl = prepare_datalist("isic2017", tmp_path, tmp_path / "dl.json")  # found inside the single sub-folder
    assert dl.counts() == {"training": 2000, "validation": 150, "test": 600}
    assert not any("superpixels" in e.image for e in dl.training)


def test_folder_matching_and_fractions(tmp_path: Path, pair_writer) -> None:
    for i in range(10):
        pair_writer(tmp_path / "raw", f"case{i}", image_ext=".jpg", mask_name=f"case{i}_mask.png")
    pair_writer(tmp_path / "raw", "extra", mask_name="extra_Segmentation.png")
    pair_writer(tmp_path / "raw", "gland", image_ext=".bmp", mask_name="gland_anno.bmp")
    dl = prepare_datalist("folder", tmp_path / "raw", tmp_path / "dl.json", val_fraction=0.25, test_fraction=0.1)
    assert dl.counts() == {"training": 8, "validation": 3, "test": 1}
    dl = prepare_datalist("folder", tmp_path / "raw", tmp_path / "dl.json", val_count=2, test_count=0)
    assert dl.counts() == {"training": 10, "validation": 2, "test": 0}
    with pytest.raises(PrepareError, match="leave no training images"):
        prepare_datalist("folder", tmp_path / "raw", tmp_path / "dl.json", val_count=12)


def test_unpaired_and_ambiguous(tmp_path: Path, pair_writer) -> None:
    for i in range(4):
        pair_writer(tmp_path, f"c{i}")
    (tmp_path / "images" / "lonely.png").write_bytes((tmp_path / "images" / "c0.png").read_bytes())
    (tmp_path / "masks" / "orphan.png").write_bytes((tmp_path / "masks" / "c0.png").read_bytes())
    with pytest.raises(PrepareError, match="(?s)1 image.*lonely.png.*1 mask.*orphan.png"):
        prepare_datalist("folder", tmp_path, tmp_path / "dl.json", val_count=1)
    with pytest.warns(UserWarning, match="lonely.png"):
        dl = prepare_datalist("folder", tmp_path, tmp_path / "dl.json", val_count=1, allow_unpaired=True)
    assert sum(dl.counts().values()) == 4
    (tmp_path / "images" / "c1.jpg").touch()
    with pytest.raises(PrepareError, match="(?s)share one id.*c1.jpg"):
        prepare_datalist("folder", tmp_path, tmp_path / "dl.json", val_count=1, allow_unpaired=True)


def test_errors_and_helpers(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown dataset"):
        prepare_datalist("cvc", tmp_path, tmp_path / "dl.json")
    with pytest.raises(PrepareError, match="not a folder"):
        prepare_datalist("folder", tmp_path / "missing", tmp_path / "dl.json")
    with pytest.raises(PrepareError, match="does not contain 'images', 'masks'"):
        prepare_datalist("kvasir-seg", tmp_path, tmp_path / "dl.json")
    assert not (tmp_path / "dl.json").exists()
    (tmp_path / "split.txt").write_text("a.jpg\n\n  b  \nc")
    assert read_split_file(tmp_path / "split.txt") == ["a", "b", "c"]
    (tmp_path / "dup.txt").write_text("a\na\n")
    with pytest.raises(PrepareError, match="more than once"):
        read_split_file(tmp_path / "dup.txt")
    assert file_stem("x/y.nii.gz") == "y" and file_stem("a.b.JPG") == "a.b"
    assert proportional_counts(196, (20 / 196, 20 / 196)) == [20, 20]
    rest, val = seeded_split([str(i) for i in range(10)], (3,), seed=0)
    assert len(rest) == 7 and len(val) == 3 and set(rest).isdisjoint(val)
