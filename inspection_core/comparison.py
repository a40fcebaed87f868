"""What a comparison of detector families found, and the rule that recommends one.

The figures of each family (:class:`FamilyResult`) are measured on the same
held-out images (see :mod:`inspection_core.usecases.compare` for which);
this module holds them, the
curves, the operating point at the escape target and the recommendation
rule (docs/adr/0019-compare.md):

- the recommended family is the one with the best held-out image AUROC,
  compared as shown (three decimals);
- a tie there goes to the lower false-reject rate at the escape target,
  then to the fewer milliseconds per image, then to the smaller bundle.

No torch here, and no use case: the report (:mod:`inspection_core.report.compare`)
and the use case both read it. A comparison read back from ``comparison.json``
is a :class:`Comparison` again (:meth:`Comparison.from_dict`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

#: the escape rate the false-reject rate is compared at (threshold on the held-out scores)
DEFAULT_ESCAPE_TARGET = 0.01
#: AUROC is compared as the table shows it
AUROC_DECIMALS = 3


@dataclass
class OperatingRates:
    """A threshold and the rates it gives on the held-out images."""

    threshold: float | None
    false_reject_rate: float | None
    escape_rate: float | None


@dataclass
class FamilyResult:
    """One family's row: trained, evaluated on the held-out images, timed."""

    family: str
    bundle: str
    trained_on: str
    train_s: float
    ms_per_image: float
    bundle_bytes: int
    n_good: int
    n_defect: int
    image_auroc: float | None
    image_ap: float | None
    pixel_auroc: float | None
    pro: float | None
    at_target: OperatingRates
    at_bundle_threshold: OperatingRates
    roc_fpr: list[float] = field(default_factory=list)
    roc_tpr: list[float] = field(default_factory=list)
    pr_recall: list[float] = field(default_factory=list)
    pr_precision: list[float] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FamilyResult:
        d = dict(d)
        d["at_target"] = OperatingRates(**d["at_target"])
        d["at_bundle_threshold"] = OperatingRates(**d["at_bundle_threshold"])
        return cls(**d)


@dataclass
class Recommendation:
    """The family to use and why (one sentence)."""

    family: str | None
    reason: str


@dataclass
class Comparison:
    """Every family's result on the same held-out images, and the recommendation."""

    data: str
    held_out: dict[str, Any]
    escape_target: float
    results: list[FamilyResult]
    skipped: dict[str, str]
    recommendation: Recommendation
    machine: dict[str, Any] = field(default_factory=dict)
    wall_s: float = 0.0

    def result(self, family: str) -> FamilyResult:
        return next(r for r in self.results if r.family == family)

    def to_dict(self) -> dict[str, Any]:
        return {"data": self.data, "held_out": self.held_out, "escape_target": self.escape_target,
                "results": [r.to_dict() for r in self.results], "skipped": dict(self.skipped),
                "recommendation": asdict(self.recommendation), "machine": dict(self.machine),
                "wall_s": self.wall_s}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Comparison:
        return cls(data=d["data"], held_out=d["held_out"], escape_target=float(d["escape_target"]),
                   results=[FamilyResult.from_dict(r) for r in d["results"]], skipped=dict(d.get("skipped", {})),
                   recommendation=Recommendation(**d["recommendation"]), machine=dict(d.get("machine", {})),
                   wall_s=float(d.get("wall_s", 0.0)))


# ------------------------------------------------------------------ measures

def rates_at(scores: np.ndarray, labels: np.ndarray, threshold: float) -> OperatingRates:
    """False-reject and escape rates at ``threshold`` (FAIL when score > threshold)."""
    from .calibration import operating_point

    op = operating_point(scores, labels, float(threshold))
    return OperatingRates(float(threshold), op.fpr, op.fnr)


def rates_at_escape_target(scores: np.ndarray, labels: np.ndarray, target: float) -> OperatingRates:
    """The highest threshold whose escape rate on these images is at most
    ``target``, and its rates: how many good parts a family rejects to let
    at most ``target`` of the defects through."""
    from .calibration import choose_threshold

    if not np.any(np.asarray(labels) == 1):  # no defect to let through: no such threshold
        return OperatingRates(None, None, None)
    return rates_at(scores, labels, choose_threshold(scores, labels, "fnr", target=target))


def curves(scores: np.ndarray, labels: np.ndarray) -> dict[str, list[float]]:
    """ROC (false-reject rate, defects caught) and PR (recall, precision) points."""
    from .calibration import pr, roc

    r, p = roc(scores, labels), pr(scores, labels)
    return {"roc_fpr": r.fpr.tolist(), "roc_tpr": r.tpr.tolist(),
            "pr_recall": p.recall.tolist(), "pr_precision": p.precision.tolist()}


# ------------------------------------------------------------- recommendation

def _shown(v: float | None) -> float:
    return -math.inf if v is None else round(v, AUROC_DECIMALS)


def _rank_key(r: FamilyResult) -> tuple[float, float, float, int]:
    fr = r.at_target.false_reject_rate
    return (-_shown(r.image_auroc), math.inf if fr is None else fr, r.ms_per_image, r.bundle_bytes)


def recommend(results: list[FamilyResult], escape_target: float = DEFAULT_ESCAPE_TARGET) -> Recommendation:
    """The family with the best held-out image AUROC (see the module docstring for ties)."""
    scored = [r for r in results if r.image_auroc is not None]
    if not scored:
        return Recommendation(None, "no family could be measured (the held-out images need good and defective ones)")
    ranked = sorted(scored, key=_rank_key)
    best = ranked[0]
    others = ", ".join(f"{r.family} {r.image_auroc:.3f}" for r in ranked[1:])
    reason = f"best held-out image AUROC: {best.image_auroc:.3f}" + (f" (against {others})" if others else "")
    tied = [r for r in ranked[1:] if _shown(r.image_auroc) == _shown(best.image_auroc)]
    if tied:
        t = tied[0]
        fb, ft = best.at_target.false_reject_rate, t.at_target.false_reject_rate
        if fb != ft:
            why = (f"fewer false rejects at ≤{escape_target:.0%} escapes "
                   f"({_pct(fb)} against {t.family}'s {_pct(ft)})")
        elif best.ms_per_image != t.ms_per_image:
            why = f"faster ({best.ms_per_image:.1f} against {t.ms_per_image:.1f} ms per image)"
        else:
            why = f"smaller bundle ({best.bundle_bytes / 1e6:.1f} against {t.bundle_bytes / 1e6:.1f} MB)"
        reason += f"; tied with {t.family} at {best.image_auroc:.3f}, chosen for {why}"
    return Recommendation(best.family, reason)


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.1%}"


# ---------------------------------------------------------------- the table

#: the table's columns: (CSV header, heading shown)
COLUMNS = (
    ("family", "family"), ("image_auroc", "image AUROC"), ("pixel_auroc", "pixel AUROC"),
    ("false_reject_at_target", "false rejects"), ("escapes_at_target", "escapes"),
    ("train_s", "training"), ("ms_per_image", "ms / image"), ("bundle_mb", "bundle"),
    ("trained_on", "trained on"),
)


def table_rows(c: Comparison) -> list[dict[str, str]]:
    """One row of text per family (compared first, in the order run; then those left out, with why)."""
    rows = []
    for r in c.results:
        rows.append({
            "family": r.family,
            "image_auroc": "n/a" if r.image_auroc is None else f"{r.image_auroc:.3f}",
            "pixel_auroc": "n/a" if r.pixel_auroc is None else f"{r.pixel_auroc:.3f}",
            "false_reject_at_target": _pct(r.at_target.false_reject_rate),
            "escapes_at_target": _pct(r.at_target.escape_rate),
            "train_s": f"{r.train_s:.0f} s",
            "ms_per_image": f"{r.ms_per_image:.1f}",
            "bundle_mb": f"{r.bundle_bytes / 1e6:.1f} MB",
            "trained_on": r.trained_on,
        })
    for fam, why in c.skipped.items():
        rows.append({"family": fam, **{k: "–" for k, _ in COLUMNS[1:-1]}, "trained_on": f"left out: {why}"})
    return rows


def format_table(c: Comparison) -> str:
    """The table as aligned text (the CLI prints it)."""
    rows = table_rows(c)
    heads = [h for _, h in COLUMNS]
    keys = [k for k, _ in COLUMNS]
    widths = [max(len(h), *(len(row[k]) for row in rows)) if rows else len(h) for k, h in zip(keys, heads)]
    widths[-1] = len(heads[-1])  # the last column runs on
    line = "  ".join(h.ljust(w) for h, w in zip(heads, widths)).rstrip()
    out = [line]
    for row in rows:
        out.append("  ".join(row[k].ljust(w) for k, w in zip(keys, widths)).rstrip())
    return "\n".join(out)


def csv_rows(c: Comparison) -> tuple[list[str], list[list[Any]]]:
    """(header, rows) of ``comparison.csv``: numbers as numbers, one row per family."""
    header = ["family", "status", "image_auroc", "image_ap", "pixel_auroc", "pro", "escape_target",
              "threshold_at_target", "false_reject_rate_at_target", "escape_rate_at_target", "bundle_threshold",
              "false_reject_rate_at_bundle_threshold", "escape_rate_at_bundle_threshold", "train_s", "ms_per_image",
              "bundle_bytes", "n_good", "n_defect", "trained_on", "bundle", "recommended"]

    def num(v: float | None) -> str:
        return "" if v is None else f"{v:.6g}"

    rows: list[list[Any]] = []
    for r in c.results:
        rows.append([r.family, "compared", num(r.image_auroc), num(r.image_ap), num(r.pixel_auroc), num(r.pro),
                     num(c.escape_target), num(r.at_target.threshold), num(r.at_target.false_reject_rate),
                     num(r.at_target.escape_rate), num(r.at_bundle_threshold.threshold),
                     num(r.at_bundle_threshold.false_reject_rate), num(r.at_bundle_threshold.escape_rate),
                     f"{r.train_s:.2f}", f"{r.ms_per_image:.3f}", r.bundle_bytes, r.n_good, r.n_defect, r.trained_on,
                     r.bundle, "yes" if r.family == c.recommendation.family else "no"])
    for fam, why in c.skipped.items():
        rows.append([fam, f"left out: {why}", *[""] * (len(header) - 3), "no"])
    return header, rows


__all__ = ["AUROC_DECIMALS", "COLUMNS", "Comparison", "DEFAULT_ESCAPE_TARGET", "FamilyResult", "OperatingRates",
           "Recommendation", "csv_rows", "curves", "format_table", "rates_at", "rates_at_escape_target", "recommend",
           "table_rows"]
