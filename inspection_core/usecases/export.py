"""Use case: export a bundle for the operator station, checked on its own images.

Which images the parity check (:mod:`inspection_core.export.parity`) scores:

1. ``images``, when the user names a folder (``inspector export --images DIR``):
   a data set folder (MVTec, good/defect…) gives the images a calibration
   would take from it, with their labels; a plain folder of images gives all
   of them, taken as good parts;
2. else the bundle's calibration images (``calibration.paths`` under
   ``calibration.root``), with the labels they were calibrated with, where
   they can still be read;
3. else the images of the training folder the bundle was not trained on
   (the split recorded in the manifest; :func:`inspection_core.selection.calibration_samples`);
4. else nothing: :class:`~inspection_core.export.writer.ExportFailure` says to
   pass ``--images``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..bundle import Bundle, load_bundle
from ..data.dataset import load_images, scan_dataset
from ..data.images import list_images
from ..data.samples import DatasetLayoutError, Sample
from ..export.writer import ExportFailure, ExportResult, check_format, export_bundle, runtime_versions
from ..selection import calibration_samples, training_seed


@dataclass
class CheckImages:
    """Prepared images (N, S, S, C) uint8, their labels and where they came from."""

    images: np.ndarray
    labels: np.ndarray
    source: str


def _load(samples: list[Sample], bundle: Bundle, what: str) -> CheckImages | None:
    if not samples:
        return None
    loaded = load_images(samples, bundle.preprocessing)
    if len(loaded.images) == 0:
        return None
    skipped = f", {len(loaded.skipped)} unreadable skipped" if loaded.skipped else ""
    return CheckImages(loaded.images, np.array([s.label for s in loaded.samples], int),
                       f"{what}{skipped}")


def _calibration_images(bundle: Bundle) -> CheckImages | None:
    cal = bundle.meta.calibration
    if cal is None or not cal.paths or cal.labels is None or len(cal.labels) != len(cal.paths):
        return None
    root = Path(cal.root) if cal.root else None
    paths = [Path(p) if root is None or Path(p).is_absolute() else root / p for p in cal.paths]
    samples = [Sample(p, int(y), "good" if int(y) == 0 else "defect") for p, y in zip(paths, cal.labels) if p.is_file()]
    return _load(samples, bundle, f"the bundle's calibration images in '{root or paths[0].parent}'")


def _training_folder_images(bundle: Bundle) -> CheckImages | None:
    training = bundle.meta.training
    root = training.data.root if training is not None and training.data is not None else None
    if not root or not Path(str(root)).is_dir():
        return None
    try:
        index = scan_dataset(Path(str(root)), seed=training_seed(bundle.meta))
    except (DatasetLayoutError, OSError):
        return None
    chosen = calibration_samples(bundle.meta, index)
    return _load(chosen.samples, bundle, f"{chosen.description} of the training folder '{root}'")


def _folder_images(bundle: Bundle, folder: Path) -> CheckImages:
    if not folder.is_dir():
        raise ExportFailure(f"--images '{folder}' is not a folder")
    try:
        index = scan_dataset(folder, seed=training_seed(bundle.meta))
    except DatasetLayoutError:
        index = None
    if index is not None:
        chosen = calibration_samples(bundle.meta, index)
        found = _load(chosen.samples, bundle, f"{chosen.description} of '{folder}'")
    else:
        files = list_images(folder, recursive=True)
        found = _load([Sample(p, 0, "good") for p in files], bundle,
                      f"the images in '{folder}' (unlabelled: taken as good parts)")
    if found is None:
        raise ExportFailure(f"--images '{folder}' holds no image that can be read")
    return found


def check_images(bundle: Bundle, images: str | os.PathLike[str] | None = None) -> CheckImages:
    """The images the export is checked on (see the module docstring)."""
    if images is not None:
        return _folder_images(bundle, Path(images))
    for find in (_calibration_images, _training_folder_images):
        found = find(bundle)
        if found is not None:
            return found
    raise ExportFailure("no images to check the export on: the bundle's calibration images and its training folder "
                        "cannot be read here; pass --images DIR (a folder of the part's images, ideally a labelled "
                        "data set folder with good and defective parts)")


def export(bundle: str | os.PathLike[str] | Bundle, fmt: str, out: str | os.PathLike[str],
           images: str | os.PathLike[str] | None = None, *, batch_size: int = 16) -> tuple[ExportResult, CheckImages]:
    """``inspector export``: check the format and its runtime (before the slow
    steps), load the bundle, find the images, export and check."""
    check_format(fmt)
    runtime_versions(fmt)
    loaded = bundle if isinstance(bundle, Bundle) else load_bundle(bundle)
    chosen = check_images(loaded, images)
    return export_bundle(loaded, fmt, out, chosen.images, chosen.labels, chosen.source, batch_size=batch_size), chosen


def describe_result(result: ExportResult) -> list[str]:
    """Lines for the CLI: what was written and the parity figures."""
    from ..export.writer import describe

    ex: dict[str, Any] = result.manifest["export"]
    thr = ex["threshold"]
    band = _band(thr)
    basis = result.fidelity.extra.get("threshold_basis") or {}
    return [f"exported {ex['format']} ({ex['precision']}) to '{result.folder}': {ex['file']}, outputs "
            f"{', '.join(ex['outputs'])}",
            f"parity: {describe(result.fidelity)}",
            f"threshold of the exported graph: {band} (the bundle's {_band(basis.get('bundle_fp32') or thr)} for PyTorch, "
            f"moved by the two paths' own thresholds on these images: {result.fidelity.threshold['high']:.6g} "
            f"exported, {result.fidelity.threshold_fp32['high']:.6g} PyTorch)"]


def _band(thr: dict[str, Any]) -> str:
    return f"{thr['high']:.6g}" if thr.get("low") is None else f"[{thr['low']:.6g}, {thr['high']:.6g}]"


__all__ = ["CheckImages", "check_images", "describe_result", "export"]
