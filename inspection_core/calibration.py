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

from .types import Threshold

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
    """Threshold φ for ``strategy`` (FAIL iff score > φ); see the module docstring.

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


# ----------------------------------------------------------- operating point

@dataclass(frozen=True)
class OperatingPoint:
    """Confusion counts and rates at one threshold (defect = positive).

    In two-threshold mode tp/fn/fp/tn count automatic FAIL/PASS decisions
    only; REVIEW parts are in ``review_good``/``review_defect``. Rates that a
    class is missing for are None. CIs are 95 % stratified bootstrap
    percentile intervals (None unless requested). Note: a bootstrap interval
    collapses to [0, 0] when no error was observed; on n parts a rate up to
    about 3/n is then still plausible (rule of three).
    """

    threshold: Threshold
    tp: int
    fp: int
    tn: int
    fn: int
    review_good: int
    review_defect: int
    fpr: float | None
    fnr: float | None
    precision: float | None
    recall: float | None
    f1: float | None
    balanced_accuracy: float | None
    fpr_ci: tuple[float, float] | None = None
    fnr_ci: tuple[float, float] | None = None

    @property
    def n_good(self) -> int:
        return self.fp + self.tn + self.review_good

    @property
    def n_defect(self) -> int:
        return self.tp + self.fn + self.review_defect

    @property
    def n_pass(self) -> int:
        return self.tn + self.fn

    @property
    def n_review(self) -> int:
        return self.review_good + self.review_defect

    @property
    def n_fail(self) -> int:
        return self.tp + self.fp

    @property
    def review_rate(self) -> float:
        n = self.n_good + self.n_defect
        return self.n_review / n if n else 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (also holds the band counts per class)."""
        return {
            "threshold": self.threshold.to_dict(),
            "tp": self.tp, "fp": self.fp, "tn": self.tn, "fn": self.fn,
            "review_good": self.review_good, "review_defect": self.review_defect,
            "n_good": self.n_good, "n_defect": self.n_defect,
            "n_pass": self.n_pass, "n_review": self.n_review, "n_fail": self.n_fail,
            "bands": {
                "good": {"pass": self.tn, "review": self.review_good, "fail": self.fp},
                "defect": {"pass": self.fn, "review": self.review_defect, "fail": self.tp},
            },
            "review_rate": self.review_rate,
            "fpr": self.fpr, "fnr": self.fnr, "precision": self.precision,
            "recall": self.recall, "f1": self.f1, "balanced_accuracy": self.balanced_accuracy,
            "fpr_ci": None if self.fpr_ci is None else list(self.fpr_ci),
            "fnr_ci": None if self.fnr_ci is None else list(self.fnr_ci),
        }


def _ratio(a: int, b: int) -> float | None:
    return a / b if b else None


def _bootstrap_ci(count: int, n: int, resamples: int, rng: np.random.Generator
                  ) -> tuple[float, float] | None:
    """Percentile CI of a rate under stratified resampling with replacement.

    Resampling n items of which ``count`` are errors gives Binomial(n, count/n)
    errors, so drawing that directly is the exact same bootstrap, but fast.
    """
    if n == 0:
        return None
    rates = rng.binomial(n, count / n, size=resamples) / n
    lo, hi = np.percentile(rates, [2.5, 97.5])
    return float(lo), float(hi)


def operating_point(scores: Any, labels: Any, threshold: Threshold | float,
                    bootstrap: int = 0, seed: int = 0) -> OperatingPoint:
    """Confusion matrix, rates and (with ``bootstrap`` resamples) CIs at ``threshold``."""
    s, y = validate_scores(scores, labels)
    th = threshold if isinstance(threshold, Threshold) else Threshold(float(threshold))
    fail = s > th.high
    passed = s <= (th.low if th.low is not None else th.high)
    good, bad = y == 0, y == 1
    tp, fp = int(np.count_nonzero(fail & bad)), int(np.count_nonzero(fail & good))
    fn, tn = int(np.count_nonzero(passed & bad)), int(np.count_nonzero(passed & good))
    n_good, n_bad = int(np.count_nonzero(good)), int(np.count_nonzero(bad))
    rg, rd = n_good - fp - tn, n_bad - tp - fn
    fpr, fnr = _ratio(fp, n_good), _ratio(fn, n_bad)
    precision = _ratio(tp, tp + fp) if n_bad else None
    recall = None if fnr is None else 1.0 - fnr
    f1 = None
    if precision is not None and recall is not None:
        f1 = 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)
    bal = None if fpr is None or fnr is None else 1.0 - (fpr + fnr) / 2.0
    fpr_ci = fnr_ci = None
    if bootstrap:
        rng = np.random.default_rng(seed)
        fpr_ci = _bootstrap_ci(fp, n_good, int(bootstrap), rng)
        fnr_ci = _bootstrap_ci(fn, n_bad, int(bootstrap), rng)
    return OperatingPoint(th, tp, fp, tn, fn, rg, rd, fpr, fnr, precision, recall, f1, bal,
                          fpr_ci, fnr_ci)


def misjudged(scores: Any, labels: Any, threshold: Threshold | float) -> tuple[list[int], list[int]]:
    """The images a threshold gets wrong: indices of the false passes (defects
    that PASS, lowest score first) and of the false rejects (good parts that
    FAIL, highest score first). In two-threshold mode REVIEW parts are neither
    (see the module docstring). The report's and the Calibrate view's galleries."""
    s, y = validate_scores(scores, labels)
    th = threshold if isinstance(threshold, Threshold) else Threshold(float(threshold))
    passes = s <= (th.low if th.low is not None else th.high)
    false_pass = np.flatnonzero((y == 1) & passes)
    false_reject = np.flatnonzero((y == 0) & (s > th.high))
    false_pass = false_pass[np.argsort(s[false_pass], kind="stable")]
    false_reject = false_reject[np.argsort(-s[false_reject], kind="stable")]
    return [int(i) for i in false_pass], [int(i) for i in false_reject]


def standard_operating_points(scores: Any, labels: Any, bootstrap: int = 0, seed: int = 0
                              ) -> dict[str, OperatingPoint | str]:
    """The report's reference points: youden, f1, fpr 1 %, fnr 0.5 %, quantile 99 %.

    Each value is an OperatingPoint, or a string saying why it is unavailable.
    """
    s, y = validate_scores(scores, labels)
    wanted = [("youden", "youden", None), ("f1", "f1", None), ("fpr 1%", "fpr", 0.01),
              ("fnr 0.5%", "fnr", 0.005), ("quantile 99%", "quantile", 0.99)]
    out: dict[str, OperatingPoint | str] = {}
    for name, strategy, target in wanted:
        try:
            phi = choose_threshold(s, y, strategy, target)
            out[name] = operating_point(s, y, phi, bootstrap=bootstrap, seed=seed)
        except CalibrationError as exc:
            out[name] = str(exc)
    return out


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
