"""Evaluation report: PNG figures and one self-contained ``index.html``.

The report opens in a browser straight from disk: figures are PNGs next to
``index.html`` (relative links), CSS is inline, there is no script. Three
parts: :func:`write_report` here decides what the report says (operating
points, misses, pixel metrics, from :mod:`inspection_core.calibration` and
:mod:`inspection_core.pixel_metrics`), :mod:`.figures` draws, :mod:`.html`
lays the page out. Safe on a worker thread; never touches Qt.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..calibration import misjudged, operating_point, pr, roc, standard_operating_points, validate_scores
from ..fileio import atomic_write_text
from ..manifest import Manifest
from ..pixel_metrics import pixel_auroc, pro_score
from ..types import Threshold
from . import figures as fig
from .html import render_page


def _masks_for(samples: Sequence[Any], size: int) -> list[np.ndarray | None] | None:
    """Masks for scored samples: all-false for good images, None for defects without a mask."""
    if not any(getattr(smp, "mask_path", None) is not None for smp in samples):
        return None
    from ..data.dataset import load_masks

    refused: list[tuple[Any, str]] = []
    loaded = load_masks(samples, size, skipped=refused)
    bad = {p for p, _reason in refused}
    return [None if (smp.label == 1 and (smp.mask_path is None or smp.mask_path in bad)) else loaded[i]
            for i, smp in enumerate(samples)]


def write_report(report_dir: str | Path, scores: Any = None, labels: Any = None,
                 threshold: Threshold | float | None = None, *, scored: Any = None, inspector: Any = None,
                 paths: Sequence[Any] | None = None, defect_types: Sequence[str] | None = None,
                 images: fig.ImagesArg = None, maps: Any = None, masks: Any = None,
                 manifest: Manifest | dict[str, Any] | None = None, metrics: dict[str, Any] | None = None,
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
        manifest = inspector.meta if manifest is None else manifest
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

    figures: list[tuple[str, str]] = []
    for made, caption in (
        (fig.roc_figure(s, y, point, points, out / "roc.png"), "ROC curve; red dot: chosen threshold"),
        (fig.pr_figure(s, y, point, out / "pr.png"), "Precision-recall curve"),
        (fig.histogram_figure(s, y, th, out / "histogram.png"), "Scores of good vs defective images"),
        (fig.confusion_figure(point, out / "confusion.png"), "Confusion matrix at the chosen threshold"),
    ):
        if made is not None:
            figures.append((made.name, caption))

    false_pass, false_reject = misjudged(s, y, th)
    hr = fig.heat_range(maps)
    miss_figures = []
    for idx, fname, caption in ((false_pass[:n_misses], "misses_false_pass.png", "Worst false passes (escapes)"),
                                (false_reject[:n_misses], "misses_false_reject.png", "Worst false rejects")):
        made = fig.misses_figure(idx, caption, s, names, images, maps, hr, out / fname)
        if made is not None:
            miss_figures.append((made.name, caption + (" with heat maps" if hr else "")))

    summary: list[tuple[str, Any]] = [
        ("good images", int(np.sum(y == 0))), ("defective images", int(np.sum(y == 1))),
        ("image AUROC", roc_c.auroc if roc_c.auroc is not None else roc_c.reason),
        ("average precision", pr_c.ap if pr_c.ap is not None else pr_c.reason),
        ("pixel AUROC", px_auroc if px_auroc is not None else "no masks"),
        ("PRO (FPR ≤ 0.3)", pro if pro is not None else "no masks"),
    ]
    page = render_page(title=title, scores=s, names=names, defect_types=defect_types, manifest=manifest,
                       metrics=metrics, summary=summary, point=point, points=points, roc_reason=roc_c.reason,
                       figures=figures, miss_figures=miss_figures, false_pass=false_pass, false_reject=false_reject,
                       images_given=images is not None)
    return atomic_write_text(out / "index.html", page)


__all__ = ["pixel_auroc", "pro_score", "write_report"]
