"""The BTAD and VisA benchmark layouts, read as they are downloaded.

* BTAD (``BTech_Dataset_transformed/<product>/``): ``train/ok/*``,
  ``test/ok/*``, ``test/ko/*`` and ``ground_truth/ko/<name>.png`` masks. "ok"
  images are good, "ko" images defective (defect type ``ko``).
* VisA (``VisA_20220922/<object>/``): ``Data/Images/Normal/*``,
  ``Data/Images/Anomaly/*`` and ``Data/Masks/Anomaly/<name>.png`` (mask pixels
  hold a region number: any non-zero pixel is defective). The split is the
  one VisA publishes, ``split_csv/1cls.csv`` beside the object folders
  (columns ``object,split,label,image,mask``; paths relative to the VisA
  folder; labels ``normal``/``anomaly``). An object folder copied without
  that file gets a seeded 70 % of its normal images for training, as a
  good/defect folder does.

Point ``--data`` at one product or object folder; the downloaded top folder
holds several, and :func:`categories` names them for the error message.
:func:`scan_layout` is what :func:`inspection_core.data.dataset.scan_dataset`
asks first.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import numpy as np

from .samples import TRAIN_FRACTION_GOOD_DEFECT, DatasetLayoutError, Sample
from .images import list_images

log = logging.getLogger(__name__)

VISA_CSV = ("split_csv", "1cls.csv")
VISA_COLUMNS = ("object", "split", "label", "image", "mask")
#: layouts whose train/test split comes with the data (not drawn with a seed)
FIXED_SPLIT_LAYOUTS = frozenset({"mvtec", "btad", "visa"})


def _samples(paths: list[Path], label: int, defect_type: str, masks: dict[str, Path] | None = None) -> list[Sample]:
    return [Sample(p, label, defect_type, None if masks is None else masks.get(p.stem)) for p in paths]


def is_btad(root: Path) -> bool:
    return (root / "train" / "ok").is_dir()


def is_visa(root: Path) -> bool:
    return (root / "Data" / "Images" / "Normal").is_dir()


def scan_btad(root: Path) -> tuple[list[Sample], list[Sample]]:
    """(train, test) samples of one BTAD product folder."""
    train = _samples(list_images(root / "train" / "ok"), 0, "good")
    if not train:
        raise DatasetLayoutError(f"no training images in '{root / 'train' / 'ok'}' (BTAD layout)")
    masks = {p.stem: p for p in list_images(root / "ground_truth" / "ko")}
    test = _samples(list_images(root / "test" / "ok"), 0, "good") + _samples(list_images(root / "test" / "ko"), 1, "ko", masks)
    return train, test


def visa_split_file(root: Path) -> Path | None:
    """VisA's ``split_csv/1cls.csv`` for the object folder ``root``, if present."""
    for base in (root.parent, root):
        p = base.joinpath(*VISA_CSV)
        if p.is_file():
            return p
    return None


def _visa_from_csv(root: Path, split_file: Path) -> tuple[list[Sample], list[Sample]] | None:
    base = split_file.parent.parent
    with split_file.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in VISA_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise DatasetLayoutError(f"'{split_file}' lacks the column(s) {', '.join(missing)} "
                                     f"(VisA's 1cls.csv has {','.join(VISA_COLUMNS)})")
        rows = [r for r in reader if r["object"].strip() == root.name]
    if not rows:
        return None
    train: list[Sample] = []
    test: list[Sample] = []
    absent = 0
    for r in rows:
        image = base / r["image"].strip()
        if not image.is_file():
            absent += 1
            continue
        label = 1 if r["label"].strip().lower() == "anomaly" else 0
        mask = base / r["mask"].strip() if label and (r["mask"] or "").strip() else None
        sample = Sample(image, label, "anomaly" if label else "good", mask if mask is not None and mask.is_file() else None)
        (train if r["split"].strip().lower() == "train" else test).append(sample)
    if absent:
        log.warning("%s: %d image(s) listed in %s are missing and were left out", root, absent, split_file)
    if not train:
        raise DatasetLayoutError(f"'{split_file}' lists no training images for '{root.name}' that exist")
    return train, test


def scan_visa(root: Path, seed: int) -> tuple[str, list[Sample], list[Sample]]:
    """(layout, train, test) of one VisA object folder: "visa" with the
    published split, "visa_seeded" when ``split_csv/1cls.csv`` is not there
    (or does not name this folder)."""
    split_file = visa_split_file(root)
    if split_file is not None:
        found = _visa_from_csv(root, split_file)
        if found is not None:
            return "visa", found[0], found[1]
        log.warning("%s names no object '%s': using a seeded split of the folders", split_file, root.name)
    images = root / "Data" / "Images"
    normal = list_images(images / "Normal")
    if not normal:
        raise DatasetLayoutError(f"no normal images in '{images / 'Normal'}' (VisA layout)")
    order = np.random.default_rng(seed).permutation(len(normal))
    n_train = max(1, int(round(TRAIN_FRACTION_GOOD_DEFECT * len(normal))))
    chosen = set(order[:n_train].tolist())
    masks = {p.stem: p for p in list_images(root / "Data" / "Masks" / "Anomaly")}
    train = _samples([p for i, p in enumerate(normal) if i in chosen], 0, "good")
    test = (_samples([p for i, p in enumerate(normal) if i not in chosen], 0, "good")
            + _samples(list_images(images / "Anomaly"), 1, "anomaly", masks))
    return "visa_seeded", train, test


def scan_layout(root: Path, seed: int) -> tuple[str, list[Sample], list[Sample]] | None:
    """(layout, train, test) when ``root`` is a BTAD product or a VisA object folder, else None."""
    if is_btad(root):
        return ("btad", *scan_btad(root))
    if is_visa(root):
        return scan_visa(root, seed)
    return None


def categories(root: Path) -> tuple[str, list[str]]:
    """(what, names) of the data sets directly under ``root`` (the downloaded
    top folder of MVTec AD, BTAD or VisA), e.g. ("BTAD products", ["01", "02"])."""
    subs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    for what, test in (("MVTec categories", lambda d: (d / "train" / "good").is_dir()),
                       ("BTAD products", is_btad), ("VisA objects", is_visa)):
        names = [d.name for d in subs if test(d)]
        if names:
            return what, names
    return "", []


__all__ = ["FIXED_SPLIT_LAYOUTS", "VISA_COLUMNS", "categories", "is_btad", "is_visa", "scan_btad", "scan_layout",
           "scan_visa", "visa_split_file"]
