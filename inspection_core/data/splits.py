"""Train/validation/test splits for supervised models (the classifier),
which need defective images in every split.

* MVTec layout: every ``train/good`` image goes to training; the ``test``
  images (good and each defect type) are split by ``fractions``, stratified
  by defect type, so that each defect type reaches train, val and test.
* good/defect layout: all images (good and defective) are split by
  ``fractions``, stratified the same way.

Deterministic: the same index, seed and fractions give the same split.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .dataset import DatasetIndex, Sample


@dataclass
class SupervisedSplit:
    """Samples of each split (labels 0 good, 1 defective)."""

    train: list[Sample]
    val: list[Sample]
    test: list[Sample]

    def summary(self) -> dict[str, Any]:
        """Counts per split, label and defect type (for reports and the manifest)."""
        out: dict[str, Any] = {}
        for name, part in (("train", self.train), ("val", self.val), ("test", self.test)):
            out[name] = {
                "n_good": sum(1 for s in part if s.label == 0),
                "n_defect": sum(1 for s in part if s.label == 1),
                "defect_types": dict(sorted(Counter(s.defect_type for s in part if s.label == 1).items())),
            }
        return out


def _allocate(n: int, fractions: Sequence[float]) -> list[int]:
    """Split ``n`` items into counts proportional to ``fractions`` (largest
    remainder; ties go to train, then test, then val, so that a rare defect
    type is tested before it is used for validation); when ``n`` allows, every
    split with a positive fraction gets at least one item, taken from the largest."""
    raw = [n * f for f in fractions]
    counts = [math.floor(r) for r in raw]
    tie_rank = (0, 2, 1)  # train, val, test
    order = sorted(range(len(raw)), key=lambda i: (-(raw[i] - counts[i]), tie_rank[i]))
    for i in order[: n - sum(counts)]:
        counts[i] += 1
    wanted = [i for i, f in enumerate(fractions) if f > 0]
    if n >= len(wanted):
        for i in wanted:
            if counts[i] == 0:
                donor = max(range(len(counts)), key=lambda j: counts[j])
                counts[donor] -= 1
                counts[i] += 1
    return counts


def _stratified(samples: Sequence[Sample], fractions: Sequence[float], rng: np.random.Generator) -> list[list[Sample]]:
    groups: dict[tuple[int, str], list[Sample]] = defaultdict(list)
    for s in samples:
        groups[(s.label, s.defect_type)].append(s)
    parts: list[list[Sample]] = [[] for _ in fractions]
    for key in sorted(groups):
        members = sorted(groups[key], key=lambda s: str(s.path))
        perm = rng.permutation(len(members))
        start = 0
        for part, count in zip(parts, _allocate(len(members), fractions)):
            part.extend(members[i] for i in perm[start : start + count])
            start += count
    return [sorted(p, key=lambda s: str(s.path)) for p in parts]


def supervised_split(
    index: DatasetIndex, seed: int = 0, fractions: tuple[float, float, float] = (0.6, 0.2, 0.2),
    hold_out_train_good: bool = False,
) -> SupervisedSplit:
    """Split a data set for a supervised model (see module docstring).

    Raises ``ValueError`` for bad fractions or a data set without defective images.
    """
    if len(fractions) != 3 or any(f < 0 for f in fractions) or not math.isclose(sum(fractions), 1.0, abs_tol=1e-6):
        raise ValueError(f"split fractions must be three non-negative numbers summing to 1, got {fractions}")
    if fractions[0] <= 0:
        raise ValueError(f"the training fraction must be positive, got {fractions[0]}")
    all_samples = [*index.train, *index.test]
    if not any(s.label == 1 for s in all_samples):
        raise ValueError(
            f"'{index.root}' has no defective images: a supervised model needs some "
            f"(test/<defect_type>/ in the MVTec layout, defect/ or bad/ next to good/)"
        )
    rng = np.random.default_rng(seed)
    if index.fixed_split:  # MVTec, BTAD, VisA: train/good trains, the test folders are split
        train, val, test = _stratified(index.test, fractions, rng)
        if hold_out_train_good:
            g_train, g_val, g_test = _stratified(index.train, fractions, rng)
            train, val, test = ([*train, *g_train], [*val, *g_val], [*test, *g_test])
        else:
            train = [*index.train, *train]
        train, val, test = (sorted(p, key=lambda s: str(s.path)) for p in (train, val, test))
    else:
        train, val, test = _stratified(all_samples, fractions, rng)
    return SupervisedSplit(train=train, val=val, test=test)


__all__ = ["SupervisedSplit", "supervised_split"]
