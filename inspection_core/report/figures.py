"""The report's figures: PNGs drawn with matplotlib's object API on the Agg
canvas (no pyplot state, no GUI backend), so this is safe on a worker thread
and never touches Qt."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..calibration import OperatingPoint, operating_point, pr, roc
from ..fileio import atomic_open
from ..types import Threshold

ImagesArg = np.ndarray | Sequence[np.ndarray] | Callable[[int], np.ndarray] | None


def _figure(w: float = 5.0, h: float = 4.0):
    from matplotlib.figure import Figure

    return Figure(figsize=(w, h), dpi=100, layout="constrained")


def _save(fig: Any, path: Path) -> Path:
    with atomic_open(path, "wb", fsync=False) as fh:  # a report can be written again
        fig.savefig(fh, format="png")
    return path


def roc_figure(s: np.ndarray, y: np.ndarray, point: OperatingPoint,
                others: dict[str, OperatingPoint | str], path: Path) -> Path | None:
    curve = roc(s, y)
    if curve.auroc is None:
        return None
    fig = _figure()
    ax = fig.add_subplot()
    ax.plot(curve.fpr, curve.tpr, color="#1f5fa8", lw=1.8, label=f"ROC (AUROC {curve.auroc:.3f})")
    ax.plot([0, 1], [0, 1], color="#999", lw=0.8, ls=":")
    for (name, op), mk in zip(others.items(), "s^vDP"):
        if isinstance(op, OperatingPoint) and op.fpr is not None and op.fnr is not None:
            ax.plot(op.fpr, 1 - op.fnr, mk, ms=6, mfc="none", mec="#555", label=name)
    th = point.threshold
    if th.low is None:
        ax.plot(point.fpr, 1 - (point.fnr or 0.0), "o", ms=9, color="#d62728", label="chosen threshold")
    else:  # two thresholds: each line as a single threshold, joined by the review band
        lo_op, hi_op = operating_point(s, y, th.low), operating_point(s, y, th.high)
        lo_fnr, hi_fnr = lo_op.fnr or 0.0, hi_op.fnr or 0.0  # None only without defects, which a ROC needs
        ax.plot([lo_op.fpr, hi_op.fpr], [1 - lo_fnr, 1 - hi_fnr], "-o", ms=8, color="#d62728",
                label="φ_low … φ_high (review band)")
    ax.set(xlabel="false-reject rate (FPR)", ylabel="defects caught (TPR)", xlim=(-0.01, 1.01),
           ylim=(-0.01, 1.01), title="ROC")
    ax.legend(loc="lower right", fontsize=8)
    return _save(fig, path)


def pr_figure(s: np.ndarray, y: np.ndarray, point: OperatingPoint, path: Path) -> Path | None:
    curve = pr(s, y)
    if curve.ap is None:
        return None
    fig = _figure()
    ax = fig.add_subplot()
    ax.plot(curve.recall, curve.precision, color="#1f5fa8", lw=1.8, label=f"PR (AP {curve.ap:.3f})")
    if point.precision is not None and point.recall is not None:
        ax.plot(point.recall, point.precision, "o", ms=9, color="#d62728", label="chosen threshold")
    ax.set(xlabel="recall", ylabel="precision", xlim=(-0.01, 1.01), ylim=(-0.01, 1.01),
           title="Precision-recall")
    ax.legend(loc="lower left", fontsize=8)
    return _save(fig, path)


def histogram_figure(s: np.ndarray, y: np.ndarray, th: Threshold, path: Path) -> Path:
    fig = _figure(6.5, 3.8)
    ax = fig.add_subplot()
    n_bins = int(np.clip(2 * math.sqrt(s.size), 15, 60))
    lo, hi = float(s.min()), float(s.max())
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    edges = np.linspace(lo, hi, n_bins + 1)
    for label, name, color in ((0, "good", "#2ca02c"), (1, "defective", "#d62728")):
        part = s[y == label]
        if part.size:
            ax.hist(part, bins=edges, alpha=0.55, color=color, label=f"{name} (n={part.size})")
    ax.axvline(th.high, color="black", lw=1.5, label=f"φ = {th.high:.4g} (FAIL above)")
    if th.low is not None and th.low != th.high:
        ax.axvline(th.low, color="#ff7f0e", lw=1.5, ls="--", label=f"φ_low = {th.low:.4g} (PASS at or below)")
        ax.axvspan(th.low, th.high, color="#ff7f0e", alpha=0.08)
    ax.set(xlabel="anomaly score", ylabel="images", title="Score distribution")
    ax.legend(fontsize=8)
    return _save(fig, path)


def confusion_figure(point: OperatingPoint, path: Path) -> Path:
    two = point.threshold.low is not None
    cols = ["PASS", "REVIEW", "FAIL"] if two else ["PASS", "FAIL"]
    rows = [[point.tn, point.review_good, point.fp], [point.fn, point.review_defect, point.tp]]
    if not two:
        rows = [[r[0], r[2]] for r in rows]
    mat = np.array(rows, dtype=float)
    fig = _figure(4.2 + 1.0 * two, 3.4)
    ax = fig.add_subplot()
    share = mat / np.maximum(mat.sum(axis=1, keepdims=True), 1)
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for r in range(2):
        for c in range(len(cols)):
            ax.text(c, r, f"{int(mat[r, c])}\n{share[r, c]:.1%}", ha="center", va="center",
                    color="white" if share[r, c] > 0.6 else "black", fontsize=11)
    ax.set_xticks(range(len(cols)), cols)
    ax.set_yticks([0, 1], ["good", "defective"])
    ax.set(xlabel="verdict", ylabel="actual", title="Confusion matrix")
    return _save(fig, path)


def _get_image(images: ImagesArg, i: int) -> np.ndarray | None:
    if images is None:
        return None
    img = images(i) if callable(images) else images[i]
    return None if img is None else np.asarray(img)


def _to_rgb(img: np.ndarray) -> np.ndarray:
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if img.ndim == 3 and img.shape[2] >= 3:
        img = img[:, :, 2::-1]  # BGR(A) -> RGB
    if img.dtype == np.uint16:
        img = (img.astype(np.float64) / 257.0).round().astype(np.uint8)
    elif img.dtype != np.uint8:
        img = np.clip(img, 0, 255).astype(np.uint8)
    return img


def misses_figure(idx: Sequence[int], title: str, s: np.ndarray, names: list[str],
                   images: ImagesArg, maps: Any, heat_range: tuple[float, float] | None,
                   path: Path) -> Path | None:
    if not len(idx) or images is None:
        return None
    ncol = min(4, len(idx))
    nrow = math.ceil(len(idx) / ncol)
    fig = _figure(2.6 * ncol, 2.9 * nrow + 0.4)
    fig.suptitle(title)
    for k, i in enumerate(idx):
        ax = fig.add_subplot(nrow, ncol, k + 1)
        img = _get_image(images, i)
        if img is not None:
            rgb = _to_rgb(img)
            ax.imshow(rgb, cmap="gray" if rgb.ndim == 2 else None, vmin=0, vmax=255)
        if maps is not None and maps[i] is not None and heat_range is not None:
            ax.imshow(np.asarray(maps[i], dtype=np.float32), cmap="jet", alpha=0.45,
                      vmin=heat_range[0], vmax=heat_range[1])
        ax.set_title(f"{names[i][-28:]}\nscore {s[i]:.4g}", fontsize=7)
        ax.axis("off")
    return _save(fig, path)


def heat_range(maps: Any) -> tuple[float, float] | None:
    """One colour scale for every heat map in the report (percentiles over all maps)."""
    if maps is None:
        return None
    vals = [np.asarray(m, dtype=np.float32).reshape(-1)[::7] for m in maps if m is not None]
    if not vals:
        return None
    lo, hi = np.percentile(np.concatenate(vals), [1.0, 99.5])
    return float(lo), float(max(hi, lo + 1e-12))
