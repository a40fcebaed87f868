"""The re-check of a taught bundle: false-reject and escape rates on its
calibration images, before and after, at the bundle's threshold, and the rule
that refuses a taught bundle (ADR 0020).

The rule: a taught bundle is refused when its escape rate (defective images
that PASS) rises by more than one part in 100 (``MAX_ESCAPE_RISE`` = 0.01,
as a share of the defective calibration images: with fewer than 100 of them
one more escape is already refused), or when the calibration images hold no
defective image (escapes cannot be measured). ``--force`` saves it anyway and
the bundle records that it was forced.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..data.dataset import DatasetIndex, Sample
from ..manifest import Manifest
from ..selection import calibration_samples, open_data
from ..types import Threshold, Verdict

#: the largest rise of the escape rate a taught bundle may bring
MAX_ESCAPE_RISE = 0.01
RULE = ("refused when the escape rate on the defective calibration images rises by more than one part in 100 "
        "(0.01), or when there is no defective image to measure it on")


@dataclass(frozen=True)
class Rates:
    """False rejects (good images that FAIL) and escapes (defective images that PASS) at one threshold."""

    n_good: int
    n_defect: int
    false_rejects: int
    escapes: int

    @property
    def false_reject_rate(self) -> float | None:
        return self.false_rejects / self.n_good if self.n_good else None

    @property
    def escape_rate(self) -> float | None:
        return self.escapes / self.n_defect if self.n_defect else None

    @classmethod
    def of(cls, scores: np.ndarray, labels: np.ndarray, threshold: Threshold) -> "Rates":
        verdicts = threshold.verdicts(scores)
        good = [v for v, y in zip(verdicts, labels) if int(y) == 0]
        bad = [v for v, y in zip(verdicts, labels) if int(y) == 1]
        return cls(len(good), len(bad), sum(v == Verdict.FAIL for v in good), sum(v == Verdict.PASS for v in bad))

    def to_dict(self) -> dict[str, Any]:
        return {"n_good": self.n_good, "n_defect": self.n_defect, "false_rejects": self.false_rejects,
                "escapes": self.escapes, "false_reject_rate": self.false_reject_rate, "escape_rate": self.escape_rate}


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{100 * v:.1f} %"


@dataclass(frozen=True)
class TeachCheck:
    """The rates before and after on the same images, what was left out and the verdict of the rule."""

    before: Rates
    after: Rates
    description: str
    excluded: int = 0

    @property
    def escape_rise(self) -> float | None:
        if self.before.escape_rate is None or self.after.escape_rate is None:
            return None
        return self.after.escape_rate - self.before.escape_rate

    @property
    def passed(self) -> bool:
        rise = self.escape_rise
        return rise is not None and rise <= MAX_ESCAPE_RISE + 1e-12

    def figures(self) -> str:
        """One line: "false rejects 12.0 % -> 4.0 % (3 -> 1 of 25 good), escapes 5.0 % -> 5.0 % (…)"."""
        b, a = self.before, self.after
        return (f"false rejects {_pct(b.false_reject_rate)} -> {_pct(a.false_reject_rate)} ({b.false_rejects} -> "
                f"{a.false_rejects} of {b.n_good} good), escapes {_pct(b.escape_rate)} -> {_pct(a.escape_rate)} "
                f"({b.escapes} -> {a.escapes} of {b.n_defect} defective)")

    def why_refused(self) -> str:
        if self.before.n_defect == 0:
            return "the calibration images hold no defective image: escapes cannot be checked"
        rise = self.escape_rise or 0.0
        return f"escapes rise by {100 * rise:.1f} points, more than the 1 in 100 allowed"

    def to_dict(self, forced: bool = False) -> dict[str, Any]:
        return {"before": self.before.to_dict(), "after": self.after.to_dict(), "images": self.description,
                "excluded_taught": self.excluded, "rule": RULE, "passed": self.passed, "forced": bool(forced)}


def _recorded_samples(meta: Manifest) -> list[Sample] | None:
    """The images the bundle's latest calibration was made on, where they all still exist."""
    cal = meta.calibration
    if cal is None or not cal.paths or not cal.labels or len(cal.paths) != len(cal.labels):
        return None
    root = Path(cal.root) if cal.root else None
    out = []
    for rel, y in zip(cal.paths, cal.labels):
        p = Path(rel) if root is None or Path(rel).is_absolute() else root / rel
        if not p.is_file():
            return None
        out.append(Sample(p, int(y), "good" if int(y) == 0 else Path(rel).parent.name))
    return out


def check_samples(meta: Manifest, data: DatasetIndex | str | os.PathLike[str] | None = None) -> tuple[list[Sample], str]:
    """The calibration images a taught bundle is re-checked on: ``data``'s
    (chosen by :mod:`inspection_core.selection`) when given, else the images
    the bundle's calibration recorded, else its training folder's calibration
    images; ValueError when none can be found here."""
    if data is not None:
        sel = calibration_samples(meta, open_data(data, meta))
        return sel.samples, f"{sel.description} of '{sel.index.root}'"
    recorded = _recorded_samples(meta)
    if recorded:
        return recorded, "the images of the bundle's latest calibration"
    root = meta.data.root
    if root and Path(str(root)).is_dir():
        sel = calibration_samples(meta, open_data(str(root), meta))
        return sel.samples, f"{sel.description} of the training folder '{root}'"
    raise ValueError("no calibration images to re-check the taught bundle on: its calibration images and its "
                     "training folder are not on this machine; give the labelled folder (--data DIR)")


__all__ = ["MAX_ESCAPE_RISE", "RULE", "Rates", "TeachCheck", "check_samples"]
