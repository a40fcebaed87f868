"""Scoring labelled data sets and computing image- and pixel-level metrics.

All metrics come from scikit-learn on scores produced by
:meth:`Inspector.score_images` (the same path as live inspection).
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .data.dataset import DatasetIndex, Sample, load_images, load_masks
from .defect_types import detection_by_type
from .inference import Inspector
from .progress import CancelToken, ProgressCallback, ProgressEvent, null_progress
from .selection import evaluation_samples, open_data
from .types import Threshold, Verdict

log = logging.getLogger(__name__)


@dataclass
class ScoredSet:
    """Scores of a labelled set; ``images``/``maps``/``recons`` are kept only
    when asked for (reports, galleries)."""

    samples: list[Sample]
    scores: np.ndarray
    labels: np.ndarray
    maps: np.ndarray | None = None
    images: np.ndarray | None = None
    recons: np.ndarray | None = None
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def paths(self) -> list[Path]:
        return [Path(s.path) for s in self.samples]

    @property
    def defect_types(self) -> list[str]:
        return [s.defect_type for s in self.samples]


def score_samples(
    inspector: Inspector,
    samples: Sequence[Sample],
    batch_size: int = 32,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
    keep_maps: bool = False,
    keep_images: bool = False,
) -> ScoredSet:
    """Score ``samples`` in batches; decoding the next batch overlaps with
    scoring the current one. Unreadable files are skipped and reported."""
    import time

    progress = progress or null_progress
    cancel = cancel or CancelToken()
    pp = inspector.preprocessing
    samples = list(samples)
    batches = [samples[i : i + batch_size] for i in range(0, len(samples), batch_size)]
    kept: list[Sample] = []
    scores, maps, images, recons = [], [], [], []
    skipped: list[tuple[Path, str]] = []
    t0 = time.perf_counter()
    with cf.ThreadPoolExecutor(max_workers=1) as pool:
        fut = pool.submit(load_images, batches[0], pp) if batches else None
        for bi in range(len(batches)):
            cancel.raise_if_cancelled()
            loaded = fut.result()  # type: ignore[union-attr]
            fut = pool.submit(load_images, batches[bi + 1], pp) if bi + 1 < len(batches) else None
            skipped.extend(loaded.skipped)
            if len(loaded.images) == 0:
                continue
            s, m, r = inspector.score_images(loaded.images)
            kept.extend(loaded.samples)
            scores.append(s)
            if keep_maps:
                maps.append(m)
            if keep_images:
                images.append(loaded.images)
                if r is not None:
                    recons.append(r)
            done = min(len(samples), (bi + 1) * batch_size)
            el = time.perf_counter() - t0
            progress(ProgressEvent("step", 1, 1, done, len(samples), el, el / done * (len(samples) - done)))
    for p, reason in skipped:
        log.warning("skipped %s: %s", p, reason)
    return ScoredSet(
        samples=kept,
        scores=np.concatenate(scores) if scores else np.zeros(0),
        labels=np.array([s.label for s in kept], dtype=np.int64),
        maps=np.concatenate(maps) if maps else None,
        images=np.concatenate(images) if images else None,
        recons=np.concatenate(recons) if recons else None,
        skipped=skipped,
        seconds=time.perf_counter() - t0,
    )


def compute_metrics(scores: np.ndarray, labels: np.ndarray, threshold: Threshold) -> dict[str, Any]:
    """Image-level metrics at ``threshold`` (defective = positive). AUROC and
    AP come from scikit-learn; the confusion and rates from
    :func:`calibration.operating_point`, so the CLI, the report and the
    desktop app agree. In two-threshold mode REVIEW parts are counted apart
    (a defect in REVIEW is not an escape, a good part in REVIEW not a false
    reject)."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    from .calibration import operating_point, validate_scores

    scores, labels = validate_scores(scores, labels)
    both = len(np.unique(labels)) == 2
    op = operating_point(scores, labels, threshold)
    verdicts = threshold.verdicts(scores)
    decided = op.tp + op.tn + op.fp + op.fn
    return {
        "n_good": int((labels == 0).sum()),
        "n_defect": int((labels == 1).sum()),
        "image_auroc": float(roc_auc_score(labels, scores)) if both else None,
        "image_ap": float(average_precision_score(labels, scores)) if both else None,
        "f1": op.f1,
        "balanced_accuracy": op.balanced_accuracy,
        "accuracy": (op.tp + op.tn) / decided if decided else None,
        "precision": op.precision,
        "recall": op.recall,
        "threshold": float(threshold.high),
        "threshold_low": None if threshold.low is None else float(threshold.low),
        "confusion": {"tp": op.tp, "fp": op.fp, "tn": op.tn, "fn": op.fn},
        "review": {"good": op.review_good, "defect": op.review_defect},
        "fpr": op.fpr,
        "fnr": op.fnr,
        "bands": {v.value: int(sum(1 for x in verdicts if x == v)) for v in Verdict},
    }


def type_confusion(inspector: Inspector, scored: ScoredSet, root: Path) -> dict[str, Any]:
    """The defect-type classifier's confusion matrix on the scored defects it
    was not trained on (``defect_types.train_paths``), each named as at inspection."""
    from .defect_types import confusion

    record, types = inspector.meta.defect_types, inspector.types
    assert record is not None and types is not None and scored.images is not None and scored.maps is not None
    same_root = bool(record.root) and Path(str(record.root)).resolve() == Path(root).resolve()
    trained = set(record.train_paths or []) if same_root else set()

    def rel(p: Path) -> str:
        try:
            return Path(p).resolve().relative_to(Path(root).resolve()).as_posix()
        except ValueError:
            return Path(p).as_posix()

    idx = [i for i, s in enumerate(scored.samples) if s.label == 1 and rel(s.path) not in trained]
    answers = inspector.classify(scored.images[idx], scored.maps[idx])
    out = confusion([scored.samples[i].defect_type for i in idx], [a.label for a in answers], types.classes)
    out["excluded_trained"] = sum(1 for s in scored.samples if s.label == 1) - len(idx)
    return out


def evaluate(
    inspector: Inspector,
    data: DatasetIndex | str | os.PathLike[str],
    batch_size: int = 32,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
    keep: bool = False,
    keep_images: bool = False,
) -> tuple[dict[str, Any], ScoredSet]:
    """Score the images of ``data`` that the bundle may be measured on (its
    test split; a classifier's held-out split, see :mod:`.selection`) and
    compute metrics (with pixel AUROC and PRO when masks exist). ``keep``:
    keep the maps and the model images; ``keep_images``: the model images only."""
    index = open_data(data, inspector.meta)
    samples = evaluation_samples(inspector.meta, index).samples
    if not samples:
        raise ValueError(f"no test images in '{index.root}': expected test/good and test/<defect_type> folders")
    has_masks = any(s.mask_path is not None for s in samples)
    typed = inspector.types is not None  # the classifier needs each image and its map
    scored = score_samples(inspector, samples, batch_size, progress, cancel, keep_maps=has_masks or keep or typed,
                           keep_images=keep or keep_images or typed)
    metrics = compute_metrics(scored.scores, scored.labels, inspector.threshold)
    metrics["n_skipped"] = len(scored.skipped)
    metrics["images_per_s"] = float(len(scored.samples) / scored.seconds) if scored.seconds > 0 else None
    metrics["per_type"] = detection_by_type(scored.scores, scored.labels, scored.defect_types, inspector.threshold)
    if typed:
        metrics["defect_types"] = type_confusion(inspector, scored, index.root)
    if has_masks and scored.maps is not None:
        refused: list[tuple[Path, str]] = []  # masks not of their image's size: reported, not stretched
        masks = load_masks(scored.samples, inspector.preprocessing.image_size, skipped=refused)
        from .pixel_metrics import pixel_auroc, pro_score

        bad = {p for p, _reason in refused}
        defect = np.array([s.label == 1 and s.mask_path is not None and s.mask_path not in bad for s in scored.samples])
        metrics["n_masks_skipped"] = len(refused)
        good = scored.labels == 0
        use = defect | good  # defects without a mask cannot be scored per pixel
        metrics["pixel_auroc"] = pixel_auroc(scored.maps[use], masks[use])
        metrics["pro"] = pro_score(scored.maps[use], masks[use])
    else:
        metrics["pixel_auroc"] = None
    return metrics, scored
