"""The rule that lets a fast scoring path be a bundle's default (no torch:
the Calibrate view applies it in the GUI thread to scores it already has).

A threshold belongs to the scoring path it was calibrated on, so each path
gets its own threshold, chosen by the same rule on the same images; the fast
path holds when image AUROC on it is within :data:`MAX_AUROC_DELTA` of the
fp32 path's (where the images hold both classes) and at most
:data:`MAX_VERDICT_CHANGES` of the verdicts differ between the fast path at
its threshold and the fp32 path at its own. Where the check runs and how
its result is stored: :mod:`inspection_core.usecases.fidelity`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from .types import Threshold

#: a fast path is a bundle's default only within these (see the module docstring)
MAX_AUROC_DELTA = 0.005
MAX_VERDICT_CHANGES = 0.005

ThresholdRule = Callable[[np.ndarray, np.ndarray], Threshold]


@dataclass
class Fidelity:
    """How a fast path's verdicts compare with the fp32 path's on one set of images."""

    precision: str                      # the fast path's ("bf16", "fp16")
    engine: str
    n: int                              # images compared
    changed: int                        # verdicts that differ (each path at its own threshold)
    auroc_fp32: float | None            # where the images hold both classes
    auroc: float | None
    threshold_fp32: dict[str, Any]      # each path's own threshold, same rule, same images
    threshold: dict[str, Any]
    max_rel: float                      # worst per-image relative score difference (for information)
    median_rel: float
    checked_on: str = ""                # which images, which threshold rule
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def changed_rate(self) -> float:
        return self.changed / self.n if self.n else 0.0

    @property
    def auroc_delta(self) -> float | None:
        return None if self.auroc is None or self.auroc_fp32 is None else self.auroc - self.auroc_fp32

    @property
    def ok(self) -> bool:
        d = self.auroc_delta
        return self.n > 0 and self.changed_rate <= MAX_VERDICT_CHANGES and (d is None or abs(d) <= MAX_AUROC_DELTA)

    def summary(self) -> str:
        auc = "" if self.auroc_delta is None else f"image AUROC {self.auroc_fp32:.4f} -> {self.auroc:.4f}, "
        verdict = "used by default" if self.ok else "not used (fp32 stays the default)"
        return (f"{self.precision} scoring path: {auc}{self.changed} of {self.n} verdicts differ from fp32 "
                f"({self.changed_rate:.1%}; limits: AUROC within {MAX_AUROC_DELTA}, at most "
                f"{MAX_VERDICT_CHANGES:.1%} of verdicts): {verdict}")

    def to_dict(self) -> dict[str, Any]:
        return {"precision": self.precision, "engine": self.engine, "n": self.n, "changed": self.changed,
                "changed_rate": self.changed_rate, "auroc_fp32": self.auroc_fp32, "auroc": self.auroc,
                "threshold_fp32": self.threshold_fp32, "threshold": self.threshold, "max_rel": self.max_rel,
                "median_rel": self.median_rel, "checked_on": self.checked_on,
                "rule": {"max_auroc_delta": MAX_AUROC_DELTA, "max_verdict_changes": MAX_VERDICT_CHANGES},
                "ok": self.ok, **self.extra}


def _auroc(labels: np.ndarray, scores: np.ndarray) -> float | None:
    if len(set(labels.tolist())) != 2:
        return None
    from .calibration import roc

    return roc(scores, labels).auroc


def compare_paths(ref: np.ndarray, fast: np.ndarray, labels: np.ndarray | None, thr_ref: Threshold,
                  thr_fast: Threshold, *, precision: str, engine: str, checked_on: str = "",
                  auroc_mask: np.ndarray | None = None) -> Fidelity:
    """The rule on scores already computed: ``ref`` (fp32) and ``fast`` for
    the same images, each path's own threshold. ``auroc_mask`` selects the
    images AUROC is measured on (default: all)."""
    ref, fast = np.asarray(ref, np.float64), np.asarray(fast, np.float64)
    if ref.shape != fast.shape or ref.ndim != 1:
        raise ValueError(f"compare_paths needs two score vectors of one length, got {ref.shape} and {fast.shape}")
    y = np.zeros(len(ref), int) if labels is None else np.asarray(labels, int)
    changed = sum(thr_ref.verdict(float(a)) != thr_fast.verdict(float(b)) for a, b in zip(ref, fast))
    m = np.ones(len(ref), bool) if auroc_mask is None else np.asarray(auroc_mask, bool)
    rel = np.abs(fast - ref) / np.maximum(np.abs(ref), 1e-12) if len(ref) else np.zeros(1)
    return Fidelity(precision, engine, int(len(ref)), int(changed), _auroc(y[m], ref[m]), _auroc(y[m], fast[m]),
                    thr_ref.to_dict(), thr_fast.to_dict(), float(rel.max()), float(np.median(rel)), checked_on)


def check_rule(ref: np.ndarray, fast: np.ndarray, labels: np.ndarray, rule: ThresholdRule, *, precision: str,
               engine: str, checked_on: str = "") -> Fidelity:
    """The rule for a calibration: each path's threshold chosen by ``rule``
    (a strategy, or a fixed value) on its own scores of the same images."""
    y = np.asarray(labels, int)
    ref, fast = np.asarray(ref, np.float64), np.asarray(fast, np.float64)
    return compare_paths(ref, fast, y, rule(ref, y), rule(fast, y), precision=precision, engine=engine,
                         checked_on=checked_on)


def pick_path(pair: Any, rule: ThresholdRule) -> tuple[Any, Fidelity]:
    """For a calibration set scored on both paths (``pair.ref`` fp32,
    ``pair.fast``: objects with ``scores``, ``labels``, ``description`` and
    the ``inspector`` that scored them, e.g.
    ``usecases.calibrate.PathPair``): the rule for thresholds chosen by
    ``rule``, and the set the threshold belongs to (the fast one where it
    holds). The one choice ``inspector calibrate`` and the Calibrate view make."""
    fid = check_rule(pair.ref.scores, pair.fast.scores, pair.ref.labels, rule,
                     precision=pair.fast.inspector.precision, engine=pair.fast.inspector.engine,
                     checked_on=f"{len(pair.ref.scores)} calibration images ({pair.ref.description}); threshold: "
                                "the calibration's rule on each path")
    return (pair.fast if fid.ok else pair.ref), fid


def quantile_rule(q: float) -> ThresholdRule:
    """The provisional threshold's rule: the ``q`` quantile of the good scores."""

    def rule(scores: np.ndarray, labels: np.ndarray) -> Threshold:
        good = scores[labels == 0] if (labels == 0).any() else scores
        return Threshold(float(np.quantile(good, q)))

    return rule


__all__ = ["MAX_AUROC_DELTA", "MAX_VERDICT_CHANGES", "Fidelity", "ThresholdRule", "check_rule", "compare_paths",
           "pick_path", "quantile_rule"]
