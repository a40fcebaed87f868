"""Operating points: the confusion counts and rates at a threshold, with bootstrap CIs.

Cheap enough for a GUI to call on every drag of a threshold line (without
bootstrap); see :mod:`inspection_core.calibration` for the two-threshold
(REVIEW) counting rule.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .calibration_thresholds import CalibrationError, choose_threshold, validate_scores
from .types import Threshold

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
    (see :mod:`inspection_core.calibration`). The report's and the Calibrate view's galleries."""
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
