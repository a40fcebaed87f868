"""Frame sanity: frames that carry no part never get a verdict on the part.

A detector scores what it is shown. A camera with its lens cap on, a dead
sensor, an overexposed frame or an empty fixture shows no part at all, and a
detector can score such a frame as a perfect part: per-image illumination
normalisation (``normalize="mean_std"``) turns an all-black or all-white frame
into flat grey, which a reconstruction model rebuilds perfectly. On an
unattended line every such frame would PASS.

So every frame is checked before its score means anything. Four statistics of
the frame in model geometry, *before* any normalisation (gray level = mean of
the channels, 0-255):

* ``level``: mean gray level,
* ``contrast``: standard deviation of the gray level,
* ``clipped``: share of pixels at or above :data:`CLIP_LEVEL` (saturated),

and a frame is INVALID, with its reason, when

* ``clipped > max_clipped``: "overexposed" (a white frame too),
* ``contrast < min_contrast``: "blank frame" (near-uniform: lens cap, dead
  sensor, a uniform frame of any other value),
* ``level < level_low`` / ``level > level_high``: "too dark" / "too bright",
  far darker or brighter than every training image (no part, lights off).

The limits come from the good training images' statistics (a supervised
family's defective training images are left out: the limits describe a good
part's frame), stored in the bundle at training (:func:`training_statistics`, ``manifest["frame_check"]``):
``min_contrast`` is half the least contrast of any training image,
``max_clipped`` lies a quarter of the way from the 99th percentile of the
training images' saturated shares to a fully clipped frame (25 % of the
pixels saturated where no training image has any), and the level limits lie well outside the training
images' darkest and brightest means (below half the darkest and 20 levels
under it; above 1.6 times the brightest, or halfway to white when that is
nearer, and at least 20 levels over it). A bundle without them (made before the
check existed) gets :data:`DEFAULT_LIMITS`, which refuse exactly uniform and
almost fully saturated frames only. The check is on by default and can be
turned off per bundle (``"enabled": false``).

No torch here: the GUI thread and the sources may use it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from collections.abc import Mapping
from typing import Any, Protocol, Sequence

import numpy as np

#: gray level from which a pixel counts as saturated
CLIP_LEVEL = 250
#: the reasons, as shown to the operator, and what each means
REASONS = {
    "blank frame": "the frame is near-uniform: no part in view (lens cap, dead sensor or covered camera?)",
    "overexposed": "much more of the frame is saturated than in any training image: overexposed",
    "too dark": "far darker than every training image: no part, or the lights are off",
    "too bright": "far brighter than every training image: no part, or the exposure is wrong",
}


@dataclass(frozen=True)
class FrameStats:
    level: float
    contrast: float
    clipped: float


@dataclass(frozen=True)
class FrameLimits:
    """What a frame must meet to be scored as a part (see the module docstring)."""

    min_contrast: float = 0.5
    max_clipped: float = 0.9
    level_low: float | None = None
    level_high: float | None = None
    enabled: bool = True

    def __post_init__(self) -> None:
        for name in ("min_contrast", "max_clipped", "level_low", "level_high"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v)):
                raise ValueError(f"frame check: {name} must be a finite number, got {v!r}")
        if not isinstance(self.enabled, bool):
            raise ValueError(f"frame check: enabled must be true or false, got {self.enabled!r}")
        if not 0.0 <= self.max_clipped <= 1.0:
            raise ValueError(f"frame check: max_clipped must be a share between 0 and 1, got {self.max_clipped}")
        if self.min_contrast < 0:
            raise ValueError(f"frame check: min_contrast must not be negative, got {self.min_contrast}")
        if self.level_low is not None and self.level_high is not None and self.level_low >= self.level_high:
            raise ValueError(f"frame check: level_low {self.level_low} must be below level_high {self.level_high}")

    def reason(self, stats: FrameStats) -> str | None:
        """Why a frame with these statistics carries no part, or None when it may."""
        if not self.enabled:
            return None
        if stats.clipped > self.max_clipped:
            return "overexposed"
        if stats.contrast < self.min_contrast:
            return "blank frame"
        if self.level_low is not None and stats.level < self.level_low:
            return "too dark"
        if self.level_high is not None and stats.level > self.level_high:
            return "too bright"
        return None

    def describe(self) -> str:
        """The limits in words (the Calibrate view and ``inspector calibrate`` show them)."""
        if not self.enabled:
            return "frame check off: every frame is scored as a part"
        parts = [f"contrast at least {self.min_contrast:.1f} gray levels",
                 f"at most {self.max_clipped:.0%} of the pixels saturated"]
        if self.level_low is not None or self.level_high is not None:
            lo = "0" if self.level_low is None else f"{self.level_low:.0f}"
            hi = "255" if self.level_high is None else f"{self.level_high:.0f}"
            parts.append(f"mean gray level {lo} to {hi}")
        return "frames must have " + ", ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: Any) -> "FrameLimits":
        if not isinstance(d, dict):
            raise ValueError(f"frame check limits must be a mapping, got {type(d).__name__}")
        known = {"min_contrast", "max_clipped", "level_low", "level_high", "enabled"}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"frame check: unknown key(s) {', '.join(sorted(unknown))}")
        return cls(**{k: d[k] for k in known if k in d})


#: for bundles that carry no training statistics: exactly uniform or almost
#: fully saturated frames only
DEFAULT_LIMITS = FrameLimits()


def gray_level(image: np.ndarray) -> np.ndarray:
    """float32 (H, W) gray level of a uint8 (H, W) or (H, W, C) image."""
    img = np.asarray(image)
    if img.ndim == 3:
        return img.astype(np.float32).mean(axis=2) if img.shape[2] > 1 else img[:, :, 0].astype(np.float32)
    return img.astype(np.float32)


def frame_stats(image: np.ndarray) -> FrameStats:
    """The statistics of a uint8 frame in model geometry (not normalised)."""
    g = gray_level(image)
    if g.size == 0:
        return FrameStats(0.0, 0.0, 0.0)
    return FrameStats(float(g.mean()), float(g.std()), float((g >= CLIP_LEVEL).mean()))


def limits_from(stats: Sequence[FrameStats]) -> FrameLimits:
    """The limits that the training images' statistics call for (module docstring)."""
    if not stats:
        return DEFAULT_LIMITS
    levels = np.array([s.level for s in stats])
    contrast = np.array([s.contrast for s in stats])
    clipped = np.array([s.clipped for s in stats])
    lo, hi = float(levels.min()), float(levels.max())
    # the saturated share from the 99th percentile: one training image with a glare does not open the limit
    c_min, k_max = float(contrast.min()), float(np.quantile(clipped, 0.99))
    low = min(lo / 2.0, lo - 20.0)
    high = max(min(hi + (255.0 - hi) / 2.0, 1.6 * hi), hi + 20.0)
    return FrameLimits(
        min_contrast=max(0.5, 0.5 * c_min),
        max_clipped=min(1.0, k_max + 0.25 * (1.0 - k_max)),
        level_low=low if low > 0 else None,
        level_high=high if high < 255 else None,
    )


def _quantiles(values: np.ndarray) -> list[float]:
    return [round(float(np.quantile(values, q)), 3) for q in (0.0, 0.01, 0.5, 0.99, 1.0)]


def training_statistics(stats: Sequence[FrameStats]) -> dict[str, Any]:
    """``manifest["frame_check"]`` from the training images' statistics
    (:func:`frame_stats` of each, in model geometry, not normalised): the
    limits and the statistics they come from (min, 1 %, median, 99 %, max)."""
    limits = limits_from(stats)
    out: dict[str, Any] = {**limits.to_dict(), "source": f"{len(stats)} training images"}
    if stats:
        out["training"] = {
            "level": _quantiles(np.array([s.level for s in stats])),
            "contrast": _quantiles(np.array([s.contrast for s in stats])),
            "clipped": _quantiles(np.array([s.clipped for s in stats])),
        }
    return out


class _TypedManifest(Protocol):
    """``manifest.Manifest`` as this module sees it (that module imports this one)."""

    @property
    def frame_limits(self) -> FrameLimits: ...


def limits_of(manifest: Mapping[str, Any] | _TypedManifest) -> FrameLimits:
    """The bundle's limits (:data:`DEFAULT_LIMITS` for a bundle made before the
    check); ``manifest``: a typed ``Manifest`` or its plain dict."""
    if not isinstance(manifest, Mapping):
        return manifest.frame_limits
    section = manifest.get("frame_check")
    if section is None:
        return DEFAULT_LIMITS
    return FrameLimits.from_dict({k: v for k, v in section.items() if k not in ("source", "training")})


def with_enabled(manifest: dict[str, Any], enabled: bool) -> dict[str, Any]:
    """``manifest``'s ``frame_check`` section with the check turned on or
    off (a bundle made before the check gets the default limits written out)."""
    section = dict(manifest.get("frame_check") or {**DEFAULT_LIMITS.to_dict(), "source": "default limits"})
    section["enabled"] = bool(enabled)
    check_section(section)
    return section


def check_section(section: Any) -> None:
    """Raise ValueError when a manifest's ``frame_check`` section is unusable."""
    if not isinstance(section, dict):
        raise ValueError(f"frame_check must be a mapping, got {type(section).__name__}")
    limits_of({"frame_check": section})
    training = section.get("training")
    if training is not None:
        if not isinstance(training, dict):
            raise ValueError("frame_check.training must be a mapping")
        for key, values in training.items():
            if not isinstance(values, list) or not all(
                    isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values):
                raise ValueError(f"frame_check.training.{key} must be a list of finite numbers")


__all__ = ["CLIP_LEVEL", "DEFAULT_LIMITS", "FrameLimits", "FrameStats", "REASONS", "check_section", "frame_stats", "with_enabled",
           "gray_level", "limits_from", "limits_of", "training_statistics"]
