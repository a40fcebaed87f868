"""Pixel-level metrics of anomaly maps against defect masks (MVTec AD):
:func:`pixel_auroc` and :func:`pro_score` (per-region overlap).

Used by evaluation (the metrics a bundle records) and by the report; pure
numpy, scikit-learn and OpenCV.
"""

from __future__ import annotations

from typing import Any

import numpy as np

# ------------------------------------------------------------ pixel metrics


def _pixel_arrays(maps: Any, masks: Any) -> tuple[np.ndarray, np.ndarray] | None:
    """Flattened (scores float32, truth bool) over images that have a mask.

    ``masks`` may be an array (N, H, W) or a sequence with None for images
    without a mask (those are left out).
    """
    if maps is None or masks is None:
        return None
    keep = [i for i in range(len(masks)) if masks[i] is not None]
    if not keep:
        return None
    m = np.stack([np.asarray(maps[i], dtype=np.float32) for i in keep])
    t = np.stack([np.asarray(masks[i]).astype(bool) for i in keep])
    if m.shape != t.shape:
        raise ValueError(f"anomaly maps {m.shape} and masks {t.shape} differ in shape")
    return m, t


def pixel_auroc(maps: Any, masks: Any, max_pixels: int = 4_000_000, seed: int = 0) -> float | None:
    """Pixel-level AUROC of anomaly maps against defect masks (None if a class is missing).

    Beyond ``max_pixels`` pixels a seeded uniform subsample is used (exact in
    expectation, and keeps memory and time bounded on large test sets).
    """
    from sklearn.metrics import roc_auc_score

    arrays = _pixel_arrays(maps, masks)
    if arrays is None:
        return None
    m, t = arrays
    truth = t.reshape(-1)
    if truth.all() or not truth.any():
        return None
    values = m.reshape(-1)
    if truth.size > max_pixels:
        idx = np.random.default_rng(seed).choice(truth.size, max_pixels, replace=False)
        truth, values = truth[idx], values[idx]
    return float(roc_auc_score(truth, values))


def pro_score(maps: Any, masks: Any, fpr_limit: float = 0.3) -> float | None:
    """Area under the per-region-overlap curve up to ``fpr_limit``, divided by it (MVTec AD).

    Each connected defect region (8-connectivity) weighs the same however large
    it is: PRO(t) is the mean over regions of the fraction of the region above
    t, plotted against the pixel FPR on defect-free pixels. Computed exactly at
    every distinct map value with one sort and cumulative sums.
    """
    import cv2

    arrays = _pixel_arrays(maps, masks)
    if arrays is None:
        return None
    m, t = arrays
    weights = np.zeros(t.shape, dtype=np.float64)
    sizes: list[tuple[int, np.ndarray, np.ndarray]] = []
    for i in range(t.shape[0]):
        if not t[i].any():
            continue
        n_lab, lab = cv2.connectedComponents(t[i].astype(np.uint8), connectivity=8)
        counts = np.bincount(lab.reshape(-1), minlength=n_lab)
        sizes.append((i, lab, counts))
    n_regions = sum(len(c) - 1 for _, _, c in sizes)
    n_bg = int(np.count_nonzero(~t))
    if n_regions == 0 or n_bg == 0:
        return None
    for i, lab, counts in sizes:
        per_label = np.zeros(len(counts))
        per_label[1:] = 1.0 / (counts[1:] * n_regions)
        weights[i] = per_label[lab]
    scores = m.reshape(-1)
    order = np.argsort(-scores, kind="stable")
    s_sorted = scores[order]
    fpr = np.cumsum((~t.reshape(-1))[order]) / n_bg
    pro = np.cumsum(weights.reshape(-1)[order])
    # keep the last index of each run of equal scores: a threshold takes all ties at once
    last = np.r_[np.flatnonzero(np.diff(s_sorted) != 0), s_sorted.size - 1]
    fpr, pro = np.r_[0.0, fpr[last]], np.r_[0.0, pro[last]]
    if fpr[-1] < fpr_limit:  # never reached: extend flat (all pixels already flagged)
        fpr, pro = np.r_[fpr, fpr_limit], np.r_[pro, pro[-1]]
    cut = int(np.searchsorted(fpr, fpr_limit, side="right"))
    x, y = fpr[:cut], pro[:cut]
    if x[-1] < fpr_limit:
        x0, x1, y0, y1 = fpr[cut - 1], fpr[cut], pro[cut - 1], pro[cut]
        y_end = y0 + (y1 - y0) * (fpr_limit - x0) / (x1 - x0) if x1 > x0 else y1
        x, y = np.r_[x, fpr_limit], np.r_[y, y_end]
    area = float(np.sum((x[1:] - x[:-1]) * (y[1:] + y[:-1]) / 2.0))
    return area / fpr_limit


__all__ = ["pixel_auroc", "pro_score"]
