"""Small immutable result types shared by the core, the CLI and the GUI."""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from typing import Any

import numpy as np


class Verdict(str, enum.Enum):
    """Decision for one part."""

    PASS = "PASS"
    REVIEW = "REVIEW"
    FAIL = "FAIL"
    #: the frame carries no part (blank, overexposed, far too dark or bright):
    #: no verdict on a part, never PASS (:mod:`inspection_core.frame_check`)
    INVALID = "INVALID"


@dataclass(frozen=True)
class Threshold:
    """Decision threshold(s) on the anomaly score A(x).

    Single mode: ``A(x) > high`` is FAIL, else PASS.
    Two-threshold mode (``low`` set): ``A(x) <= low`` PASS, ``A(x) > high`` FAIL,
    in between REVIEW.
    """

    high: float
    low: float | None = None

    def __post_init__(self) -> None:
        if not math.isfinite(self.high):
            raise ValueError(f"threshold must be a finite number, got {self.high}")
        if self.low is not None:
            if not math.isfinite(self.low):
                raise ValueError(f"lower threshold must be finite, got {self.low}")
            if self.low > self.high:
                raise ValueError(f"lower threshold {self.low} is above upper threshold {self.high}")

    def verdict(self, score: float) -> Verdict:
        if not math.isfinite(score):
            return Verdict.REVIEW if self.low is not None else Verdict.FAIL
        if score > self.high:
            return Verdict.FAIL
        if self.low is not None and score > self.low:
            return Verdict.REVIEW
        return Verdict.PASS

    def verdicts(self, scores: np.ndarray) -> list[Verdict]:
        return [self.verdict(float(s)) for s in np.asarray(scores, dtype=np.float64)]

    def to_dict(self) -> dict[str, Any]:
        return {"high": float(self.high), "low": None if self.low is None else float(self.low)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Threshold":
        return cls(high=float(d["high"]), low=None if d.get("low") is None else float(d["low"]))


@dataclass(frozen=True)
class Prediction:
    """What the inspector says about one image.

    ``anomaly_map``: float32 (H, W) at the model's input resolution, in score-map
    units (larger = more anomalous); ``heat`` is the same map scaled to [0, 1]
    with statistics fixed at training time (never from the images being scored).
    ``reconstruction``: uint8 (H, W, C) image the model rebuilt, or None for
    models without one (the classifier).
    ``image``: the preprocessed input as uint8 (H, W, C), for side-by-side views.
    """

    score: float
    verdict: Verdict
    threshold: Threshold
    anomaly_map: np.ndarray
    heat: np.ndarray
    image: np.ndarray
    reconstruction: np.ndarray | None = None
    latency_ms: float = 0.0
    #: the part of ``score`` from the texture of the whole image, not from a
    #: spot of the map (PatchCore's global term; 0 for the other families).
    #: ``score - texture_part`` is what the map's hottest spot alone scores.
    texture_part: float = 0.0
    #: why the frame is INVALID ("blank frame", "overexposed", "too dark",
    #: "too bright"); empty for a frame scored as a part
    reason: str = ""
    #: a FAIL's defect type by the bundle's defect-type classifier ("scratch",
    #: "unknown"), None where the bundle has none or the part did not FAIL
    defect_type: str | None = None
    #: the classifier's probability of that type (None with no type)
    defect_confidence: float | None = None
