"""BTAD and VisA data sets as they are downloaded, on small copies made here
(the study this project started from benchmarks on MVTec AD, BTAD and VisA)."""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np
import pytest

from inspection_core.data.dataset import DatasetLayoutError, load_masks, scan_dataset
from inspection_core.selection import calibration_samples


def _write(path: Path, value: int, mask: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if mask:
        img = np.zeros((24, 32), np.uint8)  # the images' size
        img[4:12, 4:12] = value  # VisA numbers its regions (1, 2, …); BTAD writes 255
    else:
        rng = np.random.default_rng(value)
        img = rng.integers(0, 255, (24, 32, 3), dtype=np.uint8)
    assert cv2.imwrite(str(path), img)
    return path


def make_btad(root: Path, product: str = "01", ext: str = ".bmp") -> Path:
    """A BTAD product folder: train/ok, test/ok, test/ko, ground_truth/ko (masks named like the images)."""
    d = root / product
    for i in range(5):
        _write(d / "train" / "ok" / f"{i:04d}{ext}", i)
    for i in range(2):
        _write(d / "test" / "ok" / f"{i:04d}{ext}", 10 + i)
    for i in range(3):
        _write(d / "test" / "ko" / f"{i:04d}{ext}", 20 + i)
        _write(d / "ground_truth" / "ko" / f"{i:04d}.png", 255, mask=True)
    return d


def make_visa(root: Path, objects: tuple[str, ...] = ("candle", "pcb1"), csv_file: bool = True) -> Path:
    """VisA's download: <object>/Data/Images/{Normal,Anomaly}/*.JPG, Data/Masks/Anomaly/*.png, split_csv/1cls.csv."""
    rows = []
    for obj in objects:
        d = root / obj / "Data"
        for i in range(6):
            rel = f"{obj}/Data/Images/Normal/{i:04d}.JPG"
            _write(root / rel, i)
            rows.append([obj, "train" if i < 4 else "test", "normal", rel, ""])
        for i in range(3):
            rel, mrel = f"{obj}/Data/Images/Anomaly/{i:03d}.JPG", f"{obj}/Data/Masks/Anomaly/{i:03d}.png"
            _write(root / rel, 30 + i)
            _write(root / mrel, 1 + i, mask=True)
            rows.append([obj, "test", "anomaly", rel, mrel])
        (d / "image_anno.csv").write_text("image,label,mask\n")
    if csv_file:
        (root / "split_csv").mkdir(parents=True)
        with (root / "split_csv" / "1cls.csv").open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["object", "split", "label", "image", "mask"])
            w.writerows(rows)
    return root


def test_btad_product_as_downloaded(tmp_path: Path) -> None:
    index = scan_dataset(make_btad(tmp_path / "BTech_Dataset_transformed"))
    s = index.summary()
    assert (index.layout, s["n_train"], s["n_test_good"], s["n_test_defect"]) == ("btad", 5, 2, 3)
    assert s["defect_types"] == {"ko": 3} and s["n_masks"] == 3 and index.fixed_split and index.channels == 3
    defects = [x for x in index.test if x.label == 1]
    assert all(x.mask_path is not None and x.mask_path.stem == x.path.stem for x in defects)
    assert load_masks(defects, 16).any(axis=(1, 2)).all()
    # the split came with the data: a bundle trained elsewhere calibrates on the test split only
    assert calibration_samples({}, index).description == "test split"


def test_the_downloaded_top_folder_names_its_products(tmp_path: Path) -> None:
    top = tmp_path / "BTech_Dataset_transformed"
    make_btad(top, "01")
    make_btad(top, "02", ext=".png")
    with pytest.raises(DatasetLayoutError, match=r"several BTAD products \(01, 02\).*BTech_Dataset_transformed/01"):
        scan_dataset(top)
    visa = make_visa(tmp_path / "VisA_20220922")
    with pytest.raises(DatasetLayoutError, match=r"several VisA objects \(candle, pcb1\)"):
        scan_dataset(visa)


def test_visa_object_uses_the_published_split(tmp_path: Path) -> None:
    root = make_visa(tmp_path / "VisA_20220922")
    index = scan_dataset(root / "candle")
    s = index.summary()
    assert (index.layout, s["n_train"], s["n_test_good"], s["n_test_defect"]) == ("visa", 4, 2, 3)
    assert all("candle" in x.path.parts for x in (*index.train, *index.test))  # pcb1's rows are not candle's
    assert [x.path.name for x in index.train] == ["0000.JPG", "0001.JPG", "0002.JPG", "0003.JPG"]
    defects = [x for x in index.test if x.label == 1]
    assert s["n_masks"] == 3 and all(x.defect_type == "anomaly" for x in defects)
    assert load_masks(defects, 16).any(axis=(1, 2)).all()  # region numbers 1, 2, 3 count as defective pixels
    assert index.fixed_split


def test_visa_object_without_its_split_file_gets_a_seeded_split(tmp_path: Path) -> None:
    root = make_visa(tmp_path / "visa", objects=("capsules",), csv_file=False)
    index = scan_dataset(root / "capsules", seed=0)
    s = index.summary()
    assert index.layout == "visa_seeded" and not index.fixed_split
    assert (s["n_train"], s["n_test_good"], s["n_test_defect"], s["n_masks"]) == (4, 2, 3, 3)
    assert [x.path for x in scan_dataset(root / "capsules", seed=0).train] == [x.path for x in index.train]


def test_visa_split_file_with_other_columns_is_refused(tmp_path: Path) -> None:
    root = make_visa(tmp_path / "visa", objects=("candle",))
    (root / "split_csv" / "1cls.csv").write_text("object,split,image\ncandle,train,x.JPG\n")
    with pytest.raises(DatasetLayoutError, match="lacks the column"):
        scan_dataset(root / "candle")
