"""Two optional manifest sections (no format change: a bundle without them
reads as before, and an older release keeps them in ``extra``; ADR 0020).

``lineage``: the bundle was taught from another one (``inspector teach``):
its parent's id, the images added (file name and sha256), by whom, when, what
the family did with them and the re-check on the calibration images.

``defect_types``: a small classifier of the defect type on the features of
the heat map's hottest region (:mod:`inspection_core.defect_types`), as plain
numbers: class names, the standardisation, logistic-regression coefficients,
class centroids and the distance beyond which a part's type is "unknown".
No torch here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .sections import Section


@dataclass(frozen=True, kw_only=True)
class Lineage(Section):
    """``lineage``: where a taught bundle came from."""

    #: the parent's bundle id (first 12 hex digits of its weights' sha256) and name
    parent: str | None = None
    parent_name: str | None = None
    #: what the family did: "memory_bank" (PatchCore learned the parts)
    action: str | None = None
    #: the images taught: [{"file": name, "sha256": hex}]
    added: list[Mapping[str, Any]] | None = None
    by: str | None = None
    time: str | None = None
    #: the re-check: {"before": rates, "after": rates, "rule": text, "passed": bool, "forced": bool}
    check: Mapping[str, Any] | None = None
    #: what the family recorded (bank sizes, coreset re-run)
    detail: Mapping[str, Any] | None = None
    #: the parent's own lineage entries, oldest first (a bundle taught twice)
    ancestors: list[Mapping[str, Any]] | None = None


@dataclass(frozen=True, kw_only=True)
class DefectTypes(Section):
    """``defect_types``: the defect-type classifier (plain numbers; see the module docstring)."""

    classes: list[str] | None = None
    #: "logistic_regression" (the only one so far)
    method: str | None = None
    #: where the features come from: {"source": "model" | "backbone", "backbone": name, "layers": [...]}
    features: Mapping[str, Any] | None = None
    mean: list[float] | None = None
    scale: list[float] | None = None
    coef: list[list[float]] | None = None
    intercept: list[float] | None = None
    centroids: list[list[float]] | None = None
    #: per class: a part farther than this from its class centroid (standardised units) is "unknown"
    radius: list[float] | None = None
    #: below this probability the answer is "unknown"
    min_probability: float | None = None
    #: images per type it was trained on, and the paths (relative to ``root``) it was trained on
    trained_on: Mapping[str, int] | None = None
    train_paths: list[str] | None = None
    root: str | None = None
    time: str | None = None
    #: accuracy on the held-out labelled defects at training ({"n", "accuracy", "macro_accuracy", ...})
    held_out: Mapping[str, Any] | None = None


__all__ = ["DefectTypes", "Lineage"]
