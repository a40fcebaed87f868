"""Training-time augmentation for images of parts.

Applied by the training engine to each batch of an update-loop family, on
the device, after the one preprocessing path (so it never reaches scoring).
Everything is off by default; what suits a part is the engineer's call:
flips and rotations only where the part's orientation varies on the line.

Settings (``TrainConfig.augment``, a plain dict in the bundle manifest):

- ``hflip`` / ``vflip``: mirror with probability 0.5,
- ``rotate``: uniform rotation within +-``rotate`` degrees,
- ``rot90``: a random multiple of 90 degrees (square textures, tiles),
- ``shift``: translation within +-``shift`` of the side,
- ``brightness`` / ``contrast``: additive offset within +-``brightness`` (in
  [-1, 1] units) and gain within 1 +- ``contrast``.

Rotations and shifts fill with reflected borders so that no black corners
appear that the model would learn as normal.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

_BOOL = ("hflip", "vflip", "rot90")
_RANGES = {"rotate": (0.0, 180.0), "shift": (0.0, 0.5), "brightness": (0.0, 1.0), "contrast": (0.0, 0.9)}


@dataclass(frozen=True)
class Augmentation:
    hflip: bool = False
    vflip: bool = False
    rot90: bool = False
    rotate: float = 0.0
    shift: float = 0.0
    brightness: float = 0.0
    contrast: float = 0.0

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> "Augmentation":
        d = dict(d or {})
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown augmentation setting(s) {sorted(unknown)}; known: {sorted(known)}")
        for k in _BOOL:
            if k in d and not isinstance(d[k], bool):
                raise ValueError(f"augmentation '{k}' must be true or false, got {d[k]!r}")
        for k, (lo, hi) in _RANGES.items():
            if k in d:
                v = d[k]
                if isinstance(v, bool) or not isinstance(v, (int, float)) or not lo <= float(v) <= hi:
                    raise ValueError(f"augmentation '{k}' must be a number in [{lo:g}, {hi:g}], got {v!r}")
                d[k] = float(v)
        return cls(**d)

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v}

    @property
    def active(self) -> bool:
        return bool(self.to_dict())

    def __call__(self, x: Any) -> Any:
        """Augment a float batch (B, C, H, W) in [-1, 1]; uses torch's global RNG
        (seeded by the training engine)."""
        if not self.active:
            return x
        import torch
        from torch.nn import functional as F

        b, dev = x.shape[0], x.device
        fmt = torch.channels_last if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous() else None

        def coin() -> Any:
            return (torch.rand(b, device=dev) < 0.5).view(b, 1, 1, 1)

        if self.hflip:
            x = torch.where(coin(), x.flip(-1), x)
        if self.vflip:
            x = torch.where(coin(), x.flip(-2), x)
        if self.rot90 and x.shape[-1] == x.shape[-2]:
            k = torch.randint(0, 4, (b,), device=dev)
            rots = [x, x.rot90(1, (-2, -1)), x.rot90(2, (-2, -1)), x.rot90(3, (-2, -1))]
            out = x.clone()
            for i in range(1, 4):
                sel = (k == i).view(b, 1, 1, 1)
                out = torch.where(sel, rots[i], out)
            x = out
        if self.rotate > 0 or self.shift > 0:
            a = (torch.rand(b, device=dev) * 2 - 1) * math.radians(self.rotate)
            t = (torch.rand(b, 2, device=dev) * 2 - 1) * (2 * self.shift)  # affine_grid units: side = 2
            cos, sin = a.cos(), a.sin()
            theta = torch.stack([torch.stack([cos, -sin, t[:, 0]], 1), torch.stack([sin, cos, t[:, 1]], 1)], 1)
            grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
            x = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
        if self.contrast > 0 or self.brightness > 0:
            gain = 1.0 + self.contrast * (torch.rand(b, 1, 1, 1, device=dev, dtype=x.dtype) * 2 - 1)
            offset = self.brightness * (torch.rand(b, 1, 1, 1, device=dev, dtype=x.dtype) * 2 - 1)
            mean = x.mean(dim=(1, 2, 3), keepdim=True)
            x = ((x - mean) * gain + mean + offset).clamp(-1.0, 1.0)
        return x if fmt is None else x.contiguous(memory_format=fmt)
