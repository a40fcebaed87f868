"""Inputs far from what a bundle was trained on, noticed once per run.

Applying a bundle to images unlike its training data (gray tiles on a colour
model, another camera, another size, the lights off) gives verdicts that mean
little, usually a FAIL for every part, and nothing says why. An
:class:`InputMonitor` is given each image and its score and returns a message
the first time the recent inputs look far from the bundle's training data;
``inspector predict``, the live line (hence the Inspect view) print or show
it once per run, never once per part.

What is compared, from the bundle's manifest:

* channels: gray images on a model trained on colour images, or colour on gray
  (``preprocessing.channels``; a colour image whose three channels are equal
  counts as gray);
* scores far beyond every score the bundle's calibration and held-out good
  images produced (``calibration.scores``, ``score_stats``): above
  ``max + k * (max - min)``, with k = 1 when the calibration saw defects and
  k = 4 when only good scores are known;
* size and brightness, when the manifest records the training images'
  statistics (``training.data.input_stats``, written by
  :func:`input_statistics`): a size more than twice or less than half the
  training images' median, or another aspect ratio; a mean brightness (of the
  model-ready image) far outside the training images' 1-99 % range.

A reason counts when it holds for at least ``share`` of the last ``window``
images (and at least ``min_seen`` were seen; :meth:`InputMonitor.finish`
decides on fewer at the end of a short run). No torch here: the monitor runs
beside the scoring in any thread.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .manifest import Calibration, Manifest, ScoreStats, TrainingSummary, section

#: reason key -> how the message says it
REASONS = ("gray", "colour", "size", "brightness", "score")


def _gray_level(image: np.ndarray) -> np.ndarray:
    """8-bit gray values of an OpenCV-style image (any depth), subsampled."""
    img = np.asarray(image)
    step = max(1, int(max(img.shape[:2]) // 64))
    img = img[::step, ::step]
    if img.dtype == np.uint16:
        img = img >> 8
    img = img.astype(np.float32)
    if img.ndim == 3:
        img = img[:, :, :3].mean(axis=2)
    return img


def is_gray(image: np.ndarray) -> bool:
    """One channel, or three equal ones (a gray picture stored as colour), on a subsample."""
    img = np.asarray(image)
    if img.ndim == 2 or (img.ndim == 3 and img.shape[2] == 1):
        return True
    step = max(1, int(max(img.shape[:2]) // 128))
    sub = img[::step, ::step, :3].astype(np.int32)
    return bool(np.abs(sub[:, :, 0] - sub[:, :, 1]).max() <= 2 and np.abs(sub[:, :, 1] - sub[:, :, 2]).max() <= 2)


def input_statistics(prepared: np.ndarray, shapes: Sequence[tuple[int, int]]) -> dict[str, Any]:
    """What the training images look like, for ``manifest["training"]["data"]["input_stats"]``:
    ``brightness`` [q01, q50, q99] of each model-ready image's mean gray level
    (0-255) and ``shape`` [median height, median width] of the images as read."""
    x = np.asarray(prepared, dtype=np.float32)
    means = x.reshape(len(x), -1).mean(axis=1) if len(x) else np.zeros(1)
    hw = np.asarray(shapes, dtype=np.float64).reshape(-1, 2) if len(shapes) else np.zeros((1, 2))
    return {"n": int(len(x)),
            "brightness": [round(float(np.quantile(means, q)), 2) for q in (0.01, 0.5, 0.99)],
            "shape": [int(np.median(hw[:, 0])), int(np.median(hw[:, 1]))]}


@dataclass(frozen=True)
class Reference:
    """What a bundle's inputs and scores looked like (from its manifest)."""

    name: str
    channels: int
    score_low: float | None = None
    score_high: float | None = None
    score_limit: float | None = None
    shape: tuple[int, int] | None = None
    brightness: tuple[float, float] | None = None

    @classmethod
    def from_manifest(cls, manifest: Manifest | dict[str, Any]) -> "Reference":
        """From a bundle's manifest (typed, or a plain dict that may lack sections)."""
        name: Any
        channels: Any
        if isinstance(manifest, Manifest):
            name, channels = manifest.name, manifest.preprocessing.channels
        else:
            name, channels = manifest.get("name"), (manifest.get("preprocessing") or {}).get("channels")
        stats = section(manifest, "score_stats", ScoreStats) or ScoreStats()
        cal = section(manifest, "calibration", Calibration) or Calibration()
        known = [float(v) for v in (cal.scores or []) if np.isfinite(v)]
        known += [float(v) for v in (stats.min, stats.max) if isinstance(v, (int, float))]
        low = high = limit = None
        if known:
            low, high = min(known), max(known)
            k = 1.0 if any(int(v) == 1 for v in cal.labels or []) else 4.0
            limit = high + k * max(high - low, abs(high) * 0.05, 1e-12)
        training = section(manifest, "training", TrainingSummary)
        data = training.data.input_stats if training and training.data else None
        shape = (int(data.shape[0]), int(data.shape[1])) if data and data.shape and len(data.shape) == 2 else None
        brightness = None
        if data and len(data.brightness or ()) == 3:
            q01, _q50, q99 = (float(v) for v in data.brightness or ())
            width = max(q99 - q01, 10.0)
            brightness = (q01 - width, q99 + width)
        return cls(str(name or "?"), int(channels or 3), low, high, limit,
                   shape if shape and min(shape) > 0 else None, brightness)


class InputMonitor:
    """See the module docstring. ``observe`` returns the message once, else None."""

    def __init__(self, manifest: Manifest | dict[str, Any], *, window: int = 20, min_seen: int = 5, share: float = 0.6) -> None:
        self.reference = Reference.from_manifest(manifest)
        self.window: deque[frozenset[str]] = deque(maxlen=window)
        self.min_seen = min_seen
        self.share = share
        self.seen = 0
        self.message: str | None = None   # the warning, once given
        self._levels: deque[float] = deque(maxlen=window)  # mean brightness of the recent images

    def reasons(self, image: np.ndarray, score: float, prepared: np.ndarray | None = None) -> frozenset[str]:
        """Which ways one image (and its score) is far from the reference."""
        ref, out = self.reference, set()
        gray = is_gray(image)
        if ref.channels == 3 and gray:
            out.add("gray")
        elif ref.channels == 1 and not gray:
            out.add("colour")
        if ref.shape is not None:
            h, w = np.asarray(image).shape[:2]
            rh, rw = ref.shape
            aspect = (w / max(h, 1)) / (rw / max(rh, 1))
            if not (0.5 <= h / rh <= 2.0 and 0.5 <= w / rw <= 2.0) or not (0.8 <= aspect <= 1.25):
                out.add("size")
        if ref.brightness is not None:
            level = float(_gray_level(prepared if prepared is not None else image).mean())
            self._levels.append(level)
            if not ref.brightness[0] <= level <= ref.brightness[1]:
                out.add("brightness")
        if ref.score_limit is not None and np.isfinite(score) and score > ref.score_limit:
            out.add("score")
        return frozenset(out)

    def observe(self, image: np.ndarray, score: float, prepared: np.ndarray | None = None) -> str | None:
        """Count one image; the message the first time the recent ones look far from training, else None."""
        self.seen += 1
        self.window.append(self.reasons(image, score, prepared))
        if self.message is not None or len(self.window) < self.min_seen:
            return None
        return self._decide()

    def finish(self) -> str | None:
        """At the end of a run: the message if not given yet and what was seen (even few images) calls for it."""
        if self.message is not None or not self.window:
            return None
        return self._decide()

    def _decide(self) -> str | None:
        n = len(self.window)
        counts = {r: sum(1 for w in self.window if r in w) for r in REASONS}
        found = [r for r in REASONS if counts[r] and counts[r] >= self.share * n]
        if not found:
            return None
        ref, parts = self.reference, []
        for r in found:
            of = f"{counts[r]} of the last {n} images" if self.seen > n else f"{counts[r]} of {n} images"
            if r == "gray":
                parts.append(f"the images are gray and the model was trained on colour images ({of})")
            elif r == "colour":
                parts.append(f"the images are in colour and the model was trained on gray images ({of})")
            elif r == "size":
                parts.append(f"the images are not the size of the training images ({ref.shape[1]}x{ref.shape[0]} px; {of})")  # type: ignore[index]
            elif r == "brightness":
                darker = bool(self._levels) and float(np.median(self._levels)) < ref.brightness[0]  # type: ignore[index]
                parts.append(f"the images are much {'darker' if darker else 'brighter'} than the training images ({of})")
            elif r == "score":
                parts.append(f"the scores are far above any the bundle produced in calibration ({of} above "
                             f"{ref.score_limit:.4g}; calibration range {ref.score_low:.4g} to {ref.score_high:.4g})")
        self.message = (f"inputs look unlike what bundle '{ref.name}' was trained on: " + "; ".join(parts)
                        + ". Its verdicts on these images mean little: check that this is the right model for "
                          "this camera, part and lighting.")
        return self.message


__all__ = ["InputMonitor", "REASONS", "Reference", "input_statistics", "is_gray"]
