"""Greedy k-center coreset selection (Sener and Savarese, ICLR 2018), as
PatchCore chooses its memory bank: each new row is the one farthest from
those chosen so far."""

from __future__ import annotations

import math
from typing import Callable

import torch


def local_coresets(features: torch.Tensor, keep: int) -> torch.Tensor:
    """Greedy k-center selection inside each image at once: ``features`` (B,
    P, d) -> indices (B, keep) of each image's own most spread-out patches.
    A first, cheap reduction before the global coreset: patches repeated
    within an image (a uniform texture) are thinned, while every patch
    unlike the rest of its image survives."""
    b, p, _ = features.shape
    if keep >= p:
        return torch.arange(p).expand(b, p)
    f = features.float()
    sq = (f * f).sum(-1)                                     # (B, P)
    min_d = torch.full((b, p), math.inf)
    chosen = torch.empty(b, keep, dtype=torch.long)
    rows = torch.arange(b)
    cur = torch.zeros(b, dtype=torch.long)                   # start at each image's first patch
    for i in range(keep):
        chosen[:, i] = cur
        c = f[rows, cur]                                     # (B, d)
        d = sq - 2.0 * torch.bmm(f, c.unsqueeze(-1)).squeeze(-1) + sq[rows, cur].unsqueeze(-1)
        torch.minimum(min_d, d, out=min_d)
        cur = min_d.argmax(dim=1)
    return chosen


def greedy_coreset(features: torch.Tensor, k: int, generator: torch.Generator,
                   tick: Callable[[int, int], None] | None = None) -> torch.Tensor:
    """Indices of ``k`` rows of ``features`` (N, d) chosen by greedy k-center
    selection: each new row is the one farthest from all rows chosen so far.
    One matrix-vector product per chosen row (vectorised over N).
    ``tick(done, k)`` is called now and then (progress and cancellation)."""
    n = features.shape[0]
    if k >= n:
        return torch.arange(n)
    f = features.float().contiguous()
    sq = (f * f).sum(1)
    min_d = torch.full((n,), math.inf)
    chosen = torch.empty(k, dtype=torch.long)
    cur = int(torch.randint(0, n, (1,), generator=generator))
    every = max(1, k // 100)
    for i in range(k):
        chosen[i] = cur
        c = f[cur]
        d = torch.addmv(sq, f, c, alpha=-2.0).add_(sq[cur])
        torch.minimum(min_d, d, out=min_d)
        cur = int(torch.argmax(min_d))
        if tick is not None and (i % every == 0 or i == k - 1):
            tick(i + 1, k)
    return chosen


__all__ = ["greedy_coreset", "local_coresets"]
