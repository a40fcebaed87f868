"""Fitting the defect-type classifier (scikit-learn's logistic regression on
standardised region features) and storing it as plain numbers."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .classifier import DEFAULT_MIN_PROBABILITY, TypeClassifier

#: an unknown part lies beyond this multiple of the farthest a training image
#: lies from its own type's centroid when that centroid is computed without it
#: (leave-one-out: how far a new image of a known type can fall)
RADIUS_MARGIN = 1.25


def fit_classifier(features: np.ndarray, labels: Sequence[str], min_probability: float = DEFAULT_MIN_PROBABILITY,
                   c: float = 1.0) -> TypeClassifier:
    """A :class:`TypeClassifier` from features (N, D) and their type names
    (at least two types)."""
    from sklearn.linear_model import LogisticRegression

    x = np.asarray(features, dtype=np.float64)
    names = sorted(set(labels))
    if len(names) < 2:
        raise ValueError(f"a defect-type classifier needs at least two types, got {names}")
    y = np.array([names.index(t) for t in labels])
    mean = x.mean(0)
    scale = x.std(0)
    scale = np.where(scale > 1e-8, scale, 1.0)
    z = (x - mean) / scale
    lr = LogisticRegression(C=c, max_iter=5000)
    lr.fit(z, y)
    coef, intercept = lr.coef_, lr.intercept_
    if len(names) == 2:  # scikit-learn keeps one row for two classes: the softmax of (-w/2, w/2) is the same
        coef = np.vstack([-coef[0] / 2, coef[0] / 2])
        intercept = np.array([-intercept[0] / 2, intercept[0] / 2])
    centroids = np.stack([z[y == k].mean(0) for k in range(len(names))])
    loo = []
    for k in range(len(names)):
        n_k = int((y == k).sum())
        if n_k > 1:  # the distance to the centroid of the others of its type
            loo.extend(np.linalg.norm(z[y == k] - centroids[k], axis=1) * n_k / (n_k - 1))
    reach = RADIUS_MARGIN * max(float(np.max(loo)) if loo else 0.0, 1e-6)
    radius = np.full(len(names), reach)
    return TypeClassifier(tuple(names), mean, scale, coef, intercept, centroids, radius, float(min_probability))


__all__ = ["RADIUS_MARGIN", "fit_classifier"]
