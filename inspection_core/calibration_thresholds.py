"""Choosing a threshold: the calibration set checked, the strategies, the ROC/PR curves.

The pure threshold math of :mod:`inspection_core.calibration` (whose docstring
gives the rule, FAIL iff ``score > φ``, and the strategies); no state, no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

STRATEGIES: tuple[str, ...] = ("youden", "f1", "fpr", "fnr", "quantile", "manual")
DEFAULT_TARGETS: dict[str, float] = {"fpr": 0.01, "fnr": 0.005, "quantile": 0.99}
BOTH_CLASSES_STRATEGIES = ("youden", "f1", "fpr")


class CalibrationError(ValueError):
    """The calibration data or request cannot give a meaningful threshold."""


# --------------------------------------------------------------------- inputs

def validate_scores(scores: Any, labels: Any, paths: Sequence[Any] | None = None
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Return (scores float64, labels int64) or raise CalibrationError.

    Non-finite scores are an error (a NaN would otherwise pass or fail at
    random); the message names how many and, when ``paths`` is given, which.
    """
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    try:
        y_raw = np.asarray(labels).reshape(-1)
    except Exception as exc:  # pragma: no cover - defensive
        raise CalibrationError(f"labels are not an array: {exc}") from exc
    if s.size == 0:
        raise CalibrationError("no calibration scores: the calibration set is empty")
    if s.shape != y_raw.shape:
        raise CalibrationError(f"{s.size} scores but {y_raw.size} labels; they must match one to one")
    if y_raw.dtype.kind not in "biuf" or not np.all(np.isin(y_raw, (0, 1))):
        bad = np.unique(y_raw[~np.isin(y_raw, (0, 1))]) if y_raw.dtype.kind in "biuf" else y_raw[:3]
        raise CalibrationError(f"labels must be 0 (good) or 1 (defective); found {list(bad[:5])}")
    bad_idx = np.flatnonzero(~np.isfinite(s))
    if bad_idx.size:
        msg = f"{bad_idx.size} of {s.size} scores are not finite numbers (NaN or inf)"
        if paths is not None:
            names = [str(paths[i]) for i in bad_idx[:5]]
            more = f" and {bad_idx.size - 5} more" if bad_idx.size > 5 else ""
            msg += f": {', '.join(names)}{more}"
        raise CalibrationError(msg + "; check the model and these images before calibrating")
    return s, y_raw.astype(np.int64)


def strategies_available(labels: Any) -> list[str]:
    """Strategies that make sense for a calibration set with these labels.

    Both classes: all. Good parts only: quantile, manual. Defects only: fnr,
    manual. Empty: manual.
    """
    y = np.asarray(labels).reshape(-1)
    has_good, has_defect = bool(np.any(y == 0)), bool(np.any(y == 1))
    if has_good and has_defect:
        return list(STRATEGIES)
    if has_good:
        return ["quantile", "manual"]
    if has_defect:
        return ["fnr", "manual"]
    return ["manual"]


# --------------------------------------------------------------------- curves

@dataclass(frozen=True)
class RocCurve:
    """ROC points (scikit-learn; a point at ``t`` counts ``score >= t`` as defective)."""

    fpr: np.ndarray
    tpr: np.ndarray
    thresholds: np.ndarray
    auroc: float | None
    reason: str = ""


@dataclass(frozen=True)
class PrCurve:
    """Precision-recall points (scikit-learn) and average precision."""

    precision: np.ndarray
    recall: np.ndarray
    thresholds: np.ndarray
    ap: float | None
    reason: str = ""


def _missing_class_reason(y: np.ndarray) -> str:
    if not np.any(y == 1):
        return "no defective images in the set: AUROC/AP need both good and defective images"
    if not np.any(y == 0):
        return "no good images in the set: AUROC/AP need both good and defective images"
    return ""


def roc(scores: Any, labels: Any) -> RocCurve:
    """ROC curve and AUROC; with one class missing ``auroc`` is None and ``reason`` says why."""
    from sklearn.metrics import roc_auc_score, roc_curve

    s, y = validate_scores(scores, labels)
    reason = _missing_class_reason(y)
    if reason:
        empty = np.empty(0)
        return RocCurve(empty, empty, empty, None, reason)
    fpr, tpr, thr = roc_curve(y, s, drop_intermediate=False)
    return RocCurve(fpr, tpr, thr, float(roc_auc_score(y, s)))


def pr(scores: Any, labels: Any) -> PrCurve:
    """Precision-recall curve and average precision (None with one class missing)."""
    from sklearn.metrics import average_precision_score, precision_recall_curve

    s, y = validate_scores(scores, labels)
    reason = _missing_class_reason(y)
    if reason:
        empty = np.empty(0)
        return PrCurve(empty, empty, empty, None, reason)
    precision, recall, thr = precision_recall_curve(y, s)
    return PrCurve(precision, recall, thr, float(average_precision_score(y, s)))


# ---------------------------------------------------------- choosing a threshold

def _candidates(s: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Candidate thresholds (ascending) with the count of good / defective scores above each.

    Candidates: "below everything" (all fail) and every distinct score value.
    """
    uniq = np.unique(s)
    cand = np.concatenate(([np.nextafter(uniq[0], -np.inf)], uniq))
    good = np.sort(s[y == 0])
    bad = np.sort(s[y == 1])
    fp = good.size - np.searchsorted(good, cand, side="right")
    tp = bad.size - np.searchsorted(bad, cand, side="right")
    return cand, fp, tp


def _need(y: np.ndarray, strategy: str) -> None:
    if strategy not in STRATEGIES:
        raise CalibrationError(f"unknown strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}")
    allowed = strategies_available(y)
    if strategy in allowed:
        return
    if not np.any(y == 1):
        raise CalibrationError(
            f"strategy {strategy!r} needs defective images, but the calibration set has none; "
            "without defect samples only 'quantile' (from good scores) or 'manual' make sense")
    raise CalibrationError(
        f"strategy {strategy!r} needs good images, but the calibration set has none; "
        "without good samples only 'fnr' (escape rate) or 'manual' make sense")


def _check_rate(target: float | None, name: str) -> float:
    """``target`` (the strategy ``name``'s default when None) checked as a rate."""
    t = float(DEFAULT_TARGETS[name] if target is None else target)
    if not (0.0 <= t <= 1.0):
        raise CalibrationError(f"{name} target must be a rate between 0 and 1, got {target}")
    return t


def choose_threshold(scores: Any, labels: Any, strategy: str, target: float | None = None,
                     margin: float = 0.0) -> float:
    """Threshold φ for ``strategy`` (FAIL iff score > φ); see :mod:`inspection_core.calibration`.

    ``quantile``: q = the ``target`` quantile of the good scores taken at a
    score value (numpy ``method="higher"``, so at least that fraction of good
    parts pass), then φ = q + margin * (q - median of good scores): the margin
    is relative to the spread of the good scores, so it means the same for any
    model's score units. ``margin`` applies to ``quantile`` only.
    """
    if strategy == "manual":
        if target is None or not math.isfinite(float(target)):
            raise CalibrationError("strategy 'manual' needs the threshold value as target")
        return float(target)
    s, y = validate_scores(scores, labels)
    _need(y, strategy)
    if margin and strategy != "quantile":
        raise CalibrationError("margin applies only to the 'quantile' strategy")
    if target is None:
        target = DEFAULT_TARGETS.get(strategy)
    if strategy == "quantile":
        q_level = _check_rate(target, "quantile")
        if margin < 0 or not math.isfinite(margin):
            raise CalibrationError(f"margin must be a finite number >= 0, got {margin}")
        good = s[y == 0]
        q = float(np.quantile(good, q_level, method="higher"))
        return q + float(margin) * (q - float(np.median(good)))

    cand, fp, tp = _candidates(s, y)
    n_good, n_bad = int(np.sum(y == 0)), int(np.sum(y == 1))
    if strategy == "fnr":
        t = _check_rate(target, "fnr")
        fnr = (n_bad - tp) / n_bad
        ok = np.flatnonzero(fnr <= t + 1e-12)
        return float(cand[ok[-1]])  # candidate 0 (all fail) always qualifies
    if strategy == "fpr":
        t = _check_rate(target, "fpr")
        fpr = fp / n_good
        ok = np.flatnonzero(fpr <= t + 1e-12)
        return float(cand[ok[0]])  # the largest score always qualifies (fpr 0)
    objective = _objective(strategy, fp, tp, n_good, n_bad)
    best = np.flatnonzero(objective >= objective.max() - 1e-12)
    return float(cand[best[0]])


def _objective(strategy: str, fp: np.ndarray, tp: np.ndarray, n_good: int, n_bad: int) -> np.ndarray:
    """What "youden" (TPR - FPR) or "f1" maximises, at each candidate threshold."""
    if strategy == "youden":
        return tp / n_bad - fp / n_good
    return 2.0 * tp / np.maximum(2.0 * tp + fp + (n_bad - tp), 1)


def objective_plateau(scores: Any, labels: Any, strategy: str, tol: float = 0.01) -> tuple[float, float, int] | None:
    """Where a maximising strategy ("youden", "f1") is unsteady: the lowest and
    highest thresholds whose objective is within ``tol`` of its maximum, and how
    many images score between them (None for other strategies). On a weak
    detector J is flat near its maximum, so a tiny change of the scores (a
    retrained model, another scoring path) can move the chosen threshold
    across all of those images; a target strategy (fpr, fnr) does not jump."""
    if strategy not in ("youden", "f1"):
        return None
    s, y = validate_scores(scores, labels)
    _need(y, strategy)
    cand, fp, tp = _candidates(s, y)
    objective = _objective(strategy, fp, tp, int(np.sum(y == 0)), int(np.sum(y == 1)))
    near = np.flatnonzero(objective >= objective.max() - tol)
    lo, hi = float(cand[near].min()), float(cand[near].max())
    return lo, hi, int(np.sum((s > lo) & (s <= hi)))


def plateau_note(scores: Any, labels: Any, strategy: str, share: float = 0.05) -> str:
    """One sentence for the CLI and the Calibrate view when the strategy's
    threshold is unsteady (more than ``share`` of the images lie on its
    plateau), else ""."""
    plateau = objective_plateau(scores, labels, strategy)
    if plateau is None:
        return ""
    lo, hi, n = plateau
    total = int(np.asarray(scores).size)
    if n <= max(1, share * total):
        return ""
    name = "Youden's J" if strategy == "youden" else "F1"
    return (f"{name} stays within 0.01 of its best for thresholds from {lo:.6g} to {hi:.6g}, and {n} of {total} "
            f"images score between them: a small change of the scores can move this threshold across them. "
            f"A target strategy (fpr, fnr) is steadier.")


def review_band_from_targets(scores: Any, labels: Any, fnr_target: float = 0.005,
                             fpr_target: float = 0.01) -> tuple[float, float]:
    """(φ_low, φ_high): φ_low meets the escape target, φ_high the false-reject target.

    Parts between them go to REVIEW. When one threshold meets both targets
    (φ_low >= φ_high) no review band is needed and (φ_high, φ_high) is returned.
    """
    low = choose_threshold(scores, labels, "fnr", fnr_target)
    high = choose_threshold(scores, labels, "fpr", fpr_target)
    return (low, high) if low < high else (high, high)
