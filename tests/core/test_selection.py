"""The one rule for which images evaluate and calibrate a bundle (a table of cases)."""

from __future__ import annotations

from pathlib import Path

import pytest

from inspection_core.data.dataset import DatasetIndex, Sample
from inspection_core.selection import calibration_samples, evaluation_samples, open_data, trained_on, training_seed

ROOT = Path("/data/parts")


def index(layout: str) -> DatasetIndex:
    def s(rel: str, label: int) -> Sample:
        return Sample(ROOT / rel, label, "good" if label == 0 else "scratch")

    train = [s("train/good/0.png", 0), s("train/good/1.png", 0)]
    test = [s("test/good/2.png", 0), s("test/scratch/3.png", 1), s("test/scratch/4.png", 1)]
    return DatasetIndex(ROOT, layout, train, test, channels=3)


def manifest(idx: DatasetIndex | None, supervised: bool = False, seed: int = 0) -> dict:
    data = {"root": "/elsewhere", "fingerprint": "other"} if idx is None else {"root": str(idx.root),
                                                                              "fingerprint": idx.fingerprint()}
    split = ({"kind": "supervised", "seed": seed, "test_paths": ["test/scratch/4.png", "test/good/2.png"]}
             if supervised else {"kind": "unsupervised", "seed": seed})
    return {"training": {"data": data, "split": split, "config": {"seed": seed}}}


def names(selection) -> list[str]:
    return [p.path.name for p in selection.samples]


@pytest.mark.parametrize("layout, trained, supervised, split, expected, says", [
    ("mvtec", False, False, "auto", ["2.png", "3.png", "4.png"], "test split"),
    ("good_defect", False, False, "auto", ["0.png", "1.png", "2.png", "3.png", "4.png"], "not trained"),
    ("good_defect", True, False, "auto", ["2.png", "3.png", "4.png"], "held-out"),
    ("good_defect", False, False, "test", ["2.png", "3.png", "4.png"], "test split"),
    ("mvtec", True, True, "auto", ["2.png", "4.png"], "classifier"),          # never 3.png: it trained on it
    ("mvtec", True, True, "test", ["2.png", "4.png"], "classifier"),
    ("mvtec", False, True, "auto", ["2.png", "3.png", "4.png"], "test split"),  # a foreign folder: nothing seen
    ("mvtec", True, True, "all", ["0.png", "1.png", "2.png", "3.png", "4.png"], "including images"),
])
def test_calibration_images(layout, trained, supervised, split, expected, says) -> None:
    idx = index(layout)
    chosen = calibration_samples(manifest(idx if trained else None, supervised), idx, split)
    assert names(chosen) == expected and says in chosen.description


@pytest.mark.parametrize("trained, supervised, expected", [
    (False, False, ["2.png", "3.png", "4.png"]),
    (True, False, ["2.png", "3.png", "4.png"]),
    (True, True, ["2.png", "4.png"]),
])
def test_evaluation_images(trained, supervised, expected) -> None:
    idx = index("mvtec")
    assert names(evaluation_samples(manifest(idx if trained else None, supervised), idx)) == expected


def test_trained_on_by_fingerprint_or_root_and_the_training_seed(good_defect_data: Path) -> None:
    m = {"training": {"data": {"root": "/moved/away", "fingerprint": "x"}, "config": {"seed": 3}}}
    idx = open_data(good_defect_data, m)
    assert training_seed(m) == 3 and not trained_on(m, idx)
    assert trained_on({"training": {"data": {"fingerprint": idx.fingerprint()}}}, idx)
    assert trained_on({"training": {"data": {"root": str(good_defect_data)}}}, idx)
    from inspection_core.data.dataset import scan_dataset

    assert [s.path for s in idx.test] == [s.path for s in scan_dataset(good_defect_data, seed=3).test]


def test_an_unknown_split_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown split"):
        calibration_samples({}, index("mvtec"), "train")
