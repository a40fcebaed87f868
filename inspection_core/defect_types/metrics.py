"""Per-type figures of an evaluation: the detection rate of each defect type
at the threshold, and the classifier's confusion matrix. numpy only."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..types import Threshold, Verdict
from .classifier import UNKNOWN


def detection_by_type(scores: np.ndarray, labels: np.ndarray, defect_types: Sequence[str | None],
                      threshold: Threshold) -> dict[str, dict[str, Any]]:
    """Type -> {"n", "fail", "review", "detection_rate"} for the defective images
    (detection: FAIL; REVIEW counted apart, as in the image metrics)."""
    out: dict[str, dict[str, Any]] = {}
    for s, y, t in zip(np.asarray(scores, dtype=np.float64), labels, defect_types):
        if int(y) != 1:
            continue
        row = out.setdefault(str(t or "defect"), {"n": 0, "fail": 0, "review": 0})
        row["n"] += 1
        v = threshold.verdict(float(s))
        row["fail"] += int(v == Verdict.FAIL)
        row["review"] += int(v == Verdict.REVIEW)
    for row in out.values():
        row["detection_rate"] = row["fail"] / row["n"]
    return dict(sorted(out.items()))


def confusion(true: Sequence[str], predicted: Sequence[str], classes: Sequence[str]) -> dict[str, Any]:
    """The confusion matrix (rows: true type, columns: the classes then
    ``unknown``), accuracy, the mean of the per-type accuracies (macro) and
    the share answered ``unknown``. Images of a type the classifier does not
    know count in ``unseen`` (answering ``unknown`` is right for them)."""
    cols = [*classes, UNKNOWN]
    rows = sorted(set(true) | set(classes))
    matrix = {r: dict.fromkeys(cols, 0) for r in rows}
    for t, p in zip(true, predicted):
        matrix[t][p if p in cols else UNKNOWN] += 1
    known = [(t, p) for t, p in zip(true, predicted) if t in classes]
    per_type = {c: (matrix[c][c] / n if (n := sum(matrix[c].values())) else None) for c in classes}
    rated = [v for v in per_type.values() if v is not None]
    unseen = [(t, p) for t, p in zip(true, predicted) if t not in classes]
    return {
        "classes": list(classes), "columns": cols, "matrix": matrix, "n": len(known),
        "accuracy": (sum(t == p for t, p in known) / len(known)) if known else None,
        "macro_accuracy": float(np.mean(rated)) if rated else None,
        "per_type_accuracy": per_type,
        "unknown_rate": (sum(p == UNKNOWN for _t, p in known) / len(known)) if known else None,
        "unseen": {"n": len(unseen), "answered_unknown": sum(p == UNKNOWN for _t, p in unseen)},
    }


__all__ = ["confusion", "detection_by_type"]
