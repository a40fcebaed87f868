"""Use case: choose a bundle's threshold(s) on a labelled folder and write them in.

Three steps that ``inspector calibrate``, the Calibrate view and the demo
builder share:

1. :func:`score_calibration_set`: the images :mod:`inspection_core.selection`
   allows (never images the model was trained on), scored by the bundle's
   Inspector (the live scoring path);
2. a :class:`~inspection_core.calibration.CalibrationResult`: from a
   strategy (:func:`inspection_core.calibration.calibrate`), or, in the view,
   from lines an engineer dragged;
3. :func:`save_calibration`: the threshold, the scores and paths it was
   chosen on and the scoring path it belongs to, written into the bundle's
   manifest atomically (the weights stay byte for byte).

:func:`calibrate_bundle` runs all three for a strategy.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..bundle import Bundle, update_manifest
from ..calibration import (CalibrationError, CalibrationResult, calibrate, calibration_record, choose_threshold,
                           strategies_available, validate_scores)
from ..data.dataset import DatasetIndex
from ..evaluation import ScoredSet, score_samples
from ..inference import Inspector
from ..progress import CancelToken, ProgressCallback
from ..selection import ImageSelection, calibration_samples, open_data
from .evaluate import as_inspector


@dataclass
class CalibrationSet:
    """A scored calibration set: the Inspector that scored it (its scoring
    path is what the threshold will belong to), the images chosen and why."""

    inspector: Inspector
    selection: ImageSelection
    scored: ScoredSet

    @property
    def scores(self) -> np.ndarray:
        return self.scored.scores

    @property
    def labels(self) -> np.ndarray:
        return self.scored.labels

    @property
    def paths(self) -> list[Path]:
        return self.scored.paths

    @property
    def root(self) -> Path:
        return self.selection.index.root

    @property
    def description(self) -> str:
        return self.selection.description


@dataclass
class CalibrationOutcome:
    """What :func:`calibrate_bundle` decided, on what, and what the bundle holds now."""

    result: CalibrationResult
    calibration_set: CalibrationSet
    old_threshold: dict[str, Any]
    manifest: dict[str, Any] | None  # None for a dry run


def check_strategy(strategy: str, labels: Sequence[int]) -> None:
    """Raise the strategy's CalibrationError for a set with these labels (cheap:
    no scoring), e.g. ``youden`` on a folder without defects."""
    if strategy not in strategies_available(labels):
        choose_threshold(np.zeros(len(labels)), np.asarray(labels), strategy)  # raises and explains


def score_calibration_set(bundle: Inspector | Bundle | str | os.PathLike[str],
                          data: DatasetIndex | str | os.PathLike[str], *, split: str = "auto",
                          strategy: str | None = None, batch_size: int = 32, device: str = "auto",
                          progress: ProgressCallback | None = None, cancel: CancelToken | None = None
                          ) -> CalibrationSet:
    """Choose ``data``'s calibration images for ``bundle`` and score them.
    ``strategy``, when given, is checked against the labels before the (slow)
    scoring. Raises CalibrationError for an empty choice or unusable scores."""
    if batch_size < 1:
        raise CalibrationError(f"batch size must be at least 1, got {batch_size}")
    inspector = as_inspector(bundle, device)
    index = open_data(data, inspector.manifest)
    selection = calibration_samples(inspector.manifest, index, split)
    if not selection.samples:
        raise CalibrationError(f"no images to calibrate on in '{index.root}' ({selection.description})")
    if strategy is not None:
        check_strategy(strategy, selection.labels)
    scored = score_samples(inspector, selection.samples, batch_size=batch_size, progress=progress, cancel=cancel)
    validate_scores(scored.scores, scored.labels, scored.paths)
    return CalibrationSet(inspector, selection, scored)


def save_calibration(bundle_path: str | os.PathLike[str], result: CalibrationResult, *, note: str = "",
                     calibration_set: CalibrationSet | None = None, paths: Sequence[Any] | None = None,
                     root: str | os.PathLike[str] | None = None, inference: dict[str, Any] | None = None
                     ) -> dict[str, Any]:
    """Write ``result`` into the bundle's manifest atomically; returns the new
    manifest. With ``calibration_set`` its paths (relative to the data folder)
    and its Inspector's scoring path are recorded; otherwise ``paths``,
    ``root`` and ``inference`` as given (scores read back from a bundle have none)."""
    if calibration_set is not None:
        paths, root = calibration_set.paths, calibration_set.root
        inference = calibration_set.inspector.inference_record()
    return update_manifest(bundle_path, lambda m: calibration_record(m, result, note=note, paths=paths, root=root,
                                                                     inference=inference))


def calibrate_bundle(bundle_path: str | os.PathLike[str], data: DatasetIndex | str | os.PathLike[str],
                     strategy: str | None, target: float | None = None, *,
                     review_band: tuple[float, float] | None = None, margin: float = 0.0, bootstrap: int = 1000,
                     note: str = "", split: str = "auto", batch_size: int = 32, device: str = "auto",
                     inspector: Inspector | None = None, dry_run: bool = False,
                     progress: ProgressCallback | None = None, cancel: CancelToken | None = None
                     ) -> CalibrationOutcome:
    """Score the calibration set, choose the threshold with ``strategy`` (or
    fix both with ``review_band``) and, unless ``dry_run``, write it into the
    bundle. ``inspector``: an already loaded Inspector of this bundle."""
    if strategy is None and review_band is None:
        raise CalibrationError("give a strategy (or a review band LOW HIGH)")
    if review_band is not None and strategy not in (None, "manual"):
        raise CalibrationError(f"a review band sets both thresholds itself; leave out strategy {strategy!r} "
                               "(or use strategy 'manual')")
    if strategy == "manual" and target is None and review_band is None:
        raise CalibrationError("strategy 'manual' needs the threshold value as target")
    strategy = "manual" if review_band is not None else strategy
    cset = score_calibration_set(inspector if inspector is not None else bundle_path, data, split=split,
                                 strategy=strategy, batch_size=batch_size, device=device, progress=progress,
                                 cancel=cancel)
    result = calibrate(cset.scores, cset.labels, strategy, target, review_band=review_band, margin=margin,
                       bootstrap=bootstrap)
    old = dict(cset.inspector.manifest.get("threshold") or {})
    manifest = None if dry_run else save_calibration(bundle_path, result, note=note, calibration_set=cset)
    return CalibrationOutcome(result, cset, old, manifest)


__all__ = ["CalibrationOutcome", "CalibrationSet", "calibrate_bundle", "check_strategy", "save_calibration",
           "score_calibration_set"]
