"""What every inspector does around its model, without torch: the one
preprocessing path, the frame check, verdicts, heat maps and Predictions.

:class:`Scorer` is the base of the PyTorch :class:`inspection_core.inference.Inspector`
and of the station's :class:`inspection_core.station.StationInspector`; each
supplies only :meth:`Scorer._score` (prepared uint8 images in; scores, maps,
reconstructions and texture parts out) and, where it names defect types,
:meth:`Scorer.classify`. So a frame is judged the same way whichever runtime
scores it.
"""

from __future__ import annotations

import time
from typing import Any, Sequence

import numpy as np

from . import frame_check
from .data.preprocess import Preprocessing, normalize, to_geometry, to_model_image
from .types import Prediction, Threshold, Verdict

#: what :meth:`Scorer._score` returns: scores (N,) float64, anomaly maps (N, S, S) float32,
#: reconstructions uint8 (N, S, S, C) or None, texture parts (N,) float64 or None
ScoreArrays = tuple[np.ndarray, np.ndarray, "np.ndarray | None", "np.ndarray | None"]


class Scorer:
    """The scoring surface the CLI, the live line and the views use (see the
    module docstring). A subclass sets ``preprocessing``, ``frame_limits``,
    ``map_scale``, ``types`` (None where it names no defect types) and
    ``_threshold``, and implements :meth:`_score`."""

    preprocessing: Preprocessing
    frame_limits: Any
    #: the anomaly map's value shown at full heat (fixed at training)
    map_scale: float
    #: the defect-type classifier, or None
    types: Any = None
    _threshold: Threshold

    @property
    def threshold(self) -> Threshold:
        return self._threshold

    @threshold.setter
    def threshold(self, value: Threshold) -> None:
        self._threshold = value

    def _score(self, batch: np.ndarray | Sequence[np.ndarray]) -> ScoreArrays:  # pragma: no cover - abstract
        raise NotImplementedError

    def classify(self, prepared: np.ndarray, maps: np.ndarray) -> list[Any]:
        """The defect type of each prepared image with its anomaly map; empty
        where this scorer names none."""
        return []

    def prepare(self, image: np.ndarray) -> np.ndarray:
        """The model-ready uint8 (S, S, C) image (the one preprocessing path)."""
        return to_model_image(image, self.preprocessing)

    def check_frame(self, image: np.ndarray) -> tuple[np.ndarray, str]:
        """The model-ready image and why the frame carries no part ("" when
        it may be judged as one; :mod:`inspection_core.frame_check`)."""
        geometry = to_geometry(image, self.preprocessing)
        reason = self.frame_limits.reason(frame_check.frame_stats(geometry)) or ""
        return normalize(geometry, self.preprocessing), reason

    def score_images(self, batch: np.ndarray | Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Score prepared uint8 images (N, S, S, C). Returns scores (N,)
        float64, anomaly maps (N, S, S) float32 and reconstructions uint8
        (N, S, S, C) or None."""
        scores, maps, recon, _ = self._score(batch)
        return scores, maps, recon

    def _predictions(self, prepared: np.ndarray, reasons: Sequence[str], t0: float) -> list[Prediction]:
        scores, maps, recon, texture = self._score(prepared)
        elapsed = (time.perf_counter() - t0) * 1000.0 / max(1, len(prepared))
        thr = self._threshold
        failed = [i for i, s in enumerate(scores) if not reasons[i] and thr.verdict(float(s)) == Verdict.FAIL]
        typed = dict(zip(failed, self.classify(prepared[failed], maps[failed]))) if self.types is not None else {}
        preds = []
        for i, s in enumerate(scores):
            preds.append(
                Prediction(
                    score=float(s),
                    verdict=Verdict.INVALID if reasons[i] else thr.verdict(float(s)),
                    threshold=thr,
                    anomaly_map=maps[i],
                    heat=np.clip(maps[i] / self.map_scale, 0.0, 1.0).astype(np.float32),
                    image=prepared[i],
                    reconstruction=None if recon is None else recon[i],
                    latency_ms=elapsed,
                    texture_part=0.0 if texture is None else float(texture[i]),
                    reason=reasons[i],
                    defect_type=typed[i].label if i in typed else None,
                    defect_confidence=typed[i].confidence if i in typed else None,
                )
            )
        return preds

    def predict(self, image: np.ndarray) -> Prediction:
        """Score one image as read from disk or a camera (any size, bit depth
        or channel count). A frame that carries no part (blank, overexposed,
        far too dark or bright) is INVALID with its reason, never PASS."""
        t0 = time.perf_counter()
        prepared, reason = self.check_frame(image)
        return self._predictions(prepared[None], [reason], t0)[0]

    def predict_batch(self, images: Sequence[np.ndarray]) -> list[Prediction]:
        if len(images) == 0:
            return []
        t0 = time.perf_counter()
        return self.predict_checked([self.check_frame(im) for im in images], t0)

    def predict_checked(self, checked: Sequence[tuple[np.ndarray, str]], t0: float | None = None) -> list[Prediction]:
        """Predictions of images already through :meth:`check_frame` (each
        its model-ready image and reason), so that a caller can decode and
        preprocess the next images on another thread while these are scored
        (``inspector predict``). The same predictions as :meth:`predict_batch`
        of the images; ``t0`` (``time.perf_counter()``) starts the latency
        (default: now, the scoring alone)."""
        if len(checked) == 0:
            return []
        t0 = time.perf_counter() if t0 is None else t0
        prepared = np.stack([c[0] for c in checked])
        return self._predictions(prepared, [c[1] for c in checked], t0)
