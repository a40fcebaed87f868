"""Anomaly maps: the Gaussian smoothing every family's map gets, and patch
distances brought to the input's size."""

from __future__ import annotations

import functools

import torch
from torch.nn import functional as F


def _kernel_radius(sigma: float) -> int:
    return max(1, int(round(3 * sigma)))


def gaussian_kernel1d(sigma: float, device: torch.device) -> torch.Tensor:
    radius = _kernel_radius(sigma)
    xs = torch.arange(-radius, radius + 1, device=device, dtype=torch.float32)
    k = torch.exp(-(xs**2) / (2 * sigma * sigma))
    return k / k.sum()


#: maps up to this side are blurred by two matrix products (one BLAS call per
#: axis for the whole batch; a 1-channel convolution is a slow oneDNN case)
_MATMUL_BLUR_MAX = 512


@functools.lru_cache(maxsize=32)
def _blur_matrix(n: int, sigma: float, device: str) -> torch.Tensor:
    """(n, n) matrix M with (M @ v) = v blurred by the Gaussian kernel, with
    reflect padding folded in (the same sums as ``F.pad(mode="reflect")``
    then a valid 1-D convolution)."""
    k = gaussian_kernel1d(sigma, torch.device("cpu")).double()
    r = (k.numel() - 1) // 2
    idx = torch.arange(n).unsqueeze(1) + torch.arange(-r, r + 1).unsqueeze(0)   # (n, 2r+1)
    idx = idx.abs()                                                               # reflect below 0
    idx = torch.where(idx > n - 1, 2 * (n - 1) - idx, idx)                        # reflect above n-1
    m = torch.zeros(n, n, dtype=torch.float64)
    m.scatter_add_(1, idx, k.expand(n, -1).contiguous())
    return m.float().to(device)


def smooth_map(m: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of (B, H, W) maps; ``sigma`` in pixels,
    reflect padding at the borders."""
    if sigma <= 0:
        return m
    # always fp32, also on a bf16 scoring path: under autocast the products
    # would round the map (and the score taken from it) to bf16
    with torch.autocast(m.device.type, enabled=False):
        x = m.float()
        h, w = x.shape[-2], x.shape[-1]
        if _kernel_radius(sigma) < min(h, w) and max(h, w) <= _MATMUL_BLUR_MAX:
            dev = str(x.device)
            x = torch.matmul(x, _blur_matrix(w, float(sigma), dev).t())
            return torch.matmul(_blur_matrix(h, float(sigma), dev), x)
        k = gaussian_kernel1d(sigma, m.device).float()
        r = (k.numel() - 1) // 2
        x = x.unsqueeze(1)
        x = F.conv2d(F.pad(x, (r, r, 0, 0), mode="reflect"), k.view(1, 1, 1, -1))
        x = F.conv2d(F.pad(x, (0, 0, r, r), mode="reflect"), k.view(1, 1, -1, 1))
        return x.squeeze(1)


def upsample_map(patch_map: torch.Tensor, size: tuple[int, int] | torch.Size, sigma: float) -> torch.Tensor:
    """(B, h, w) patch values -> (B, H, W): bilinear to ``size``, then smoothed
    with ``sigma`` pixels."""
    amap = F.interpolate(patch_map.unsqueeze(1), size=tuple(size), mode="bilinear", align_corners=False).squeeze(1)
    return smooth_map(amap, sigma)


__all__ = ["gaussian_kernel1d", "smooth_map", "upsample_map"]
