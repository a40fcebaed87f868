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

:func:`calibrate_bundle` runs all three for a strategy. :func:`save_frame_check`
turns the bundle's frame check (:mod:`inspection_core.frame_check`: frames that
carry no part are INVALID, never PASS) on or off the same way; a calibration
saved with ``frame_check_enabled`` writes both in one atomic rewrite.
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
from ..fidelity_rule import Fidelity, pick_path
from ..frame_check import with_enabled
from ..inference import Inspector
from ..progress import CancelToken, ProgressCallback
from ..selection import ImageSelection, calibration_samples, open_data
from .evaluate import as_inspector
from .fidelity import path_to_check


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
    fidelity: Fidelity | None = None  # the fast path's check (None: no fast path on this machine)


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
                     root: str | os.PathLike[str] | None = None, inference: dict[str, Any] | None = None,
                     frame_check_enabled: bool | None = None) -> dict[str, Any]:
    """Write ``result`` into the bundle's manifest atomically; returns the new
    manifest. With ``calibration_set`` its paths (relative to the data folder)
    and its Inspector's scoring path are recorded; otherwise ``paths``,
    ``root`` and ``inference`` as given (scores read back from a bundle have none).
    ``frame_check_enabled``: also turn the frame check on or off (None: as it is)."""
    if calibration_set is not None:
        paths, root = calibration_set.paths, calibration_set.root
        inference = inference or calibration_set.inspector.inference_record()

    def edit(m: dict[str, Any]) -> dict[str, Any]:
        m = calibration_record(m, result, note=note, paths=paths, root=root, inference=inference)
        if frame_check_enabled is not None:
            m["frame_check"] = with_enabled(m, frame_check_enabled)
        return m

    return update_manifest(bundle_path, edit)


def save_frame_check(bundle_path: str | os.PathLike[str], enabled: bool) -> dict[str, Any]:
    """Turn the bundle's frame check on or off (``manifest["frame_check"]``,
    its limits and training statistics kept; a bundle made before the check
    gets the default limits written out), atomically like a calibration;
    returns the new manifest."""

    def edit(m: dict[str, Any]) -> dict[str, Any]:
        m["frame_check"] = with_enabled(m, enabled)
        return m

    return update_manifest(bundle_path, edit)


def calibrate_bundle(bundle_path: str | os.PathLike[str], data: DatasetIndex | str | os.PathLike[str],
                     strategy: str | None, target: float | None = None, *,
                     review_band: tuple[float, float] | None = None, margin: float = 0.0, bootstrap: int = 1000,
                     note: str = "", split: str = "auto", batch_size: int = 32, device: str = "auto",
                     inspector: Inspector | None = None, dry_run: bool = False,
                     progress: ProgressCallback | None = None, cancel: CancelToken | None = None,
                     check_fast: bool = True, fast_precision_request: str | None = None
                     ) -> CalibrationOutcome:
    """Score the calibration set, choose the threshold with ``strategy`` (or
    fix both with ``review_band``) and, unless ``dry_run``, write it into the
    bundle. ``inspector``: an already loaded Inspector of this bundle.

    ``check_fast``: where this machine has a fast scoring path (bf16 on a CPU
    with native bf16, autocast on a GPU; ``fast_precision_request`` forces
    one), the set is scored on it and on fp32, and the fidelity rule
    (:mod:`.fidelity`) decides which path the threshold belongs to; the
    result is stored in the bundle either way."""
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

    def rule(scores: np.ndarray, labels: np.ndarray, boot: int = 0) -> CalibrationResult:
        return calibrate(scores, labels, strategy, target, review_band=review_band, margin=margin, bootstrap=boot)

    pair = score_fast_path(cset, fast_precision_request, batch_size, progress, cancel) if check_fast else None
    fidelity = None
    if pair is not None:  # the set scored on the path the threshold will belong to
        cset, fidelity = pick_path(pair, lambda s, y: rule(s, y).threshold)
    result = rule(cset.scores, cset.labels, bootstrap)
    old = dict(cset.inspector.manifest.get("threshold") or {})
    manifest = None
    if not dry_run:
        manifest = save_calibration(bundle_path, result, note=note, calibration_set=cset,
                                    inference=inference_with(cset, fidelity))
    return CalibrationOutcome(result, cset, old, manifest, fidelity)


@dataclass
class PathPair:
    """One calibration set scored on the fp32 path and on the fast path."""

    ref: CalibrationSet
    fast: CalibrationSet


def score_fast_path(cset: CalibrationSet, precision: str | None = None, batch_size: int = 32,
                    progress: ProgressCallback | None = None, cancel: CancelToken | None = None) -> PathPair | None:
    """Score ``cset``'s images on the path it was not scored on, so that it
    is held on fp32 and on the fast path (``precision``, default: the one
    this machine has, :func:`inspection_core.acceleration.fast_precision`).
    None where there is no fast path, or an image could not be read twice."""
    device = cset.inspector.device
    precision = path_to_check(device, precision)
    if precision is None:
        return None

    def on(path_precision: str) -> CalibrationSet | None:
        if cset.inspector.precision == path_precision:
            return cset
        insp = Inspector(cset.inspector.bundle, device=device, precision=path_precision)
        if insp.precision != path_precision:  # the fast path fell back to fp32: nothing to check
            return None
        scored = score_samples(insp, cset.scored.samples, batch_size=batch_size, progress=progress, cancel=cancel)
        return CalibrationSet(insp, cset.selection, scored)

    fast = on(precision)
    ref = on("fp32") if fast is not None else None
    if ref is None or fast is None or list(ref.paths) != list(fast.paths):
        return None
    return PathPair(ref, fast)


def inference_with(cset: CalibrationSet, fidelity: Fidelity | None) -> dict[str, Any]:
    """What to record as ``manifest["inference"]`` for a threshold chosen on
    ``cset``'s scores: its scoring path, and the check when one ran."""
    inference: dict[str, Any] = cset.inspector.inference_record()
    if fidelity is not None:
        inference["fidelity"] = {**((cset.inspector.manifest.get("inference") or {}).get("fidelity") or {}),
                                 fidelity.precision: fidelity.to_dict()}
    return inference


__all__ = ["CalibrationOutcome", "CalibrationSet", "PathPair", "calibrate_bundle", "check_strategy",
           "inference_with", "save_calibration", "save_frame_check", "score_calibration_set", "score_fast_path"]
