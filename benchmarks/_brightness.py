"""The brightness shortcut, measured the same way by every benchmark: each
test image's mean brightness as the model sees it (before any
normalisation), and the Pearson correlation of the scores with it over the
whole set and pooled within the good and the defective class."""

from __future__ import annotations

import numpy as np

from inspection_core.data.dataset import load_images
from inspection_core.data.preprocess import Preprocessing


def mean_brightness(samples, size: int, channels: int) -> np.ndarray:
    """Mean pixel value of each sample at the model's size and channels, without normalisation."""
    imgs = load_images(samples, Preprocessing(size, channels)).images
    return imgs.reshape(len(samples), -1).mean(1).astype(float)


def brightness_correlations(scores, bright, labels) -> tuple[float, float]:
    """Pearson r over the whole test set, and pooled within classes (each class centred)."""
    r_all = float(np.corrcoef(scores, bright)[0, 1])
    s, b = np.asarray(scores, float).copy(), np.asarray(bright, float).copy()
    labels = np.asarray(labels)
    for c in (0, 1):
        m = labels == c
        if m.sum() > 1:
            s[m] = (s[m] - s[m].mean()) / (s[m].std() + 1e-12)
            b[m] = b[m] - b[m].mean()
    return r_all, float(np.corrcoef(s, b)[0, 1])
