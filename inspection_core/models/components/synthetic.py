"""Synthetic defects for training reconstruction models to repair, not copy.

A reconstruction model trained on good parts only learns to copy its input:
a skip-connected generator copies a blowhole straight through, so the
residual at the defect is small. Trained instead to rebuild the *clean*
image from one with synthetic defects pasted in (the reconstructive part of
DRAEM, Zavrtanik, Kristan and Skočaj, ICCV 2021), it learns what a good
part looks like under a defect and repairs it; at inspection the residual
is large where the real defect was and small on good texture, which the
skips still reproduce faithfully.

Defects are smooth random blobs (thresholded multi-scale noise) or thin
scratches, filled with a brightness offset, another training image's
texture, or noise, and blended in with a random opacity. Only the model's
*input* is changed: losses compare the output with the clean image.
"""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F


def _blob_masks(b: int, h: int, w: int, device: torch.device) -> torch.Tensor:
    """(B, 1, H, W) soft masks of smooth random blobs covering about 1-8 % of the image."""
    noise = torch.zeros(b, 1, h, w, device=device)
    for cells in (4, 8, 16):  # a few octaves of upsampled noise: organic shapes
        low = torch.randn(b, 1, cells, cells, device=device)
        noise = noise + F.interpolate(low, size=(h, w), mode="bicubic", align_corners=False) / math.sqrt(cells)
    flat = noise.flatten(1)
    q = 0.92 + 0.07 * torch.rand(b, device=device)  # keep the top 1-8 %
    ranks = (q * (flat.shape[1] - 1)).long().view(b, 1)
    thr = flat.sort(dim=1).values.gather(1, ranks).view(b, 1, 1, 1)
    spread = flat.std(dim=1).view(b, 1, 1, 1) * 0.1 + 1e-6
    return ((noise - thr) / spread).clamp(0, 1)


def _scratch_masks(b: int, h: int, w: int, device: torch.device) -> torch.Tensor:
    """(B, 1, H, W) masks of one thin straight scratch each (1-3 px wide)."""
    ys = torch.arange(h, device=device).view(1, h, 1).float()
    xs = torch.arange(w, device=device).view(1, 1, w).float()
    p0 = torch.rand(b, 2, device=device) * torch.tensor([h, w], device=device)
    ang = torch.rand(b, device=device) * math.pi
    length = (0.2 + 0.5 * torch.rand(b, device=device)) * max(h, w)
    d = torch.stack([torch.sin(ang), torch.cos(ang)], 1)
    p1 = p0 + d * length.unsqueeze(1)
    py, px = p0[:, 0].view(b, 1, 1), p0[:, 1].view(b, 1, 1)
    vy, vx = (p1[:, 0] - p0[:, 0]).view(b, 1, 1), (p1[:, 1] - p0[:, 1]).view(b, 1, 1)
    t = (((ys - py) * vy + (xs - px) * vx) / (vy * vy + vx * vx + 1e-6)).clamp(0, 1)
    dist = torch.sqrt((ys - py - t * vy) ** 2 + (xs - px - t * vx) ** 2)
    width = (0.5 + 1.0 * torch.rand(b, device=device) * max(1.0, h / 128)).view(b, 1, 1)
    return (1.0 - (dist - width).clamp(0, 1)).unsqueeze(1)


def paste_defects(x: torch.Tensor, prob: float) -> torch.Tensor:
    """``x`` (B, C, H, W) in [-1, 1] with synthetic defects in about ``prob``
    of the images (the others unchanged). Uses torch's global RNG, which the
    training engine seeds."""
    if prob <= 0:
        return x
    b, c, h, w = x.shape
    dev = x.device
    xf = x.float()
    use = (torch.rand(b, device=dev) < prob).view(b, 1, 1, 1).float()
    scratch = (torch.rand(b, device=dev) < 0.4).view(b, 1, 1, 1).float()
    mask = scratch * _scratch_masks(b, h, w, dev) + (1 - scratch) * _blob_masks(b, h, w, dev)
    kind = torch.randint(0, 3, (b,), device=dev).view(b, 1, 1, 1)
    sign = torch.where(torch.rand(b, 1, 1, 1, device=dev) < 0.5, -1.0, 1.0)
    shifted = xf + sign * (0.3 + 0.6 * torch.rand(b, 1, 1, 1, device=dev))
    other = xf.roll(1, dims=0).flip(-1).roll(h // 3, dims=-2)  # another image's texture, moved
    noisy = xf + 0.5 * torch.randn_like(xf)
    fill = torch.where(kind == 0, shifted, torch.where(kind == 1, other, noisy)).clamp(-1, 1)
    alpha = (0.5 + 0.5 * torch.rand(b, 1, 1, 1, device=dev)) * mask * use
    return (xf * (1 - alpha) + fill * alpha).to(x.dtype)
