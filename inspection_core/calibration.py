"""Threshold calibration: ROC/PR curves, operating points and their confidence.

Rule everywhere: a part is FAIL iff its score is **strictly above** the
threshold φ (``score > φ``); defective (label 1) is the positive class.

Thresholds chosen from data sit **on a score value** of the calibration set
(every score ``<= φ`` passes, including ties), so the confusion matrix at φ is
exact and tied scores always fall on the same side. The one exception is
"everything fails", which needs φ below the lowest score: then φ is the next
float below it (``np.nextafter``). Among equally good thresholds the lowest is
taken (fewer escapes).

Strategies and which class they need (see :func:`strategies_available`):

=========  ======================================================  ==============
youden     maximise TPR − FPR                                       both classes
f1         maximise F1                                              both classes
fpr        lowest φ with false-reject rate <= target (0.01)        both classes
fnr        highest φ with escape rate <= target (0.005)            defects
quantile   ``target`` quantile of good scores (0.99), plus margin   good parts
manual     ``target`` is φ                                          nothing
=========  ======================================================  ==============

``fpr``/``youden``/``f1`` on a set without defects would silently pick a
threshold that says nothing about defects (the classic trap of flagging every
part), so they raise. ``fnr`` is allowed on defects only, because an escape
rate needs only defect scores; its false-reject rate is then unknown (None).

Two-threshold mode (``Threshold.low`` set): PASS ``<= low``, FAIL ``> high``,
REVIEW in between. REVIEW means "stopped, not scrapped": a defect in REVIEW is
**not** an escape and a good part in REVIEW is **not** a false reject (it
assumes the reviewer decides correctly). So FNR = defects PASSed / defects,
FPR = good parts FAILed / good parts, and the review load is counted
separately (``n_review``, per class, ``review_rate``).

The functions here are cheap enough for a GUI to call on every drag of a
threshold line (``operating_point`` on 1000 scores takes well under a
millisecond without bootstrap).

The module is split along its seams and re-exports them all:
:mod:`.calibration_thresholds` (inputs, curves, choosing a threshold),
:mod:`.calibration_points` (operating points and their bootstrap CIs); here
:func:`calibrate` and the bundle record (:func:`calibration_record`,
:func:`calibration_from_manifest`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from .calibration_points import OperatingPoint, misjudged, operating_point, standard_operating_points
from .calibration_thresholds import (BOTH_CLASSES_STRATEGIES, DEFAULT_TARGETS, STRATEGIES, CalibrationError, PrCurve,
                                     RocCurve, choose_threshold, objective_plateau, plateau_note, pr,
                                     review_band_from_targets, roc, strategies_available, validate_scores)
from .types import Threshold

__all__ = [
    "BOTH_CLASSES_STRATEGIES", "DEFAULT_TARGETS", "STRATEGIES", "CalibrationError", "CalibrationResult",
    "OperatingPoint", "PrCurve", "RocCurve", "calibrate", "calibration_from_manifest", "calibration_record",
    "choose_threshold", "misjudged", "objective_plateau", "operating_point", "plateau_note", "pr",
    "review_band_from_targets", "roc", "standard_operating_points", "strategies_available", "validate_scores",
]


# ---------------------------------------------------------------- calibrate

@dataclass(frozen=True)
class CalibrationResult:
    """Everything one calibration decided, and the data it decided on."""

    threshold: Threshold
    strategy: str
    target: float | None
    margin: float
    point: OperatingPoint
    roc: RocCurve
    pr: PrCurve
    scores: np.ndarray
    labels: np.ndarray


def calibrate(scores: Any, labels: Any, strategy: str | None, target: float | None = None,
              review_band: tuple[float, float] | None = None, margin: float = 0.0,
              bootstrap: int = 1000, seed: int = 0) -> CalibrationResult:
    """Choose the threshold(s) and describe the result.

    ``review_band=(low, high)`` gives both thresholds as score values (two-
    threshold mode); it fixes the choice, so ``strategy`` must then be
    "manual" or None. Use :func:`review_band_from_targets` to derive a band
    from an escape target and a false-reject target.
    """
    s, y = validate_scores(scores, labels)
    if review_band is not None:
        if strategy not in (None, "manual"):
            raise CalibrationError(
                f"a review band sets both thresholds itself; it cannot be combined with strategy {strategy!r} "
                "(use strategy 'manual', or derive the band with review_band_from_targets)")
        low, high = (float(v) for v in review_band)
        if not (math.isfinite(low) and math.isfinite(high)) or low > high:
            raise CalibrationError(f"review band needs finite LOW <= HIGH, got {low} {high}")
        th, strategy, target = Threshold(high=high, low=low), "manual", None
    else:
        if strategy is None:
            raise CalibrationError("give a strategy or a review band")
        if target is None and strategy in DEFAULT_TARGETS:
            target = DEFAULT_TARGETS[strategy]
        th = Threshold(choose_threshold(s, y, strategy, target, margin))
    point = operating_point(s, y, th, bootstrap=bootstrap, seed=seed)
    return CalibrationResult(th, strategy, None if target is None else float(target), float(margin),
                             point, roc(s, y), pr(s, y), s, y)


# ------------------------------------------------------------ bundle record

def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _relative_names(paths: Sequence[Any], root: str | os.PathLike[str] | None) -> list[str]:
    out = []
    for p in paths:
        p = Path(p)
        if root is not None:
            try:
                p = p.resolve().relative_to(Path(root).resolve())
            except ValueError:
                pass
        out.append(p.as_posix())
    return out


def calibration_record(manifest: dict[str, Any], result: CalibrationResult, note: str = "",
                       paths: Sequence[Any] | None = None, root: str | os.PathLike[str] | None = None,
                       time: str | None = None, inference: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Return a copy of ``manifest`` with the calibration written in (pure function).

    ``inference``: ``Inspector.inference_record()`` of the Inspector that scored
    the calibration set; stored as ``manifest["inference"]`` (keeping a stored
    fidelity record) so the bundle says which scoring path its threshold belongs to.
    """
    time = time or _now_iso()
    m = dict(manifest)
    if inference is not None:
        inf = {**(m.get("inference") or {}), **dict(inference)}
        if "fidelity" not in inference:
            # an older check's thresholds belong to an older calibration: keep its figures, drop them
            inf["fidelity"] = {k: {f: v for f, v in r.items() if f not in ("threshold", "threshold_fp32")}
                               if isinstance(r, dict) else r for k, r in (inf.get("fidelity") or {}).items()}
        m["inference"] = inf
    old = dict(m.get("threshold") or {})
    new = result.threshold.to_dict()
    m["threshold"] = {**new, "strategy": result.strategy, "target": result.target,
                      "provisional": False}
    if paths is not None and len(paths) != result.scores.size:
        raise CalibrationError(f"{len(paths)} paths for {result.scores.size} scores")
    m["calibration"] = {
        "strategy": result.strategy, "target": result.target, "margin": result.margin,
        "time": time, "note": note,
        "scores": [float(v) for v in result.scores],
        "labels": [int(v) for v in result.labels],
        "paths": None if paths is None else _relative_names(paths, root),
        # the folder the paths are relative to, so a view can find the images again (None: not known)
        "root": None if paths is None or root is None else str(Path(root).resolve()),
        "auroc": result.roc.auroc, "ap": result.pr.ap,
        "operating_point": result.point.to_dict(),
        "precision_path": (m.get("inference") or {}).get("precision", "fp32"),
    }
    history = list(m.get("calibration_history") or [])
    history.append({"time": time, "strategy": result.strategy, "target": result.target,
                    "old": {"high": old.get("high"), "low": old.get("low")},
                    "new": new, "note": note})
    m["calibration_history"] = history
    return m


def calibration_from_manifest(manifest: dict[str, Any], bootstrap: int = 0
                              ) -> CalibrationResult | None:
    """Rebuild the stored calibration (curves, point) from a manifest, or None if there is none."""
    cal = manifest.get("calibration")
    th = manifest.get("threshold")
    if not cal or not th or not cal.get("scores"):
        return None
    s, y = validate_scores(cal["scores"], cal["labels"])
    threshold = Threshold.from_dict(th)
    point = operating_point(s, y, threshold, bootstrap=bootstrap)
    return CalibrationResult(threshold, str(cal.get("strategy", "manual")), cal.get("target"),
                             float(cal.get("margin") or 0.0), point, roc(s, y), pr(s, y), s, y)
