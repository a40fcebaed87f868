"""The defect-type classifier at inspection time: numpy only, read from the
manifest's ``defect_types`` section (plain numbers, never a pickle).

A part's region features are standardised, a multinomial logistic
regression gives each type's probability, and the answer is the most
probable type with its probability, or ``UNKNOWN`` when that probability is
below ``min_probability`` or the part lies farther from that type's centroid
than ``radius`` (a kind of defect the classifier never saw is far from every
type it knows, even where the regression is sure).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

#: the answer for a part that looks like no known type
UNKNOWN = "unknown"
#: below this probability the answer is UNKNOWN (the default; stored per classifier)
DEFAULT_MIN_PROBABILITY = 0.5


class DefectTypesError(ValueError):
    """A defect-type classifier record that cannot be used (the message names the problem)."""


@dataclass(frozen=True)
class TypeAnswer:
    """What the classifier says about one part: a type (or ``UNKNOWN``) and
    the probability of the most probable type."""

    label: str
    confidence: float

    @property
    def known(self) -> bool:
        return self.label != UNKNOWN


def _matrix(record: Mapping[str, Any], key: str, rows: int | None, cols: int | None) -> np.ndarray:
    value = record.get(key)
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise DefectTypesError(f"defect_types.{key} is not a table of numbers") from None
    want = tuple(n for n in (rows, cols) if n is not None)
    if arr.ndim != len(want) or any(a != b for a, b in zip(arr.shape, want) if b >= 0) or not np.isfinite(arr).all():
        raise DefectTypesError(f"defect_types.{key} has shape {arr.shape}, expected {want} of finite numbers")
    return arr


@dataclass(frozen=True)
class TypeClassifier:
    """Standardisation, logistic regression and the unknown rule (see the module docstring)."""

    classes: tuple[str, ...]
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray        # (K, D)
    intercept: np.ndarray   # (K,)
    centroids: np.ndarray   # (K, D), standardised
    radius: np.ndarray      # (K,)
    min_probability: float = DEFAULT_MIN_PROBABILITY

    @property
    def dim(self) -> int:
        return int(self.mean.shape[0])

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> "TypeClassifier":
        """Read the manifest section (a mapping); :class:`DefectTypesError` names what is wrong."""
        classes = record.get("classes")
        if not isinstance(classes, list) or len(classes) < 2 or not all(isinstance(c, str) and c for c in classes):
            raise DefectTypesError("defect_types.classes must list at least two type names")
        if record.get("method", "logistic_regression") != "logistic_regression":
            raise DefectTypesError(f"defect_types.method {record.get('method')!r} is not known to this version")
        k = len(classes)
        mean = _matrix(record, "mean", -1, None)
        d = mean.shape[0]
        scale = _matrix(record, "scale", d, None)
        if (scale <= 0).any():
            raise DefectTypesError("defect_types.scale must be positive")
        p = record.get("min_probability", DEFAULT_MIN_PROBABILITY)
        if not isinstance(p, (int, float)) or isinstance(p, bool) or not 0.0 <= float(p) <= 1.0:
            raise DefectTypesError(f"defect_types.min_probability must be a number from 0 to 1, got {p!r:.40}")
        return cls(tuple(classes), mean, scale, _matrix(record, "coef", k, d), _matrix(record, "intercept", k, None),
                   _matrix(record, "centroids", k, d), _matrix(record, "radius", k, None), float(p))

    def to_record(self) -> dict[str, Any]:
        """The numbers as the manifest section holds them."""
        return {"classes": list(self.classes), "method": "logistic_regression",
                "mean": self.mean.tolist(), "scale": self.scale.tolist(), "coef": self.coef.tolist(),
                "intercept": self.intercept.tolist(), "centroids": self.centroids.tolist(),
                "radius": self.radius.tolist(), "min_probability": self.min_probability}

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        """(N, K) probabilities of each type."""
        z = self.standardise(features)
        logits = z @ self.coef.T + self.intercept
        logits -= logits.max(axis=1, keepdims=True)
        e = np.exp(logits)
        return e / e.sum(axis=1, keepdims=True)

    def standardise(self, features: np.ndarray) -> np.ndarray:
        f = np.asarray(features, dtype=np.float64).reshape(-1, self.dim)
        return (f - self.mean) / self.scale

    def predict(self, features: np.ndarray) -> list[TypeAnswer]:
        """One answer per row of ``features`` (N, D)."""
        f = np.asarray(features, dtype=np.float64).reshape(-1, self.dim)
        if f.shape[0] == 0:
            return []
        prob = self.probabilities(f)
        z = self.standardise(f)
        best = prob.argmax(axis=1)
        out = []
        for i, k in enumerate(best):
            p = float(prob[i, k])
            far = float(np.linalg.norm(z[i] - self.centroids[k])) > float(self.radius[k])
            out.append(TypeAnswer(UNKNOWN if p < self.min_probability or far else self.classes[k], p))
        return out


def describe_answer(label: str | None, confidence: float | None) -> str:
    """ "scratch (0.82)", "unknown type (0.41)" or "" (no answer)."""
    if not label:
        return ""
    name = "unknown type" if label == UNKNOWN else label
    return name if confidence is None else f"{name} ({confidence:.2f})"


__all__ = ["DEFAULT_MIN_PROBABILITY", "UNKNOWN", "DefectTypesError", "TypeAnswer", "TypeClassifier", "describe_answer"]
