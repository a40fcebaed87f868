"""Evaluation report: PNG figures and one self-contained ``index.html``.

The report opens in a browser straight from disk: figures are PNGs next to
``index.html`` (relative links), CSS is inline, there is no script. Figures are
drawn with matplotlib's object API on the Agg canvas (no pyplot state, no GUI
backend), so this module is safe in a worker thread and never touches Qt.

Also here: pixel-level metrics for data sets with defect masks,
:func:`pixel_auroc` and :func:`pro_score` (per-region overlap, MVTec AD).
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from .calibration import (OperatingPoint, operating_point, pr, roc, standard_operating_points,
                          validate_scores)
from .fileio import atomic_write_text
from .types import Threshold

ImagesArg = np.ndarray | Sequence[np.ndarray] | Callable[[int], np.ndarray] | None

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


# ------------------------------------------------------------------ figures


def _figure(w: float = 5.0, h: float = 4.0):
    from matplotlib.figure import Figure

    return Figure(figsize=(w, h), dpi=100, layout="constrained")


def _save(fig: Any, path: Path) -> Path:
    fig.savefig(path, format="png")
    return path


def _roc_figure(s: np.ndarray, y: np.ndarray, point: OperatingPoint,
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
        ax.plot(point.fpr, 1 - point.fnr, "o", ms=9, color="#d62728", label="chosen threshold")
    else:  # two thresholds: each line as a single threshold, joined by the review band
        lo_op, hi_op = operating_point(s, y, th.low), operating_point(s, y, th.high)
        ax.plot([lo_op.fpr, hi_op.fpr], [1 - lo_op.fnr, 1 - hi_op.fnr], "-o", ms=8, color="#d62728",
                label="φ_low … φ_high (review band)")
    ax.set(xlabel="false-reject rate (FPR)", ylabel="defects caught (TPR)", xlim=(-0.01, 1.01),
           ylim=(-0.01, 1.01), title="ROC")
    ax.legend(loc="lower right", fontsize=8)
    return _save(fig, path)


def _pr_figure(s: np.ndarray, y: np.ndarray, point: OperatingPoint, path: Path) -> Path | None:
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


def _histogram_figure(s: np.ndarray, y: np.ndarray, th: Threshold, path: Path) -> Path:
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


def _confusion_figure(point: OperatingPoint, path: Path) -> Path:
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


def _misses_figure(idx: Sequence[int], title: str, s: np.ndarray, names: list[str],
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


def _heat_range(maps: Any) -> tuple[float, float] | None:
    """One colour scale for every heat map in the report (percentiles over all maps)."""
    if maps is None:
        return None
    vals = [np.asarray(m, dtype=np.float32).reshape(-1)[::7] for m in maps if m is not None]
    if not vals:
        return None
    lo, hi = np.percentile(np.concatenate(vals), [1.0, 99.5])
    return float(lo), float(max(hi, lo + 1e-12))


# --------------------------------------------------------------------- html

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:24px auto;max-width:1100px;color:#222}
h1{font-size:1.5em;margin-bottom:0}h2{font-size:1.15em;border-bottom:1px solid #ddd;padding-bottom:4px;margin-top:28px}
.sub{color:#666;margin-top:4px}table{border-collapse:collapse;margin:8px 0;font-size:.92em}
td,th{border:1px solid #ddd;padding:4px 10px;text-align:left}th{background:#f4f6f8}
td.n{text-align:right;font-variant-numeric:tabular-nums}.figs{display:flex;flex-wrap:wrap;gap:16px}
.figs figure{margin:0}figcaption{color:#666;font-size:.85em}img{max-width:100%;border:1px solid #eee}
.note{color:#8a5a00;background:#fff7e6;padding:6px 10px;border-radius:4px}
"""


def _fmt(v: Any) -> str:
    if v is None:
        return "–"
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        return f"{float(v):.4g}"
    return html.escape(str(v))


def _rate(v: float | None, ci: tuple[float, float] | None = None) -> str:
    if v is None:
        return "–"
    text = f"{v:.2%}"
    if ci is not None:
        text += f" [{ci[0]:.2%}, {ci[1]:.2%}]"
    return text


def _table(rows: list[tuple[str, Any]]) -> str:
    body = "".join(f"<tr><th>{html.escape(k)}</th><td class=n>{_fmt(v)}</td></tr>" for k, v in rows)
    return f"<table>{body}</table>"


def _bundle_rows(manifest: dict[str, Any] | None) -> list[tuple[str, Any]]:
    if not manifest:
        return [("bundle", "not given")]
    model = manifest.get("model") or {}
    training = manifest.get("training") or {}
    th = manifest.get("threshold") or {}
    return [
        ("name", manifest.get("name")), ("model", model.get("model")),
        ("image size", model.get("image_size")), ("channels", model.get("channels")),
        ("created", manifest.get("created")), ("app version", manifest.get("app_version")),
        ("epochs (best)", f"{training.get('epochs_run', training.get('epochs', '–'))} ({training.get('best_epoch', '–')})"),
        ("training device", training.get("device")),
        ("bundle threshold", f"{th.get('high')} / low {th.get('low')} ({th.get('strategy')}, "
                             f"target {th.get('target')}{', provisional' if th.get('provisional') else ''})"),
    ]


def _points_table(points: dict[str, OperatingPoint | str], chosen: OperatingPoint) -> str:
    head = ("<tr><th>operating point</th><th>φ</th><th>FPR (false reject)</th><th>FNR (escape)</th>"
            "<th>precision</th><th>recall</th><th>F1</th><th>balanced acc.</th><th>TP/FP/TN/FN</th>"
            "<th>review</th></tr>")
    rows = []
    for name, op in [("chosen", chosen), *points.items()]:
        if isinstance(op, str):
            rows.append(f"<tr><td>{html.escape(name)}</td><td colspan=9>{html.escape(op)}</td></tr>")
            continue
        th = op.threshold
        phi = _fmt(th.high) if th.low is None else f"{_fmt(th.low)} – {_fmt(th.high)}"
        rows.append(
            f"<tr><td>{html.escape(name)}</td><td class=n>{phi}</td><td class=n>{_rate(op.fpr, op.fpr_ci)}</td>"
            f"<td class=n>{_rate(op.fnr, op.fnr_ci)}</td><td class=n>{_rate(op.precision)}</td>"
            f"<td class=n>{_rate(op.recall)}</td><td class=n>{_fmt(op.f1)}</td>"
            f"<td class=n>{_rate(op.balanced_accuracy)}</td>"
            f"<td class=n>{op.tp}/{op.fp}/{op.tn}/{op.fn}</td><td class=n>{op.n_review}</td></tr>")
    return f"<table>{head}{''.join(rows)}</table>"


# shown elsewhere in the report (summary rows, operating-point table)
_SHOWN = {"n_good", "n_defect", "image_auroc", "image_ap", "pixel_auroc", "pro", "confusion", "review", "bands",
          "threshold", "threshold_low", "fpr", "fnr"}


def _flat_metrics(metrics: dict[str, Any] | None) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for k, v in (metrics or {}).items():
        if k in _SHOWN:
            continue
        if isinstance(v, dict):
            out += [(f"{k}.{k2}", v2) for k2, v2 in v.items() if not isinstance(v2, (dict, list))]
        elif not isinstance(v, list):
            out.append((k, v))
    return out


def _masks_for(samples: Sequence[Any], size: int) -> list[np.ndarray | None] | None:
    """Masks for scored samples: all-false for good images, None for defects without a mask."""
    if not any(getattr(smp, "mask_path", None) is not None for smp in samples):
        return None
    from .data.dataset import load_masks

    loaded = load_masks(samples, size)
    return [None if (smp.label == 1 and smp.mask_path is None) else loaded[i]
            for i, smp in enumerate(samples)]


def write_report(report_dir: str | Path, scores: Any = None, labels: Any = None,
                 threshold: Threshold | float | None = None, *, scored: Any = None, inspector: Any = None,
                 paths: Sequence[Any] | None = None, defect_types: Sequence[str] | None = None,
                 images: ImagesArg = None, maps: Any = None, masks: Any = None,
                 manifest: dict[str, Any] | None = None, metrics: dict[str, Any] | None = None,
                 title: str = "Inspector evaluation report", n_misses: int = 8,
                 bootstrap: int = 1000, seed: int = 0) -> Path:
    """Write figures and ``index.html`` into ``report_dir``; return the HTML path.

    Either give arrays (``scores``, ``labels``, ``threshold`` ...) or an
    ``evaluation.ScoredSet`` as ``scored`` (its scores, labels, paths, maps,
    images; masks are loaded from the samples) and an ``Inspector`` as
    ``inspector`` (threshold, manifest, image size); explicit arguments win.

    ``images``: preprocessed uint8 images (N, S, S, C) as an array, a list, or
    a callable ``i -> image`` (only the misses are loaded). ``maps``: anomaly
    maps (N, S, S) or None. ``masks``: defect masks (N, S, S) or a list with
    None where an image has none (left out of pixel metrics); good images
    should get an all-false mask. ``metrics``: extra figures to list (e.g.
    from ``evaluation.compute_metrics``).
    """
    if inspector is not None:
        threshold = inspector.threshold if threshold is None else threshold
        manifest = inspector.manifest if manifest is None else manifest
    if scored is not None:
        scores = scored.scores if scores is None else scores
        labels = scored.labels if labels is None else labels
        paths = [smp.path for smp in scored.samples] if paths is None else paths
        defect_types = [smp.defect_type for smp in scored.samples] if defect_types is None else defect_types
        maps = scored.maps if maps is None else maps
        images = getattr(scored, "images", None) if images is None else images
        if masks is None and maps is not None:
            masks = _masks_for(scored.samples, int(np.asarray(maps).shape[-1]))
    if scores is None or labels is None or threshold is None:
        raise ValueError("write_report needs scores, labels and a threshold (or scored= and inspector=)")
    out = Path(report_dir)
    out.mkdir(parents=True, exist_ok=True)
    s, y = validate_scores(scores, labels, paths)
    th = threshold if isinstance(threshold, Threshold) else Threshold(float(threshold))
    names = ([f"{Path(p).parent.name}/{Path(p).name}" for p in paths] if paths is not None
             else [f"#{i}" for i in range(s.size)])
    point = operating_point(s, y, th, bootstrap=bootstrap, seed=seed)
    points = standard_operating_points(s, y, bootstrap=bootstrap, seed=seed)
    roc_c, pr_c = roc(s, y), pr(s, y)
    px_auroc, pro = pixel_auroc(maps, masks), pro_score(maps, masks)

    figs: list[tuple[str, str]] = []
    for made, caption in (
        (_roc_figure(s, y, point, points, out / "roc.png"), "ROC curve; red dot: chosen threshold"),
        (_pr_figure(s, y, point, out / "pr.png"), "Precision-recall curve"),
        (_histogram_figure(s, y, th, out / "histogram.png"), "Scores of good vs defective images"),
        (_confusion_figure(point, out / "confusion.png"), "Confusion matrix at the chosen threshold"),
    ):
        if made is not None:
            figs.append((made.name, caption))

    band_pass = s <= (th.low if th.low is not None else th.high)
    false_pass = [int(i) for i in np.flatnonzero((y == 1) & band_pass)]
    false_pass.sort(key=lambda i: s[i])
    false_reject = [int(i) for i in np.flatnonzero((y == 0) & (s > th.high))]
    false_reject.sort(key=lambda i: -s[i])
    hr = _heat_range(maps)
    miss_figs = []
    for idx, fname, caption in ((false_pass[:n_misses], "misses_false_pass.png", "Worst false passes (escapes)"),
                                (false_reject[:n_misses], "misses_false_reject.png", "Worst false rejects")):
        made = _misses_figure(idx, caption, s, names, images, maps, hr, out / fname)
        if made is not None:
            miss_figs.append((made.name, caption + (" with heat maps" if hr else "")))

    metric_rows: list[tuple[str, Any]] = [
        ("good images", int(np.sum(y == 0))), ("defective images", int(np.sum(y == 1))),
        ("image AUROC", roc_c.auroc if roc_c.auroc is not None else roc_c.reason),
        ("average precision", pr_c.ap if pr_c.ap is not None else pr_c.reason),
        ("pixel AUROC", px_auroc if px_auroc is not None else "no masks"),
        ("PRO (FPR ≤ 0.3)", pro if pro is not None else "no masks"),
    ] + _flat_metrics(metrics)
    bands = point.to_dict()["bands"]
    band_rows = [("good: PASS / REVIEW / FAIL", f"{bands['good']['pass']} / {bands['good']['review']} / {bands['good']['fail']}"),
                 ("defective: PASS / REVIEW / FAIL", f"{bands['defect']['pass']} / {bands['defect']['review']} / {bands['defect']['fail']}"),
                 ("all: PASS / REVIEW / FAIL", f"{point.n_pass} / {point.n_review} / {point.n_fail}")]

    def fig_html(items: list[tuple[str, str]]) -> str:
        return "<div class=figs>" + "".join(
            f'<figure><img src="{html.escape(f)}" alt="{html.escape(c)}"><figcaption>{html.escape(c)}</figcaption></figure>'
            for f, c in items) + "</div>"

    def miss_list(idx: list[int]) -> str:
        if not idx:
            return "none"
        return ", ".join(f"{html.escape(names[i])} ({s[i]:.4g}"
                         + (f", {html.escape(str(defect_types[i]))}" if defect_types is not None else "") + ")"
                         for i in idx[:50]) + (" …" if len(idx) > 50 else "")

    notes = []
    if roc_c.reason:
        notes.append(roc_c.reason)
    if point.fpr is not None and point.fp == 0 and point.n_good:
        notes.append(f"No false rejects observed on {point.n_good} good images; the bootstrap interval collapses "
                     f"to 0, but a rate up to about {min(1.0, 3 / point.n_good):.1%} is still plausible (rule of three).")
    if point.fnr is not None and point.fn == 0 and point.n_defect:
        notes.append(f"No escapes observed on {point.n_defect} defective images; a rate up to about "
                     f"{min(1.0, 3 / point.n_defect):.1%} is still plausible (rule of three).")
    generated = datetime.now(timezone.utc).isoformat(timespec="seconds")
    parts = [
        f"<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>{html.escape(title)}</title>",
        f"<style>{_CSS}</style></head><body><h1>{html.escape(title)}</h1>",
        f"<p class=sub>generated {generated} · {s.size} images</p>",
        "<h2>Model</h2>", _table(_bundle_rows(manifest)),
        "<h2>Metrics</h2>", _table(metric_rows),
        "<h2>Operating points</h2>",
        "<p>FAIL when score &gt; φ. FPR: good parts rejected; FNR: defects passed (escapes); "
        "95 % bootstrap intervals in brackets. In two-threshold mode REVIEW parts are neither escapes nor false rejects.</p>",
        _points_table(points, point), _table(band_rows),
        "".join(f"<p class=note>{html.escape(n)}</p>" for n in notes),
        "<h2>Figures</h2>", fig_html(figs),
        "<h2>Worst misses</h2>",
        f"<p>False passes ({len(false_pass)}): {miss_list(false_pass)}</p>",
        f"<p>False rejects ({len(false_reject)}): {miss_list(false_reject)}</p>",
        fig_html(miss_figs) if miss_figs else ("<p>No images given.</p>" if images is None and (false_pass or false_reject) else ""),
        "</body></html>",
    ]
    index = out / "index.html"
    atomic_write_text(index, "\n".join(parts))
    return index
