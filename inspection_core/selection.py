"""Which images a bundle is evaluated and calibrated on: the one rule.

``inspector evaluate``, ``inspector calibrate``, the Calibrate view, the
train use case and the demo builder all ask here, so that the same bundle and
folder give the same images, hence the same metrics and the same threshold,
wherever they are computed.

The rule protects against measuring a model on images it was trained on
(they score too well: a threshold chosen on them is too low, metrics too
high). A bundle was *trained on* a folder when the manifest's data
fingerprint matches it or its recorded root is this folder; the folder is
then split with the bundle's training seed, so that a good/defect folder's
seeded 70/30 split is the one training used.

=====================  ==============================================  ===========================
purpose                trained on this folder                          any other folder
=====================  ==============================================  ===========================
evaluation             supervised: its held-out test split;            the test split
                       unsupervised: the test split
calibration ``auto``   as evaluation                                   MVTec, BTAD, VisA: the test split;
                                                                       good/defect: all images
calibration ``test``   as evaluation                                   the test split
calibration ``all``    every image (explicit; the description warns)   every image
=====================  ==============================================  ===========================

A supervised model (the classifier) trains on defective images too, taken
from the test folders, so its *held-out* split is the list of test paths its
manifest records (``training.split.test_paths``), never ``index.test``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Mapping
from typing import Any, Union

from .data.dataset import DatasetIndex, Sample, scan_dataset
from .manifest import DataSummary, Manifest, Split, TrainingSummary, section

#: a bundle's manifest, typed or as a plain (possibly partial) dict
AnyManifest = Union[Manifest, Mapping[str, Any]]

#: what ``split`` may be for a calibration (``inspector calibrate --split``)
CALIBRATION_SPLITS = ("auto", "test", "all")


@dataclass(frozen=True)
class ImageSelection:
    """The images chosen, the data set they come from and a short description
    of the choice (shown by the CLI and the Calibrate view)."""

    samples: list[Sample]
    description: str
    index: DatasetIndex

    @property
    def labels(self) -> list[int]:
        return [s.label for s in self.samples]


def _training(manifest: AnyManifest) -> TrainingSummary:
    return section(manifest, "training", TrainingSummary) or TrainingSummary()


def training_seed(manifest: AnyManifest) -> int:
    """The seed the bundle's training split its data with (0 when not recorded)."""
    return _training(manifest).seed


def open_data(data: DatasetIndex | str | os.PathLike[str], manifest: AnyManifest) -> DatasetIndex:
    """``data`` as a data set index, scanned with the bundle's training seed
    (an index passes through unchanged)."""
    if isinstance(data, DatasetIndex):
        return data
    return scan_dataset(Path(data), seed=training_seed(manifest))


def trained_on(manifest: AnyManifest, index: DatasetIndex) -> bool:
    """Whether the bundle was trained on this folder: same data fingerprint,
    or the recorded training root is this folder."""
    data = _training(manifest).data or DataSummary()
    if isinstance(data.fingerprint, str) and data.fingerprint == index.fingerprint():
        return True
    root = data.root
    if not root:
        return False
    try:
        return Path(str(root)).resolve() == Path(index.root).resolve()
    except OSError:
        return False


def _relative(sample: Sample, root: Path) -> str:
    try:
        return Path(sample.path).relative_to(root).as_posix()
    except ValueError:
        return Path(sample.path).as_posix()


def held_out_samples(manifest: AnyManifest, index: DatasetIndex) -> list[Sample] | None:
    """A supervised bundle's held-out test images in this folder, or None when
    the bundle is unsupervised, records no split or was trained elsewhere."""
    split = _training(manifest).split or Split()
    test_paths = split.test_paths
    if split.kind != "supervised" or test_paths is None or not trained_on(manifest, index):
        return None
    wanted = {Path(p).as_posix() for p in test_paths}
    return [s for s in (*index.train, *index.test) if _relative(s, index.root) in wanted]


def evaluation_samples(manifest: AnyManifest, index: DatasetIndex) -> ImageSelection:
    """The images a bundle is evaluated on (see the module docstring)."""
    held = held_out_samples(manifest, index)
    if held is not None:
        return ImageSelection(held, "held-out test split (the classifier was trained on the rest of this folder)", index)
    return ImageSelection(list(index.test), "test split", index)


def calibration_samples(manifest: AnyManifest, index: DatasetIndex, split: str = "auto") -> ImageSelection:
    """The images a threshold is chosen on (see the module docstring)."""
    if split not in CALIBRATION_SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {', '.join(CALIBRATION_SPLITS)}")
    seen = trained_on(manifest, index)
    if split == "all":
        note = " (including images the bundle was trained on)" if seen else ""
        return ImageSelection([*index.train, *index.test], "all images" + note, index)
    if split == "test" or seen:
        chosen = evaluation_samples(manifest, index)
        if seen and chosen.description == "test split":
            return ImageSelection(chosen.samples, "held-out test split (the bundle was trained on this folder)", index)
        return chosen
    if index.fixed_split:  # MVTec, BTAD, VisA: the split the data came with
        return ImageSelection(list(index.test), "test split", index)
    return ImageSelection([*index.train, *index.test], "all images (the bundle was not trained on this folder)", index)


__all__ = ["CALIBRATION_SPLITS", "ImageSelection", "calibration_samples", "evaluation_samples", "held_out_samples",
           "open_data", "trained_on", "training_seed"]
