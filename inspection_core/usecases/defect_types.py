"""Use case: give a bundle a defect-type classifier from labelled defect folders.

When the data has defect folders named by type (``test/scratch``,
``test/crack``, …), the labelled defects that the bundle may be calibrated on
(:func:`inspection_core.selection.calibration_samples`: never images it was
trained on) are scored by the bundle; their region features (the heat map's
hottest region, :mod:`inspection_core.defect_types.features`) train a
logistic regression. A seeded share of each type (``holdout``, half by
default) is kept out and measured, so that the confusion matrix stored in the
bundle, and the one ``inspector evaluate`` prints, come from images the
classifier never saw. The classifier is written into the manifest as plain
numbers (the weights stay byte for byte: the bundle id does not change).
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..bundle import Bundle, bundle_path, existing_bundle, update_manifest, utc_now
from ..data.dataset import DatasetIndex, Sample
from ..defect_types import DEFAULT_MIN_PROBABILITY, TypeClassifier, confusion
from ..evaluation import score_samples
from ..fileio import atomic_write_bytes
from ..inference import Inspector
from ..progress import CancelToken, ProgressCallback
from ..selection import calibration_samples, open_data
from .evaluate import as_inspector

#: defect folder names that say "defective" without a type (good/defect, BTAD's ko, VisA's Anomaly)
UNTYPED = frozenset({"defect", "defects", "bad", "ko", "anomaly", "ng", "nok", "good"})


@dataclass
class DefectTypeOutcome:
    """What was trained: the bundle written, the types, the images per type and
    the held-out measurement (``confusion`` of :mod:`inspection_core.defect_types`)."""

    path: Path
    classes: list[str]
    trained_on: dict[str, int]
    held_out: dict[str, Any] | None
    skipped_types: dict[str, int]
    description: str


def labelled_defects(samples: list[Sample]) -> dict[str, list[Sample]]:
    """The defective samples grouped by their folder's type name (untyped folders left out)."""
    out: dict[str, list[Sample]] = {}
    for s in samples:
        if s.label == 1 and s.defect_type and s.defect_type.lower() not in UNTYPED:
            out.setdefault(s.defect_type, []).append(s)
    return dict(sorted(out.items()))


def split_by_type(groups: dict[str, list[Sample]], holdout: float, seed: int) -> tuple[list[Sample], list[Sample]]:
    """A seeded share ``holdout`` of each type held out (at least one image of a
    type with two or more when ``holdout`` > 0), the rest to train on."""
    rng = np.random.default_rng(seed)
    train, held = [], []
    for _name, items in groups.items():
        order = [items[i] for i in rng.permutation(len(items))]
        n_held = 0 if holdout <= 0 or len(items) < 2 else min(len(items) - 1, max(1, int(round(len(items) * holdout))))
        held.extend(order[:n_held])
        train.extend(order[n_held:])
    return train, held


def _relative(path: Path, root: Path) -> str:
    try:
        return Path(path).resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return Path(path).as_posix()


def type_features(inspector: Inspector, samples: list[Sample], spec: dict[str, Any], batch_size: int = 32,
                  progress: ProgressCallback | None = None, cancel: CancelToken | None = None
                  ) -> tuple[np.ndarray, list[Sample]]:
    """Region features of ``samples`` scored by ``inspector`` (unreadable files left out)."""
    from ..defect_types.features import build_embed, region_features

    scored = score_samples(inspector, samples, batch_size, progress, cancel, keep_maps=True, keep_images=True)
    if scored.images is None or scored.maps is None:
        return np.zeros((0, 0)), []
    embed = build_embed(inspector.model, spec, inspector.device)
    return region_features(embed, scored.images, scored.maps, inspector.device), scored.samples


def train_defect_types(bundle: Inspector | Bundle | str | os.PathLike[str],
                       data: DatasetIndex | str | os.PathLike[str], *, out: str | os.PathLike[str] | None = None,
                       holdout: float = 0.5, seed: int = 0, min_per_type: int = 2,
                       min_probability: float = DEFAULT_MIN_PROBABILITY, weights: str = "imagenet",
                       device: str = "auto", batch_size: int = 32, progress: ProgressCallback | None = None,
                       cancel: CancelToken | None = None) -> DefectTypeOutcome:
    """Train the classifier and write it into ``out`` (a copy of the bundle) or
    the bundle itself; ValueError (a user's to fix) when the data has fewer
    than two labelled types of ``min_per_type`` images."""
    from ..defect_types.features import feature_spec
    from ..defect_types.fit import fit_classifier

    if not 0.0 <= holdout < 1.0:
        raise ValueError(f"holdout must be from 0 to below 1, got {holdout}")
    inspector = as_inspector(bundle, device)
    source = inspector.bundle.path
    if source is None:
        raise ValueError("the bundle must be a saved file")
    index = open_data(data, inspector.meta)
    groups = labelled_defects(calibration_samples(inspector.meta, index, "auto").samples)
    skipped = {t: len(v) for t, v in groups.items() if len(v) < min_per_type}
    groups = {t: v for t, v in groups.items() if len(v) >= min_per_type}
    if len(groups) < 2:
        found = ", ".join(f"{t} ({n})" for t, n in {**{t: len(v) for t, v in groups.items()}, **skipped}.items())
        raise ValueError(f"'{index.root}' has no defect types to learn: a defect-type classifier needs labelled defect "
                         f"folders (test/<type>/) of at least two types with at least {min_per_type} images each"
                         f"{'; found ' + found if found else ' (found none)'}")
    train, held = split_by_type(groups, holdout, seed)
    spec = feature_spec(inspector.model, weights=weights)
    feats, kept = type_features(inspector, train, spec, batch_size, progress, cancel)
    classifier: TypeClassifier = fit_classifier(feats, [s.defect_type for s in kept], min_probability)
    held_out = None
    if held:
        hf, hk = type_features(inspector, held, spec, batch_size, progress, cancel)
        answers = classifier.predict(hf)
        held_out = confusion([s.defect_type for s in hk], [a.label for a in answers], classifier.classes)
    counts = dict(sorted(Counter(s.defect_type for s in kept).items()))
    record = {**classifier.to_record(), "features": spec, "trained_on": counts,
              "train_paths": [_relative(Path(s.path), index.root) for s in kept], "root": str(index.root),
              "time": utc_now(), "held_out": held_out}
    target = _write(existing_bundle(source), record, out)
    return DefectTypeOutcome(target, list(classifier.classes), counts, held_out, skipped,
                             f"{len(kept)} labelled defects of {len(counts)} types trained, {len(held)} held out")


def _write(source: Path, record: dict[str, Any], out: str | os.PathLike[str] | None) -> Path:
    """The record written into ``out`` (a copy of ``source``, swapped in whole) or ``source`` itself."""
    def put(m: dict[str, Any]) -> dict[str, Any]:
        m["defect_types"] = record
        return m

    if out is None or bundle_path(out).resolve() == source.resolve():
        update_manifest(source, put)
        return source
    target = bundle_path(out)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.part{target.suffix}")
    try:
        atomic_write_bytes(tmp, source.read_bytes())
        update_manifest(tmp, put)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


__all__ = ["UNTYPED", "DefectTypeOutcome", "labelled_defects", "split_by_type", "train_defect_types", "type_features"]
