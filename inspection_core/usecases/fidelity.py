"""Use case: check a fast scoring path against plain fp32 on a bundle's own
images, and record the result in the bundle (a passing bf16 record makes bf16
that bundle's default; see :mod:`inspection_core.acceleration`).

Above :mod:`inspection_core.inference` (it scores with two Inspectors), so the
scoring paths in ``acceleration`` never import the Inspector that uses them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..bundle import update_manifest
from ..inference import Inspector

#: limits a fast path must keep against plain fp32 to be used by default
MAX_SCORE_REL = 0.01
MAX_AUROC_DELTA = 0.005


@dataclass
class Fidelity:
    """How far a path's scores are from plain fp32 on a set of images."""

    precision: str
    engine: str
    n: int
    max_rel: float                  # worst per-image relative score difference
    median_rel: float
    auroc_fp32: float | None = None  # with labels of both classes
    auroc: float | None = None

    @property
    def auroc_delta(self) -> float | None:
        return None if self.auroc is None or self.auroc_fp32 is None else self.auroc - self.auroc_fp32

    @property
    def ok(self) -> bool:
        d = self.auroc_delta
        return self.max_rel <= MAX_SCORE_REL and (d is None or abs(d) <= MAX_AUROC_DELTA)

    def to_dict(self) -> dict[str, Any]:
        return {"precision": self.precision, "engine": self.engine, "n": self.n, "max_rel": self.max_rel,
                "median_rel": self.median_rel, "auroc_fp32": self.auroc_fp32, "auroc": self.auroc, "ok": self.ok}


def measure_fidelity(bundle: Any, images: Any, labels: Any = None, precision: str = "bf16",
                     device: str | torch.device = "cpu", batch_size: int = 32) -> Fidelity:
    """Score prepared uint8 images (N, S, S, C) with plain fp32 and with
    ``precision``; compare per-image scores (and AUROC when ``labels`` hold
    both classes). ``bundle``: a Bundle or a path."""

    def scores(insp: Inspector) -> Any:
        return np.concatenate([insp.score_images(images[i : i + batch_size])[0] for i in range(0, len(images), batch_size)])

    if len(images) == 0:
        raise ValueError("measure_fidelity needs at least one image")
    ref = Inspector(bundle, device=device, precision="eager")
    fast = Inspector(ref.bundle, device=device, precision=precision)
    s0, s1 = scores(ref), scores(fast)
    rel = np.abs(s1 - s0) / np.maximum(np.abs(s0), 1e-12)
    auc0 = auc1 = None
    if labels is not None and len(set(np.asarray(labels).tolist())) == 2:
        from sklearn.metrics import roc_auc_score

        auc0, auc1 = float(roc_auc_score(labels, s0)), float(roc_auc_score(labels, s1))
    return Fidelity(fast.precision, fast.engine, int(len(s0)), float(rel.max()), float(np.median(rel)), auc0, auc1)


def record_fidelity(bundle_path: str | os.PathLike[str], fidelity: Fidelity) -> dict[str, Any]:
    """Store ``fidelity`` in the bundle's ``manifest["inference"]["fidelity"]``
    (atomic rewrite); a passing bf16 record makes bf16 that bundle's default."""

    def fn(m: dict[str, Any]) -> dict[str, Any]:
        inf = dict(m.get("inference") or {"precision": "fp32"})
        inf["fidelity"] = {**(inf.get("fidelity") or {}), fidelity.precision: fidelity.to_dict()}
        return {**m, "inference": inf}

    return update_manifest(bundle_path, fn)


__all__ = ["MAX_AUROC_DELTA", "MAX_SCORE_REL", "Fidelity", "measure_fidelity", "record_fidelity"]
