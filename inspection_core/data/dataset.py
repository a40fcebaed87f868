"""Folder data sets: finding the images and loading them in model geometry.

Two layouts are understood:

* MVTec AD: ``train/good/*``, ``test/good/*``, ``test/<defect_type>/*`` and
  optional ``ground_truth/<defect_type>/<name>_mask.png``. ``test`` may be
  absent (a train-only set can still be trained on).
* good/defect: ``good/*`` plus ``defect/*`` and/or ``bad/*``. A seeded 70 % of
  the good images is used for training; the other good images and all
  defective ones form the test set.

The BTAD and VisA layouts, as downloaded, are read by :mod:`.layouts`.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..frame_check import FrameStats, frame_stats
from ..progress import CancelToken
from .image_header import probe_file
from .images import ImageReadError, list_images, read_image
from . import layouts
from .preprocess import Preprocessing, normalize, prepare_mask, to_geometry
from .samples import TRAIN_FRACTION_GOOD_DEFECT, DatasetLayoutError, Sample

log = logging.getLogger(__name__)

EXPECTED_LAYOUT = (
    "expected an MVTec AD layout (train/good/*.png, test/good, test/<defect_type>, "
    "optional ground_truth/<defect_type>/<name>_mask.png), a good/ + defect/ pair of folders, "
    "a BTAD product (train/ok, test/ok, test/ko) or a VisA object (Data/Images/Normal, Data/Images/Anomaly)"
)
GOOD = "good"
DEFECT_FOLDERS = ("defect", "bad")
_LOAD_WORKERS = max(2, min(4, os.cpu_count() or 2))


@dataclass
class DatasetIndex:
    """The files of a data set, split into train and test (no pixels loaded)."""

    root: Path
    layout: str  # "mvtec", "good_defect", "btad", "visa" (its published split) or "visa_seeded"
    train: list[Sample]
    test: list[Sample]
    channels: int
    notes: list[str] = field(default_factory=list)  # what a user should know (e.g. gray and colour mixed)

    @property
    def fixed_split(self) -> bool:
        """Whether the data came with its train/test split (MVTec, BTAD, VisA's
        csv), rather than one drawn with a seed (good/defect)."""
        return self.layout in layouts.FIXED_SPLIT_LAYOUTS

    def summary(self) -> dict[str, Any]:
        """Counts for reports and the bundle manifest."""
        defects = Counter(s.defect_type for s in self.test if s.label == 1)
        return {
            "layout": self.layout,
            "n_train": len(self.train),
            "n_test_good": sum(1 for s in self.test if s.label == 0),
            "n_test_defect": sum(1 for s in self.test if s.label == 1),
            "defect_types": dict(sorted(defects.items())),
            "n_masks": sum(1 for s in self.test if s.mask_path is not None),
            "channels": self.channels,
            **({"notes": list(self.notes)} if self.notes else {}),
        }

    def fingerprint(self) -> str:
        """sha256 over relative paths, sizes and modification times of every
        file (images and masks): changes when the data set changes."""
        paths: set[Path] = set()
        for s in (*self.train, *self.test):
            paths.add(s.path)
            if s.mask_path is not None:
                paths.add(s.mask_path)
        rows = []
        for p in paths:
            try:
                rel = p.relative_to(self.root).as_posix()
            except ValueError:
                rel = p.as_posix()
            try:
                st = p.stat()
                rows.append(f"{rel}\t{st.st_size}\t{st.st_mtime_ns}")
            except OSError:
                rows.append(f"{rel}\tmissing")
        h = hashlib.sha256()
        for row in sorted(rows):
            h.update(row.encode("utf-8"))
            h.update(b"\n")
        return h.hexdigest()


@dataclass
class LoadedImages:
    """Images in model geometry, the samples they came from, and what was skipped."""

    images: np.ndarray  # uint8 (N, S, S, C)
    samples: list[Sample]
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    shapes: list[tuple[int, int]] = field(default_factory=list)  # (height, width) of each image as read
    #: each image's frame statistics before normalisation (:mod:`inspection_core.frame_check`)
    frames: list[FrameStats] = field(default_factory=list)


# ---------------------------------------------------------------- scanning


def _subdirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _mask_lookup(gt_dir: Path) -> dict[str, Path]:
    """stem -> mask file in one ground_truth/<type> folder; ``<stem>_mask.*`` wins over ``<stem>.*``."""
    found: dict[str, Path] = {}
    plain: dict[str, Path] = {}
    for p in list_images(gt_dir):
        if p.stem.endswith("_mask"):
            found.setdefault(p.stem[: -len("_mask")], p)
        else:
            plain.setdefault(p.stem, p)
    for stem, p in plain.items():
        found.setdefault(stem, p)
    return found


def _scan_mvtec(root: Path) -> tuple[list[Sample], list[Sample]]:
    train_dir = root / "train" / GOOD
    train = [Sample(p, 0, GOOD) for p in list_images(train_dir)]
    if not train:
        raise DatasetLayoutError(f"no training images in '{train_dir}': {EXPECTED_LAYOUT}")
    test: list[Sample] = []
    test_dir = root / "test"
    if test_dir.is_dir():
        gt_root = root / "ground_truth"
        for sub in sorted(_subdirs(test_dir), key=lambda d: (d.name != GOOD, d.name)):
            if sub.name == GOOD:
                test.extend(Sample(p, 0, GOOD) for p in list_images(sub))
                continue
            masks = _mask_lookup(gt_root / sub.name)
            test.extend(Sample(p, 1, sub.name, masks.get(p.stem)) for p in list_images(sub))
    return train, test


def _scan_good_defect(root: Path, seed: int) -> tuple[list[Sample], list[Sample]]:
    good = list_images(root / GOOD)
    if not good:
        raise DatasetLayoutError(f"no good images in '{root / GOOD}': {EXPECTED_LAYOUT}")
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(good))
    n_train = max(1, int(round(TRAIN_FRACTION_GOOD_DEFECT * len(good))))
    train_idx = set(order[:n_train].tolist())
    train = [Sample(p, 0, GOOD) for i, p in enumerate(good) if i in train_idx]
    test = [Sample(p, 0, GOOD) for i, p in enumerate(good) if i not in train_idx]
    for name in DEFECT_FOLDERS:
        test.extend(Sample(p, 1, name) for p in list_images(root / name))
    return train, test


def _unread_folders(root: Path) -> list[str]:
    """A note for the folders of images beside good/ that the good/ + defect/
    layout does not read (an MVTec test folder with test/crack, test/scratch
    given as the data set, say): said, not silently left out."""
    unread = [d.name for d in _subdirs(root) if d.name not in (GOOD, *DEFECT_FOLDERS) and list_images(d)]
    if not unread:
        return []
    note = (f"folder(s) {', '.join(repr(n) for n in unread)} beside good/ were not read: in this layout defective "
            f"images go in {' or '.join(f'{n}/' for n in DEFECT_FOLDERS)} (for an MVTec category, give the folder "
            "that holds train/ and test/)")
    log.warning("%s: %s", root, note)
    return [note]


def _is_gray(img: np.ndarray) -> bool:
    if img.ndim == 2:
        return True
    b, g, r = img[:, :, 0], img[:, :, 1], img[:, :, 2]
    return bool(np.array_equal(b, g) and np.array_equal(g, r))


def _detect_channels(root: Path, train: Sequence[Sample]) -> tuple[int, list[str]]:
    """1 when every training image is gray, else 3; and a note when they mix.

    Every file's header says whether it stores gray or colour
    (:mod:`.image_header`, no decoding); only files stored in colour (or of
    unknown kind) are decoded, until one holds real colour (a colour file whose
    three planes are equal counts as gray, as always). Colour wins a mix:
    gray images are repeated into three channels without loss, while colour
    made gray would lose what tells parts apart. A mix is logged and noted.
    """
    gray: list[Sample] = []
    stored_colour: list[Sample] = []
    for s in train:
        header = probe_file(s.path)
        (gray if header is not None and header.channels == 1 else stored_colour).append(s)
    errors: list[str] = []
    decoded = 0
    colour: Sample | None = None
    for s in stored_colour or gray:
        try:
            img = read_image(s.path)
        except ImageReadError as exc:
            errors.append(str(exc))
            continue
        decoded += 1
        if not stored_colour:
            break  # all stored gray: one readable file is enough
        if _is_gray(img):
            gray.append(s)
        else:
            colour = s
            break
    if decoded == 0 and not (gray and stored_colour):
        detail = f" (first error: {errors[0]})" if errors else ""
        raise DatasetLayoutError(f"none of the training images in '{root}' could be read{detail}")
    if colour is None:
        return 1, []
    if not gray:
        return 3, []
    note = (f"training images mix gray and colour (at least {len(gray)} gray, e.g. '{gray[0].path.name}', and "
            f"colour ones, e.g. '{colour.path.name}'): the model takes colour (3 channels) and each gray image "
            "is repeated into the three channels; train cameras of one kind apart for the best model")
    log.warning("%s: %s", root, note)
    return 3, [note]


def scan_dataset(root: str | os.PathLike[str], seed: int = 0) -> DatasetIndex:
    """Index a data set folder (MVTec AD or good/defect layout) without loading pixels.

    Raises ``DatasetLayoutError`` naming the folder and the expected layout.
    """
    root = Path(root).expanduser()
    if not root.exists():
        raise DatasetLayoutError(f"data set folder '{root}' does not exist")
    if not root.is_dir():
        raise DatasetLayoutError(f"'{root}' is not a folder: {EXPECTED_LAYOUT}")
    if not any(p for p in root.iterdir() if not p.name.startswith(".")):
        raise DatasetLayoutError(f"data set folder '{root}' is empty: {EXPECTED_LAYOUT}")
    other = layouts.scan_layout(root, seed)
    if other is not None:
        layout, train, test = other
    elif (root / "train").is_dir():
        layout = "mvtec"
        train, test = _scan_mvtec(root)
    elif (root / GOOD).is_dir():
        layout = "good_defect"
        train, test = _scan_good_defect(root, seed)
    else:
        what, names = layouts.categories(root)
        if names:
            raise DatasetLayoutError(f"'{root}' holds several {what} ({', '.join(names)}): choose one of them, "
                                     f"e.g. '{root / names[0]}'")
        loose = list_images(root)
        hint = f" (found {len(loose)} loose images; put them in a good/ folder)" if loose else ""
        raise DatasetLayoutError(f"no training images in '{root}'{hint}: {EXPECTED_LAYOUT}")
    channels, notes = _detect_channels(root, train)
    if layout == "good_defect":
        notes += _unread_folders(root)
    return DatasetIndex(root=root, layout=layout, train=train, test=test, channels=channels, notes=notes)


# ---------------------------------------------------------------- loading


def load_images(
    samples: Sequence[Sample],
    pp: Preprocessing,
    *,
    progress: Callable[[int, int], None] | None = None,
    cancel: CancelToken | None = None,
) -> LoadedImages:
    """Decode and preprocess ``samples`` (thread pool; cv2 releases the GIL).

    An unreadable file is skipped, logged as a warning and listed in
    ``skipped`` as (path, reason). ``progress(done, total)`` is called as
    images finish; ``cancel`` stops the job with ``Cancelled``.
    """
    samples = list(samples)
    n, size, c = len(samples), int(pp.image_size), int(pp.channels)
    out = np.empty((n, size, size, c), dtype=np.uint8)
    shapes: list[tuple[int, int]] = [(0, 0)] * n
    frames: list[FrameStats] = [FrameStats(0.0, 0.0, 0.0)] * n

    def work(i: int) -> str | None:
        if cancel is not None:
            cancel.raise_if_cancelled()
        path = samples[i].path
        try:
            img = read_image(path)
            shapes[i] = (int(img.shape[0]), int(img.shape[1]))
            geometry = to_geometry(img, pp)
            frames[i] = frame_stats(geometry)
            out[i] = normalize(geometry, pp)
        except ImageReadError as exc:
            return exc.reason
        except ValueError as exc:
            return str(exc)
        return None

    kept: list[int] = []
    skipped: list[tuple[Path, str]] = []
    if n:
        with ThreadPoolExecutor(max_workers=min(_LOAD_WORKERS, n)) as pool:
            for i, reason in enumerate(pool.map(work, range(n))):
                if reason is None:
                    kept.append(i)
                else:
                    path = samples[i].path
                    log.warning("skipping image '%s': %s", path, reason)
                    skipped.append((path, reason))
                if progress is not None:
                    progress(i + 1, n)
    images = out if len(kept) == n else np.ascontiguousarray(out[kept])
    return LoadedImages(images=images, samples=[samples[i] for i in kept], skipped=skipped,
                        shapes=[shapes[i] for i in kept], frames=[frames[i] for i in kept])


def load_masks(samples: Sequence[Sample], size: int, *,
               skipped: list[tuple[Path, str]] | None = None) -> np.ndarray:
    """bool (N, S, S) ground truth; all False for good samples and defects
    without a mask.

    A mask is used only when it is as large as its image (the image's header
    is read for its size, EXIF orientation applied; the image is decoded only
    when its header is not understood): a mask of another size is not
    stretched onto the image, it is treated like a mask that cannot be read.
    Such a mask leaves its sample all False like a defect without a mask, is
    logged as a warning naming the mask file and why, and, when ``skipped`` is
    given, is appended to it as (mask path, reason), in sample order: a
    caller should count those and leave their samples out of pixel metrics,
    as defects without a mask (an all-False mask would call the whole defect
    image good).
    """
    samples = list(samples)
    out = np.zeros((len(samples), size, size), dtype=bool)
    problems: list[str | None] = [None] * len(samples)

    def work(i: int) -> None:
        mp = samples[i].mask_path
        if mp is None or samples[i].label == 0:
            return
        try:
            mask = read_image(mp)
            expected = _image_size(samples[i].path)
        except ImageReadError as exc:
            problems[i] = exc.reason if Path(exc.path) == Path(mp) else f"its image cannot be read: {exc}"
            return
        got = (int(mask.shape[1]), int(mask.shape[0]))
        if got != expected:
            problems[i] = (f"{got[0]} × {got[1]} pixels, but its image '{samples[i].path}' is "
                           f"{expected[0]} × {expected[1]}: a mask must match its image's size")
            return
        out[i] = prepare_mask(mask, size)

    if any(s.mask_path is not None for s in samples):
        with ThreadPoolExecutor(max_workers=min(_LOAD_WORKERS, len(samples))) as pool:
            list(pool.map(work, range(len(samples))))
    for i, reason in enumerate(problems):
        if reason is None:
            continue
        mp = samples[i].mask_path
        assert mp is not None
        log.warning("ignoring mask '%s': %s", mp, reason)
        if skipped is not None:
            skipped.append((mp, reason))
    return out


def _image_size(path: Path) -> tuple[int, int]:
    """(width, height) of an image as read, from its header when understood."""
    header = probe_file(path)
    if header is not None:
        return header.upright_size
    img = read_image(path)
    return int(img.shape[1]), int(img.shape[0])


__all__ = [
    "DatasetIndex",
    "DatasetLayoutError",
    "EXPECTED_LAYOUT",
    "LoadedImages",
    "Sample",
    "load_images",
    "load_masks",
    "scan_dataset",
]
